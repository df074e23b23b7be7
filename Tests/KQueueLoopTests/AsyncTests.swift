import Glibc
import Synchronization
import Testing

@testable import KQueueLoop

/// Counts on the loop: an actor whose executor is the loop's (SerialExecutor).
actor LoopCounter {
    let loop: EventLoop
    var count = 0
    init(loop: EventLoop) { self.loop = loop }
    nonisolated var unownedExecutor: UnownedSerialExecutor { loop.asUnownedSerialExecutor() }

    func increment() -> Bool {
        count += 1
        return loop.inEventLoop
    }

    /// Awaits one readiness from the actor (no task executor preference): true when the
    /// actor's code ran on the loop thread before and after.
    func awaitReadable(_ descriptor: FileDescriptor) async throws -> Bool {
        let before = loop.inEventLoop
        _ = try await loop.readable(descriptor)
        return before && loop.inEventLoop
    }
}

/// Swift concurrency on the loop: awaited readiness, event sequences, the executors,
/// cancellation and shutdown while tasks wait.
@Suite("EventLoop async")
struct AsyncTests {
    @Test("await readable returns the event once data arrives, from a task off the loop")
    func awaitReadableOffLoop() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        let (reader, writer) = try makePipe()
        defer { closeAll(reader, writer) }
        loop.schedule(after: .milliseconds(10)) { writeByte(writer) }
        let event = try await loop.readable(reader)
        #expect(event.ident == UInt(reader.rawValue))
        #expect(event.filter == .read)
        #expect(event.data == 1)
        #expect(liveRegistrations(loop) == 0)
    }

    @Test("await readable in a task whose executor is the loop resumes on the loop thread")
    func awaitReadableOnLoop() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        let (reader, writer) = try makePipe()
        defer { closeAll(reader, writer) }
        let result = try await Task(executorPreference: loop) { () async throws -> [Bool] in
            var onLoop = [loop.inEventLoop]
            writeByte(writer)
            _ = try await loop.readable(reader)
            onLoop.append(loop.inEventLoop)
            _ = try await loop.writable(writer)
            onLoop.append(loop.inEventLoop)
            return onLoop
        }.value
        #expect(result == [true, true, true])
    }

    @Test("cancelling a waiting task throws CancellationError and removes its registration at once")
    func cancelWaitingTask() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        let (reader, writer) = try makePipe()
        defer { closeAll(reader, writer) }
        let waiting = Task { try await loop.readable(reader) }
        #expect(await eventually { liveRegistrations(loop) == 1 })
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
        #expect(liveRegistrations(loop) == 0)
        // The registration went with it: data now wakes nothing and breaks nothing.
        writeByte(writer)
        let alive = Shared(false)
        loop.execute { alive.update { $0 = true } }
        #expect(await eventually { alive.value })
    }

    @Test("a task cancelled before it awaits throws at once and leaves no registration")
    func cancelledBeforeAwait() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        let (reader, writer) = try makePipe()
        defer { closeAll(reader, writer) }
        let task = Task(executorPreference: loop) { () async throws -> KEvent in
            withUnsafeCurrentTask { $0?.cancel() }
            return try await loop.readable(reader)
        }
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(liveRegistrations(loop) == 0)
    }

    @Test("a refused change throws its errno from the await")
    func awaitRefusedChange() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        await #expect(throws: Errno.badFileDescriptor) {
            try await loop.readable(FileDescriptor(rawValue: 1_000_000))
        }
        #expect(liveRegistrations(loop) == 0)
    }

    @Test("sleep(for:) suspends for at least the delay, on a loop timer")
    func sleepOnLoop() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        let start = ContinuousClock.now
        try await loop.sleep(for: .milliseconds(20))
        #expect(ContinuousClock.now - start >= .milliseconds(20))
    }

    @Test("processExit awaits the typed exit status")
    func awaitProcessExit() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        let pid = try spawnShell("sleep 0.05; kill -9 $$")
        defer { reapQuietly(pid) }
        let status = try await loop.processExit(pid)
        #expect(status == .signaled(signal: SIGKILL, coreDumped: false))
    }

    @Test("events(for:) yields each event; ending the iteration removes the registration")
    func eventSequence() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        var seen = 0
        for try await event in loop.events(for: .timer(77, every: .milliseconds(2))) {
            #expect(event.filter == .timer)
            #expect(event.ident == 77)  // the ident given, not the one the loop registered it under
            seen += 1
            if seen == 3 { break }
        }
        #expect(seen == 3)
        #expect(await eventually { liveRegistrations(loop) == 0 })
    }

    @Test("events(for:) of a refused change ends with its errno")
    func eventSequenceRefused() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        await #expect(throws: Errno.badFileDescriptor) {
            for try await _ in loop.events(for: .read(FileDescriptor(rawValue: 1_000_000))) {}
        }
    }

    @Test("the loop as TaskExecutor runs tasks and their child tasks on its thread")
    func taskExecutor() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        let results = await Task(executorPreference: loop) { () async -> [Bool] in
            await withTaskGroup(of: Bool.self) { group in
                for _ in 0..<10 { group.addTask { loop.inEventLoop } }
                var all = [loop.inEventLoop]
                for await result in group { all.append(result) }
                return all
            }
        }.value
        #expect(results.count == 11)
        #expect(results.allSatisfy { $0 })
    }

    @Test("an actor whose SerialExecutor is the loop runs its methods on the loop thread")
    func serialExecutor() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        let counter = LoopCounter(loop: loop)
        var onLoop = true
        for _ in 0..<100 { onLoop = await counter.increment() && onLoop }
        #expect(onLoop)
        #expect(await counter.count == 100)
        let inside = Shared(false)
        loop.execute {
            counter.assumeIsolated { _ in inside.update { $0 = true } }  // checkIsolated passes
        }
        #expect(await eventually { inside.value })
    }

    @Test("an actor on the loop awaits readiness (no executor preference) and stays on the loop")
    func actorOnLoopAwaitsReadiness() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        let (reader, writer) = try makePipe()
        defer { closeAll(reader, writer) }
        let counter = LoopCounter(loop: loop)
        for _ in 0..<50 {
            writeByte(writer)
            #expect(try await counter.awaitReadable(reader))
            var byte: UInt8 = 0
            #expect(Glibc.read(reader.rawValue, &byte, 1) == 1)
        }
        let waiting = Task { try await counter.awaitReadable(reader) }
        #expect(await eventually { liveRegistrations(loop) == 1 })
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
        #expect(await eventually { liveRegistrations(loop) == 0 })
    }

    @Test("shutdown while tasks wait: each ends with Errno.canceled, none hangs")
    func shutdownWhileTasksWait() async throws {
        let loop = try EventLoop()
        let (reader, writer) = try makePipe()
        defer { closeAll(reader, writer) }
        let tasks = (0..<10).map { index in
            index.isMultiple(of: 2)
                ? Task(executorPreference: loop) { try await loop.readable(reader) }
                : Task { try await loop.readable(reader) }
        }
        let sequence = Task {
            for try await _ in loop.events(for: .timer(0, every: .seconds(60))) {}
        }
        #expect(await eventually { liveRegistrations(loop) == 11 })
        loop.shutdown()
        for task in tasks {
            await #expect(throws: Errno.canceled) { try await task.value }
        }
        await #expect(throws: Errno.canceled) { try await sequence.value }
        // After shutdown: awaits fail at once, they do not hang.
        await #expect(throws: Errno.canceled) { try await loop.readable(reader) }
        let late = await Task(executorPreference: loop) { 42 }.value
        #expect(late == 42)
    }
}
