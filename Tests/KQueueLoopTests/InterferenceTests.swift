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
}
