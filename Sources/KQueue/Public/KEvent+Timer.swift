import Glibc

extension KEvent {
    /// A timer that fires every `period` (``Filter/timer``; EV_CLEAR is added by the filter,
    /// and each event's `data` counts the expirations since the last one returned). Add
    /// ``Flags/oneShot`` to `flags` for a single expiry after `period`.
    ///
    /// EV_ADD on an existing timer restarts it, discarding uncollected expirations.
    public static func timer(
        _ ident: UInt, every period: Duration, flags: Flags = .add, udata: UnsafeMutableRawPointer? = nil
    ) -> KEvent {
        let (data, note) = timerData(period)
        return KEvent(ident: ident, filter: .timer, flags: flags, fflags: note.rawValue, data: data, udata: udata)
    }

    /// A one-shot timer that fires once, `delay` from now.
    public static func timer(
        _ ident: UInt, after delay: Duration, flags: Flags = [.add, .oneShot], udata: UnsafeMutableRawPointer? = nil
    ) -> KEvent {
        timer(ident, every: delay, flags: flags.union(.oneShot), udata: udata)
    }

    // ContinuousClock lives in the _Concurrency runtime, which brings libdispatch and their
    // load-time initializers; scripts/build-clib.sh defines KQUEUE_C_LIBRARY so that the
    // deployable libkqueue.so (the C ABI, no Swift API) links neither.
    #if !KQUEUE_C_LIBRARY
        /// A one-shot timer that fires at `deadline` on the continuous (monotonic) clock; a
        /// deadline in the past fires at once.
        public static func timer(
            _ ident: UInt, at deadline: ContinuousClock.Instant, flags: Flags = [.add, .oneShot],
            udata: UnsafeMutableRawPointer? = nil
        ) -> KEvent {
            let delay = ContinuousClock.now.duration(to: deadline)
            return timer(ident, after: delay < .zero ? .zero : delay, flags: flags, udata: udata)
        }
    #endif

    /// A timer that fires once at a wall-clock time, given as the time since the Unix epoch
    /// (NOTE_ABSTIME on CLOCK_REALTIME: it follows changes of the system clock). A time in
    /// the past fires at once.
    public static func timer(
        _ ident: UInt, atWallClockTimeSinceEpoch time: Duration, flags: Flags = .add,
        udata: UnsafeMutableRawPointer? = nil
    ) -> KEvent {
        let (data, note) = timerData(time < .zero ? .zero : time)
        return KEvent(
            ident: ident, filter: .timer, flags: flags, fflags: note.union(.absoluteTime).rawValue, data: data,
            udata: udata)
    }

    /// The current wall-clock time since the Unix epoch (CLOCK_REALTIME), for
    /// ``timer(_:atWallClockTimeSinceEpoch:flags:udata:)``.
    public static var wallClockNow: Duration {
        .nanoseconds(Syscall.now(CLOCK_REALTIME))
    }

    /// `data` and unit for a duration: nanoseconds when they fit in 64 bits, else seconds
    /// (which the filter then rejects with EINVAL if they overflow).
    private static func timerData(_ duration: Duration) -> (Int64, TimerNote) {
        let (seconds, attoseconds) = duration.components
        let nanoseconds = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let total = nanoseconds.partialValue.addingReportingOverflow(attoseconds / 1_000_000_000)
        if seconds < 0 || attoseconds < 0 { return (-1, .nanoseconds) }  // rejected: EINVAL
        if !nanoseconds.overflow && !total.overflow { return (total.partialValue, .nanoseconds) }
        return (seconds, .seconds)
    }
}
