import Glibc
import LoopServers
import Synchronization
import Testing

@testable import KQueueLoop

/// What a server handler saw when its connection ended.
struct HandlerEnd: Sendable {
    var failure: SocketError?
    var lasted: Duration
}

/// TCP idle timeouts: a silent client is closed in time (not early, at most about a quarter
/// late), an active one is not, and one sweep timer per loop serves every connection.
///
/// Wall-clock bounds only where they cannot fail on a slow machine (a connection never ends
/// before its timeout); the lateness rule is pinned on the sweep itself.
@Suite("TCP idle timeout")
struct IdleTimeoutTests {
    static let loopback = try! SocketAddress(host: "127.0.0.1", port: 0)

    @Test("a silent client is closed after the idle timeout (200 ms), not before; its handler's read throws ETIMEDOUT")
    func silentClientClosed() async throws {
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let ends = Shared<[HandlerEnd]>([])
        let server = try TCPServer(group: group, address: Self.loopback, idleTimeout: .milliseconds(200)) {
            connection in
            let start = ContinuousClock.now
            var failure: SocketError?
            do {
                while try await !connection.read(maxBytes: 64).isEmpty {}
            } catch let error as SocketError {
                failure = error
            } catch {}
            let end = HandlerEnd(failure: failure, lasted: start.duration(to: .now))
            ends.update { $0.append(end) }
        }
        defer { server.close() }
        #expect(server.idleTimeout == .milliseconds(200))
        let clients = try EventLoop(name: "clients")
        defer { clients.shutdown() }

        // The client side runs on its loop's thread: no hop through the shared pool, which
        // other tests may keep busy.
        let (firstClosed, connections) = try await withTaskExecutorPreference(clients) {
            let begin = ContinuousClock.now
            var connections: [TCPConnection] = []
            for _ in 0..<3 { connections.append(try await TCPConnection.connect(to: server.localAddress, on: clients)) }
            // The server closes each: the client reads end of stream, never before the timeout
            // (each server side started after `begin`).
            #expect(try await readToEnd(connections[0]).isEmpty)
            let firstClosed = begin.duration(to: .now)
            for connection in connections.dropFirst() { #expect(try await readToEnd(connection).isEmpty) }
            return (firstClosed, connections)
        }
        #expect(firstClosed >= .milliseconds(200), "closed after \(firstClosed)")
        #expect(await eventually { ends.value.count == 3 })
        for end in ends.value {
            #expect(end.failure?.errno == .timedOut)
            #expect(end.failure?.operation == .read)
            // 200 ms + at most 1.5 periods (237.5 ms) by design (pinned exactly by the sweep
            // test below); the wall clock bound leaves room for a loaded machine.
            #expect(end.lasted >= .milliseconds(200) && end.lasted < .seconds(2), "lasted \(end.lasted)")
        }
        for connection in connections { connection.close() }
        // Nothing left but the listener: the sweep timer stopped with the last connection.
        #expect(await eventually { liveRegistrations(loop) == 1 })
        #expect(socketCount(port: server.localAddress.port, state: "08") == 0)
    }

    @Test(
        "one sweep timer per loop, every eighth of the smallest timeout; it ends a socket idle for its timeout plus half a period, never one idle less than its timeout"
    )
    func sweepRule() async throws {
        #expect(EventLoop.idlePeriod(for: 200_000_000) == 25_000_000)
        #expect(EventLoop.idlePeriod(for: 40_000_000) == 10_000_000)  // clamped: 10 ms
        #expect(EventLoop.idlePeriod(for: 60_000_000_000) == 1_000_000_000)  // clamped: 1 s
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        // An hour: no socket reaches it on its own, however slowly this test runs (the shared
        // pool can be held for seconds during a full test run); the sweep below is given its
        // clock.
        let timeout: UInt64 = 3_600_000_000_000
        let server = try TCPServer(
            group: group, address: Self.loopback, idleTimeout: .nanoseconds(Int64(timeout)), handler: LineEcho.serve)
        defer { server.close() }
        let clients = try EventLoop(name: "clients")
        defer { clients.shutdown() }
        var connections: [TCPConnection] = []
        for _ in 0..<3 { connections.append(try await TCPConnection.connect(to: server.localAddress, on: clients)) }
        defer { for connection in connections { connection.close() } }
        // The listener, three sockets and ONE timer, every second (an eighth, clamped to 1 s).
        #expect(await eventually { liveRegistrations(loop) == 5 })
        #expect(onLoop(loop) { loop.core.idlePeriod } == 1_000_000_000)
        // In one loop job, a sweep at `now`: one socket idle just under its timeout, one idle
        // for the timeout plus half a period, one just active.
        let outcome = onLoop(loop) { () -> [Bool] in
            let core = loop.core
            let timed = core.idle.indices.filter { core.idle[$0].timeout == timeout }
            guard timed.count == 3 else { return [] }
            let base = core.now
            let now = base + timeout + core.idlePeriod / 2
            core.idle[timed[0]].lastProgress = now - (timeout - 1_000_000)
            core.idle[timed[1]].lastProgress = base
            core.idle[timed[2]].lastProgress = now
            loop.idleSweep(now: now)
            return timed.map { index in
                if case .io(let entry) = core.slots[index].handler { return entry.expired }
                return false
            }
        }
        #expect(outcome == [false, true, false])
        // The expired one reads end of stream; the others are still served.
        let results = try await withTaskExecutorPreference(clients) { () async throws -> [Bool] in
            var results: [Bool] = []
            for connection in connections {
                try? await connection.write(Array("hi\n".utf8))
                let got = (try? await readExactly(connection, count: 3)) ?? []
                results.append(got == Array("hi\n".utf8))
            }
            return results
        }
        #expect(results.filter { $0 }.count == 2)
    }

    @Test("an active client is not closed: round trips every 50 ms for 3 times the idle timeout")
    func activeClientKept() async throws {
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let server = try TCPServer(
            group: group, address: Self.loopback, idleTimeout: .milliseconds(500), handler: LineEcho.serve)
        defer { server.close() }
        let clients = try EventLoop(name: "clients")
        defer { clients.shutdown() }
        // On the client loop's thread throughout (see silentClientClosed).
        let rounds = try await withTaskExecutorPreference(clients) {
            let connection = try await TCPConnection.connect(to: server.localAddress, on: clients)
            defer { connection.close() }
            let begin = ContinuousClock.now
            var rounds = 0
            while begin.duration(to: .now) < .milliseconds(1500) {
                try await connection.write(Array("ping\n".utf8))
                #expect(try await readExactly(connection, count: 5) == Array("ping\n".utf8))
                rounds += 1
                try await clients.sleep(for: .milliseconds(50))  // the client's pace, not a wait for something
            }
            return rounds
        }
        #expect(rounds >= 10)
    }

    @Test("idleTimeout: nil, zero and negative are off; setting one from another thread applies on the loop")
    func idleTimeoutProperty() async throws {
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let server = try TCPServer(group: group, address: Self.loopback, idleTimeout: .zero, handler: LineEcho.serve)
        defer { server.close() }
        #expect(server.idleTimeout == nil)
        let connection = try await TCPConnection.connect(to: server.localAddress, on: loop)
        defer { connection.close() }
        #expect(connection.idleTimeout == nil)
        connection.idleTimeout = .milliseconds(-5)
        #expect(connection.idleTimeout == nil)
        connection.idleTimeout = .seconds(30)
        #expect(connection.idleTimeout == .seconds(30))
        // The sweep runs every second for a 30 s timeout (clamped to 1 s).
        #expect(await eventually { onLoop(loop) { loop.core.idlePeriod } == 1_000_000_000 })
        connection.idleTimeout = nil
        #expect(await eventually { onLoop(loop) { loop.core.idleTimer == nil } })
    }
}
