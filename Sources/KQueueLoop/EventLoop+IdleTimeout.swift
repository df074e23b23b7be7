import Glibc
import KQueue

/// Idle timeouts of sockets (``TCPConnection/idleTimeout``): one coarse repeating timer per
/// loop, never a timer per connection.
///
/// Reads and writes that move data stamp the socket's entry with the loop's iteration time
/// (``LoopCore/now``, read once per kevent() return while a timeout is set). The sweep timer
/// runs every eighth of the smallest timeout (10 ms to 1 s) and closes the sockets idle for
/// their timeout plus half a period: a stamp is at most one iteration's work older than the
/// progress it records, so a connection is not closed early unless one iteration ran longer
/// than half a period, and at most one and a half periods late (about 19 % of the smallest
/// timeout; 15 ms for those under 80 ms, whose period stays 10 ms).
extension EventLoop {
    static let idlePeriodMinimum: UInt64 = 10_000_000
    static let idlePeriodMaximum: UInt64 = 1_000_000_000

    /// The sweep period for a smallest timeout of `timeout` ns.
    static func idlePeriod(for timeout: UInt64) -> UInt64 {
        min(max(timeout / 8, idlePeriodMinimum), idlePeriodMaximum)
    }

    /// Sets (or with 0 removes) the idle timeout of the socket `token` names; its idle time
    /// starts now. On the loop thread.
    func ioSetIdleTimeout(_ token: SlotToken, nanoseconds timeout: UInt64) {
        assertInLoop()
        guard let entry = ioState(token), !entry.expired else { return }
        let index = Int(token.index)
        let was = core.idle[index].timeout
        if was == 0 && timeout != 0 {
            if core.idleTracked == 0 { core.now = LoopSyscall.monotonicNanoseconds() }
            core.idleTracked += 1
        } else if was != 0 && timeout == 0 {
            core.idleTracked -= 1
        }
        core.idle[index] = IdleState(timeout: timeout, lastProgress: core.now)
        if timeout != 0 && (core.idleTimer == nil || Self.idlePeriod(for: timeout) < core.idlePeriod) {
            updateIdleTimer(smallest: timeout)
        } else if core.idleTracked == 0 {
            updateIdleTimer(smallest: nil)
        }
    }

    /// Starts, re-arms or stops the sweep timer for the smallest timeout (nil: none left).
    func updateIdleTimer(smallest: UInt64?) {
        guard core.idleTracked > 0, let smallest, !core.closing else {
            core.idleTimer?.cancel()
            core.idleTimer = nil
            core.idlePeriod = 0
            return
        }
        let period = Self.idlePeriod(for: smallest)
        if core.idleTimer != nil && period == core.idlePeriod { return }
        core.idleTimer?.cancel()
        core.idlePeriod = period
        core.idleTimer = scheduleRepeating(every: .nanoseconds(Int64(period))) { [unowned self] _ in
            idleSweep()
        }
    }

    /// The sweep: closes the sockets idle for their timeout, and fits the period to the
    /// smallest timeout left. `now`: the clock (a test gives its own).
    func idleSweep(now: UInt64 = LoopSyscall.monotonicNanoseconds()) {
        core.now = now
        let slack = core.idlePeriod / 2
        var smallest = UInt64.max
        for index in core.idle.indices where core.idle[index].timeout != 0 {
            let state = core.idle[index]
            if now >= state.lastProgress && now - state.lastProgress >= state.timeout + slack {
                expireIO(index)
            } else {
                smallest = min(smallest, state.timeout)
            }
        }
        updateIdleTimer(smallest: core.idleTracked > 0 ? smallest : nil)
    }

    /// Ends the connection in slot `index` for its idle timeout: both directions are shut
    /// down (the peer sees the connection end), its waiting reader and writer get ETIMEDOUT,
    /// and so does every later read or write. The descriptor stays open (and its number the
    /// connection's, so that ``TCPConnection/descriptor`` never names another file) until
    /// the connection is closed: by ``TCPServer`` when the handler returns.
    private func expireIO(_ index: Int) {
        core.idle[index].timeout = 0
        core.idleTracked -= 1
        let token = SlotToken(index: Int32(index), generation: core.slots[index].generation)
        guard case .io(var entry) = core.slots[index].handler, !entry.expired else { return }
        _ = core.dropPendingChange(for: token)
        try? LoopSyscall.shutdown(entry.descriptor, how: Int32(SHUT_RDWR))
        entry.expired = true
        let reader = entry.reader
        let writer = entry.writer
        entry.reader = nil
        entry.writer = nil
        core.slots[index].handler = .io(entry)
        reader?.resume(throwing: Errno.timedOut)
        writer?.resume(throwing: Errno.timedOut)
    }
}
