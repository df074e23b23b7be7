import CKQueueShim
import Foundation
import Glibc
import Testing

/// The `kq` command-line tool, run as a user runs it: `kq demo`, `kq bench --quick` (its
/// output must be well formed; its timings are not judged here) and `kq telnet`.
@Suite("kq command-line tool")
struct KQToolTests {
    static let binary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("kq").path

    @Test("kq demo checks itself and exits 0")
    func demo() throws {
        let result = try CABITests.run([Self.binary, "demo"], timeout: 60)
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("all checks passed"))
    }

    @Test("kq bench --quick prints a well-formed table with ratios and writes an SVG plot")
    func benchQuick() throws {
        let plot = FileManager.default.temporaryDirectory.appendingPathComponent("kq-bench-\(getpid()).svg").path
        defer { try? FileManager.default.removeItem(atPath: plot) }
        let result = try CABITests.run([Self.binary, "bench", "--quick", "--output", plot], timeout: 120)
        try #require(result.status == 0, "\(result.output)")
        let lines = result.output.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("N") && $0.contains("backend") && $0.contains("x epoll") })
        for backend in ["kqueue-swift", "kqueue-c", "epoll", "poll", "select"] {
            let rows = lines.filter {
                $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst(2).first.map(String.init) == backend
            }
            #expect(rows.count >= 2, "rows for \(backend)")
            for row in rows {
                let fields = row.split(separator: " ", omittingEmptySubsequences: true)
                #expect(fields.count == 5, "\(row)")
                #expect(Int(fields[0]) != nil && Int(fields[1]) != nil, "\(row)")
                #expect((Double(fields[3]) ?? -1) > 0 && (Double(fields[4]) ?? -1) > 0, "\(row)")
                if backend == "epoll" { #expect(fields[4] == "1.00", "\(row)") }
            }
        }
        #expect(lines.contains { $0.hasPrefix("kqueue-c: at most") && $0.hasSuffix("x raw epoll over all points") })
        #expect(lines.contains { $0 == "plot: \(plot)" })
        let svg = try String(contentsOfFile: plot, encoding: .utf8)
        #expect(svg.hasPrefix("<svg") && svg.hasSuffix("</svg>\n"))
        #expect(svg.contains("<polyline") && svg.contains("kqueue-swift") && svg.contains("poll"))
    }

    @Test("kq watch prints a write to a watched file and a watched signal, then exits after --count")
    func watch() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kq-watch-\(getpid()).txt").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data("a".utf8)))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["watch", path, "--signal", "USR1", "--count", "2", "--timeout", "20"]
        let output = Pipe()
        process.standardOutput = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        // Wait (bounded by the tool's own timeout) for its "watching" line: registered.
        var text = ""
        while !text.contains("watching") {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        try #require(text.contains("watching"), "\(text)")
        let file = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try file.seekToEnd()
        try file.write(contentsOf: Data("b".utf8))
        try file.close()
        // Signal only once the write was reported, so the two events stay in order.
        while !text.contains("vnode ") {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        kill(process.processIdentifier, SIGUSR1)
        process.waitUntilExit()
        text += String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(text.contains("vnode \(path): NOTE_WRITE|NOTE_EXTEND"), "\(text)")
        #expect(text.contains("signal SIGUSR1: 1"), "\(text)")
    }

    /// The kernel's process connector can be opened here (CAP_NET_ADMIN).
    static let connectorAvailable: Bool = {
        let fd = kq_shim_proc_connector_open()
        if fd >= 0 { _ = kq_shim_real_close(fd) }
        return fd >= 0
    }()

    /// `kq trace`'s lines with each pid replaced by P1, P2, ... in order of appearance.
    static func labelled(_ output: String) -> [String] {
        var labels: [Substring: String] = [:]
        func label(_ pid: Substring) -> String {
            if let known = labels[pid] { return known }
            labels[pid] = "P\(labels.count + 1)"
            return labels[pid]!
        }
        return output.split(separator: "\n").map { line in
            let indent = line.prefix { $0 == " " }
            let words = line.dropFirst(indent.count).split(separator: " ", maxSplits: 1)
            guard words.count == 2 else { return String(line) }
            var rest = String(words[1])
            if rest.hasPrefix("fork (parent "), rest.hasSuffix(")") {
                rest = "fork (parent \(label(rest.dropFirst(13).dropLast())))"
            }
            return "\(indent)\(label(words[0])) \(rest)"
        }
    }

    @Test(
        "kq trace prints a three-level process tree (fork, exec with the program's name, exit) and exits with the command's code",
        .enabled(if: connectorAvailable, "the kernel's process connector needs CAP_NET_ADMIN")
    )
    func traceTree() throws {
        // The innermost program, cat, reads the test's pipe: every process of the tree lives
        // until its exec line is out, so each name is read while the process exists, however
        // slowly kq trace runs (a sanitizer build on a loaded machine).
        let result = try CABITests.run(
            [Self.binary, "trace", "--", "sh", "-c", "sh -c \"cat; exit 3\"; exit 5"], timeout: 30,
            closeInputWhenOutputContains: " exec cat")
        #expect(result.status == 5, "\(result.output)")
        let lines = Self.labelled(result.output)
        #expect(
            Array(lines.prefix(5)) == [
                "P1 exec sh",
                "  P2 fork (parent P1)",
                "  P2 exec sh",
                "    P3 fork (parent P2)",
                "    P3 exec cat",
            ], "\(result.output)")
        // The exits: each once, with its code. Two processes that exit close together may be
        // reported in either order (their knotes become ready in one look at the kernel).
        #expect(
            Set(lines.dropFirst(5)) == ["    P3 exit 0", "  P2 exit 3", "P1 exit 5"] && lines.count == 8,
            "\(result.output)")
        #expect(lines.last == "P1 exit 5", "\(result.output)")
    }

    @Test("kq trace exits 128 + the signal when a signal ended the command")
    func traceSignal() throws {
        let result = try CABITests.run([Self.binary, "trace", "--", "sh", "-c", "kill -KILL $$"], timeout: 30)
        #expect(result.status == 128 + SIGKILL, "\(result.output)")
        #expect(result.output.split(separator: "\n").last.map { $0.hasSuffix("killed by signal \(SIGKILL)") } == true)
    }

    @Test(
        "kq trace without the process connector says so and shows the command's exit from its pidfd",
        .enabled(
            if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"),
            "needs root and setpriv")
    )
    func traceWithoutConnector() throws {
        // setpriv drops CAP_NET_ADMIN from the bounding set: the connector is refused.
        let result = try CABITests.run(
            [
                "/usr/bin/setpriv", "--bounding-set", "-net_admin", "--inh-caps", "-net_admin", "--", Self.binary,
                "trace", "--", "sh", "-c", "sh -c \"exit 3\"; exit 5",
            ], timeout: 30)
        #expect(result.status == 5, "\(result.output)")
        let lines = result.output.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("kq trace: the kernel's process connector is unavailable") == true, "\(lines)")
        #expect(lines.count == 2 && lines.last?.hasSuffix(" exit 5") == true, "\(lines)")
    }

    @Test("kq telnet: stdin goes to the socket, the socket to stdout, exit 0 when the peer closes")
    func telnet() throws {
        // A one-shot loopback server: reads a line, answers, closes.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0
            }
        }
        try #require(bound && listen(listener, 1) == 0)
        defer { close(listener) }
        let port = UInt16(bigEndian: address.sin_port)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["telnet", "127.0.0.1", String(port)]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()

        var poller = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        try #require(poll(&poller, 1, 10_000) == 1, "kq telnet did not connect")
        let connection = accept(listener, nil, nil)
        try #require(connection >= 0)
        input.fileHandleForWriting.write(Data("hello from stdin\n".utf8))
        var received = [UInt8](repeating: 0, count: 64)
        var poller2 = pollfd(fd: connection, events: Int16(POLLIN), revents: 0)
        try #require(poll(&poller2, 1, 10_000) == 1, "nothing arrived from kq telnet")
        let n = recv(connection, &received, received.count, 0)
        #expect(String(decoding: received[..<max(0, n)], as: UTF8.self) == "hello from stdin\n")
        _ = "reply from server\n".withCString { send(connection, $0, strlen($0), 0) }
        close(connection)

        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(5_000) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(printed == "reply from server\n")
        try? input.fileHandleForWriting.close()
    }
}
