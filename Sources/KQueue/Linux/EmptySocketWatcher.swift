import CKQueue
import Glibc
import SystemPackage

/// When to look again at the send queue of a TCP socket watched by EVFILT_EMPTY. Linux has no
/// wakeup for "the send queue drained": acknowledgements free the queue silently (a writer is
/// woken only when it had found the buffer full). So each waiting knote has a deadline in one
/// timerfd per kqueue (a ``TimerClock`` owned by EVFILT_EMPTY, opened on first use), chosen
/// from what the queue did since the last look:
///
/// * data newly queued (or more than last time): one smoothed round-trip time (TCP_INFO);
/// * the queue shrank: the time the remaining bytes need at the rate it shrank;
/// * the queue did not move: twice the last interval;
///
/// always between ``minimumInterval`` and ``maximumInterval``. An EV_CLEAR knote already
/// returned for an empty queue ("idle") is looked at every ``maximumInterval`` for data that
/// was queued and acknowledged since (TCP_INFO's acknowledged-byte count moved).
struct EmptySocketWatcher {
    /// The shortest interval: below it a wakeup costs more than the delay it saves.
    static let minimumInterval: Int64 = 20_000
    /// The longest interval: the bound on the delay after a stall, and on the cost of a stalled
    /// or idle knote (10 looks a second).
    static let maximumInterval: Int64 = 100_000_000

    /// What the last look saw, per knote.
    struct Progress {
        /// Bytes outstanding (0: none seen yet).
        var bytes: Int64 = 0
        /// When `bytes` was last seen to change.
        var time: Int64 = 0
        /// The interval last chosen.
        var interval: Int64 = 0
        /// For an idle EV_CLEAR knote: TCP_INFO's acknowledged bytes when it was returned.
        var idleAcknowledged: UInt64?
    }

    var clock = TimerClock(clock: CLOCK_MONOTONIC, payload: 0, owner: FilterID.empty)
    private var progress: [Int32: Progress] = [:]

    /// The idle baseline of `knote`, when it is an idle EV_CLEAR knote.
    func idleBaseline(_ knote: Int32) -> UInt64? { progress[knote]?.idleAcknowledged }

    /// `bytes` are outstanding: look again when they may be gone.
    mutating func outstanding(
        _ knote: Int32, bytes: Int64, roundTrip: Int64, registrar: InternalRegistrar
    ) throws(Errno) {
        let now = clock.now()
        var seen = progress[knote] ?? Progress()
        seen.idleAcknowledged = nil
        let delay: Int64
        if seen.bytes == 0 || bytes > seen.bytes {
            delay = roundTrip
            seen.bytes = bytes
            seen.time = now
        } else if bytes < seen.bytes && now > seen.time {
            // Remaining bytes at the rate the queue shrank since it last moved.
            let rate = Double(seen.bytes - bytes) / Double(now - seen.time)
            delay = Int64(min(Double(Self.maximumInterval), Double(bytes) / rate))
            seen.bytes = bytes
            seen.time = now
        } else {
            delay = seen.interval.multipliedReportingOverflow(by: 2).partialValue
        }
        seen.interval = min(max(delay, Self.minimumInterval), Self.maximumInterval)
        progress[knote] = seen
        try clock.prepare(registrar: registrar)
        clock.schedule(knote, at: now + seen.interval)
    }

    /// An EV_CLEAR knote was returned for an empty queue: look for acknowledged data later.
    mutating func idle(_ knote: Int32, acknowledged: UInt64, registrar: InternalRegistrar) throws(Errno) {
        progress[knote] = Progress(interval: Self.maximumInterval, idleAcknowledged: acknowledged)
        try clock.prepare(registrar: registrar)
        clock.schedule(knote, at: clock.now() + Self.maximumInterval)
    }

    /// The knote is ready, disabled or gone: no more looks.
    mutating func forget(_ knote: Int32) {
        if progress.removeValue(forKey: knote) != nil || clock.heap.contains(knote) { clock.remove(knote) }
    }

    /// The knotes whose time has come (the timerfd reported).
    mutating func due() -> [Int32] {
        clock.acknowledge()
        var knotes: [Int32] = []
        let now = clock.now()
        while let index = clock.heap.popDue(now: now) { knotes.append(index) }
        return knotes
    }

    /// After the due knotes were looked at: arm for the next deadline.
    mutating func rearm() { clock.rearm() }

    mutating func close(registrar: InternalRegistrar) {
        clock.close(registrar: registrar)
        progress = [:]
    }
}
