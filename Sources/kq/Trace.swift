import ArgumentParser
import CKQueueShim
import Glibc
import KQueue
import SystemPackage

/// `kq trace -- CMD [ARGS...]`: runs a command and prints its process tree as it happens, one
/// line per fork, exec and exit, through EVFILT_PROC with NOTE_TRACK. The command is started
/// with `pdfork` and waits on a pipe until its knote is registered, so no fork is missed.
struct Trace: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a command and print its process tree as it happens: forks, execs, exits.",
        discussion: """
            One line per event, indented by depth: "PID fork (parent PPID)", "PID exec NAME" (the \
            new program's name), "PID exit CODE" or "PID killed by signal N". It ends when the \
            command and every process it started have exited; its exit code is the command's \
            (128 + the signal number when a signal ended it). Following forks needs the kernel's \
            process connector (CAP_NET_ADMIN); without it kq trace says so and shows the \
            command's own exit only. Example: kq trace -- sh -c 'ls | wc -l'
            """)

    @Argument(parsing: .captureForPassthrough, help: "The command to run and its arguments, after --.")
    var command: [String] = []

    func run() throws {
        var arguments = command
        if arguments.first == "--" { arguments.removeFirst() }
        guard let program = arguments.first else { throw ValidationError("usage: kq trace -- CMD [ARGS...]") }
        let queue = try KernelQueue()
        // Names from the connector's exec messages (the program may be gone before its exec is read).
        let names = kq_shim_proc_connector_open()
        defer { if names >= 0 { _ = close(names) } }
        if names >= 0 { try queue.apply([.read(FileDescriptor(rawValue: names))]) }
        let started = try Self.start(arguments, program: program)
        defer { try? started.descriptor.close() }  // reaps it (a process descriptor)
        // The terminal's Ctrl-C and Ctrl-\ are for the command: it reports how they ended it.
        _ = signal(SIGINT, SIG_IGN)
        _ = signal(SIGQUIT, SIG_IGN)
        var tracer = Tracer(top: started.pid, names: names)
        do {
            try queue.apply([.process(started.pid, note: [.exit, .fork, .exec, .track])])
        } catch {
            guard error.errno == .notSupported else { throw error }
            Self.emit(
                "kq trace: the kernel's process connector is unavailable (NOTE_TRACK: ENOTSUP; it needs "
                    + "CAP_NET_ADMIN): showing only the command's exit, through its pidfd")
            try queue.apply([.process(started.pid, note: .exit)])
        }
        started.release()
        while !tracer.finished {
            let events: [KEvent]
            do {
                events = try queue.events(maxEvents: 64)
            } catch {
                if error == .interrupted { continue }
                throw error
            }
            tracer.readNames()
            for event in events where event.filter == .process { tracer.report(event) }
        }
        let code = tracer.exitCode
        if code != 0 { throw ExitCode(code) }
    }

    /// The command, started with `pdfork` and held on a pipe until ``Started/release()``.
    private struct Started {
        var descriptor: ProcessDescriptor
        var pid: pid_t
        var gate: Int32

        func release() {
            var byte: UInt8 = 1
            _ = write(gate, &byte, 1)
            _ = close(gate)
        }
    }

    private static func start(_ arguments: [String], program: String) throws -> Started {
        // Everything the child needs is made before the fork: it only reads, execs and exits.
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        let failure = Array("kq trace: cannot run \(program)\n".utf8)
        var gate: [Int32] = [-1, -1]
        guard pipe(&gate) == 0 else { throw Errno(rawValue: errno) }
        for end in gate { _ = kq_shim_fcntl_int(end, F_SETFD, FD_CLOEXEC) }
        switch try ProcessDescriptor.fork(options: .closeOnExec) {
        case .child:
            _ = kq_shim_real_close(gate[1])
            var byte: UInt8 = 0
            _ = read(gate[0], &byte, 1)
            execvp(argv[0]!, argv)
            _ = failure.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
            _exit(127)
        case .parent(let descriptor, let pid):
            _ = close(gate[0])
            return Started(descriptor: descriptor, pid: pid, gate: gate[1])
        }
    }

    /// One line straight to standard output (unbuffered: a reader sees each event at once).
    static func emit(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            offset += n
        }
    }
}

/// The process tree seen so far.
private struct Tracer {
    let top: pid_t
    let names: Int32
    var depth: [pid_t: Int] = [:]
    var alive: Set<pid_t>
    var latestName: [pid_t: String] = [:]
    var topStatus: ProcessExitStatus?

    init(top: pid_t, names: Int32) {
        self.top = top
        self.names = names
        depth[top] = 0
        alive = [top]
    }

    /// The command and every process followed from it have exited.
    var finished: Bool { topStatus != nil && alive.isEmpty }

    /// The command's exit code, as a shell gives it.
    var exitCode: Int32 {
        switch topStatus {
        case .exited(let code): return code
        case .signaled(let signal, _): return 128 + signal
        case .unknown, nil: return 1
        }
    }

    mutating func readNames() {
        guard names >= 0 else { return }
        withUnsafeTemporaryAllocation(of: kq_proc_name.self, capacity: 64) { buffer in
            while true {
                let count = Int(kq_shim_proc_connector_read_names(names, buffer.baseAddress, Int32(buffer.count)))
                for entry in buffer[0..<count] {
                    let name = withUnsafeBytes(of: entry.name) {
                        String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
                    }
                    latestName[entry.pid] = name
                }
                if count < buffer.count { break }
            }
        }
    }

    mutating func report(_ event: KEvent) {
        let pid = pid_t(truncatingIfNeeded: event.ident)
        let notes = ProcessNote(rawValue: event.fflags)
        if notes.contains(.child) {
            let parent = pid_t(truncatingIfNeeded: event.data)
            depth[pid] = (depth[parent] ?? 0) + 1
            alive.insert(pid)
            line(pid, "fork (parent \(parent))")
        }
        if notes.contains(.trackError) { line(pid, "fork: a child could not be followed") }
        if notes.contains(.exec) { line(pid, "exec \(name(of: pid))") }
        if let status = event.processExitStatus {
            switch status {
            case .exited(let code): line(pid, "exit \(code)")
            case .signaled(let signal, let core):
                line(pid, "killed by signal \(signal)" + (core ? " (core dumped)" : ""))
            case .unknown: line(pid, "exit (status unknown)")
            }
            alive.remove(pid)
            if pid == top { topStatus = status }
        }
    }

    private func name(of pid: pid_t) -> String {
        if let name = latestName[pid] { return name }
        // Without the connector's message: the process's current name, if it still exists.
        guard let file = fopen("/proc/\(pid)/comm", "re") else { return "?" }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 64)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return "?" }
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.hasSuffix("\n") ? String(text.dropLast()) : text
    }

    private func line(_ pid: pid_t, _ text: String) {
        Trace.emit(String(repeating: "  ", count: depth[pid] ?? 0) + "\(pid) \(text)")
    }
}
