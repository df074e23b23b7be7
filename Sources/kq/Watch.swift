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
        for pid in pids { try Self.watchProcess(ProcessID(rawValue: pid), in: queue) }
        var watched = try signals.map { try Self.signal($0) }
        watched.append(.interrupt)
        var unblock = sigset_t()
        sigemptyset(&unblock)
        for signal in watched {
            // Ignored and watched (the FreeBSD idiom): observed without its default action.
            try signal.ignore()
            try queue.apply([.signal(signal)])
            sigaddset(&unblock, signal.rawValue)
        }
        // A signal blocked in every thread is counted only once delivered (docs/GUARANTEES.md),
        // and a parent may have started us with signals blocked.
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
        emit("watching \(paths.count) path(s), \(pids.count) process(es), signals \(watched)")
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
                if event.signal == .interrupt { return }
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
    private static func watchProcess(_ pid: ProcessID, in queue: KernelQueue) throws {
        do {
            try queue.apply([.process(pid, note: [.exit, .fork, .exec])])
        } catch {
            guard error.errno == .notSupported else { throw error }
            try queue.apply([.process(pid, note: .exit)])
        }
    }

    /// One line per event, through the typed accessors and the library's names.
    private func describe(_ event: KEvent, files: [UInt: (FileDescriptor, String)]) -> String {
        if let note = event.vnodeNote {
            let name = files[event.ident]?.1 ?? "descriptor \(event.ident)"
            return "vnode \(name): \(note)"
        }
        if let process = event.processID, let note = event.processNote {
            var text = "proc \(process): \(note)"
            if let status = event.processExitStatus { text += ", \(status)" }
            return text
        }
        if let signal = event.signal { return "signal \(signal): \(event.data)" }
        return "\(event)"
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

    /// A signal by name (HUP, SIGHUP) or number.
    static func signal(_ text: String) throws -> Signal {
        if let number = Int32(text), number > 0, number < 65 { return Signal(rawValue: number) }
        guard let signal = Signal(name: text) else { throw ValidationError("unknown signal \(text)") }
        return signal
    }
}
