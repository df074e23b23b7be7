import Glibc
import Testing

@testable import KQueueLoop

/// `kq echo-server` and `kq http-hello` run as a user runs them, in a child process, so that
/// their descriptors (/proc/PID/fd) and memory (VmRSS) are counted exactly: 10,000
/// connections opening and closing, a client that never reads, then SIGTERM and exit 0.
@Suite("kq servers", .serialized)
struct ServerToolTests {
    static let binary: String = {
        let path = CommandLine.arguments[0]
        let directory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        return (directory.hasSuffix(".xctest/Contents/MacOS") ? directory + "/../../.." : directory) + "/kq"
    }()

    /// A `kq` server in a child process, and the port it printed.
    struct Server {
        let pid: pid_t
        let port: UInt16
        let output: Int32

        init(_ arguments: [String]) throws {
            var fds: [Int32] = [-1, -1]
            guard pipe(&fds) == 0 else { throw Errno(rawValue: errno) }
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
            posix_spawn_file_actions_addclose(&actions, fds[0])
            let words = [ServerToolTests.binary] + arguments
            let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
            defer { argv.forEach { free($0) } }
            var pid: pid_t = 0
            let result = posix_spawn(&pid, ServerToolTests.binary, &actions, nil, argv, environ)
            _ = Glibc.close(fds[1])
            guard result == 0 else { throw Errno(rawValue: result) }
            self.pid = pid
            output = fds[0]
            // "name: listening on 127.0.0.1:PORT with N loops"
            var line: [UInt8] = []
            var byte: UInt8 = 0
            var poller = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
            while !line.contains(UInt8(ascii: "\n")) {
                guard poll(&poller, 1, 10_000) == 1, Glibc.read(fds[0], &byte, 1) == 1 else { break }
                line.append(byte)
            }
            let text = String(decoding: line, as: UTF8.self)
            guard let portText = text.split(separator: ":").last?.split(separator: " ").first,
                let port = UInt16(portText)
            else {
                kill(pid, SIGKILL)
                throw Errno.ioError
            }
            self.port = port
        }

        var descriptorCount: Int {
            guard let directory = opendir("/proc/\(pid)/fd") else { return -1 }
            defer { closedir(directory) }
            var count = 0
            while readdir(directory) != nil { count += 1 }
            return count - 2
        }

        /// Resident memory in KiB (VmRSS).
        var residentKiB: Int {
            guard let file = fopen("/proc/\(pid)/status", "r") else { return -1 }
            defer { fclose(file) }
            var line = [CChar](repeating: 0, count: 256)
            while fgets(&line, Int32(line.count), file) != nil {
                let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if text.hasPrefix("VmRSS:") { return Int(text.split(separator: " ")[1]) ?? -1 }
            }
            return -1
        }

        /// SIGTERM, then the exit status (nil if it had to be killed after 10 s).
        func stop() -> Int32? {
            kill(pid, SIGTERM)
            defer { _ = Glibc.close(output) }
            for _ in 0..<10_000 {
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid { return status & 0x7F == 0 ? (status >> 8) & 0xFF : -1 }
                usleep(1000)
            }
            kill(pid, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
            return nil
        }
    }

    @Test(
        "10,000 connections opening and closing leave the server's descriptor count as it was",
        arguments: ["echo-server", "http-hello"])
    func tenThousandConnections(_ command: String) async throws {
        let server = try Server([command, "--port", "0", "--loops", "2"])
        let address = try SocketAddress(host: "127.0.0.1", port: server.port)
        let clients = try EventLoop(name: "clients")
        defer { clients.shutdown() }
        let request = Array((command == "echo-server" ? "ping\n" : "GET / HTTP/1.1\r\n\r\n").utf8)
        // Warm-up: one connection on each loop, so that whatever is created on first use is
        // there before the count is taken.
        let first = try await TCPConnection.connect(to: address, on: clients)
        let second = try await TCPConnection.connect(to: address, on: clients)
        for connection in [first, second] {
            try await connection.write(request)
            _ = try await connection.read(maxBytes: 256)
            connection.close()
        }
        let before = await settled { server.descriptorCount } ?? -1
        // 50 clients at a time; every tenth connection also makes one exchange, the others
        // open and close at once (half of those with a reset).
        let completed = try await withThrowingTaskGroup(of: Int.self) { tasks in
            for worker in 0..<50 {
                tasks.addTask {
                    var done = 0
                    for index in 0..<200 {
                        let connection = try await TCPConnection.connect(to: address, on: clients)
                        if index % 10 == 0 {
                            try await connection.write(request)
                            _ = try await connection.read(maxBytes: 256)
                        } else if (index + worker) % 2 == 0 {
                            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
                            setsockopt(
                                connection.descriptor.rawValue, SOL_SOCKET, SO_LINGER, &linger,
                                socklen_t(MemoryLayout<Glibc.linger>.size))
                        }
                        connection.close()
                        done += 1
                    }
                    return done
                }
            }
            return try await tasks.reduce(0, +)
        }
        #expect(completed == 10_000)
        #expect(
            await eventually(timeout: .seconds(60)) { server.descriptorCount == before },
            "descriptors: \(server.descriptorCount) vs \(before)"
        )
        #expect(server.stop() == 0)
    }

