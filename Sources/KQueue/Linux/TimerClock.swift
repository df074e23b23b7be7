import CKQueueShim
import Glibc

/// One clock's timers in one kqueue: a ``TimerHeap`` and one timerfd armed for the earliest
/// deadline (SPEC.md 4: O(1) descriptors however many timers). The timerfd is created on
/// first use, registered edge-triggered in the kqueue's epoll instance, and re-armed only when
/// the earliest deadline moves earlier than what it is armed for (a late spurious expiry is
/// absorbed by the scan, which then arms it for the next deadline).
struct TimerClock {
    let clock: clockid_t
    let tag: UInt64
    var heap = TimerHeap()
    private(set) var descriptor: Int32 = -1
    /// The deadline the timerfd is armed for; `Int64.max` when disarmed.
    private var armedDeadline = Int64.max

    init(clock: clockid_t, tag: UInt64) {
        self.clock = clock
        self.tag = tag
    }

    func now() -> Int64 {
        var time = timespec()
        clock_gettime(clock, &time)
        return Int64(time.tv_sec) &* 1_000_000_000 &+ Int64(time.tv_nsec)
    }

    /// Creates the timerfd if needed. Returns an errno on failure.
    mutating func prepare(epollFD: Int32, publish: (Int32) -> Void) -> Int32? {
        guard descriptor < 0 else { return nil }
        let fd = timerfd_create(clock, Int32(TFD_CLOEXEC | TFD_NONBLOCK))
        guard fd >= 0 else { return Syscall.errno }
        let events = UInt32(EPOLLIN.rawValue) | UInt32(EPOLLET.rawValue)
        if let error = Syscall.registerInternal(fd, in: epollFD, events: events, tag: tag) { return error }
        descriptor = fd
        publish(fd)
        return nil
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
    mutating func acknowledge() {
        var count: UInt64 = 0
        _ = read(descriptor, &count, 8)
        armedDeadline = Int64.max  // it fired (or was cancelled): arm again from the heap
    }

    private mutating func arm(_ deadline: Int64) {
        guard descriptor >= 0 else { return }
        armedDeadline = deadline
        var spec = itimerspec()
        if deadline != Int64.max {
            // 0 would disarm: a deadline at or before the epoch is "now" for an absolute timer.
            let at = max(deadline, 1)
            spec.it_value = timespec(tv_sec: Int(at / 1_000_000_000), tv_nsec: Int(at % 1_000_000_000))
        }
        var flags = Int32(TFD_TIMER_ABSTIME)
        if clock == CLOCK_REALTIME && deadline != Int64.max { flags |= Int32(TFD_TIMER_CANCEL_ON_SET) }
        _ = timerfd_settime(descriptor, flags, &spec, nil)
    }

    mutating func close() {
        Syscall.closeInternal(descriptor)
        descriptor = -1
    }
}
