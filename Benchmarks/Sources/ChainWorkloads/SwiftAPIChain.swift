import Glibc
import KQueue

/// (b) The Swift API: ``KernelQueue/kevent(changes:events:timeout:)`` on caller-provided
/// buffers (no change list, a reusable 64-entry event buffer, no timeout). The pair index
/// travels in `udata`.
public final class SwiftAPIChain: ChainWorkload {
    public let name = "SwiftAPI"
    let pairs: SocketPairs
    let queue: KernelQueue
    let events: UnsafeMutableBufferPointer<KEvent>
    let noChanges = UnsafeBufferPointer<KEvent>(start: nil, count: 0)
    public private(set) var eventsHandled = 0
    private var isClosed = false

    public init() throws {
        pairs = try SocketPairs()
        do {
            queue = try KernelQueue()
        } catch {
            pairs.closeAll()
            throw ChainSetupError(call: "KernelQueue()", errno: error.rawValue)
        }
        events = .allocate(capacity: ChainParameters.eventBufferCapacity)
        events.initialize(repeating: KEvent(ident: 0, filter: .read))
        var changes: [KEvent] = []
        changes.reserveCapacity(pairs.readEnds.count)
        for i in 0..<pairs.readEnds.count {
            changes.append(
                .read(
                    FileDescriptor(rawValue: pairs.readEnds[i]), flags: .add,
                    udata: UnsafeMutableRawPointer(bitPattern: i)))
        }
        do {
            try queue.apply(changes)
        } catch {
            close()
            throw ChainSetupError(call: "KernelQueue.apply(\(error.change))", errno: error.errno.rawValue)
        }
        pairs.prime()
    }

    deinit { close() }

    public func runIteration() {
        var writes = 0
        while true {
            let n: Int
            do {
                n = try queue.kevent(changes: noChanges, events: events, timeout: nil)
            } catch {
                precondition(error == .interrupted, "kevent(changes:events:timeout:) failed: \(error)")
                continue
            }
            for k in 0..<n {
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
        queue.close()
        events.deallocate()
    }
}
