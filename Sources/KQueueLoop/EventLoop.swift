import Glibc
@_exported import KQueue
import Synchronization

/// An event loop: one ``KernelQueue`` and one thread that waits on it and runs what its
/// events wake: callbacks, timers, jobs given with ``execute(_:)`` from any thread, and Swift
/// tasks and actors that use the loop as their executor.
///
/// ```swift
/// let loop = try EventLoop()
/// let timer = loop.schedule(after: .milliseconds(10)) { print("ten milliseconds later") }
/// let data = try await loop.readable(descriptor)   // one readiness, awaited
/// loop.shutdown()
/// ```
///
/// Everything the loop calls runs on its thread, one thing at a time, so callbacks need no
/// locks among themselves. The thread is woken from other threads through an EVFILT_USER
/// event. ``shutdown()`` runs the jobs already given, cancels what is registered (waiting
/// tasks get `Errno.canceled`), closes the descriptors the loop owns and ends the thread.
/// A loop lives until ``shutdown()``: its thread holds it, so dropping every reference does
/// not stop it (as with SwiftNIO's event loops).
public final class EventLoop: Sendable {
    /// The queue the loop waits on.
    ///
    /// Changes applied to it directly bypass the loop's checks and bookkeeping: keep clear of
    /// EVFILT_USER ident `UInt.max` (the loop's wakeup event) and of EVFILT_TIMER idents below
    /// the loop's slot count (the loop registers its timers under its slot indices). The loop
    /// delivers only events whose `udata` is one of its registration tokens: use its
    /// registration API for events it should deliver.
    public let queue: KernelQueue
    /// The thread's name.
    public let name: String

    let core: LoopCore
    /// Jobs given from other threads, and whether the loop was already woken for them.
    let inbox = Mutex(Inbox())
    /// The loop thread's identity (pthread_t), set by the thread before it runs anything.
    let threadID = Atomic<UInt>(0)
    /// ``LoopState`` raw value.
    let state = Atomic<Int>(LoopState.running.rawValue)
    let thread = Mutex<pthread_t?>(nil)
    let errorHandler: @Sendable (any Error) -> Void
    /// After this long running without waiting in kevent(), the loop thread yields its CPU
    /// (nanoseconds; 0: never). See ``init(name:eventCapacity:yieldAfter:errorHandler:)``.
    let yieldAfterNanoseconds: UInt64
    /// The SerialExecutor for actors that run on the loop (``asUnownedSerialExecutor()``).
    public let serialExecutor = LoopSerialExecutor()

    struct Inbox {
        var jobs: [LoopJob] = []
        var woken = false
        var stopped = false
    }

    enum LoopState: Int {
        case running, stopping, stopped
    }

    /// The ident of the loop's own EVFILT_USER wakeup event: reserved. A user's EVFILT_USER
    /// event of the same ident would be the same kevent registration, so a change of the
    /// loop's API naming it fails with EINVAL (``checkReserved(_:)``); every other ident,
    /// 0 included, is the user's.
    static let wakeIdent: UInt = .max

    /// Refuses a change the loop cannot take: an EVFILT_USER event with the loop's wakeup
    /// ident (`Errno.invalidArgument`).
    @inline(__always)
    static func checkReserved(_ change: KEvent) throws(Errno) {
        if change.filter == .user && change.ident == wakeIdent { throw Errno.invalidArgument }
    }

    /// Starts a loop and its thread.
    ///
    /// - Parameters:
    ///   - name: the thread's name.
    ///   - eventCapacity: how many events one wait collects.
    ///   - yieldAfter: a loop that has run this long without its kevent() call waiting (its
    ///     sockets keep it busy) yields its CPU with `sched_yield()`, so that another thread
    ///     that shares the CPU (another loop of a group, when there are more busy threads
    ///     than cores) is not kept waiting for the scheduler's whole time slice with its
    ///     sockets' requests queued; nil: never. A yield is one system call per period of
    ///     continuous work and returns at once when nothing else is runnable.
    ///   - errorHandler: receives what a callback throws (the callback's registration is
    ///     then cancelled); by default it is written to standard error.
    public init(
        name: String = "KQueueLoop", eventCapacity: Int = 256, yieldAfter: Duration? = .microseconds(200),
        errorHandler: @escaping @Sendable (any Error) -> Void = EventLoop.reportToStandardError
    ) throws(Errno) {
        self.name = name
        self.errorHandler = errorHandler
        yieldAfterNanoseconds = UInt64(Self.nanoseconds(yieldAfter))
        // The backend every kqueue gets: KQUEUE_BACKEND, else the automatic choice
        // (docs/ARCHITECTURE.md, "Readiness backends").
        queue = try KernelQueue()
        core = LoopCore(eventCapacity: max(eventCapacity, 8))
        try queue.applyReportingErrno([.user(Self.wakeIdent, flags: [.add, .clear])])
        serialExecutor.loop = self
        let thread = try LoopSyscall.startThread { [self] in run() }
        threadID.store(UInt(thread), ordering: .releasing)
        self.thread.withLock { $0 = thread }
    }

