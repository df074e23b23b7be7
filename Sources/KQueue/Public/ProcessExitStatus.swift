/// How a process ended, decoded from an EVFILT_PROC ``ProcessNote/exit`` event (its `data`
/// is the wait status, as from `waitpid`).
public enum ProcessExitStatus: Hashable, Sendable, CustomStringConvertible {
    /// The process called `exit(code)` (or returned `code` from `main`).
    case exited(code: Int32)
    /// A signal ended it; `coreDumped` when it left a core dump.
    case signaled(signal: Int32, coreDumped: Bool)
    /// The kernel could not tell (``ProcessNote/exitStatusUnknown``): the process was reaped
    /// by someone else on a kernel before Linux 6.15.
    case unknown

    /// Decodes a wait status (`WIFEXITED`, `WEXITSTATUS`, `WTERMSIG`, `WCOREDUMP`).
    public init(waitStatus status: Int32) {
        let signal = status & 0x7F
        if signal == 0 {
            self = .exited(code: (status >> 8) & 0xFF)
        } else {
            self = .signaled(signal: signal, coreDumped: status & 0x80 != 0)
        }
    }

    /// The code of an ``exited(code:)`` status, else nil.
    public var exitCode: Int32? {
        if case .exited(let code) = self { return code }
        return nil
    }

    /// The signal of a ``signaled(signal:coreDumped:)`` status, by name, else nil.
    public var terminatingSignal: Signal? {
        if case .signaled(let signal, _) = self { return Signal(rawValue: signal) }
        return nil
    }

    /// `exited with code 3`, `killed by SIGKILL`, `killed by SIGSEGV (core dumped)`,
    /// `exit status unknown`.
    public var description: String {
        switch self {
        case .exited(let code): return "exited with code \(code)"
        case .signaled(let signal, let coreDumped):
            return "killed by \(Signal(rawValue: signal))" + (coreDumped ? " (core dumped)" : "")
        case .unknown: return "exit status unknown"
        }
    }
}

extension KEvent {
    /// For an EVFILT_PROC or EVFILT_PROCDESC event that reports ``ProcessNote/exit``: how the
    /// process ended; nil for any other event.
    public var processExitStatus: ProcessExitStatus? {
        guard filter == .process || filter == .processDescriptor, fflags & ProcessNote.exit.rawValue != 0 else {
            return nil
        }
        if fflags & ProcessNote.exitStatusUnknown.rawValue != 0 { return .unknown }
        return ProcessExitStatus(waitStatus: Int32(truncatingIfNeeded: data))
    }
}
