/// A change that a kqueue did not apply: the change as given (filter, ident, flags, ...),
/// its place in the changelist and the errno.
///
/// ``KernelQueue/apply(_:)`` throws it; ``KEventResult/failures`` lists one per failed change
/// of ``KernelQueue/kevent(_:eventCapacity:timeout:)``. Errors of the call itself (a signal
/// during the wait, a closed queue, a negative timeout) stay plain `Errno`s, thrown by the
/// `kevent` methods; `apply`, which has only changes to report, fails its first change with
/// `Errno.badFileDescriptor` on a closed queue.
///
/// Match its errno in a `catch` clause as you would an `Errno` (`catch Errno.badFileDescriptor`
/// works where the `do` block's only throwing calls are ``KernelQueue/apply(_:)``, whose
/// typed throw picks this type's `~=`); where errors of several types meet, write
/// `catch let error as KQueueChangeError where error.errno == .badFileDescriptor`.
///
/// ```swift
/// do {
///     try queue.apply([.read(descriptor)])
/// } catch {
///     print(error)  // change 0 (.read ident 9, flags [.add], fflags 0, data 0) failed: EBADF (Bad file descriptor)
/// }
/// ```
public struct KQueueChangeError: Error, Equatable, CustomStringConvertible {
    /// The change as it was given.
    public var change: KEvent
    /// Its index in the changelist.
    public var index: Int
    /// Why it failed.
    public var errno: Errno

    public init(change: KEvent, index: Int, errno: Errno) {
        self.change = change
        self.index = index
        self.errno = errno
    }

    /// The change by its fields, then the errno by C name and text:
    /// `change 1 (.user ident 99, flags [.enable], fflags NOTE_FFNOP, data 0) failed: ENOENT
    /// (No such file or directory)`.
    public var description: String {
        "change \(index) (\(change.filter) ident \(change.ident), flags \(change.flags), fflags "
            + "\(change.fflagsDescription), data \(change.data)) failed: \(errno.cName) (\(errno))"
    }

    /// `catch Errno.x` on ``KernelQueue/apply(_:)``: true when `error` failed with `errno`.
    public static func ~= (errno: Errno, error: KQueueChangeError) -> Bool {
        error.errno == errno
    }
}
