import CKQueue
import CKQueueShim
import Glibc
import SystemPackage

/// When to look again at the send queue of a TCP socket watched by EVFILT_EMPTY. Linux has no
/// wakeup for "the send queue drained": acknowledgements free the queue silently (a writer is
/// woken only when it had found the buffer full). So each waiting knote has a deadline in one
/// timerfd per kqueue (a ``TimerClock`` owned by EVFILT_EMPTY, opened on first use), chosen
/// from what the queue did since the last look:
///
/// * data newly queued (or more than last time): one smoothed round-trip time (TCP_INFO);
/// * the queue shrank: the time the remaining bytes need at the rate it shrank, at most as long
///   as that step took;
/// * the queue did not move: twice the last interval;
///
/// always between ``minimumInterval`` and ``maximumInterval``.
///
/// An EV_CLEAR knote already returned for an empty queue is *idle*: it fires again only after
/// the application sent more and the queue emptied again. The send interposers (write, send,
/// sendto, sendmsg) tell of the first send on an armed socket through a process-wide eventfd
/// (payload 1 of this filter's tag); sends they cannot see (writev, sendfile, splice, io_uring,
/// another process) are found by a look every ``idleInterval`` at TCP_INFO's acknowledged-byte
/// count.
struct EmptySocketWatcher {
    /// The shortest interval: below it a wakeup costs more than the delay it saves.
    static let minimumInterval: Int64 = 20_000
    /// The longest interval while data is outstanding: the bound on the delay after a stall,
    /// and on the cost of a stalled knote (10 looks a second).
    static let maximumInterval: Int64 = 100_000_000
    /// How often an idle EV_CLEAR knote looks for sends the interposers did not see.
    static let idleInterval: Int64 = 1_000_000_000
    /// The payloads of this filter's epoll tag.
    static let timerPayload: UInt32 = 0
    static let sendPayload: UInt32 = 1

    /// What the last look saw, per knote.
    struct Progress {
        /// Bytes outstanding (0: none seen yet).
        var bytes: Int64 = 0
        /// When `bytes` was last seen to change.
        var time: Int64 = 0
        /// The interval last chosen.
        var interval: Int64 = 0
        /// An idle EV_CLEAR knote: TCP_INFO's acknowledged bytes when it was returned, and the
        /// socket's send count when it was armed (nil: the interposers cannot tell).
        var idle: (acknowledged: UInt64, sends: Int64?)?
    }

    var clock = TimerClock(clock: CLOCK_MONOTONIC, payload: timerPayload, owner: FilterID.empty)
    private var progress: [Int32: Progress] = [:]
    /// The process-wide send eventfd is registered in this kqueue's epoll instance.
    private var sendWakeRegistered = false

    /// The idle state of `knote`, when it is an idle EV_CLEAR knote.
    func idleState(_ knote: Int32) -> (acknowledged: UInt64, sends: Int64?)? { progress[knote]?.idle }

    /// The idle knotes and the send count each was armed with.
    func idleKnotes() -> [(knote: Int32, sends: Int64?)] {
        progress.compactMap { entry in entry.value.idle.map { (entry.key, $0.sends) } }
    }

    /// `bytes` are outstanding: look again when they may be gone.
    mutating func outstanding(
        _ knote: Int32, bytes: Int64, roundTrip: Int64, registrar: InternalRegistrar
    ) throws(Errno) {
        let now = clock.now()
        var seen = progress[knote] ?? Progress()
        seen.idle = nil
        let delay: Int64
        if seen.bytes == 0 || bytes > seen.bytes {
            delay = roundTrip
            seen.bytes = bytes
            seen.time = now
        } else if bytes < seen.bytes && now > seen.time {
            // The remaining bytes at the rate the queue shrank since it last moved, but no
            // longer than that last step took: a queue read in steps (a slow reader) moves
            // again about one step later.
            let step = now - seen.time
            let share = min(1, Double(bytes) / Double(seen.bytes - bytes))
            delay = Int64(Double(step) * share)
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

    /// An EV_CLEAR knote was returned for the empty queue of `fd`: arm the socket for the
    /// application's next send (first, so that a send racing the baseline counts), then note
    /// the acknowledged bytes.
    mutating func idle(_ knote: Int32, fd: Int32, backend: ReadinessBackend, registrar: InternalRegistrar) throws(Errno)
    {
        var sends: Int64?
        if registerSendWake(backend: backend) { sends = Syscall.armEmptySend(fd) }
        guard let info = Syscall.tcpSendInfo(fd) else { return }
        try stayIdle(knote, acknowledged: info.bytes_acked, sends: sends, registrar: registrar)
    }

    /// An idle knote found nothing new: look again later (the socket stays armed).
    mutating func stayIdle(
        _ knote: Int32, acknowledged: UInt64, sends: Int64?, registrar: InternalRegistrar
    ) throws(Errno) {
        progress[knote] = Progress(interval: Self.idleInterval, idle: (acknowledged, sends))
        try clock.prepare(registrar: registrar)
        clock.schedule(knote, at: clock.now() + Self.idleInterval)
    }

    /// The process-wide send eventfd goes into this kqueue's epoll instance (not the kqueue's
    /// own descriptor: registered, never published or closed here). False if it cannot.
    private mutating func registerSendWake(backend: ReadinessBackend) -> Bool {
        if sendWakeRegistered { return true }
        let fd = Syscall.emptySendWakeDescriptor()
        guard fd >= 0 else { return false }
        let edge = UInt32(EPOLLIN.rawValue) | UInt32(EPOLLET.rawValue)
        let tag = EpollTag.source(filter: FilterID.empty, payload: Self.sendPayload)
        do throws(Errno) {
            try backend.add(fd, events: edge, tag: tag)
        } catch {
            guard error == .fileExists else { return false }
        }
        sendWakeRegistered = true
        return true
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
        sendWakeRegistered = false
    }
}
