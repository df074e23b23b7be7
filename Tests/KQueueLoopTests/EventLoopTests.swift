import Glibc
import Synchronization
import Testing

@testable import KQueueLoop

/// The loop's semantics: jobs, ordering, cross-thread execute, timers, callbacks,
/// cancellation, errors thrown by callbacks and shutdown.
@Suite("EventLoop")
struct EventLoopTests {
    @Test("execute runs jobs on the loop thread in the order one thread gave them")
    func executeOrderFromOneThread() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        let order = Shared<[Int]>([])
        let onThread = Shared(true)
        for index in 0..<1000 {
            loop.execute {
                if !loop.inEventLoop { onThread.update { $0 = false } }
                order.update { $0.append(index) }
            }
        }
        #expect(await eventually { order.value.count == 1000 })
        #expect(order.value == Array(0..<1000))
        #expect(onThread.value)
    }

    @Test("execute from many threads: every job runs once, each thread's jobs in order")
    func executeFromManyThreads() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        let seen = Shared<[[Int]]>(Array(repeating: [], count: 4))
        await withTaskGroup(of: Void.self) { group in
            for thread in 0..<4 {
                group.addTask {
                    for index in 0..<500 { loop.execute { seen.update { $0[thread].append(index) } } }
                }
            }
        }
        #expect(await eventually { seen.value.allSatisfy { $0.count == 500 } })
        #expect(seen.value.allSatisfy { $0 == Array(0..<500) })
    }

    @Test("a job executed from the loop thread runs after the current job, not inside it")
    func executeFromLoopRunsLater() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        let order = Shared<[String]>([])
        loop.execute {
            loop.execute { order.update { $0.append("inner") } }
            order.update { $0.append("outer") }
        }
        #expect(await eventually { order.value.count == 2 })
        #expect(order.value == ["outer", "inner"])
    }

    @Test("schedule(after:) runs the job once, not before its delay")
    func scheduleAfterDelay() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        let start = ContinuousClock.now
        let ranAt = Shared<[ContinuousClock.Instant]>([])
        loop.schedule(after: .milliseconds(30)) { ranAt.update { $0.append(.now) } }
        #expect(await eventually { ranAt.value.count == 1 })
        #expect(ranAt.value[0] - start >= .milliseconds(30))
        #expect(await stays { ranAt.value.count == 1 })
    }

    @Test("schedule(at:) runs the job at a ContinuousClock deadline; a past deadline at once")
    func scheduleAtDeadline() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        let target = ContinuousClock.now + .milliseconds(20)
        let ran = Shared<[String]>([])
        loop.schedule(at: target) {
            ran.update { $0.append(ContinuousClock.now >= target ? "on time" : "early") }
        }
        loop.schedule(at: .now - .seconds(1)) { ran.update { $0.append("past") } }
        #expect(await eventually { ran.value.count == 2 })
        #expect(ran.value == ["past", "on time"])
    }

    @Test("timers fire in deadline order, whatever order they were scheduled in")
    func timersFireInDeadlineOrder() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        let order = Shared<[Int]>([])
        for delay in [60, 20, 40] {
            loop.schedule(after: .milliseconds(delay)) { order.update { $0.append(delay) } }
        }
        #expect(await eventually { order.value.count == 3 })
        #expect(order.value == [20, 40, 60])
    }

    @Test("a cancelled timer never runs, cancelled from another thread or from the loop")
    func cancelledTimerNeverRuns() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        let ran = Shared<[String]>([])
        let early = loop.schedule(after: .milliseconds(10)) { ran.update { $0.append("cancelled-off-loop") } }
        early.cancel()
        let other = loop.schedule(after: .milliseconds(10)) { ran.update { $0.append("cancelled-on-loop") } }
        loop.execute { other.cancel() }
        loop.schedule(after: .milliseconds(40)) { ran.update { $0.append("marker") } }
        #expect(await eventually { ran.value.contains("marker") })
        #expect(ran.value == ["marker"])
        #expect(await eventually { liveRegistrations(loop) == 0 })
    }

    @Test("a repeating timer runs until cancelled, then never again")
    func repeatingTimer() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        let runs = Shared(0)
        let timer = loop.scheduleRepeating(every: .milliseconds(5)) { expirations in
            runs.update { $0 += expirations }
        }
        #expect(await eventually { runs.value >= 3 })
        timer.cancel()
        let after = onLoop(loop) { runs.value }  // the cancel job ran before this one
        #expect(await stays { runs.value == after })
        #expect(liveRegistrations(loop) == 0)
    }

    @Test("onReadable calls back with the bytes readable, on the loop thread, until cancelled")
    func readableCallback() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        let (reader, writer) = try makePipe()
        defer { closeAll(reader, writer) }
        let seen = Shared<[Int64]>([])
        let registration = try loop.onReadable(reader) { event in
            seen.update { $0.append(event.data) }
            var buffer = [UInt8](repeating: 0, count: 16)
            _ = Glibc.read(reader.rawValue, &buffer, 16)
        }
        writeByte(writer)
        writeByte(writer)
        #expect(await eventually { !seen.value.isEmpty })
        #expect(seen.value.first ?? 0 >= 1)
        registration.cancel()
        let count = onLoop(loop) { seen.value.count }
        writeByte(writer)
        #expect(await stays { seen.value.count == count })
    }

    @Test("registering a closed descriptor throws its errno, from any thread")
    func registrationErrorThrows() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        // Above any open descriptor's number (a closed number could be reused meanwhile).
        let reader = FileDescriptor(rawValue: 1_000_000)
        #expect(throws: Errno.badFileDescriptor) { try loop.onReadable(reader) { _ in } }
        let fromLoop = onLoop(loop) { () -> Errno? in
            do throws(Errno) {
                _ = try loop.onReadable(reader) { _ in }
                return nil
            } catch { return error }
        }
        #expect(fromLoop == .badFileDescriptor)
        #expect(liveRegistrations(loop) == 0)
    }

    struct Boom: Error {}

    @Test("a callback that throws is cancelled, its error reported, and the loop goes on")
    func throwingCallback() async throws {
        let reported = Shared<[String]>([])
        let loop = try EventLoop(errorHandler: { error in reported.update { $0.append("\(error)") } })
        defer { loop.shutdown() }
        let (reader, writer) = try makePipe()
        defer { closeAll(reader, writer) }
        let calls = Shared(0)
        try loop.onReadable(reader) { _ in
            calls.update { $0 += 1 }
            throw Boom()
        }
        writeByte(writer)
        #expect(await eventually { reported.value.count == 1 })
        #expect(reported.value.first?.contains("Boom") == true)
        // Still readable (level-triggered), but the registration is gone: no second call.
        #expect(await stays { calls.value == 1 })
        let alive = Shared(false)
        loop.execute { alive.update { $0 = true } }
        #expect(await eventually { alive.value })
        #expect(liveRegistrations(loop) == 0)
    }

    // SIGCONT, not SIGURG or SIGWINCH: KQueueTests' serialized signal suite counts those
    // exactly, and this test runs beside it in the same process.
    @Test("onSignal counts deliveries of a signal (SIGCONT: harmless to a running process)")
    func signalCallback() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        let count = Shared(0)
        let registration = try loop.onSignal(SIGCONT) { deliveries in count.update { $0 += deliveries } }
        defer { registration.cancel() }
        kill(getpid(), SIGCONT)
        #expect(await eventually { count.value >= 1 })
    }

    @Test("onProcessExit gives the typed exit status, once")
    func processExitCallback() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        let pid = try spawnShell("sleep 0.1; exit 3")
        defer { reapQuietly(pid) }
        let statuses = Shared<[ProcessExitStatus]>([])
        try loop.onProcessExit(pid) { status in statuses.update { $0.append(status) } }
        #expect(await eventually { statuses.value.count == 1 })
        #expect(statuses.value == [.exited(code: 3)])
        #expect(liveRegistrations(loop) == 0)
    }

    @Test("onFileChange reports a write to the file as .write")
    func fileChangeCallback() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        var template = Array("/tmp/kqueueloop-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        try #require(fd >= 0)
        let path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        defer {
            unlink(path)
            _ = Glibc.close(fd)
        }
        let notes = Shared<VnodeNote>([])
        let registration = try loop.onFileChange(FileDescriptor(rawValue: fd)) { note in
            notes.update { $0.formUnion(note) }
        }
        defer { registration.cancel() }
        let writer = open(path, O_WRONLY | O_CLOEXEC)
        _ = Glibc.write(writer, "hello", 5)
        _ = Glibc.close(writer)
        #expect(await eventually { notes.value.contains(.write) })
    }

    @Test("shutdown runs the jobs given before it, cancels timers, closes the kqueue")
    func shutdownOrderly() async throws {
        let loop = try EventLoop()
        let ran = Shared<[String]>([])
        loop.schedule(after: .seconds(60)) { ran.update { $0.append("timer") } }
        for index in 0..<100 { loop.execute { ran.update { $0.append("job\(index)") } } }
        loop.shutdown()
        #expect(ran.value == (0..<100).map { "job\($0)" })
        #expect(loop.isShuttingDown)
        #expect(throws: Errno.badFileDescriptor) { try loop.queue.events(maxEvents: 1, timeout: .zero) }  // closed
        loop.execute { ran.update { $0.append("late") } }  // dropped, no crash
        loop.shutdown()  // idempotent
        #expect(!ran.value.contains("late"))
    }

    @Test("shutdown from the loop thread stops the loop after the current job")
    func shutdownFromLoopThread() async throws {
        let loop = try EventLoop()
        loop.execute { loop.shutdown() }
        #expect(await eventually { loop.state.load(ordering: .acquiring) == EventLoop.LoopState.stopped.rawValue })
        loop.shutdown()
    }

    @Test("loops started and shut down leave no thread or descriptor behind")
    func manyLoopsNoLeak() async throws {
        for _ in 0..<20 {
            let loop = try EventLoop()
            loop.execute {}
            loop.shutdown()
            // The thread was joined by shutdown(); the kqueue is closed.
            #expect(loop.state.load(ordering: .acquiring) == EventLoop.LoopState.stopped.rawValue)
            #expect(throws: Errno.badFileDescriptor) { try loop.queue.events(maxEvents: 1, timeout: .zero) }
        }
    }
}
