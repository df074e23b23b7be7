import CEpoll
import Glibc
import KQueue

/// The chain workload of ``ChainParameters`` with its size as parameters, for comparing the
/// readiness backends (`BackendRatio`): `pairs` socketpairs, `active` chains in flight,
/// `writes` chained writes per iteration, a 64-entry event buffer.
public struct ChainShape: Sendable {
    public var pairs: Int
    public var active: Int
    public var writes = 1_000
    /// Loopback TCP connections instead of AF_UNIX socketpairs.
    public var tcp = false

    public init(pairs: Int, active: Int) {
        self.pairs = pairs
        self.active = active
    }
}

/// How the read ends are registered.
public enum ChainRegistration: String, Sendable {
    /// Level-triggered, registered once (EVFILT_READ; EPOLLIN).
    case persistent
    /// Re-armed after every event: EV_DISPATCH + EV_ENABLE in the next call's changelist;
    /// raw epoll: EPOLLONESHOT + EPOLL_CTL_MOD.
    case dispatch
}

/// The Swift API on one backend, persistent or re-armed through the next call's changelist.
public final class BackendChain: ChainWorkload {
    public let name: String
    let shape: ChainShape
    let registration: ChainRegistration
    let pairs: SocketPairs
    let queue: KernelQueue
    let events: UnsafeMutableBufferPointer<KEvent>
    /// EV_ENABLE changes for the next call (dispatch).
    let changes: UnsafeMutableBufferPointer<KEvent>
    var pendingChanges = 0
    public private(set) var eventsHandled = 0
    private var isClosed = false

    public init(name: String, backend: KernelQueue.Backend, registration: ChainRegistration, shape: ChainShape) throws {
        self.name = name
        self.shape = shape
        self.registration = registration
        pairs = try SocketPairs(count: shape.pairs, tcp: shape.tcp)
        do {
            queue = try KernelQueue(backend: .backend(backend))
        } catch {
            pairs.closeAll()
            throw ChainSetupError(call: "KernelQueue(backend:)", errno: error.rawValue)
        }
        guard queue.backend == backend else {
            pairs.closeAll()
            throw ChainSetupError(call: "KernelQueue(backend: \(backend)) gave \(queue.backend)", errno: ENOSYS)
        }
        events = .allocate(capacity: ChainParameters.eventBufferCapacity)
        events.initialize(repeating: KEvent(ident: 0, filter: .read))
        changes = .allocate(capacity: ChainParameters.eventBufferCapacity)
        changes.initialize(repeating: KEvent(ident: 0, filter: .read))
        let flags: Flags = registration == .dispatch ? [.add, .dispatch] : .add
        var adds: [KEvent] = []
        for i in 0..<shape.pairs {
            adds.append(
                .read(
                    FileDescriptor(rawValue: pairs.readEnds[i]), flags: flags,
                    udata: UnsafeMutableRawPointer(bitPattern: i)))
        }
        do {
            try queue.apply(adds)
        } catch {
            close()
            throw ChainSetupError(call: "KernelQueue.apply(.add x \(adds.count))", errno: error.rawValue)
        }
        pairs.prime(chains: shape.active)
    }

    deinit { close() }

    public func runIteration() {
        var writes = 0
        while true {
            let n: Int
            do {
                n = try queue.kevent(
                    changes: UnsafeBufferPointer(rebasing: changes[0..<pendingChanges]), events: events, timeout: nil)
            } catch {
                precondition(error == .interrupted, "kevent failed: \(error)")
                continue
            }
            pendingChanges = 0
            for k in 0..<n {
                let i = Int(bitPattern: events[k].udata)
                // Past the iteration's budget an event keeps its byte: re-enabled, it comes
                // back in the next iteration (as a level event would).
                if writes < shape.writes {
                    pairs.forward(from: i)
                    writes += 1
                }
                if registration == .dispatch {
                    changes[pendingChanges] = .read(
                        FileDescriptor(rawValue: pairs.readEnds[i]), flags: .enable, udata: events[k].udata)
                    pendingChanges += 1
                }
            }
            if writes == shape.writes {
                eventsHandled &+= writes
                return
            }
        }
    }

    public func bytesInFlight() -> Int { pairs.bytesInFlight() }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        pairs.closeAll()
        queue.close()
        events.deallocate()
        changes.deallocate()
    }
}

/// Raw epoll: level-triggered (optionally with the FIONREAD that `data` costs kqueue), or
/// EPOLLONESHOT re-armed with EPOLL_CTL_MOD after each event.
public final class RawEpollShapedChain: ChainWorkload {
    public let name: String
    let shape: ChainShape
    let registration: ChainRegistration
    let withByteCount: Bool
    let pairs: SocketPairs
    let epfd: Int32
    let events: UnsafeMutablePointer<epoll_event>
    public private(set) var eventsHandled = 0
    private var isClosed = false

    public init(name: String, registration: ChainRegistration, withByteCount: Bool = false, shape: ChainShape) throws {
        self.name = name
        self.shape = shape
        self.registration = registration
        self.withByteCount = withByteCount
        pairs = try SocketPairs(count: shape.pairs, tcp: shape.tcp)
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        events = .allocate(capacity: ChainParameters.eventBufferCapacity)
        events.initialize(repeating: epoll_event(), count: ChainParameters.eventBufferCapacity)
        for i in 0..<shape.pairs {
            var event = epoll_event()
            event.events = UInt32(EPOLLIN.rawValue) | (registration == .dispatch ? UInt32(EPOLLONESHOT.rawValue) : 0)
            event.data.u64 = UInt64(i)
            guard epoll_ctl(epfd, EPOLL_CTL_ADD, pairs.readEnds[i], &event) == 0 else {
                let error = Glibc.errno
                close()
                throw ChainSetupError(call: "epoll_ctl(ADD) #\(i)", errno: error)
            }
        }
        pairs.prime(chains: shape.active)
    }

    deinit { close() }

    public func runIteration() {
        var writes = 0
        var readable: Int32 = 0
        while true {
            let n = epoll_wait(epfd, events, Int32(ChainParameters.eventBufferCapacity), -1)
            if n < 0 {
                precondition(Glibc.errno == EINTR, "epoll_wait failed: errno \(Glibc.errno)")
                continue
            }
            for k in 0..<Int(n) {
                let i = Int(truncatingIfNeeded: events[k].data.u64)
                if writes < shape.writes {  // past the budget: the byte waits (see BackendChain)
                    if withByteCount { _ = ioctl(pairs.readEnds[i], UInt(FIONREAD), &readable) }
                    pairs.forward(from: i)
                    writes += 1
                }
                if registration == .dispatch {
                    var event = epoll_event()
                    event.events = UInt32(EPOLLIN.rawValue) | UInt32(EPOLLONESHOT.rawValue)
                    event.data.u64 = UInt64(i)
                    _ = epoll_ctl(epfd, EPOLL_CTL_MOD, pairs.readEnds[i], &event)
                }
            }
            if writes == shape.writes {
                eventsHandled &+= writes
                return
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
