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

    @Test("libkqueue.so exports kqueue, kqueuex, kevent, the aio_* functions, pdfork, pdgetpid and pdkill")
    func libraryIsBuilt() throws {
        let library = Self.libraryDirectory.appendingPathComponent("libkqueue.so")
        #expect(
            FileManager.default.fileExists(atPath: library.path),
            "build the library first: swift build --product kqueue")
        let symbols = try Self.run(["nm", "-D", "--defined-only", library.path], timeout: 30)
        let exported = [
            "kqueue", "kqueuex", "kevent", "aio_read", "aio_write", "aio_readv", "aio_writev", "aio_fsync", "aio_error",
            "aio_return", "aio_suspend", "aio_cancel", "lio_listio", "aio_read64", "lio_listio64", "pdfork", "pdgetpid",
            "pdkill",
        ]
        for name in exported {
            #expect(symbols.output.split(separator: "\n").contains { $0.hasSuffix(" T \(name)") }, "missing \(name)")
        }
    }

    /// The deployable library of scripts/build-clib.sh (docs/C-LIBRARY.md): two files. The
    /// front's SONAME is libkqueue.so.12 (never the other libkqueue's libkqueue.so.0); it is
    /// plain C (NEEDED: libc alone); the engine it loads holds the Swift runtime, which it does
    /// not load from a toolchain; neither has a run path. `swift test` builds only the debug
    /// library, so this test is skipped until .build/clib exists; CI's clib stage builds it and
    /// runs scripts/check-clib.sh, which checks the same and more, and fails when it is missing.
    static let deployableLibrary = packageRoot.appendingPathComponent(".build/clib/libkqueue.so.12")
    static let deployableEngine = packageRoot.appendingPathComponent(".build/clib/libkqueue-engine.so.12.0.0")

    /// The values of the `tag` entries (SONAME, NEEDED, RUNPATH...) of `library`'s dynamic section.
    static func dynamicEntries(_ library: URL, _ tag: String) throws -> [String] {
        let result = try run(["readelf", "-d", library.path], timeout: 30)
        try #require(result.status == 0, "readelf -d \(library.lastPathComponent) failed:\n\(result.output)")
        return result.output.split(separator: "\n").filter { $0.contains("(\(tag))") }.compactMap { line in
            guard let open = line.firstIndex(of: "["), let close = line.lastIndex(of: "]") else { return nil }
            return String(line[line.index(after: open)..<close])
        }
    }

    @Test(
        "the deployable libkqueue.so: SONAME libkqueue.so.12, plain C; its engine needs no libswift*; no RUNPATH/RPATH",
        .enabled(
            if: FileManager.default.fileExists(atPath: deployableLibrary.path),
            "no .build/clib/libkqueue.so.12: run scripts/build-clib.sh (CI's clib stage builds and checks it)"))
    func deployableLibraryStandsAlone() throws {
        let front = Self.deployableLibrary
        #expect(try Self.dynamicEntries(front, "SONAME") == ["libkqueue.so.12"])
        #expect(try Self.dynamicEntries(front, "NEEDED") == ["libc.so.6"])
        let engine = Self.deployableEngine
        try #require(
            FileManager.default.fileExists(atPath: engine.path), "no \(engine.lastPathComponent) next to the front")
        let needed = try Self.dynamicEntries(engine, "NEEDED")
        #expect(!needed.isEmpty)
        #expect(
            needed.allSatisfy {
                !$0.hasPrefix("libswift") && !$0.hasPrefix("libstdc++") && !$0.hasPrefix("libdispatch")
                    && !$0.hasPrefix("libkqueue")
            },
            "engine NEEDED: \(needed)")
        for library in [front, engine] {
            let runPaths = try Self.dynamicEntries(library, "RUNPATH") + Self.dynamicEntries(library, "RPATH")
            #expect(runPaths.isEmpty, "\(library.lastPathComponent) run path: \(runPaths)")
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

    /// A FreeBSD program's asynchronous I/O (SIGEV_KEVENT, sigev_notify_kqueue, the kevent flags,
    /// aio_readv, LIO_READV, aio_iov) compiles with `<aio.h>` before and after `<sys/event.h>`,
    /// with and without `_FILE_OFFSET_BITS=64`, as C11 and C++17 with every warning an error.
    @Test(
        "AIO compiles in both include orders, with and without _FILE_OFFSET_BITS=64, C11 and C++17 -pedantic",
        arguments: [["cc", "-x", "c", "-std=c11"], ["c++", "-x", "c++", "-std=c++17"]])
    func aioHeadersInBothOrders(_ compiler: [String]) throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("kq-aio-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let body = """
            #include <errno.h>
            #include <fcntl.h>
            #include <string.h>
            #include <sys/uio.h>
            static char buffer[64];
            int freebsd_style(int kq, struct aiocb *cb, struct aiocb **list, int n, struct iovec *iov) {
                struct kevent ev;
                memset(cb, 0, sizeof *cb);
                cb->aio_fildes = 0;
                cb->aio_buf = buffer;
                cb->aio_nbytes = sizeof buffer;
                cb->aio_offset = 0;
                cb->aio_sigevent.sigev_notify = SIGEV_KEVENT;
                cb->aio_sigevent.sigev_notify_kqueue = kq;
                cb->aio_sigevent.sigev_notify_kevent_flags = EV_ONESHOT | EV_CLEAR;
                cb->aio_sigevent.sigev_value.sival_ptr = cb;
                if (aio_read(cb) != 0 || aio_write(cb) != 0 || aio_fsync(O_SYNC, cb) != 0) return -1;
                cb->aio_iov = iov;
                cb->aio_iovcnt = 2;
                cb->aio_lio_opcode = LIO_READV;
                if (aio_readv(cb) != 0 || aio_writev(cb) != 0 || aio_error(cb) == EINPROGRESS) return -1;
                EV_SET(&ev, (unsigned long)cb, EVFILT_AIO, 0, 0, 0, 0);
                return (int)aio_return(cb) + aio_cancel(0, cb) + lio_listio(LIO_NOWAIT, list, n, &cb->aio_sigevent)
                    + aio_suspend((const struct aiocb *const *)list, n, 0) + (int)ev.filter + LIO_WRITEV + EVFILT_LIO;
            }

            """
        let include = Self.packageRoot.appendingPathComponent("Sources/CKQueue/include").path
        for order in [["<aio.h>", "<sys/event.h>"], ["<sys/event.h>", "<aio.h>"]] {
            for largeFile in [false, true] {
                let text =
                    (largeFile ? "#define _FILE_OFFSET_BITS 64\n" : "")
                    + "#include \(order[0])\n#include \(order[1])\n" + body
                let name = "aio-\(order[0].dropFirst().prefix(3))-\(largeFile)"
                let source = scratch.appendingPathComponent("\(name).txt")
                try text.write(to: source, atomically: true, encoding: .utf8)
                let arguments =
                    compiler + [
                        "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-pedantic", "-Werror", "-I", include, "-c",
                        source.path, "-o", scratch.appendingPathComponent("\(name).o").path,
                    ]
                let result = try Self.run(arguments, timeout: 60)
                #expect(result.status == 0, "\(arguments.joined(separator: " ")):\n\(result.output)")
            }
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
    /// Runs a program to its end (bounded by `timeout`). With `closeInputWhenOutputContains`,
    /// its standard input is a pipe kept open until its output contains that text: a program
    /// that reads its input (`cat`) lives until then.
    static func run(
        _ arguments: [String], timeout: Double, environment: [String: String]? = nil,
        closeInputWhenOutputContains trigger: String? = nil
    ) throws -> (status: Int32, output: String) {
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
        let input = trigger.map { _ in Pipe() }
        process.standardInput = input ?? FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        var inputOpen = input != nil
        while process.isRunning && Date() < deadline {
            if inputOpen, let trigger, let text = try? String(contentsOf: log, encoding: .utf8), text.contains(trigger)
            {
                try? input?.fileHandleForWriting.close()
                inputOpen = false
            }
            usleep(5_000)
        }
        if inputOpen { try? input?.fileHandleForWriting.close() }
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
