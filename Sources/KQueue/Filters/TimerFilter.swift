import CKQueue
import CKQueueShim
import Glibc

/// EVFILT_TIMER (SPEC.md 3): nanosecond timers, periodic unless EV_ONESHOT, absolute with
/// NOTE_ABSTIME. A timer knote costs its table slot and a heap entry: no descriptor, no
/// allocation per expiry.
///
/// Counting is lazy: when a periodic timer expires it leaves the heap with `data` 1; the
/// missed periods are added when the event is about to be returned (or re-enabled), and the
/// timer is put back for `start + n × period`, so periods never drift and a timer whose
/// events nobody collects costs nothing.
enum TimerFilter {
    static let seconds: UInt32 = 0x1
    static let milliseconds: UInt32 = 0x2
    static let microseconds: UInt32 = 0x4
    static let nanoseconds: UInt32 = 0x8
    static let absoluteTime: UInt32 = 0x10
    static let unitMask: UInt32 = 0xF
    /// The period of a periodic timer registered with `data` 0 (SPEC.md: the smallest period).
    static let minimumPeriod: Int64 = 1_000

    /// `data` in the unit chosen by `fflags`, in nanoseconds; nil when fflags or data are
    /// invalid or the value overflows 64-bit nanoseconds (all EINVAL).
    static func duration(data: Int64, fflags: UInt32) -> Int64? {
        guard data >= 0, fflags & ~(unitMask | absoluteTime) == 0 else { return nil }
        let scale: Int64
        switch fflags & unitMask {
        case 0, milliseconds: scale = 1_000_000
        case seconds: scale = 1_000_000_000
        case microseconds: scale = 1_000
        case nanoseconds: scale = 1
        default: return nil  // more than one unit
        }
        let (value, overflow) = data.multipliedReportingOverflow(by: scale)
        return overflow ? nil : value
    }

    static func attach(_ index: Int32, in state: inout QueueState) -> Int32? {
        if state.table[index].savedFlags & absoluteTime == 0 { state.table[index].flags |= EV.clear }
        return start(index, in: &state)
    }

    /// (Re)starts a timer from its saved data and fflags.
    static func start(_ index: Int32, in state: inout QueueState) -> Int32? {
        let knote = state.table[index]
        guard let length = duration(data: knote.savedData, fflags: knote.savedFlags) else { return EINVAL }
        let absolute = knote.savedFlags & absoluteTime != 0
        if absolute {
            if state.realtimeTimers.descriptor < 0 {
                let publish = state.internalDescriptors
                if let error = state.realtimeTimers.prepare(
                    epollFD: state.epollFD, publish: { publish.realtimeTimer.store($0, ordering: .releasing) })
                {
                    return error
                }
            }
            state.table[index].filterState = length
            state.realtimeTimers.schedule(index, at: length)
            return nil
        }
        if state.monotonicTimers.descriptor < 0 {
            let publish = state.internalDescriptors
            if let error = state.monotonicTimers.prepare(
                epollFD: state.epollFD, publish: { publish.monotonicTimer.store($0, ordering: .releasing) })
            {
                return error
            }
        }
        let oneShot = knote.flags & EV.oneShot != 0
        let delay = oneShot ? length : max(length, minimumPeriod)
        // A delay too far in the future to add to the clock is "never" (FreeBSD saturates too).
        let (sum, overflow) = state.monotonicTimers.now().addingReportingOverflow(delay)
        let deadline = overflow ? Int64.max - 1 : sum
        state.table[index].filterState = deadline
        state.monotonicTimers.schedule(index, at: deadline)
        return nil
    }

    static func detach(_ index: Int32, in state: inout QueueState) {
        state.monotonicTimers.remove(index)
        state.realtimeTimers.remove(index)
    }

    /// EV_ADD on an existing timer cancels it, discards uncollected expirations and starts
    /// it again with the new data and fflags; other changes (EV_ENABLE, EV_DISABLE) leave it
    /// running (SPEC.md 3).
    static func modify(_ index: Int32, with change: kevent, in state: inout QueueState) -> Int32? {
        guard change.flags & EV.add != 0 else { return nil }
        guard duration(data: change.data, fflags: change.fflags) != nil else { return EINVAL }
        detach(index, in: &state)
        state.activeQueue.remove(index, in: &state.table)
        state.table[index].status.remove(.active)
        state.table[index].data = 0
        state.table[index].savedFlags = change.fflags
        state.table[index].savedData = change.data
        return start(index, in: &state)
    }

    /// Expirations of one clock: every due timer gets one more expiration and is activated.
    static func expire(realtime: Bool, in state: inout QueueState) {
        if realtime { state.realtimeTimers.acknowledge() } else { state.monotonicTimers.acknowledge() }
        let now = realtime ? state.realtimeTimers.now() : state.monotonicTimers.now()
        while let index = realtime
            ? state.realtimeTimers.heap.popDue(now: now) : state.monotonicTimers.heap.popDue(now: now)
        {
            state.table[index].data += 1
            state.activate(index)
        }
        if realtime { state.realtimeTimers.rearm() } else { state.monotonicTimers.rearm() }
    }

    /// f_event: ready when expirations are pending. A periodic timer first adds the periods
    /// it missed since it expired and goes back into the heap for its next period.
    static func isReady(_ index: Int32, in state: inout QueueState) -> Bool {
        let knote = state.table[index]
        guard knote.data > 0 else { return false }
        let periodic = knote.flags & EV.oneShot == 0 && knote.savedFlags & absoluteTime == 0
        if periodic && !state.monotonicTimers.heap.contains(index) {
            let period = max(duration(data: knote.savedData, fflags: knote.savedFlags) ?? minimumPeriod, minimumPeriod)
            let due = knote.filterState  // the deadline that expired
            let now = state.monotonicTimers.now()
            let missed = now > due ? (now - due) / period : 0
            state.table[index].data += missed
            let next = due &+ (missed + 1) &* period
            state.table[index].filterState = next
            state.monotonicTimers.schedule(index, at: next)
        }
        return true
    }
}
