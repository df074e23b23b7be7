import Glibc
import KQueue

/// Callbacks for events: each registration is one kevent registration whose `udata` names a
/// slot of the loop's table; the callback runs on the loop thread.
extension EventLoop {
    /// Registers `change` (any filter) and calls `callback` with each of its events on the
    /// loop thread. `change.udata` is replaced by the loop's token; `.add` is implied. An
    /// `.oneShot` change is cancelled after its event.
    ///
    /// From another thread, the call blocks until the loop thread made the registration, so
    /// that a failed change throws here.
    ///
    /// A timer (EVFILT_TIMER) is registered under an ident the loop chooses, so that it never
    /// replaces one of the loop's own timers (``schedule(after:_:)``, ``sleep(for:)``), which
    /// share the kqueue's timer idents; its events carry the ident given here. EVFILT_USER
    /// ident `UInt.max` is the loop's own wakeup event: naming it is `Errno.invalidArgument`.
    ///
    /// - Throws: the change's errno (e.g. `Errno.badFileDescriptor`), `Errno.invalidArgument`
    ///   for the reserved user ident, or `Errno.canceled` once shutdown began.
    @discardableResult
    public func register(
        _ change: KEvent, _ callback: @escaping @Sendable (KEvent) throws -> Void
    ) throws(Errno) -> LoopRegistration {
        try register(change, oneShot: change.flags.contains(.oneShot), callback)
    }

    func register(
        _ change: KEvent, oneShot: Bool, _ callback: @escaping @Sendable (KEvent) throws -> Void
    ) throws(Errno) -> LoopRegistration {
        try Self.checkReserved(change)
        let registration = LoopRegistration(loop: self)
        try runOnLoop { [self] () throws(Errno) in
            let token = try core.allocate(.callback(CallbackEntry(change: change, body: callback, oneShot: oneShot)))
            do throws(Errno) {
                try queue.applyReportingErrno([core.kernelChange(change, for: token)])
            } catch {
                core.release(token)
                throw error
            }
            registration.token = token
        }
        return registration
    }

    /// Calls `callback` each time `descriptor` has data to read (level-triggered: again at
    /// each loop iteration while data is left). The event's `data` is the bytes readable.
    @discardableResult
    public func onReadable(
        _ descriptor: FileDescriptor, _ callback: @escaping @Sendable (KEvent) throws -> Void
    ) throws(Errno) -> LoopRegistration {
        try register(.read(descriptor), callback)
    }

    /// Calls `callback` each time `descriptor` has room to write (level-triggered).
    @discardableResult
    public func onWritable(
        _ descriptor: FileDescriptor, _ callback: @escaping @Sendable (KEvent) throws -> Void
    ) throws(Errno) -> LoopRegistration {
        try register(.write(descriptor), callback)
    }

    /// Calls `callback` with the number of deliveries of `signal` since the last call.
    ///
    /// The loop observes the signal; it does not change what the signal does to the process.
    /// To handle, say, SIGTERM only here, ignore it first (`signal(SIGTERM, SIG_IGN)`):
    /// deliveries of ignored signals are still counted.
    @discardableResult
    public func onSignal(
        _ signal: Int32, _ callback: @escaping @Sendable (_ count: Int) throws -> Void
    ) throws(Errno) -> LoopRegistration {
        try register(.signal(signal)) { event in try callback(Int(event.data)) }
    }

    /// Calls `callback` once, with how the process ended, when process `pid` exits.
    @discardableResult
    public func onProcessExit(
        _ pid: Int32, _ callback: @escaping @Sendable (ProcessExitStatus) throws -> Void
    ) throws(Errno) -> LoopRegistration {
        try register(.process(pid, note: .exit), oneShot: true) { event in
            try callback(event.processExitStatus ?? .unknown)
        }
    }

    /// Calls `callback` with what happened to the file or directory open as `descriptor`
    /// (only the changes in `notes`), each time it changes.
    @discardableResult
    public func onFileChange(
        _ descriptor: FileDescriptor, notes: VnodeNote = [.write, .extend, .attrib, .delete, .rename],
        _ callback: @escaping @Sendable (VnodeNote) throws -> Void
    ) throws(Errno) -> LoopRegistration {
        try register(.vnode(descriptor, note: notes)) { event in try callback(VnodeNote(rawValue: event.fflags)) }
    }

    // MARK: Timers

    /// Runs `job` once on the loop thread, `delay` from now (an EVFILT_TIMER, one-shot).
    /// Callable from any thread without blocking; cancel the returned handle to drop it.
    @discardableResult
    public func schedule(
        after delay: Duration, _ job: @escaping @Sendable () throws -> Void
    ) -> LoopRegistration {
        scheduleTimer(.timer(0, after: delay < .zero ? .zero : delay), oneShot: true) { _ in try job() }
    }

    /// Runs `job` once on the loop thread at `deadline` (at once for a deadline passed).
    @discardableResult
    public func schedule(
        at deadline: ContinuousClock.Instant, _ job: @escaping @Sendable () throws -> Void
    ) -> LoopRegistration {
        let delay = ContinuousClock.now.duration(to: deadline)
        return schedule(after: delay, job)
    }

    /// Runs `job` every `period` until cancelled. `job` receives the number of periods that
    /// passed since its last run (more than 1 when the loop was busy).
    @discardableResult
    public func scheduleRepeating(
        every period: Duration, _ job: @escaping @Sendable (_ expirations: Int) throws -> Void
    ) -> LoopRegistration {
        scheduleTimer(.timer(0, every: period), oneShot: false) { event in try job(Int(event.data)) }
    }

    /// Timers are registered without blocking the caller: from another thread, the
    /// registration is made by a job, in order with that thread's other jobs and cancels.
    private func scheduleTimer(
        _ change: KEvent, oneShot: Bool, _ body: @escaping @Sendable (KEvent) throws -> Void
    ) -> LoopRegistration {
        let registration = LoopRegistration(loop: self)
        let make: @Sendable () -> Void = { [self] in
            guard !registration.cancelled else { return }
            do throws(Errno) {
                let token = try core.allocate(.callback(CallbackEntry(change: change, body: body, oneShot: oneShot)))
                // A timer needs no error path of its own: it joins the next kevent() call.
                core.changes.append(core.kernelChange(change, for: token))
                registration.token = token
            } catch {
                // Only ECANCELED (shutdown began): the timer is dropped, as a pending one is.
            }
        }
        if inEventLoop { make() } else { execute(make) }
        return registration
    }
}
