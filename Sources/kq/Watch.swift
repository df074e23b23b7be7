import ArgumentParser
import Glibc
import KQueue
import SystemPackage

/// `kq watch`: prints what happens to files (EVFILT_VNODE), processes (EVFILT_PROC) and
/// signals (EVFILT_SIGNAL), one line per event, through one kqueue.
struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print changes to files, exits and forks of processes, and signals, as they happen.",
        discussion: """
            Ctrl-C ends it: SIGINT is ignored and watched, the FreeBSD way, so the interrupt \
            arrives as an event. Example: kq watch /etc/hosts --pid 1234 --signal HUP
            """)

    @Argument(help: "Files or directories to watch (EVFILT_VNODE).") var paths: [String] = []
    @Option(name: .customLong("pid"), help: "A process to watch (EVFILT_PROC: exit, fork, exec).")
    var pids: [Int32] = []
    @Option(name: .customLong("signal"), help: "A signal to watch, by name (HUP) or number (EVFILT_SIGNAL).")
    var signals: [String] = []
    @Option(help: "Exit after this many events.") var count: Int?
    @Option(help: "Exit after this many seconds.") var timeout: Double?

    func run() throws {
        let queue = try KernelQueue()
        var files: [UInt: (FileDescriptor, String)] = [:]
        defer { for (descriptor, _) in files.values { try? descriptor.close() } }
        let allNotes: VnodeNote = [.delete, .write, .extend, .attrib, .link, .rename, .revoke]
        for path in paths {
            let descriptor = try FileDescriptor.open(path, .readOnly, options: .closeOnExec)
            files[UInt(descriptor.rawValue)] = (descriptor, path)
            try queue.apply([.vnode(descriptor, note: allNotes)])
        }
        for pid in pids { try Self.watchProcess(pid, in: queue) }
        var watched = try signals.map { try Self.signalNumber($0) }
        watched.append(SIGINT)
        var unblock = sigset_t()
        sigemptyset(&unblock)
        for signal in watched {
            // Ignored and watched (the FreeBSD idiom): observed without its default action.
            _ = Glibc.signal(signal, SIG_IGN)
            try queue.apply([.signal(signal)])
            sigaddset(&unblock, signal)
        }
        // A signal blocked in every thread is counted only once delivered (docs/GUARANTEES.md),
        // and a parent may have started us with signals blocked.
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
        emit("watching \(paths.count) path(s), \(pids.count) process(es), signals \(watched.map(Self.signalName))")
        let deadline = timeout.map { ContinuousClock.now + .milliseconds(Int64($0 * 1000)) }
        var seen = 0
        while count.map({ seen < $0 }) ?? true {
            var wait: Duration? = nil
            if let deadline {
                let left = deadline - ContinuousClock.now
                if left <= .zero { break }
                wait = left
            }
            guard let events = try Self.nextEvents(queue, timeout: wait) else { continue }
            if events.isEmpty && deadline != nil { break }
            for event in events {
                seen += 1
                emit(describe(event, files: files))
                if event.filter == .signal && event.ident == UInt(SIGINT) { return }
            }
        }
    }

    /// The next events, or nil when a signal interrupted the wait.
    private static func nextEvents(_ queue: KernelQueue, timeout: Duration?) throws -> [KEvent]? {
        do {
            return try queue.events(maxEvents: 16, timeout: timeout)
        } catch {
            if error == .interrupted { return nil }
            throw error
        }
    }

    /// Exit, fork and exec; exits only where the process connector is unavailable (ENOTSUP).
    private static func watchProcess(_ pid: Int32, in queue: KernelQueue) throws {
        do {
            try queue.apply([.process(pid, note: [.exit, .fork, .exec])])
        } catch {
            guard error.errno == .notSupported else { throw error }
            try queue.apply([.process(pid, note: .exit)])
        }
    }

    private func describe(_ event: KEvent, files: [UInt: (FileDescriptor, String)]) -> String {
        switch event.filter {
        case .vnode:
            let name = files[event.ident]?.1 ?? "descriptor \(event.ident)"
            return "vnode \(name): \(Self.names(VnodeNote(rawValue: event.fflags)))"
        case .process:
            var text = "proc \(event.ident): \(Self.names(ProcessNote(rawValue: event.fflags)))"
            if let status = event.processExitStatus { text += ", \(status)" }
            return text
        case .signal:
            return "signal \(Self.signalName(Int32(event.ident))): \(event.data)"
        default:
            return "\(event.filter) \(event.ident)"
        }
    }

    /// One line straight to standard output (unbuffered: a reader sees each event at once).
    private func emit(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            offset += n
        }
    }

    static func names(_ notes: VnodeNote) -> String {
        let table: [(VnodeNote, String)] = [
            (.delete, "DELETE"), (.write, "WRITE"), (.extend, "EXTEND"), (.attrib, "ATTRIB"), (.link, "LINK"),
            (.rename, "RENAME"), (.revoke, "REVOKE"), (.open, "OPEN"), (.close, "CLOSE"),
            (.closeWrite, "CLOSE_WRITE"), (.read, "READ"),
        ]
        return table.filter { notes.contains($0.0) }.map(\.1).joined(separator: "|")
    }

    static func names(_ notes: ProcessNote) -> String {
        let table: [(ProcessNote, String)] = [
            (.exit, "EXIT"), (.fork, "FORK"), (.exec, "EXEC"), (.child, "CHILD"), (.trackError, "TRACKERR"),
            (.exitStatusUnknown, "EXIT_UNKNOWN"),
        ]
        return table.filter { notes.contains($0.0) }.map(\.1).joined(separator: "|")
    }

    static let signalTable: [(String, Int32)] = [
        ("HUP", SIGHUP), ("INT", SIGINT), ("QUIT", SIGQUIT), ("USR1", SIGUSR1), ("USR2", SIGUSR2),
        ("TERM", SIGTERM), ("CHLD", SIGCHLD), ("WINCH", SIGWINCH), ("URG", SIGURG), ("ALRM", SIGALRM),
        ("PIPE", SIGPIPE), ("CONT", SIGCONT), ("TSTP", SIGTSTP),
    ]

    static func signalNumber(_ text: String) throws -> Int32 {
        if let number = Int32(text), number > 0, number < 65 { return number }
        let name = text.uppercased().hasPrefix("SIG") ? String(text.uppercased().dropFirst(3)) : text.uppercased()
        guard let entry = signalTable.first(where: { $0.0 == name }) else {
            throw ValidationError("unknown signal \(text)")
        }
        return entry.1
    }

    static func signalName(_ number: Int32) -> String {
        signalTable.first { $0.1 == number }.map { "SIG\($0.0)" } ?? "\(number)"
    }
}
