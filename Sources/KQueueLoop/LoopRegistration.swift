/// A callback or timer registered on an ``EventLoop``; ``cancel()`` removes it.
///
/// Dropping the handle does not cancel the registration (as with SwiftNIO's scheduled tasks):
/// it lasts until cancelled, until its one event for a one-shot, or until shutdown.
public final class LoopRegistration: Sendable {
    let loop: EventLoop
    // Loop-thread state, touched only on the loop thread (every access is inside a job or a
    // callback of `loop`), hence `nonisolated(unsafe)` without a lock.
    /// Where the registration lives, once made.
    nonisolated(unsafe) var token: SlotToken?
    /// cancel() came before the (deferred) registration was made.
    nonisolated(unsafe) var cancelled = false

    init(loop: EventLoop) { self.loop = loop }

    /// Removes the registration: its callback is not called again (an event already being
    /// delivered in the same loop iteration is dropped). Callable from any thread; from
    /// another thread it takes effect when the loop runs the next jobs. Idempotent.
    public func cancel() {
        if loop.inEventLoop {
            cancelOnLoop()
        } else {
            loop.execute { self.cancelOnLoop() }
        }
    }

    func cancelOnLoop() {
        cancelled = true
        if let token { loop.cancelRegistration(token) }
        token = nil
    }
}
