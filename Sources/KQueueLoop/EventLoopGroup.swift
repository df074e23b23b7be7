import Glibc
import KQueue
import Synchronization

/// Several event loops, one per core by default, each with its own thread and kqueue.
/// ``next()`` hands them out in turn; ``TCPServer`` puts one listener on each, sharing the
/// port through SO_REUSEPORT.
public final class EventLoopGroup: Sendable {
    public let loops: [EventLoop]
    private let nextIndex = Atomic<Int>(0)

    /// The number of online processors.
    public static var processorCount: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// Starts `loopCount` loops (their threads are named `name-0`, `name-1`, ...).
    public init(loopCount: Int = EventLoopGroup.processorCount, name: String = "KQueueLoop") throws(Errno) {
        precondition(loopCount > 0, "an EventLoopGroup needs at least one loop")
        var loops: [EventLoop] = []
        do throws(Errno) {
            for index in 0..<loopCount { loops.append(try EventLoop(name: "\(name)-\(index)")) }
        } catch {
            for loop in loops { loop.shutdown() }
            throw error
        }
        self.loops = loops
    }

    /// The next loop, in turn.
    public func next() -> EventLoop {
        loops[nextIndex.wrappingAdd(1, ordering: .relaxed).oldValue % loops.count]
    }

    /// Shuts every loop down (``EventLoop/shutdown()``), returning when all threads ended.
    public func shutdown() {
        for loop in loops { loop.shutdown() }
    }
}