    /// A timeout or period in nanoseconds: 0 for nil, zero or negative (clamped to Int64).
    static func nanoseconds(_ duration: Duration?) -> Int64 {
        guard let duration, duration > .zero else { return 0 }
        let (seconds, attoseconds) = duration.components
        guard seconds < Int64.max / 1_000_000_000 - 1 else { return Int64.max }
        return max(1, seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    /// Writes a callback's error to standard error.
    public static let reportToStandardError: @Sendable (any Error) -> Void = { error in
        var message = "KQueueLoop: a callback threw \(error); its registration is cancelled\n"
        message.withUTF8 { _ = Glibc.write(2, $0.baseAddress, $0.count) }
    }

    /// True on the loop's thread.
    @inline(__always)
    public var inEventLoop: Bool { LoopSyscall.currentThread() == threadID.load(ordering: .acquiring) }

    /// True once ``shutdown()`` began.
    public var isShuttingDown: Bool { state.load(ordering: .acquiring) != LoopState.running.rawValue }

    @inline(__always)
    func assertInLoop(_ function: StaticString = #function) {
        assert(inEventLoop, "\(function) must run on the loop thread")
    }

    // MARK: Jobs

    /// Runs `job` on the loop thread, after the jobs given before it from the same thread.
    /// Callable from any thread; from the loop thread, the job runs after the current
    /// callback (never inside it). After shutdown the job is dropped.
    public func execute(_ job: @escaping @Sendable () -> Void) {
        enqueue(.closure(job))
    }

    /// Queues `job`; false when the loop has stopped and the job was not taken.
    @discardableResult
    func enqueue(_ job: LoopJob) -> Bool {
        if inEventLoop {
            core.enqueue(job)
            return true
        }
        let mustWake: Bool? = inbox.withLock { inbox in
            if inbox.stopped { return nil }
            inbox.jobs.append(job)
            if inbox.woken { return false }
            inbox.woken = true
            return true
        }
        guard let mustWake else { return false }
        if mustWake { wake() }
        return true
    }

    /// Triggers the wakeup event, so that a waiting loop returns from kevent().
    func wake() {
        var trigger = KEvent.user(Self.wakeIdent, note: .trigger)
        withUnsafePointer(to: &trigger) { change in
            // Cannot fail while the queue is open; after close there is no one to wake.
            _ = try? queue.kevent(
                changes: UnsafeBufferPointer(start: change, count: 1), events: .init(start: nil, count: 0),
                timeout: .zero)
        }
    }

    /// Runs `body` on the loop thread and returns its result: at once on the loop thread,
    /// else by handing it to the loop and blocking the caller until it ran.
    func runOnLoop<R: Sendable>(_ body: @escaping @Sendable () throws(Errno) -> R) throws(Errno) -> R {
        if inEventLoop { return try body() }
        let done = LoopSyscall.Semaphore()
        let result = Mutex<Result<R, Errno>>(.failure(.canceled))
        let taken = enqueue(
            .closure {
                let outcome = Result { () throws(Errno) -> R in try body() }
                result.withLock { $0 = outcome }
                done.signal()
            })
        guard taken else { throw Errno.canceled }
        done.wait()
        return try result.withLock { $0 }.get()
    }

    // MARK: The loop thread

    private func run() {
        threadID.store(LoopSyscall.currentThread(), ordering: .releasing)
        LoopSyscall.nameCurrentThread(name)
        let core = self.core
        let capacity = core.events.count
        let yieldAfter = yieldAfterNanoseconds
        var busy = BusyRun()
        while state.load(ordering: .relaxed) == LoopState.running.rawValue {
            core.runJobs(on: self)
            // Jobs still queued (queued by the jobs that just ran): poll, do not wait.
            let timeout: Duration? = core.jobs.isEmpty ? nil : .zero
            let count: Int
            let sampled = yieldAfter > 0 && busy.takesSample()
            let started = sampled ? LoopSyscall.monotonicNanoseconds() : 0
            do throws(Errno) {
                count = try poll(timeout: timeout, capacity: capacity)
            } catch {
                if error != .interrupted { errorHandler(error) }
                continue
            }
            if sampled { busy.update(pollStarted: started, yieldAfter: yieldAfter) }
            // The iteration time that stamps read and write progress (idle timeouts only).
            if core.idleTracked > 0 { core.now = LoopSyscall.monotonicNanoseconds() }
            dispatch(count)
        }
        finish()
    }

    /// One kevent() call: the pending changes (at most `capacity` of them, so that each one
    /// that fails has room for its error entry) and the wait.
    @inline(__always)
    private func poll(timeout: Duration?, capacity: Int) throws(Errno) -> Int {
        let core = self.core
        if core.changes.count <= capacity {
            defer { core.changes.removeAll(keepingCapacity: true) }
            return try core.changes.withUnsafeBufferPointer { changes throws(Errno) in
                try queue.kevent(changes: changes, events: core.events, timeout: timeout)
            }
        }
        // More changes than error room: apply the first `capacity` now, without waiting.
        let batch = Array(core.changes.prefix(capacity))
        core.changes.removeFirst(capacity)
        return try batch.withUnsafeBufferPointer { changes throws(Errno) in
            try queue.kevent(changes: changes, events: core.events, timeout: .zero)
        }
    }

    /// Hands each collected event to the slot named by its `udata`.
    @inline(__always)
    private func dispatch(_ count: Int) {
        let core = self.core
        for position in 0..<count {
            let event = core.events[position]
            guard let token = SlotToken(udata: event.udata) else {
                if event.filter == .user && event.ident == Self.wakeIdent { takeInbox() }
                continue
            }
            guard core.isLive(token) else { continue }  // stale: cancelled since
            deliver(event, to: token)
        }
    }

    /// Moves the jobs given from other threads to the run queue.
    func takeInbox() {
        // Swapped with an empty array that kept its capacity: no allocation per wakeup.
        let core = self.core
        inbox.withLock { inbox in
            inbox.woken = false
            swap(&inbox.jobs, &core.inboxSpare)
        }
        core.jobs.append(contentsOf: core.inboxSpare)
        core.inboxSpare.removeAll(keepingCapacity: true)
    }

    private func deliver(_ event: KEvent, to token: SlotToken) {
        let core = self.core
        let index = Int(token.index)
        var event = event
        if event.filter == .timer, let ident = core.slots[index].handler.callerIdent { event.ident = ident }
        switch core.slots[index].handler {
        case .free:
            return
        case .callback(let entry):
            if let error = event.changeError {
                core.release(token)
                errorHandler(error)
                return
            }
            if entry.oneShot { core.release(token) }
            do {
                try entry.body(event)
            } catch {
                cancelRegistration(token)
                errorHandler(error)
            }
        case .waiter(let entry):
            // The change is given to kevent() only once the continuation is in place.
            guard let continuation = entry.continuation else { return }
            core.release(token)
            if let error = event.changeError {
                continuation.resume(throwing: error)
            } else {
                continuation.resume(returning: event)
            }
        case .stream(let entry):
            if let error = event.changeError {
                core.release(token)
                entry.continuation.finish(throwing: error)
            } else {
                entry.continuation.yield(event)
            }
        case .io(var entry):
            deliverIO(event, entry: &entry)
            if core.isLive(token) { core.slots[index].handler = .io(entry) }
        }
    }

    private func deliverIO(_ event: KEvent, entry: inout IOEntry) {
        let error = event.changeError
        let waiter: UnsafeContinuation<Void, any Error>?
        if event.filter == .write {
            entry.writeArmed = false
            waiter = entry.writer
            entry.writer = nil
        } else {
            entry.mayRead = true
            if event.flags.contains(.endOfFile) { entry.endOfStream = true }
            waiter = entry.reader
            entry.reader = nil
        }
        guard let waiter else {
            if let error { entry.failure = error }
            return
        }
        if let error { waiter.resume(throwing: error) } else { waiter.resume() }
    }

    /// Cancels whatever `token` names: deletes its kevent registration (at once), resumes a
    /// waiting task with `resumeError`, ends a stream. The slot is freed.
    func cancelRegistration(_ token: SlotToken, resumeError: any Error = CancellationError()) {
        assertInLoop()
        guard core.isLive(token) else { return }
        let handler = core.slots[Int(token.index)].handler
        core.release(token)
        switch handler {
        case .free:
            return
        case .callback(let entry):
            if !core.dropPendingChange(for: token) { deleteNow(entry.change, token: token) }
        case .waiter(let entry):
            // Given to the loop: still in the pending list, or already registered.
            if entry.pending && !core.dropPendingChange(for: token) { deleteNow(entry.change, token: token) }
            entry.continuation?.resume(throwing: resumeError)
        case .stream(let entry):
            deleteNow(entry.change, token: token)
            entry.continuation.finish(throwing: resumeError is CancellationError ? nil : resumeError)
        case .io(let entry):
            _ = core.dropPendingChange(for: token)
            entry.reader?.resume(throwing: resumeError)
            entry.writer?.resume(throwing: resumeError)
        }
    }

    /// Applies the EV_DELETE for `change` (as the caller gave it) now. Its failure (ENOENT: a
    /// one-shot already fired, or the descriptor was closed and took the registration with
    /// it) changes nothing.
    func deleteNow(_ change: KEvent, token: SlotToken) {
        let registered = core.kernelChange(change, for: token)
        var delete = KEvent(ident: registered.ident, filter: registered.filter, flags: .delete)
        withUnsafePointer(to: &delete) { change in
            _ = try? queue.kevent(
                changes: UnsafeBufferPointer(start: change, count: 1), events: .init(start: nil, count: 0),
                timeout: .zero)
        }
    }

    // MARK: Shutdown

    /// Shuts the loop down: the jobs given before it run, registered callbacks and timers are
    /// cancelled (not run), waiting tasks and event sequences end with `Errno.canceled`, the
    /// descriptors the loop owns are closed, then the kqueue, and the thread ends.
    ///
    /// From another thread, returns when the thread has ended; from the loop thread (a
    /// callback or a task on the loop), returns at once and the loop stops after the current
    /// job. Calling it again does nothing.
    public func shutdown() {
        let first = state.compareExchange(
            expected: LoopState.running.rawValue, desired: LoopState.stopping.rawValue, ordering: .acquiringAndReleasing
        ).exchanged
        if first { wake() }
        guard !inEventLoop else {
            // Nobody can join the loop thread from itself: it is detached, and ends on its own.
            let thread = self.thread.withLock { thread in
                defer { thread = nil }
                return thread
            }
            if let thread { LoopSyscall.detachThread(thread) }
            return
        }
        let thread = self.thread.withLock { thread in
            defer { thread = nil }
            return thread
        }
        if let thread { LoopSyscall.joinThread(thread) }
        // A second caller from another thread waits until the first one's join is done.
        while state.load(ordering: .acquiring) != LoopState.stopped.rawValue { sched_yield() }
    }

    /// The loop thread's last work: cancels what is registered, lets the tasks this wakes
    /// finish, closes what the loop owns.
    private func finish() {
        let core = self.core
        takeInbox()
        core.runJobs(on: self)
        core.closing = true
        cancelAll()
        core.idleTimer = nil  // it holds the loop
        // The tasks resumed with ECANCELED run here (and may queue more); bounded, so that a
        // task that keeps retrying cannot hold the thread forever.
        for _ in 0..<10_000 {
            takeInbox()
            if core.runJobs(on: self) == 0 {
                let more = inbox.withLock { inbox in
                    if inbox.jobs.isEmpty { inbox.stopped = true }
                    return !inbox.jobs.isEmpty
                }
                if !more { break }
            }
            cancelAll()
        }
        let late = inbox.withLock { inbox in
            inbox.stopped = true
            defer { inbox.jobs.removeAll() }
            return inbox.jobs
        }
        core.jobs.append(contentsOf: late)
        core.runJobs(on: self)
        queue.close()
        state.store(LoopState.stopped.rawValue, ordering: .releasing)
    }

    private func cancelAll() {
        let core = self.core
        for index in core.slots.indices where !core.slots[index].isFree {
            let token = SlotToken(index: Int32(index), generation: core.slots[index].generation)
            if case .io(let entry) = core.slots[index].handler { LoopSyscall.close(entry.descriptor) }
            cancelRegistration(token, resumeError: Errno.canceled)
        }
    }
}

/// How long a loop thread has run without waiting, for ``EventLoop``'s yield. Every eighth
/// poll is timed (two clock reads cost about 1 % of a one-readiness iteration): a run is
/// measured from the last timed poll that waited, so a wait between samples may be missed,
/// and the yield then comes early; it returns at once when nothing else is runnable.
struct BusyRun {
    /// A poll that took longer than this waited in the kernel (the thread slept).
    static let waitedNanoseconds: UInt64 = 20_000
    var since: UInt64 = 0
    var polls: UInt8 = 0

    /// Whether this poll is timed.
    @inline(__always)
    mutating func takesSample() -> Bool {
        polls &+= 1
        return polls & 7 == 0
    }

    /// After a poll: a poll that waited starts a new run; a run longer than `yieldAfter`
    /// yields the CPU and starts a new one.
    @inline(__always)
    mutating func update(pollStarted started: UInt64, yieldAfter: UInt64) {
        let now = LoopSyscall.monotonicNanoseconds()
        if now &- started > Self.waitedNanoseconds {
            since = now
        } else if now &- since > yieldAfter {
            LoopSyscall.yieldProcessor()
            since = LoopSyscall.monotonicNanoseconds()
        }
    }
}
