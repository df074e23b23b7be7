import Glibc
import LoopServers
import Synchronization
import Testing

@testable import KQueueLoop

/// TCP on the loop: listener and connection types over loopback (IPv4 and IPv6), half-close,
/// backpressure, errors, and the bad input a server must survive.
@Suite("KQueueLoop networking")
struct NetworkTests {
    static let loopback = try! SocketAddress(host: "127.0.0.1", port: 0)

    @Test("line echo with 50 concurrent clients on a 2-loop group, 20 round trips each")
    func echoManyClients() async throws {
        let group = try EventLoopGroup(loopCount: 2)
        defer { group.shutdown() }
        let server = try TCPServer(group: group, address: Self.loopback, handler: LineEcho.serve)
        let clients = try EventLoop(name: "clients")
        defer { clients.shutdown() }
        let results = try await withThrowingTaskGroup(of: Bool.self) { tasks in
            for client in 0..<50 {
                tasks.addTask {
                    let lines = (0..<20).map { "client \(client) line \($0)" }
                    return try await echoRoundTrips(server.localAddress, on: clients, lines: lines) == lines
                }
            }
            return try await tasks.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results.count == 50 && results.allSatisfy { $0 })
        // Every server connection closed: only the two listeners are left, no CLOSE_WAIT.
        #expect(await eventually { liveRegistrations(group) == 2 })
        #expect(socketCount(port: server.localAddress.port, state: "08") == 0)
        server.close()
        #expect(await eventually { liveRegistrations(group) == 0 })
        #expect(socketCount(port: server.localAddress.port, state: "0A") == 0)
    }

    @Test("a 2-loop server keeps its loops even: 100 connections open, counts differ by at most 1")
    func connectionsSpreadEvenly() async throws {
        let group = try EventLoopGroup(loopCount: 2)
        defer { group.shutdown() }
        let server = try TCPServer(group: group, address: Self.loopback, handler: LineEcho.serve)
        defer { server.close() }
        let clients = try EventLoop(name: "clients")
        defer { clients.shutdown() }
        var connections: [TCPConnection] = []
        for _ in 0..<100 {
            let connection = try await TCPConnection.connect(to: server.localAddress, on: clients)
            try await connection.write(Array("x\n".utf8))
            _ = try await readExactly(connection, count: 2)  // served: counted on its loop
            connections.append(connection)
        }
        let counts = server.openConnections.withLock { $0 }
        #expect(counts.reduce(0, +) == 100)
        #expect(abs(counts[0] - counts[1]) <= 1, "\(counts)")
        for connection in connections { connection.close() }
        #expect(await eventually { server.openConnections.withLock { $0 } == [0, 0] })
    }

    @Test("half-open connections: accepted sockets have TCP keepalive (60 s idle, 3 probes 10 s apart)")
    func keepAliveOnAcceptedSockets() async throws {
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let options = Shared<[Int32]>([])
        let server = try TCPServer(group: group, address: Self.loopback) { connection in
            let fd = connection.descriptor.rawValue
            let values = [
                (SOL_SOCKET, SO_KEEPALIVE), (Int32(IPPROTO_TCP), TCP_KEEPIDLE), (Int32(IPPROTO_TCP), TCP_KEEPINTVL),
                (Int32(IPPROTO_TCP), TCP_KEEPCNT),
            ].map { (try? LoopSyscall.option(fd, level: $0.0, name: $0.1)) ?? -1 }
            options.update { $0 = values }
        }
        defer { server.close() }
        let client = try await TCPConnection.connect(to: server.localAddress, on: group.loops[0])
        defer { client.close() }
        #expect(await eventually { !options.value.isEmpty })
        #expect(options.value == [1, 60, 10, 3])
    }

