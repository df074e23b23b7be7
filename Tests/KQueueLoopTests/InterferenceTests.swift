import Glibc
import Synchronization
import Testing

@testable import KQueueLoop

/// Blocks the calling thread (the loop thread, inside a job) until `condition` holds, at most
/// `timeout`: how a test holds the loop at a chosen point without a fixed sleep.
func holdUntil(timeout: Duration = deadline, _ condition: () -> Bool) -> Bool {
    let end = ContinuousClock.now + timeout
    while !condition() {
        if ContinuousClock.now >= end { return false }
        usleep(100)
    }
    return true
}

/// A connected, non-blocking AF_UNIX stream pair: data written to one end is readable at the
/// other before the write returns, so the loop's next poll sees it.
func makeSocketPair() throws -> (Int32, Int32) {
    var fds: [Int32] = [-1, -1]
    let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
    guard socketpair(AF_UNIX, type, 0, &fds) == 0 else { throw Errno(rawValue: errno) }
    return (fds[0], fds[1])
}

func writeString(_ descriptor: Int32, _ text: String) {
    var bytes = Array(text.utf8)
    _ = Glibc.write(descriptor, &bytes, bytes.count)
}

/// Registrations of one loop that must not touch each other: a late cancellation and the
/// next wait in the same slot, the loop's timers and a user's, the loop's wakeup and a user's
/// EVFILT_USER event.
@Suite("EventLoop registrations do not interfere")
struct InterferenceTests {
    @Test("a late cancel of a read whose wait completed does not cancel the next reader's wait")
    func lateCancelOfCompletedRead() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        let (mine, peer) = try makeSocketPair()
        defer { _ = Glibc.close(peer) }
        let adopted = onLoop(loop) { try? TCPConnection.adopt(mine, on: loop) }
        let connection = try #require(adopted)
        defer { connection.close() }
        let waiting = { onLoop(loop) { loop.ioState(connection.token)?.reader != nil } }

        // A waits in read.
        let first = Task { try await connection.read(maxBytes: 16) }
        #expect(await eventually { waiting() })
        // A job writes to the peer (the read event comes with the next poll) and queues a job
        // that holds the loop: it runs before A's resumption, which that poll queues.
        let held = Shared(false)
        let release = Shared(false)
        loop.execute {
            writeString(peer, "x")
            loop.execute {
                held.update { $0 = true }
                _ = holdUntil { release.value }
            }
        }
        #expect(await eventually { held.value })
        // A is resumed but has not run: its cancellation handler is still installed. B starts
        // (its first job is queued), then A is cancelled from this thread: the handler's job
        // is queued after B's, so it runs once B waits in the same slot.
        let second = Task(executorPreference: loop) { try await connection.read(maxBytes: 16) }
        first.cancel()
        release.update { $0 = true }
        #expect(String(decoding: try await first.value, as: UTF8.self) == "x")
        // Jobs given after the cancel run after its job: B must still be waiting.
        #expect(waiting())
        writeString(peer, "y")
        let got = try? await second.value
        #expect(got.map { String(decoding: $0, as: UTF8.self) } == "y")
    }

    @Test("a late cancel of an awaited readiness whose wait completed leaves the next waiter in its slot alone")
    func lateCancelOfCompletedAwait() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        let (firstRead, firstWrite) = try makePipe()
        let (secondRead, secondWrite) = try makePipe()
        defer { closeAll(firstRead, firstWrite, secondRead, secondWrite) }

        let first = Task { try await loop.readable(firstRead) }
        #expect(await eventually { liveRegistrations(loop) == 1 })
        let held = Shared(false)
        let release = Shared(false)
        loop.execute {
            writeByte(firstWrite)
            loop.execute {
                held.update { $0 = true }
                _ = holdUntil { release.value }
            }
        }
        #expect(await eventually { held.value })
        // A's slot is free again; B takes it (the free list is LIFO), then A is cancelled late.
        let second = Task(executorPreference: loop) { try await loop.readable(secondRead) }
        first.cancel()
        release.update { $0 = true }
        #expect(try await first.value.data == 1)
        #expect(liveRegistrations(loop) == 1)
        writeByte(secondWrite)
        let event = try? await second.value
        #expect(event?.ident == UInt(secondRead.rawValue))
    }

    @Test("a timer registered with register(_:) and the loop's own timers both fire, whatever ident it names")
    func userTimerIdentDoesNotCollide() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        let fired = Shared<[String]>([])
        let loopTimer = loop.schedule(after: .milliseconds(40)) { fired.update { $0.append("loop") } }
        // The ident the loop's timer was registered with.
        let taken = onLoop(loop) { () -> UInt in
            guard let token = loopTimer.token, case .callback(let entry) = loop.core.slots[Int(token.index)].handler
            else { return 0 }
            return entry.change.ident
        }
        let seen = Shared<UInt?>(nil)
        try loop.register(.timer(taken, after: .milliseconds(10))) { event in
            seen.update { $0 = event.ident }
            fired.update { $0.append("user") }
        }
        // The other way round: a user timer naming the ident of the loop timer scheduled after
        // it (no slot was freed yet: the user's takes the next slot, the loop's the one after).
        let next = onLoop(loop) { loop.core.freeSlots.isEmpty ? UInt(loop.core.slots.count) + 1 : 0 }
        try #require(next > 0)
        try loop.register(.timer(next, after: .milliseconds(10))) { _ in fired.update { $0.append("user2") } }
        loop.schedule(after: .milliseconds(40)) { fired.update { $0.append("loop2") } }

        #expect(await eventually { fired.value.count == 4 })
        #expect(Set(fired.value) == ["loop", "user", "loop2", "user2"])
        // The callback sees the ident it registered.
        #expect(seen.value == taken)
    }

    @Test(
        "a user's EVFILT_USER ident 0 is its own: its trigger reaches its callback, wakeups the loop; the reserved ident is EINVAL"
    )
    func userEventIdentZero() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        let calls = Shared(0)
        try loop.register(.user(0, flags: [.add, .clear])) { _ in calls.update { $0 += 1 } }
        // Jobs from this thread wake the loop through its own EVFILT_USER event.
        for _ in 0..<5 {
            let done = Shared(false)
            loop.execute { done.update { $0 = true } }
            #expect(await eventually { done.value })
        }
        #expect(calls.value == 0)
        // The user's own trigger (keeping its udata, as a user event's trigger does).
        try loop.queue.apply([.user(0, flags: .keepUserData, note: .trigger)])
        #expect(await eventually { calls.value == 1 })
        #expect(await stays { calls.value == 1 })

        // The loop's wakeup ident (UInt.max) is refused, from every API.
        var refused: Errno?
        do {
            try loop.register(.user(UInt.max, flags: [.add, .clear])) { _ in }
        } catch {
            refused = error
        }
        #expect(refused == .invalidArgument)
        // Without the check, the awaits below would wait forever for an event never triggered.
        guard refused == .invalidArgument else { return }
        await #expect(throws: Errno.invalidArgument) {
            try await loop.nextEvent(.user(UInt.max))
        }
        await #expect(throws: Errno.invalidArgument) {
            for try await _ in loop.events(for: .user(UInt.max, flags: .clear)) {}
        }
        // Still woken.
        let done = Shared(false)
        loop.execute { done.update { $0 = true } }
        #expect(await eventually { done.value })
    }
}
