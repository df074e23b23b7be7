import KQueue

/// Swift concurrency on the loop: one event awaited, or a sequence of them.
///
/// An await registers a one-shot kevent change that joins the loop's next kevent() call (no
/// call of its own), and suspends the task; the event resumes it. The task runs on the loop
/// thread (its executor preference is set to the loop when it was not), so the continuation
/// is stored and resumed without a lock. Cancelling the task removes the registration at
/// once and throws `CancellationError`.
extension EventLoop {
    /// Waits until `descriptor` has data to read (or end of file); returns the event (its
    /// `data` is the bytes readable).
    @inlinable  // one async frame less per await (measured with AwaitReadiness)
    public func readable(_ descriptor: FileDescriptor) async throws -> KEvent {
        try await nextEvent(.read(descriptor, flags: [.add, .oneShot]))
    }

    /// Waits until `descriptor` has room to write; returns the event.
    @inlinable
    public func writable(_ descriptor: FileDescriptor) async throws -> KEvent {
        try await nextEvent(.write(descriptor, flags: [.add, .oneShot]))
    }

    /// Waits until process `pid` exits; returns how it ended.
    public func processExit(_ pid: Int32) async throws -> ProcessExitStatus {
        try await nextEvent(.process(pid, note: .exit)).processExitStatus ?? .unknown
    }

    /// Suspends the task for `delay`, on a loop timer.
    public func sleep(for delay: Duration) async throws {
        _ = try await nextEvent(.timer(0, after: delay < .zero ? .zero : delay))
    }

    /// Registers `change` as a one-shot (`.add` and `.oneShot` are implied; `udata` is the
    /// loop's) and waits for its one event.
    ///
    /// - Throws: the change's errno when kevent() refuses it, `CancellationError` when the
    ///   task is cancelled, `Errno.canceled` when the loop shuts down,
    ///   `Errno.invalidArgument` for EVFILT_USER ident `UInt.max` (the loop's wakeup event).
    public func nextEvent(_ change: KEvent) async throws -> KEvent {
        try Self.checkReserved(change)
        guard inEventLoop else {
            guard !isShuttingDown else { throw Errno.canceled }
            return try await withTaskExecutorPreference(self) { try await self.nextEvent(change) }
        }
        let core = self.core
        var change = change
        change.flags.formUnion([.add, .oneShot])
        let token = try core.allocate(.waiter(WaiterEntry(change: change)))
        let registered = core.kernelChange(change, for: token)
        // The stdlib's `withTaskCancellationHandler(operation:onCancel:isolation:)` is not
        // inlined and hops to `isolation` on entry and after the operation: two executor
        // switches per await, each one a walk of the task's status records under its lock
        // while the task has an executor preference (measured with AwaitReadiness: 4 switches
        // per await before, 2 with this form). This public form runs on the caller's executor
        // (this function's: the loop), so it has no hop of its own; the semantics are the same.
        return try await _unsafeInheritExecutor_withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { continuation in
                // Still on the loop thread: nothing suspended since the slot was taken; the
                // slot is gone only if the task was cancelled (or the loop shut down) first.
                guard core.isLive(token) else {
                    continuation.resume(throwing: core.closing ? Errno.canceled : CancellationError())
                    return
                }
                core.slots[Int(token.index)].handler = .waiter(
                    WaiterEntry(change: change, continuation: continuation, pending: true))
                // Only now, with the continuation in place, may the event come: the change
                // joins the next kevent() call.
                core.changes.append(registered)
            }
        } onCancel: {
            // The token is this wait's ticket: its slot is freed when the wait ends (the
            // generation moves on), so a late handler finds it dead even if a new wait took
            // the same slot, and removes nothing.
            self.cancelSoon(token)
        }
    }

    /// Cancels the registration `token` names, from the cancelling thread: at once on the
    /// loop thread, else by a job.
    func cancelSoon(_ token: SlotToken) {
        if inEventLoop {
            cancelRegistration(token)
        } else {
            execute { self.cancelRegistration(token) }
        }
    }

    /// The events of `change` (any filter; `.add` is implied, `udata` is the loop's), as
    /// an AsyncSequence. It ends when the task iterating it is cancelled or stops iterating
    /// (the registration is then removed), with the change's errno when kevent() refuses it,
    /// and with `Errno.canceled` at shutdown. At most `bufferLimit` events wait for a slow
    /// consumer; older ones are dropped beyond that. A timer is registered under an ident the
    /// loop chooses (so that it never replaces another timer of the loop); its events carry
    /// the ident given in `change`.
    public func events(for change: KEvent, bufferLimit: Int = 1024) -> AsyncThrowingStream<KEvent, any Error> {
        let (stream, continuation) = AsyncThrowingStream<KEvent, any Error>.makeStream(
            bufferingPolicy: .bufferingNewest(bufferLimit))
        do throws(Errno) {
            try Self.checkReserved(change)
        } catch {
            continuation.finish(throwing: error)
            return stream
        }
        let registration = LoopRegistration(loop: self)
        let make: @Sendable () -> Void = { [self] in
            guard !registration.cancelled else { return }
            do throws(Errno) {
                let token = try core.allocate(.stream(StreamEntry(change: change, continuation: continuation)))
                do throws(Errno) {
                    try queue.applyReportingErrno([core.kernelChange(change, for: token)])
                } catch {
                    core.release(token)
                    throw error
                }
                registration.token = token
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in registration.cancel() }
        if inEventLoop {
            make()
        } else if !enqueue(.closure(make)) {
            continuation.finish(throwing: Errno.canceled)
        }
        return stream
    }
}
