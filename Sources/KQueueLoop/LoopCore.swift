import KQueue

/// A unit of work for the loop thread: a closure, or a Swift task's job.
enum LoopJob: Sendable {
    case closure(@Sendable () -> Void)
    /// A job of a task that prefers the loop as its TaskExecutor (not actor-isolated).
    case task(UnownedJob)
    /// A job of an actor whose SerialExecutor is the loop's.
    case actor(UnownedJob)
}

/// The loop's state that only its thread touches: the slot table, the run queue, the pending
/// changes and the event buffer.
///
/// `@unchecked Sendable`: the object is shared (the ``EventLoop`` holds it) but confined to the
/// loop thread, which is what makes it safe without a lock. Every entry point is reached from
/// the loop thread only: the public API checks ``EventLoop/inEventLoop`` and hops (``EventLoop/execute(_:)``)
/// otherwise, and `assertInLoop` checks it in debug builds. No lock is taken on the hot path.
final class LoopCore: @unchecked Sendable {
    // `@exclusivity(unchecked)`: no dynamic exclusivity check on each access of these hot
    // fields (measured: a visible share of an awaited readiness). One thread touches them, and
    // no code holds an inout access to one across a call that could touch it again.
    @exclusivity(unchecked) var slots: [Slot] = []
    @exclusivity(unchecked) var freeSlots: [Int32] = []
    @exclusivity(unchecked) var liveSlots = 0
    /// Jobs to run before the next wait (FIFO); `running` is the batch being run.
    @exclusivity(unchecked) var jobs: [LoopJob] = []
    @exclusivity(unchecked) var running: [LoopJob] = []
    /// The inbox's other array: swapped with it when the loop takes the jobs given from
    /// other threads.
    @exclusivity(unchecked) var inboxSpare: [LoopJob] = []
    /// Changes given to the next kevent() call with its wait.
    @exclusivity(unchecked) var changes: [KEvent] = []
    /// The event buffer, allocated once.
    let events: UnsafeMutableBufferPointer<KEvent>
    /// Set when shutdown starts: new registrations fail with ECANCELED.
    @exclusivity(unchecked) var closing = false
    /// The last wait ticket given (``takeWaitTicket()``).
    @exclusivity(unchecked) var waitTickets: UInt64 = 0

    // Idle timeouts: one entry per slot (same index), one coarse sweep timer per loop.
    /// Per slot: its idle timeout and last progress (parallel to `slots`).
    @exclusivity(unchecked) var idle: [IdleState] = []
    /// The loop's iteration time (CLOCK_MONOTONIC, ns), read once after each kevent() return
    /// while any socket has an idle timeout: progress is stamped with it, no clock read per I/O.
    @exclusivity(unchecked) var now: UInt64 = 0
    /// Slots with an idle timeout.
    @exclusivity(unchecked) var idleTracked = 0
    /// The sweep timer and its period (ns), while `idleTracked > 0`.
    var idleTimer: LoopRegistration?
    var idlePeriod: UInt64 = 0

    init(eventCapacity: Int) {
        events = .allocate(capacity: eventCapacity)
        events.initialize(repeating: KEvent(ident: 0, filter: .user))
        jobs.reserveCapacity(64)
        running.reserveCapacity(64)
        changes.reserveCapacity(eventCapacity)
    }

    deinit { events.deallocate() }

    // MARK: Slots

    /// Takes a free slot for `handler`.
    func allocate(_ handler: SlotHandler) throws(Errno) -> SlotToken {
        if closing { throw Errno.canceled }
        liveSlots += 1
        if let index = freeSlots.popLast() {
            slots[Int(index)].handler = handler
            return SlotToken(index: index, generation: slots[Int(index)].generation)
        }
        slots.append(Slot(generation: 1, handler: handler))
        idle.append(IdleState())
        return SlotToken(index: Int32(slots.count - 1), generation: 1)
    }

    /// The slot's handler when `token` still names it (not freed since).
    @inline(__always)
    func isLive(_ token: SlotToken) -> Bool {
        let index = Int(token.index)
        return index >= 0 && index < slots.count && slots[index].generation == token.generation
            && !slots[index].isFree
    }

    /// Frees the slot: its generation moves on, so events still in flight for it are dropped.
    func release(_ token: SlotToken) {
        guard isLive(token) else { return }
        let index = Int(token.index)
        slots[index].handler = .free
        if idle[index].timeout != 0 {
            idle[index].timeout = 0
            idleTracked -= 1
        }
        slots[index].generation = slots[index].generation &+ 1 == 0 ? 1 : slots[index].generation &+ 1
        freeSlots.append(token.index)
        liveSlots -= 1
    }

    /// `change` (as the caller gave it) as kevent() gets it for the registration `token`
    /// names: added, the token as `udata`, and for a timer the slot's index as ident, so that
    /// no two of the loop's timers (its own, the callers') share one; ``EventLoop`` puts the
    /// caller's ident back on each event (``SlotHandler/callerIdent``).
    @inline(__always)
    func kernelChange(_ change: KEvent, for token: SlotToken) -> KEvent {
        var change = change
        change.flags.insert(.add)
        change.udata = token.udata
        if change.filter == .timer { change.ident = UInt(token.index) }
        return change
    }

    /// Removes a not-yet-applied change for `token` from the pending list; true if one was there.
    func dropPendingChange(for token: SlotToken) -> Bool {
        let udata = token.udata
        let before = changes.count
        changes.removeAll { $0.udata == udata }
        return changes.count != before
    }

    /// A new wait's ticket, unique on this loop (64 bits: never wraps). A socket's slot
    /// outlives its waits, so its generation cannot tell one wait from the next: the ticket
    /// does, and a cancellation handler that comes late (its wait already ended, a new one
    /// waits in the slot) finds another ticket there and leaves the new wait alone.
    @inline(__always)
    func takeWaitTicket() -> UInt64 {
        waitTickets &+= 1
        return waitTickets
    }

    // MARK: Jobs

    @inline(__always)
    func enqueue(_ job: LoopJob) { jobs.append(job) }

    /// Runs the jobs queued so far (not those they queue: those run after the next poll, so
    /// I/O keeps its turn). Returns how many ran.
    @discardableResult
    func runJobs(on loop: EventLoop) -> Int {
        guard !jobs.isEmpty else { return 0 }
        swap(&jobs, &running)
        let count = running.count
        for job in running {
            switch job {
            case .closure(let body): body()
            case .task(let job):
                // Run as on a task executor, not isolated to the serial one: nonisolated code
                // of the task then runs on without hopping (a hop would be a job per await).
                job.runSynchronously(on: loop.asUnownedTaskExecutor())
            case .actor(let job):
                job.runSynchronously(
                    isolatedTo: loop.asUnownedSerialExecutor(), taskExecutor: loop.asUnownedTaskExecutor())
            }
        }
        running.removeAll(keepingCapacity: true)
        return count
    }
}

extension Slot {
    var isFree: Bool {
        if case .free = handler { return true }
        return false
    }
}
