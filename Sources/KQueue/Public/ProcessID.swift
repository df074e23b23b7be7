import Glibc

/// A process id: the ident of an EVFILT_PROC registration, and of a process to signal.
///
/// Prints its number.
@frozen
public struct ProcessID: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The `pid_t`.
    public var rawValue: Int32

    @inlinable
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// The calling process (`getpid()`).
    public static var current: ProcessID { ProcessID(rawValue: getpid()) }

    /// The calling process's parent (`getppid()`).
    public static var parent: ProcessID { ProcessID(rawValue: getppid()) }

    public var description: String { String(rawValue) }

    /// Sends `signal` to this process (`kill(2)`).
    public func send(_ signal: Signal) throws(Errno) {
        try Syscall.sendSignal(signal.rawValue, to: rawValue)
    }
}
