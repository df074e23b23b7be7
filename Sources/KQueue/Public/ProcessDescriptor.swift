import CKQueue
import CKQueueShim
import Glibc
import SystemPackage

/// A process descriptor (FreeBSD's `pdfork(2)`): a descriptor that stands for a child process.
/// The child sends no SIGCHLD and `wait(WAIT_ANY)` does not see it; closing the last reference
/// to the descriptor kills a running child with SIGKILL unless ``Options/daemon`` was given, and
/// reaps an exited one. Watch it with ``KEvent/processDescriptor(_:flags:note:udata:)``.
///
/// On Linux the descriptor is a pidfd (`pidfd_send_signal`, `poll` and `/proc` work on it too).
public struct ProcessDescriptor: Hashable, Sendable {
    /// The descriptor itself (close it with ``close()``).
    public let descriptor: FileDescriptor

    /// Wraps an existing process descriptor (one from `pdfork`, or a pidfd).
    public init(_ descriptor: FileDescriptor) { self.descriptor = descriptor }

    /// `pdfork` flags.
    public struct Options: OptionSet, Hashable, Sendable {
        public var rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }

        /// The child lives on when the descriptor is closed. C: `PD_DAEMON`.
        public static let daemon = Options(rawValue: PD_DAEMON)
        /// The descriptor is closed by exec. C: `PD_CLOEXEC`.
        public static let closeOnExec = Options(rawValue: PD_CLOEXEC)
    }

    /// What ``fork(options:)`` returned on each side.
    public enum ForkResult: Sendable {
        /// In the parent: the child's descriptor and pid.
        case parent(ProcessDescriptor, pid: pid_t)
        /// In the child. As after `fork(2)` in a program with threads, the child should only
        /// make async-signal-safe calls before it execs or exits (`_exit`).
        case child
    }

    /// Creates a child process with a descriptor (`pdfork`). Errors: `EINVAL` for unknown
    /// options, and those of `fork(2)`.
    public static func fork(options: Options = []) throws(Errno) -> ForkResult {
        var descriptor: Int32 = -1
        let pid = pdfork(&descriptor, options.rawValue)
        if pid < 0 { throw Errno(rawValue: errno) }
        if pid == 0 { return .child }
        return .parent(ProcessDescriptor(FileDescriptor(rawValue: descriptor)), pid: pid)
    }

    /// The child's pid (`pdgetpid`), also after it exited. `EBADF` when the descriptor is not
    /// open or not a process descriptor.
    public func processID() throws(Errno) -> pid_t {
        var pid: pid_t = 0
        if pdgetpid(descriptor.rawValue, &pid) != 0 { throw Errno(rawValue: errno) }
        return pid
    }

    /// Sends `signal` to the process (`pdkill`): `EINVAL` for a bad signal, `EBADF` for a
    /// descriptor that is not a process descriptor, `ESRCH` once the process was reaped (an
    /// exited process that is not reaped yet accepts signals and ignores them, as on FreeBSD).
    public func kill(_ signal: Int32) throws(Errno) {
        if pdkill(descriptor.rawValue, signal) != 0 { throw Errno(rawValue: errno) }
    }

    /// Closes the descriptor: if it was the last reference, a running child is killed (unless
    /// it was created with ``Options/daemon``) and an exited one is reaped.
    public func close() throws(Errno) {
        if Glibc.close(descriptor.rawValue) != 0 { throw Errno(rawValue: errno) }
    }
}
