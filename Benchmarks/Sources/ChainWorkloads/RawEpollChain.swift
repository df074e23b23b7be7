import CEpoll
import Glibc

/// (c) The baseline: raw epoll, level-triggered EPOLLIN, the pair index in `data.u64`.
public final class RawEpollChain: ChainWorkload {
    public let name = "RawEpoll"
    let pairs: SocketPairs
    let epfd: Int32
    let events: UnsafeMutablePointer<epoll_event>
    public private(set) var eventsHandled = 0
    private var isClosed = false

    public init() throws {
        pairs = try SocketPairs()
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epfd >= 0 else {
            let error = Glibc.errno
            pairs.closeAll()
            throw ChainSetupError(call: "epoll_create1", errno: error)
        }
        events = .allocate(capacity: ChainParameters.eventBufferCapacity)
        events.initialize(repeating: epoll_event(), count: ChainParameters.eventBufferCapacity)
        for i in 0..<pairs.readEnds.count {
            var event = epoll_event()
            event.events = UInt32(EPOLLIN.rawValue)
            event.data.u64 = UInt64(i)
            guard epoll_ctl(epfd, EPOLL_CTL_ADD, pairs.readEnds[i], &event) == 0 else {
                let error = Glibc.errno
                close()
                throw ChainSetupError(call: "epoll_ctl(ADD) #\(i)", errno: error)
            }
        }
        pairs.prime()
    }

    deinit { close() }

    public func runIteration() {
        var writes = 0
        while true {
            let n = epoll_wait(epfd, events, Int32(ChainParameters.eventBufferCapacity), -1)
            if n < 0 {
                precondition(Glibc.errno == EINTR, "epoll_wait failed: errno \(Glibc.errno)")
                continue
            }
            for k in 0..<Int(n) {
                pairs.forward(from: Int(truncatingIfNeeded: events[k].data.u64))
                writes += 1
                if writes == ChainParameters.writesPerIteration {
                    eventsHandled &+= writes
                    return
                }
            }
        }
    }

    public func bytesInFlight() -> Int { pairs.bytesInFlight() }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        pairs.closeAll()
        _ = Glibc.close(epfd)
        events.deallocate()
    }
}