    @Test("a client that never reads: the echo server's memory stays bounded by backpressure")
    func clientNeverReads() async throws {
        let server = try Server(["echo-server", "--port", "0", "--loops", "1"])
        let address = try SocketAddress(host: "127.0.0.1", port: server.port)
        let clients = try EventLoop(name: "clients")
        defer { clients.shutdown() }
        let connection = try await TCPConnection.connect(to: address, on: clients)
        let baseline = server.residentKiB
        // Lines of 1 KiB, 256 MiB of them if they were all taken; the writer stops when the
        // server stops reading (its own writes are blocked by us not reading).
        let line = [UInt8](repeating: 0x61, count: 1023) + [0x0A]
        let sent = Shared(0)
        let writer = Task(executorPreference: clients) {
            while sent.value < 256 << 20 {
                try await connection.write(line)
                sent.update { $0 += line.count }
            }
        }
        #expect(await eventually { sent.value > 0 })
        let stalled = await settled { sent.value }
        #expect(stalled != nil)
        #expect(sent.value < 64 << 20, "the server kept reading: \(sent.value) bytes")
        // Under AddressSanitizer (scripts/sanitize.sh exports ASAN_OPTIONS) the server's RSS
        // also holds the sanitizer's quarantine of freed memory (up to 256 MiB), which grows
        // with every buffer freed before the stall: the bound is the plain build's.
        if getenv("ASAN_OPTIONS") == nil {
            #expect(server.residentKiB - baseline < 16 * 1024, "RSS grew from \(baseline) to \(server.residentKiB) KiB")
        }
        writer.cancel()
        _ = await writer.result
        connection.close()
        #expect(server.stop() == 0)
    }

    @Test(
        "--idle-timeout 0.2: silent clients are closed, not before 200 ms; the descriptor count returns to its baseline",
        arguments: ["echo-server", "http-hello"])
    func idleTimeout(_ command: String) async throws {
        let server = try Server([command, "--port", "0", "--loops", "1", "--idle-timeout", "0.2"])
        let address = try SocketAddress(host: "127.0.0.1", port: server.port)
        let clients = try EventLoop(name: "clients")
        defer { clients.shutdown() }
        // Warm-up: one exchange, so that what is made on first use is there before the count.
        let request = Array((command == "echo-server" ? "ping\n" : "GET / HTTP/1.1\r\n\r\n").utf8)
        let warm = try await TCPConnection.connect(to: address, on: clients)
        try await warm.write(request)
        _ = try await warm.read(maxBytes: 256)
        warm.close()
        let before = await settled { server.descriptorCount } ?? -1
        let begin = ContinuousClock.now
        var silent: [TCPConnection] = []
        for _ in 0..<20 { silent.append(try await TCPConnection.connect(to: address, on: clients)) }
        // Each is closed by the server: end of stream, never before the timeout.
        let first = try await readToEnd(silent[0])
        #expect(first.isEmpty)
        #expect(begin.duration(to: .now) >= .milliseconds(200))
        for connection in silent.dropFirst() { #expect(try await readToEnd(connection).isEmpty) }
        for connection in silent { connection.close() }
        #expect(
            await eventually { server.descriptorCount == before },
            "descriptors: \(server.descriptorCount) vs \(before)")
        #expect(server.stop() == 0)
    }

    @Test("--idle-timeout 0: a silent client is kept")
    func idleTimeoutOff() async throws {
        let server = try Server(["echo-server", "--port", "0", "--loops", "1", "--idle-timeout", "0"])
        let address = try SocketAddress(host: "127.0.0.1", port: server.port)
        let clients = try EventLoop(name: "clients")
        defer { clients.shutdown() }
        let connection = try await TCPConnection.connect(to: address, on: clients)
        defer { connection.close() }
        // Silent for 300 ms (what a 0.2 s timeout would close), then still served.
        try await clients.sleep(for: .milliseconds(300))
        try await connection.write(Array("still\n".utf8))
        #expect(try await readExactly(connection, count: 6) == Array("still\n".utf8))
        #expect(server.stop() == 0)
    }
}
