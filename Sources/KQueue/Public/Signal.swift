import Glibc

/// A signal, by name: the ident of an EVFILT_SIGNAL registration and the cause of a
/// ``ProcessExitStatus/signaled(signal:coreDumped:)`` exit.
///
/// Prints its C name (`SIGINT`). Linux's numbers; any other number (a real-time signal) is
/// made with ``init(rawValue:)``.
@frozen
public struct Signal: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The signal number.
    public var rawValue: Int32

    @inlinable
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// The controlling terminal hung up; daemons take it to mean "reload". `<signal.h>`: `SIGHUP`.
    public static let hangup = Signal(rawValue: SIGHUP)
    /// Interrupt from the keyboard (Ctrl-C). `<signal.h>`: `SIGINT`.
    public static let interrupt = Signal(rawValue: SIGINT)
    /// Quit from the keyboard (Ctrl-\\). `<signal.h>`: `SIGQUIT`.
    public static let quit = Signal(rawValue: SIGQUIT)
    /// Illegal instruction. `<signal.h>`: `SIGILL`.
    public static let illegalInstruction = Signal(rawValue: SIGILL)
    /// Trace or breakpoint trap. `<signal.h>`: `SIGTRAP`.
    public static let trap = Signal(rawValue: SIGTRAP)
    /// Abort, as from `abort(3)`. `<signal.h>`: `SIGABRT`.
    public static let abort = Signal(rawValue: SIGABRT)
    /// Bus error (bad memory access). `<signal.h>`: `SIGBUS`.
    public static let busError = Signal(rawValue: SIGBUS)
    /// Arithmetic exception. `<signal.h>`: `SIGFPE`.
    public static let floatingPointException = Signal(rawValue: SIGFPE)
    /// Kill: cannot be caught, blocked or ignored. `<signal.h>`: `SIGKILL`.
    public static let kill = Signal(rawValue: SIGKILL)
    /// User-defined signal 1. `<signal.h>`: `SIGUSR1`.
    public static let user1 = Signal(rawValue: SIGUSR1)
    /// Invalid memory reference. `<signal.h>`: `SIGSEGV`.
    public static let segmentationFault = Signal(rawValue: SIGSEGV)
    /// User-defined signal 2. `<signal.h>`: `SIGUSR2`.
    public static let user2 = Signal(rawValue: SIGUSR2)
    /// Write to a pipe or socket with no reader. `<signal.h>`: `SIGPIPE`.
    public static let brokenPipe = Signal(rawValue: SIGPIPE)
    /// Timer from `alarm(2)`. `<signal.h>`: `SIGALRM`.
    public static let alarm = Signal(rawValue: SIGALRM)
    /// Termination request (`kill`'s default). `<signal.h>`: `SIGTERM`.
    public static let terminate = Signal(rawValue: SIGTERM)
    /// A child process stopped or ended. `<signal.h>`: `SIGCHLD`.
    public static let child = Signal(rawValue: SIGCHLD)
    /// Continue if stopped. `<signal.h>`: `SIGCONT`.
    public static let `continue` = Signal(rawValue: SIGCONT)
    /// Stop: cannot be caught, blocked or ignored. `<signal.h>`: `SIGSTOP`.
    public static let stop = Signal(rawValue: SIGSTOP)
    /// Stop from the terminal (Ctrl-Z). `<signal.h>`: `SIGTSTP`.
    public static let terminalStop = Signal(rawValue: SIGTSTP)
    /// Terminal input for a background process. `<signal.h>`: `SIGTTIN`.
    public static let terminalInput = Signal(rawValue: SIGTTIN)
    /// Terminal output for a background process. `<signal.h>`: `SIGTTOU`.
    public static let terminalOutput = Signal(rawValue: SIGTTOU)
    /// Urgent data on a socket. `<signal.h>`: `SIGURG`.
    public static let urgent = Signal(rawValue: SIGURG)
    /// CPU time limit exceeded. `<signal.h>`: `SIGXCPU`.
    public static let cpuLimit = Signal(rawValue: SIGXCPU)
    /// File size limit exceeded. `<signal.h>`: `SIGXFSZ`.
    public static let fileSizeLimit = Signal(rawValue: SIGXFSZ)
    /// Virtual timer expired. `<signal.h>`: `SIGVTALRM`.
    public static let virtualAlarm = Signal(rawValue: SIGVTALRM)
    /// Profiling timer expired. `<signal.h>`: `SIGPROF`.
    public static let profilingAlarm = Signal(rawValue: SIGPROF)
    /// The terminal window changed size. `<signal.h>`: `SIGWINCH`.
    public static let windowChange = Signal(rawValue: SIGWINCH)
    /// I/O is possible on a descriptor. `<signal.h>`: `SIGIO`.
    public static let io = Signal(rawValue: SIGIO)
    /// Power failure. `<signal.h>`: `SIGPWR`.
    public static let power = Signal(rawValue: SIGPWR)
    /// Bad system call. `<signal.h>`: `SIGSYS`.
    public static let badSystemCall = Signal(rawValue: SIGSYS)

    /// The C name (`SIGINT`), `SIGRTMIN+n` for a real-time signal, else `Signal(n)`.
    public var description: String {
        if let name = Signal.names[rawValue] { return name }
        let realTime = Int32(__libc_current_sigrtmin())...Int32(__libc_current_sigrtmax())
        if realTime.contains(rawValue) { return "SIGRTMIN+\(rawValue - realTime.lowerBound)" }
        return "Signal(\(rawValue))"
    }

    /// The signal of a C name with or without its `SIG` prefix, in any case: `SIGHUP`, `HUP`,
    /// `hup`. Nil for a name Linux does not have.
    public init?(name: String) {
        let upper = name.uppercased()
        let full = upper.hasPrefix("SIG") ? upper : "SIG" + upper
        guard let number = Signal.names.first(where: { $0.value == full })?.key else { return nil }
        self.init(rawValue: number)
    }

    private static let names: [Int32: String] = [
        SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGILL: "SIGILL", SIGTRAP: "SIGTRAP",
        SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGFPE: "SIGFPE", SIGKILL: "SIGKILL", SIGUSR1: "SIGUSR1",
        SIGSEGV: "SIGSEGV", SIGUSR2: "SIGUSR2", SIGPIPE: "SIGPIPE", SIGALRM: "SIGALRM", SIGTERM: "SIGTERM",
        SIGSTKFLT: "SIGSTKFLT", SIGCHLD: "SIGCHLD", SIGCONT: "SIGCONT", SIGSTOP: "SIGSTOP", SIGTSTP: "SIGTSTP",
        SIGTTIN: "SIGTTIN", SIGTTOU: "SIGTTOU", SIGURG: "SIGURG", SIGXCPU: "SIGXCPU", SIGXFSZ: "SIGXFSZ",
        SIGVTALRM: "SIGVTALRM", SIGPROF: "SIGPROF", SIGWINCH: "SIGWINCH", SIGIO: "SIGIO", SIGPWR: "SIGPWR",
        SIGSYS: "SIGSYS",
    ]
}

extension Signal {
    /// Ignores this signal in the whole process (`signal(sig, SIG_IGN)`): the way a program
    /// that watches a signal with EVFILT_SIGNAL stops its default action (for
    /// ``interrupt``, ending the process). The kqueue still counts every delivery, as on
    /// FreeBSD.
    public func ignore() throws(Errno) {
        try Syscall.setDisposition(rawValue, ignore: true)
    }

    /// Gives this signal its default action again (`signal(sig, SIG_DFL)`).
    public func restoreDefaultAction() throws(Errno) {
        try Syscall.setDisposition(rawValue, ignore: false)
    }
}
