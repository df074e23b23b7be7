import CKQueue
import CKQueueShim
import Glibc
import Testing

@testable import KQueue

/// One kevent() call can look at the backend more than once (when a full batch of reports gave
/// no event). A knote the call already returned is not returned again by it; a report of it
/// that a later look brings is a new edge, kept for the next call. The two looks are driven by
/// hand here (the engine's own `Wait` loop does the same steps), since a write between them
/// cannot be timed from outside a call.
@Suite("SPEC 2: a scan's later looks")
struct ScanLookTests {
    /// One look of a call: the backend's wait (no blocking), then the scan under the lock.
    static func look(_ queue: KernelQueue, into context: inout ScanContext, newScan: Bool) throws {
        let buffer = EpollBuffer(events: .allocate(capacity: 16))
        defer { buffer.events.deallocate() }
        var zero = timespec()
        let looked = try queue.core.backend.look(into: buffer.events.baseAddress!, requested: 16, timeout: &zero)
        let scan = context
        context = queue.core.state.withLock { state in
            var scan = scan
            let ready = buffer.events.baseAddress!
            let taken = state.backend.take(into: ready, requested: 16, looked: looked)
            state.collect(ready, count: Int(taken), into: &scan, newScan: newScan)
            state.backend.prepareWait()
            return scan
        }
    }

    @Test(
        "2.D: a new edge that a later look of the same call reports for an EV_CLEAR knote the call returned is returned by the next call",
        arguments: [KernelQueue.Backend.epoll, .ioURing])
    func laterLookEdgeKeptForNextCall(_ kind: KernelQueue.Backend) throws {
        // On a thread of its own: an io_uring kqueue's task work would go to this thread.
        try onThreadOfItsOwn {
            let queue = try KernelQueue(backend: .backend(kind))
            let (socket, peer) = try makeSocketPair()
            defer { closeAll(socket, peer) }
            try queue.apply([.read(socket, flags: [.add, .clear])])
            _ = try send(peer, count: 1)
            let events = UnsafeMutablePointer<kevent>.allocate(capacity: 4)
            defer { events.deallocate() }
            var context = ScanContext(events: events, capacity: 4)
            try Self.look(queue, into: &context, newScan: true)
            #expect(context.written == 1, "the first look returns the knote")
            _ = try send(peer, count: 2)
            try Self.look(queue, into: &context, newScan: false)
            #expect(context.written == 1, "not returned twice by one call")
            let next = try expectEvent(queue, ident: UInt(socket), filter: .read)
            #expect(next?.data == 3, "the edge between the looks is returned by the next call")
        }
    }
}
