/// A change that a kqueue did not apply: the change as given (filter, ident, flags, ...),
/// its place in the changelist and the errno.
///
/// ``KernelQueue/apply(_:)`` throws it; ``KEventResult/failures`` lists one per failed change
/// of ``KernelQueue/kevent(_:eventCapacity:timeout:)``. Errors of the call itself (a signal
/// during the wait, a closed queue, a negative timeout) stay plain `Errno`s, thrown by the
/// `kevent` methods.
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
///     print(error)  // EBADF ... [.add] of .read ident 9 (change 1 of 1): Bad file descriptor
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

    /// `change [.add, .clear] of .user ident 1 (index 0) failed: No such file or directory
    /// (errno 2); KEvent(...)`.
    public var description: String {
        "change \(change.flags) of \(change.filter) ident \(change.ident) (index \(index)) failed: "
            + "\(errno) (errno \(errno.rawValue)); \(change)"
    }

    /// `catch Errno.x` on ``KernelQueue/apply(_:)``: true when `error` failed with `errno`.
    public static func ~= (errno: Errno, error: KQueueChangeError) -> Bool {
        error.errno == errno
    }
}