    @Test("IPv6: listen on ::1, connect, echo")
    func ipv6Echo() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        let listener: TCPListener
        do {
            listener = try TCPListener.bind(to: try SocketAddress(host: "::1", port: 0), on: loop)
        } catch let error as SocketError
            where error.errno == .addressNotAvailable || error.errno == .addressFamilyNotSupported
        {
            return  // no IPv6 loopback on this machine
        }
        defer { listener.close() }
        #expect(listener.localAddress.isIPv6)
        let served = Task(executorPreference: loop) {
            let connection = try await listener.accept()
            await LineEcho.serve(connection)
            connection.close()
        }
        let echoed = try await echoRoundTrips(listener.localAddress, on: loop, lines: ["over IPv6"])
        #expect(echoed == ["over IPv6"])
        try await served.value
    }

    @Test("half-close: the server reads end of stream, answers, and the client still reads it")
    func halfClose() async throws {
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let server = try TCPServer(group: group, address: Self.loopback, handler: LineEcho.serve)
        defer { server.close() }
        let connection = try await TCPConnection.connect(to: server.localAddress, on: group.loops[0])
        defer { connection.close() }
        try await connection.write(Array("no newline".utf8))
        try connection.shutdownWrite()
        let answer = try await readToEnd(connection)  // the rest is echoed, then the server closes
        #expect(String(decoding: answer, as: UTF8.self) == "no newline")
    }

    @Test("connecting to a closed port throws SocketError(connect, ECONNREFUSED) with the address")
    func connectionRefused() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        // A port that was just free: bind, note it, close.
        let probe = try TCPListener.bind(to: Self.loopback, on: loop)
        let address = probe.localAddress
        probe.close()
        try await Task.sleep(for: .milliseconds(1))
        do {
            _ = try await TCPConnection.connect(to: address, on: loop)
            Issue.record("connect succeeded")
        } catch let error as SocketError {
            #expect(error.errno == .connectionRefused)
            #expect(error.operation == .connect)
            #expect(error.address == address)
            #expect(error.description.contains("connect 127.0.0.1:\(address.port)"))
        }
    }

    @Test("a peer that resets: the server's read throws ECONNRESET (or ends), nothing leaks")
    func peerReset() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        let listener = try TCPListener.bind(to: Self.loopback, on: loop)
        defer { listener.close() }
        let outcome = Task(executorPreference: loop) { () async -> String in
            do {
                let connection = try await listener.accept()
                defer { connection.close() }
                _ = try await readToEnd(connection)
                return "end of stream"
            } catch let error as SocketError {
                return "\(error.errno)"
            } catch {
                return "other: \(error)"
            }
        }
        let client = try await TCPConnection.connect(to: listener.localAddress, on: loop)
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(
            client.descriptor.rawValue, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        try await client.write(Array("x".utf8))
        client.close()  // SO_LINGER 0: close sends RST
        let result = await outcome.value
        #expect(result == "\(Errno.connectionReset)" || result == "end of stream")
        #expect(await eventually { liveRegistrations(loop) == 1 })  // the listener
    }

    @Test("a client that never reads: the writer is held by backpressure, then fails when the client goes")
    func clientNeverReads() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        let listener = try TCPListener.bind(to: Self.loopback, on: loop)
        defer { listener.close() }
        let written = Shared(0)
        let total = 64 << 20
        let writer = Task(executorPreference: loop) { () async -> SocketError? in
            do {
                let connection = try await listener.accept()
                defer { connection.close() }
                let chunk = [UInt8](repeating: 0x61, count: 64 * 1024)
                while written.value < total {
                    try await connection.write(chunk)
                    written.update { $0 += chunk.count }
                }
                return nil
            } catch {
                return error as? SocketError
            }
        }
        let client = try await TCPConnection.connect(to: listener.localAddress, on: loop)
        // The kernel's buffers fill, then the writer waits: what it wrote stops growing far
        // below the 64 MiB it wants to write, and nothing else holds the rest.
        #expect(await eventually { written.value > 0 })
        #expect(await settled { written.value } != nil)
        #expect(written.value < total / 4)
        client.close()  // unread data: the close resets the connection
        let failure = await writer.value
        #expect(failure?.operation == .write)
        #expect(failure?.errno == .brokenPipe || failure?.errno == .connectionReset)
    }

    @Test("cancelling a task blocked in read throws CancellationError; the connection stays usable")
    func cancelRead() async throws {
        let loop = try EventLoop()
        defer { loop.shutdown() }
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let server = try TCPServer(group: group, address: Self.loopback, handler: LineEcho.serve)
        defer { server.close() }
        let connection = try await TCPConnection.connect(to: server.localAddress, on: loop)
        defer { connection.close() }
        let reader = Task { try await connection.read(maxBytes: 16) }
        try await Task.sleep(for: .milliseconds(5))
        reader.cancel()
        await #expect(throws: CancellationError.self) { try await reader.value }
        let echoed = try await { () async throws -> [UInt8] in
            try await connection.write(Array("after\n".utf8))
            return try await readExactly(connection, count: 6)
        }()
        #expect(String(decoding: echoed, as: UTF8.self) == "after\n")
    }

    @Test("shutdown while connections wait in read: every handler ends, no hang")
    func shutdownWithOpenConnections() async throws {
        let group = try EventLoopGroup(loopCount: 2)
        let finished = Shared(0)
        let server = try TCPServer(group: group, address: Self.loopback) { connection in
            await LineEcho.serve(connection)
            finished.update { $0 += 1 }
        }
        let clients = try EventLoop(name: "clients")
        defer { clients.shutdown() }
        var connections: [TCPConnection] = []
        for _ in 0..<20 {
            let connection = try await TCPConnection.connect(to: server.localAddress, on: clients)
            try await connection.write(Array("hi\n".utf8))
            _ = try await readExactly(connection, count: 3)
            connections.append(connection)
        }
        group.shutdown()
        #expect(await eventually { finished.value == 20 })
        // The server side is closed: each client reads end of stream.
        for connection in connections {
            #expect(try await readToEnd(connection).isEmpty)
            connection.close()
        }
        #expect(socketCount(port: server.localAddress.port, state: "0A") == 0)
    }
}
