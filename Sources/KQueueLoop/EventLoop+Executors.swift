import KQueue

/// The loop as a Swift TaskExecutor: `Task(executorPreference: loop) { ... }` runs a task on
/// the loop thread, and so do the child tasks it creates. Jobs run in the order they are
/// enqueued, between the loop's polls, on its one thread.
extension EventLoop: TaskExecutor {
    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        if !enqueue(.task(job)) { Self.runElsewhere(job) }
    }

    public func asUnownedTaskExecutor() -> UnownedTaskExecutor {
        UnownedTaskExecutor(ordinary: self)
    }

    /// The loop's SerialExecutor, for actors that run on the loop thread:
    /// `nonisolated var unownedExecutor: UnownedSerialExecutor { loop.asUnownedSerialExecutor() }`.
    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        serialExecutor.asUnownedSerialExecutor()
    }

    /// A job enqueued after the loop stopped must still run somewhere, or its task would hang
    /// forever: it goes to the global concurrent executor. The loop's async APIs throw
    /// `Errno.canceled` from then on.
    static func runElsewhere(_ job: UnownedJob) {
        globalConcurrentExecutor.enqueue(ExecutorJob(job))
    }
}

/// The SerialExecutor of an ``EventLoop`` (``EventLoop/serialExecutor``): actor jobs, run on
/// the loop thread in order. A separate object from the loop (the TaskExecutor) so that the
/// loop knows which jobs are actor-isolated.
public final class LoopSerialExecutor: SerialExecutor {
    // Set once by the loop's init, before the loop is shared; the loop owns this executor.
    nonisolated(unsafe) unowned(unsafe) var loop: EventLoop!

    init() {}

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        // After shutdown an actor's job runs on the global executor: no longer serial with
        // the loop, but not lost (actors bound to a stopped loop should not be used).
        if !loop.enqueue(.actor(job)) { EventLoop.runElsewhere(job) }
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    public func isSameExclusiveExecutionContext(other: LoopSerialExecutor) -> Bool { self === other }

    public func checkIsolated() {
        precondition(loop.inEventLoop, "expected to run on the event loop thread '\(loop.name)'")
    }
}
