import Foundation
import Glibc
import Testing

/// Runs the C ABI conformance programs in Tests/C: each is compiled with the system C
/// compiler against `<sys/event.h>` and linked with the built `libkqueue.so`, exactly as a
/// FreeBSD program would be, then run with a time limit. Exit 0 passes, 77 skips.
@Suite("C ABI conformance (Tests/C, linked with -lkqueue)")
struct CABITests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let cTestDirectory = packageRoot.appendingPathComponent("Tests/C")
    /// The build directory holding libkqueue.so: next to the running test bundle.
    static let libraryDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        .deletingLastPathComponent()
    static let seedTelnet = packageRoot.appendingPathComponent("../shared/seed/telnet.c").standardizedFileURL

    static var programs: [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: cTestDirectory.path)) ?? []
        return files.filter { $0.hasSuffix(".c") }.sorted()
    }

    @Test("libkqueue.so exports kqueue, kqueuex, kevent, pdfork, pdgetpid and pdkill")
    func libraryIsBuilt() throws {
        let library = Self.libraryDirectory.appendingPathComponent("libkqueue.so")
        #expect(
            FileManager.default.fileExists(atPath: library.path),
            "build the library first: swift build --product kqueue")
        let symbols = try Self.run(["nm", "-D", "--defined-only", library.path], timeout: 30)
        for name in ["kqueue", "kqueuex", "kevent", "pdfork", "pdgetpid", "pdkill"] {
            #expect(symbols.output.split(separator: "\n").contains { $0.hasSuffix(" T \(name)") }, "missing \(name)")
        }
    }

    /// `<sys/event.h>` compiles on its own, first in a file, as C99, C11 and C++ with every
    /// warning an error (it forward-declares `struct timespec` as FreeBSD's header does, and
    /// includes only `<stdint.h>`), and works with `<time.h>` included after it.
    @Test(
        "<sys/event.h> and <sys/procdesc.h> stand alone: -std=c99/c11 and C++ with -Wall -Wextra -pedantic",
        arguments: [
            ["cc", "-x", "c", "-std=c99"], ["cc", "-x", "c", "-std=c11"], ["c++", "-x", "c++", "-std=c++11"],
            ["c++", "-x", "c++", "-std=c++17"],
        ])
    func headerStandsAlone(_ compiler: [String]) throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("kq-header-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        // Alone: no feature macro, nothing included before it.
        let alone = """
            #include <sys/event.h>
            int only_the_header(int kq) {
                struct kevent change;
                EV_SET(&change, 1, EVFILT_USER, EV_ADD | EV_CLEAR, NOTE_FFNOP, 0, 0);
                return kevent(kq, &change, 1, 0, 0, 0) + kqueue() + kqueuex(KQUEUE_CLOEXEC);
            }

            """
        // With <time.h> after it (the feature macro makes -std=c99's <time.h> define timespec).
        let withTimeout = """
            #define _POSIX_C_SOURCE 200809L
            #include <sys/event.h>
            #include <time.h>
            int with_a_timeout(int kq, struct kevent *events) {
                struct timespec zero = {0, 0};
                return kevent(kq, 0, 0, events, 1, &zero);
            }

            """
        // <sys/procdesc.h> alone too: it includes only <sys/types.h> (pid_t).
        let procdesc = """
            #include <sys/procdesc.h>
            int only_procdesc(void) {
                int fd;
                pid_t pid;
                pid_t child = pdfork(&fd, PD_DAEMON | PD_CLOEXEC);
                return pdgetpid(fd, &pid) + pdkill(fd, 0) + (int)child + PD_ALLOWED_AT_FORK;
            }

            """
        let include = Self.packageRoot.appendingPathComponent("Sources/CKQueue/include").path
        for (name, text) in [("alone", alone), ("timeout", withTimeout), ("procdesc", procdesc)] {
            let source = scratch.appendingPathComponent("\(name).txt")
            try text.write(to: source, atomically: true, encoding: .utf8)
            let arguments =
                compiler + [
                    "-Wall", "-Wextra", "-pedantic", "-Werror", "-I", include, "-c", source.path, "-o",
                    scratch.appendingPathComponent("\(name).o").path,
                ]
            let result = try Self.run(arguments, timeout: 60)
            #expect(result.status == 0, "\(arguments.joined(separator: " ")):\n\(result.output)")
        }
    }

    /// The README's C example: compiled as the README says (only `-I` and `-lkqueue`), run.
    @Test("Examples/countdown.c builds as the README shows and runs")
    func readmeExample() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("kq-example-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let binary = scratch.appendingPathComponent("countdown")
        let built = try Self.compile(Self.packageRoot.appendingPathComponent("Examples/countdown.c"), to: binary)
        try #require(built.status == 0, "Examples/countdown.c does not compile:\n\(built.output)")
        let result = try Self.run([binary.path], timeout: 30)
        #expect(result.status == 0, "countdown exited \(result.status):\n\(result.output)")
        #expect(result.output.hasSuffix("done\n"), "output: \(result.output)")
    }

    @Test("C program", arguments: programs)
    func cProgram(_ file: String) throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("kq-ctests-\(getpid())")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        let binary = scratch.appendingPathComponent(String(file.dropLast(2)))
        let compile = try Self.compile(Self.cTestDirectory.appendingPathComponent(file), to: binary)
        try #require(compile.status == 0, "compiling \(file) failed:\n\(compile.output)")

        var environment = ProcessInfo.processInfo.environment
        if FileManager.default.fileExists(atPath: Self.seedTelnet.path) {
            let telnet = scratch.appendingPathComponent("seed-telnet")
            if !FileManager.default.fileExists(atPath: telnet.path) {
                let built = try Self.compile(Self.seedTelnet, to: telnet, warnings: false)
                try #require(built.status == 0, "../shared/seed/telnet.c does not compile unchanged:\n\(built.output)")
            }
            environment["KQ_TELNET_BIN"] = telnet.path
        }
        let result = try Self.run([binary.path], timeout: 60, environment: environment)
        if result.status == 77 { return }  // skipped by the program itself (prints why)
        #expect(result.status == 0, "\(file) exited \(result.status):\n\(result.output)")
    }

    static func compile(_ source: URL, to binary: URL, warnings: Bool = true) throws -> (status: Int32, output: String)
    {
        let include = packageRoot.appendingPathComponent("Sources/CKQueue/include").path
        var arguments = ["cc", "-std=gnu11", "-I", include, source.path, "-o", binary.path]
        if warnings { arguments += ["-Wall", "-Werror"] }
        arguments += ["-L", libraryDirectory.path, "-lkqueue", "-Wl,-rpath,\(libraryDirectory.path)", "-lpthread"]
        return try run(arguments, timeout: 120)
    }

    /// Runs a command, killing it after `timeout` seconds; returns its status and output.
    static func run(_ arguments: [String], timeout: Double, environment: [String: String]? = nil) throws -> (
        status: Int32, output: String
    ) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        if let environment { process.environment = environment }
        // Output goes to a file, so a chatty program can never block on a full pipe.
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("kq-ctest-\(UUID().uuidString).log")
        guard FileManager.default.createFile(atPath: log.path, contents: nil) else {
            return (-1, "cannot create \(log.path)")
        }
        defer { try? FileManager.default.removeItem(at: log) }
        let handle = try FileHandle(forWritingTo: log)
        defer { try? handle.close() }
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(5_000) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            return (-1, "timed out after \(timeout) s")
        }
        process.waitUntilExit()
        // Foundation's String(contentsOf:) leaks its read buffer for an empty file (seen with
        // LeakSanitizer): read only a log that has something in it.
        let size = (try? FileManager.default.attributesOfItem(atPath: log.path)[.size] as? Int) ?? 0
        let output = size == 0 ? "" : (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        return (process.terminationStatus, output)
    }
}
