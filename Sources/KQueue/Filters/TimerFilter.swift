import CKQueue
import Glibc
import SystemPackage

/// EVFILT_TIMER (SPEC.md 3): nanosecond timers, periodic unless EV_ONESHOT, absolute with
/// NOTE_ABSTIME. A timer knote costs its table slot and a heap entry: no descriptor, no
/// allocation per expiry (one ``TimerClock`` per clock per kqueue).
///
/// Counting is lazy: when a periodic timer expires it leaves the heap with `data` 1; the
/// missed periods are added when the event is about to be returned (or re-enabled), and the
/// timer is put back for `start + n × period`, so periods never drift and a timer whose
/// events nobody collects costs nothing.
enum TimerFilter: FilterOperations {
    static var filter: Int16 { FilterID.timer }
    static let unitMask = Note.seconds | Note.milliseconds | Note.microseconds | Note.nanoseconds
    /// The period of a periodic timer registered with `data` 0 (SPEC.md: the smallest period).
    static let minimumPeriod: Int64 = 1_000

    /// `data` in the unit chosen by `fflags`, in nanoseconds; nil when fflags or data are
    /// invalid or the value overflows 64-bit nanoseconds (all EINVAL).
    static func duration(data: Int64, fflags: UInt32) -> Int64? {
        guard data >= 0, fflags & ~(unitMask | Note.absoluteTime) == 0 else { return nil }
        let scale: Int64
        switch fflags & unitMask {
        case 0, Note.milliseconds: scale = 1_000_000
        case Note.seconds: scale = 1_000_000_000
        case Note.microseconds: scale = 1_000
        case Note.nanoseconds: scale = 1
        default: return nil  // more than one unit
        }
        let (value, overflow) = data.multipliedReportingOverflow(by: scale)
        return overflow ? nil : value
    }

    static func attach(_ knote: Int32, in state: inout QueueState) throws(Errno) {
        if state.table[knote].savedFlags & Note.absoluteTime == 0 { state.table[knote].flags |= EV.clear }
        try start(knote, in: &state)
    }

    /// (Re)starts a timer from its saved data and fflags.
    static func start(_ knote: Int32, in state: inout QueueState) throws(Errno) {
        let saved = state.table[knote]
        guard let length = duration(data: saved.savedData, fflags: saved.savedFlags) else { throw .invalidArgument }
        if saved.savedFlags & Note.absoluteTime != 0 {
            try state.sources.realtimeTimers.prepare(registrar: state.registrar)
            state.table[knote].filterState = length
            state.sources.realtimeTimers.schedule(knote, at: length)
            return
        }
        try state.sources.monotonicTimers.prepare(registrar: state.registrar)
        let delay = saved.flags & EV.oneShot != 0 ? length : max(length, minimumPeriod)
        // A delay too far in the future to add to the clock is "never" (FreeBSD saturates too).
        let (sum, overflow) = state.sources.monotonicTimers.now().addingReportingOverflow(delay)
        let deadline = overflow ? Int64.max - 1 : sum
        state.table[knote].filterState = deadline
        state.sources.monotonicTimers.schedule(knote, at: deadline)
    }

    static func detach(_ knote: Int32, in state: inout QueueState) {
        state.sources.monotonicTimers.remove(knote)
        state.sources.realtimeTimers.remove(knote)
    }

    /// EV_ADD on an existing timer cancels it, discards uncollected expirations and starts
    /// it again with the new data and fflags; other changes (EV_ENABLE, EV_DISABLE) leave it
    /// running (SPEC.md 3).
    static func touch(_ knote: Int32, with change: kevent, in state: inout QueueState) throws(Errno) {
        guard change.flags & EV.add != 0 else { return }
        guard duration(data: change.data, fflags: change.fflags) != nil else { throw .invalidArgument }
        detach(knote, in: &state)
        state.activeQueue.remove(knote, in: &state.table)
        state.table[knote].status.remove(.active)
        state.table[knote].data = 0
        state.table[knote].savedFlags = change.fflags
        state.table[knote].savedData = change.data
        try start(knote, in: &state)
    }

    /// A clock's timerfd reported (payload 0: CLOCK_MONOTONIC, 1: CLOCK_REALTIME): every due
    /// timer gets one more expiration and is activated.
    static func sourceReported(_ payload: UInt32, in state: inout QueueState) {
        if payload == state.sources.realtimeTimers.payload {
            state.sources.realtimeTimers.acknowledge()
            let now = state.sources.realtimeTimers.now()
            while let index = state.sources.realtimeTimers.heap.popDue(now: now) { expired(index, in: &state) }
            state.sources.realtimeTimers.rearm()
        } else {
            state.sources.monotonicTimers.acknowledge()
            let now = state.sources.monotonicTimers.now()
            while let index = state.sources.monotonicTimers.heap.popDue(now: now) { expired(index, in: &state) }
            state.sources.monotonicTimers.rearm()
        }
    }

    private static func expired(_ knote: Int32, in state: inout QueueState) {
        state.table[knote].data += 1
        state.activate(knote)
    }

    /// f_event: ready when expirations are pending. A periodic timer first adds the periods
    /// it missed since it expired and goes back into the heap for its next period.
    static func event(_ knote: Int32, in state: inout QueueState) -> Bool {
        let saved = state.table[knote]
        guard saved.data > 0 else { return false }
        let periodic = saved.flags & EV.oneShot == 0 && saved.savedFlags & Note.absoluteTime == 0
        if periodic && !state.sources.monotonicTimers.heap.contains(knote) {
            let period = max(duration(data: saved.savedData, fflags: saved.savedFlags) ?? minimumPeriod, minimumPeriod)
            let due = saved.filterState  // the deadline that expired
            let now = state.sources.monotonicTimers.now()
            let missed = now > due ? (now - due) / period : 0
            state.table[knote].data += missed
            let next = due &+ (missed + 1) &* period
            state.table[knote].filterState = next
            state.sources.monotonicTimers.schedule(knote, at: next)
        }
        return true
    }

    static func closeSources(in state: inout QueueState) {
        state.sources.monotonicTimers.close(registrar: state.registrar)
        state.sources.realtimeTimers.close(registrar: state.registrar)
    }
}
