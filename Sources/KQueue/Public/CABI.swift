import CKQueue
import CKQueueShim
import Glibc

/// The C entry points behind `libkqueue.so`'s `kqueue`, `kqueuex` and `kevent`: FreeBSD's
/// error behaviour, -1 with `errno` set. Not for Swift programs; use ``KernelQueue``.
@_spi(CABI)
public enum CABI {
    /// KQUEUE_CLOEXEC: every kqueue descriptor is close-on-exec here, so it changes nothing.
    static let knownFlags: UInt32 = 0x1

    public static func kqueue(flags: UInt32 = 0) -> Int32 {
        guard flags & ~knownFlags == 0 else {
            errno = EINVAL
            return -1
        }
        do throws(Errno) {
            return try KQueueRegistry.create().descriptor
        } catch {
            errno = error.rawValue
            return -1
        }
    }

    public static func kevent(
        _ kq: Int32, _ changes: UnsafePointer<CKQueue.kevent>?, _ changeCount: Int32,
        _ events: UnsafeMutablePointer<CKQueue.kevent>?, _ eventCapacity: Int32,
        _ timeout: UnsafePointer<timespec>?
    ) -> Int32 {
        guard let core = KQueueRegistry.lookup(kq) else {
            errno = EBADF
            return -1
        }
        switch core.kevent(
            changes: changes, changeCount: Int(changeCount), events: events, eventCapacity: Int(eventCapacity),
            timeout: timeout)
        {
        case .success(let count):
            return Int32(count)
        case .failure(let error):
            errno = error.rawValue
            return -1
        }
    }
}
