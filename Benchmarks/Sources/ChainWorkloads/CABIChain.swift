import CKQueue
import Glibc

/// (a) The C ABI: `kqueue()` and `kevent()` as declared in `<sys/event.h>`, resolved at
/// run time from libkqueue.so, exactly as a C program linked with -lkqueue calls them.
/// The pair index travels in `udata`.
public final class CABIChain: ChainWorkload {
    public let name = "CABI"
    let pairs: SocketPairs
    let kq: Int32
    let events: UnsafeMutablePointer<kevent>
    public private(set) var eventsHandled = 0
    private var isClosed = false

    public init() throws {
        pairs = try SocketPairs()
        kq = kqueue()
        guard kq >= 0 else {
            let error = Glibc.errno
            pairs.closeAll()
            throw ChainSetupError(call: "kqueue()", errno: error)
        }
        events = .allocate(capacity: ChainParameters.eventBufferCapacity)
        events.initialize(repeating: kevent(), count: ChainParameters.eventBufferCapacity)
        // One changelist registers all 1,000 read ends: EV_ADD, level-triggered.
        let changes = UnsafeMutablePointer<kevent>.allocate(capacity: pairs.readEnds.count)
        defer { changes.deallocate() }
        for i in 0..<pairs.readEnds.count {
            changes[i] = kevent(
                ident: UInt(pairs.readEnds[i]), filter: Int16(EVFILT_READ), flags: UInt16(EV_ADD), fflags: 0,
                data: 0, udata: UnsafeMutableRawPointer(bitPattern: i), ext: (0, 0, 0, 0))
        }
        guard kevent(kq, changes, Int32(pairs.readEnds.count), nil, 0, nil) == 0 else {
            let error = Glibc.errno
            close()
            throw ChainSetupError(call: "kevent(EV_ADD x \(pairs.readEnds.count))", errno: error)
        }
        pairs.prime()
    }

    deinit { close() }

    public func runIteration() {
        var writes = 0
        while true {
            let n = kevent(kq, nil, 0, events, Int32(ChainParameters.eventBufferCapacity), nil)
            if n < 0 {
                precondition(Glibc.errno == EINTR, "kevent() failed: errno \(Glibc.errno)")
                continue
            }
            for k in 0..<Int(n) {
                pairs.forward(from: Int(bitPattern: events[k].udata))
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
        _ = Glibc.close(kq)
        events.deallocate()
    }
}
