import CKQueue
import CKQueueShim
import Glibc
import SystemPackage

/// One clock's timers in one kqueue: a ``TimerHeap`` and one timerfd armed for the earliest
/// deadline (SPEC.md 4: O(1) descriptors however many timers). The timerfd is created on
/// first use, registered edge-triggered in the kqueue's epoll instance, and re-armed only when
/// the earliest deadline moves earlier than what it is armed for (a late spurious expiry is
/// absorbed by the scan, which then arms it for the next deadline).
struct TimerClock {
    let clock: clockid_t
    /// The owner's payload in this clock's epoll tag.
    let payload: UInt32
    /// The filter whose ``FilterOperations/sourceReported(_:in:)`` hears the timerfd.
    let owner: Int16
    var heap = TimerHeap()
    private(set) var descriptor: Int32 = -1
    /// The deadline the timerfd is armed for; `Int64.max` when disarmed.
    private var armedDeadline = Int64.max

    init(clock: clockid_t, payload: UInt32, owner: Int16 = FilterID.timer) {
        self.clock = clock
        self.payload = payload
        self.owner = owner
    }

    func now() -> Int64 { Syscall.now(clock) }

    /// Creates the timerfd if needed.
    mutating func prepare(registrar: InternalRegistrar) throws(Errno) {
        guard descriptor < 0 else { return }
        let fd = try Syscall.timerFDCreate(clock)
        let events = UInt32(EPOLLIN.rawValue) | UInt32(EPOLLET.rawValue)
        try registrar.register(fd, events: events, tag: EpollTag.source(filter: owner, payload: payload))
        descriptor = fd
    }

    /// Schedules `knote` and arms the timerfd if its deadline is now the earliest.
    mutating func schedule(_ knote: Int32, at deadline: Int64) {
        heap.schedule(knote, at: deadline)
        if deadline < armedDeadline { arm(deadline) }
    }

    mutating func remove(_ knote: Int32) {
        heap.remove(knote)
        if heap.isEmpty && armedDeadline != Int64.max { arm(Int64.max) }
    }

    /// After expiries were processed: arm for the next deadline (or disarm).
    mutating func rearm() {
        arm(heap.first?.deadline ?? Int64.max)
    }

    /// Drains the timerfd's expiry count (and, for CLOCK_REALTIME, a clock-change notice).
    /// Whatever the read says (a count, EAGAIN for a spurious report, ECANCELED for a clock
    /// change), the heap decides what expired; the timerfd is armed again from it.
    mutating func acknowledge() {
        _ = try? Syscall.timerFDRead(descriptor)
        armedDeadline = Int64.max
    }

    private mutating func arm(_ deadline: Int64) {
        guard descriptor >= 0 else { return }
        var spec = itimerspec()
        if deadline != Int64.max {
            // 0 would disarm: a deadline at or before the epoch is "now" for an absolute timer.
            let at = max(deadline, 1)
            spec.it_value = timespec(tv_sec: Int(at / 1_000_000_000), tv_nsec: Int(at % 1_000_000_000))
        }
        var flags = Int32(TFD_TIMER_ABSTIME)
        if clock == CLOCK_REALTIME && deadline != Int64.max { flags |= Int32(TFD_TIMER_CANCEL_ON_SET) }
        do throws(Errno) {
            try Syscall.timerFDSetTime(descriptor, flags: flags, spec)
            armedDeadline = deadline
        } catch {
            // Only a bad value (our bug) or a descriptor closed behind our back: left disarmed,
            // so that the next schedule tries again.
            armedDeadline = Int64.max
        }
    }

    mutating func close(registrar: InternalRegistrar) {
        registrar.close(descriptor)
        descriptor = -1
        armedDeadline = Int64.max
    }
}
