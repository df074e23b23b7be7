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
@Suite("TCP idle timeout")
struct IdleTimeoutTests {
    static let loopback = try! SocketAddress(host: "127.0.0.1", port: 0)

    @Test("a silent client is closed after the idle timeout (200 ms): not early, not much late; reads throw ETIMEDOUT")
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

        let begin = ContinuousClock.now
        var connections: [TCPConnection] = []
        for _ in 0..<3 { connections.append(try await TCPConnection.connect(to: server.localAddress, on: clients)) }
        // One sweep timer for all of them, every eighth of the timeout: the listener, three
        // sockets and the timer.
        #expect(await eventually { liveRegistrations(loop) == 5 })
        #expect(onLoop(loop) { loop.core.idlePeriod } == 25_000_000)
        // The server closes each: the client reads end of stream, never before the timeout.
        let first = try await readToEnd(connections[0])
        let firstClosed = begin.duration(to: .now)
        #expect(first.isEmpty)
        #expect(firstClosed >= .milliseconds(200), "closed after \(firstClosed)")
        for connection in connections.dropFirst() { #expect(try await readToEnd(connection).isEmpty) }
        for connection in connections { connection.close() }

        #expect(await eventually { ends.value.count == 3 })
        for end in ends.value {
            #expect(end.failure?.errno == .timedOut)
            #expect(end.failure?.operation == .read)
            // Design bound: 200 ms + 1.5 periods (237.5 ms); the rest is room for a loaded machine.
            #expect(end.lasted >= .milliseconds(200) && end.lasted < .milliseconds(400), "lasted \(end.lasted)")
        }
        // Nothing left but the listener: the sweep timer stops with the last connection.
        #expect(await eventually { liveRegistrations(loop) == 1 })
        #expect(socketCount(port: server.localAddress.port, state: "08") == 0)
    }

    @Test("an active client is not closed: round trips every 50 ms for 3 times the idle timeout")
    func activeClientKept() async throws {
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let server = try TCPServer(
            group: group, address: Self.loopback, idleTimeout: .milliseconds(200), handler: LineEcho.serve)
        defer { server.close() }
        let clients = try EventLoop(name: "clients")
        defer { clients.shutdown() }
        let connection = try await TCPConnection.connect(to: server.localAddress, on: clients)
        defer { connection.close() }
        let begin = ContinuousClock.now
        var rounds = 0
        while begin.duration(to: .now) < .milliseconds(600) {
            try await connection.write(Array("ping\n".utf8))
            #expect(try await readExactly(connection, count: 5) == Array("ping\n".utf8))
            rounds += 1
            try await clients.sleep(for: .milliseconds(50))  // the client's pace, not a wait for something
        }
        #expect(rounds >= 6)
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
