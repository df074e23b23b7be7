import CKQueueShim
import Glibc
import Synchronization

/// Raw system calls, wrapped once (swift-system style): each returns the C result and
/// leaves `errno` as the call set it. Callers turn failures into `Errno` values.
enum Syscall {
    @inline(__always)
    static var errno: Int32 { Glibc.errno }

    static func epollCreate() -> Int32 { epoll_create1(Int32(EPOLL_CLOEXEC)) }

    @inline(__always)
    static func epollCtl(_ epfd: Int32, _ op: Int32, _ fd: Int32, events: UInt32, data: UInt64) -> Int32 {
        var event = epoll_event()
        event.events = events
        event.data.u64 = data
        return epoll_ctl(epfd, op, fd, &event)
    }

    /// Waits on an epoll instance: `nil` waits forever, a zero timeout polls (both with plain
    /// `epoll_wait`), other timeouts use `epoll_pwait2` for nanoseconds. Where the kernel (before
    /// 5.11) or a tool such as valgrind does not know it, `epoll_wait` with the timeout rounded
    /// up to whole milliseconds: never early, at most 1 ms late.
    @inline(__always)
    static func epollWait(
        _ epfd: Int32, _ buffer: UnsafeMutablePointer<epoll_event>, _ count: Int32,
        _ timeout: UnsafePointer<timespec>?
    ) -> Int32 {
        // Polling and waiting forever need no nanoseconds: epoll_wait spares the kernel
        // copying and checking a timespec (measured ~25 ns per call here).
        guard let timeout else { return epoll_wait(epfd, buffer, count, -1) }
        if timeout.pointee.tv_sec == 0 && timeout.pointee.tv_nsec == 0 { return epoll_wait(epfd, buffer, count, 0) }
        if !lacksEpollPwait2.load(ordering: .relaxed) {
            let n = kq_shim_epoll_pwait2(epfd, buffer, count, timeout)
            if n >= 0 || errno != ENOSYS { return n }
            lacksEpollPwait2.store(true, ordering: .relaxed)
        }
        let total = timeout.pointee.tv_sec.multipliedReportingOverflow(by: 1000)
        let rounded = total.partialValue.addingReportingOverflow((timeout.pointee.tv_nsec + 999_999) / 1_000_000)
        let milliseconds =
            total.overflow || rounded.overflow || rounded.partialValue > Int(Int32.max)
            ? Int32.max : Int32(rounded.partialValue)
        return epoll_wait(epfd, buffer, count, milliseconds)
    }

    /// Adds a descriptor the kqueue created to its epoll instance. On failure the descriptor is
    /// closed and the errno returned.
    static func registerInternal(_ fd: Int32, in epollFD: Int32, events: UInt32, tag: UInt64) -> Int32? {
        guard epollCtl(epollFD, EPOLL_CTL_ADD, fd, events: events, data: tag) != 0 else { return nil }
        let error = errno
        closeInternal(fd)
        return error
    }

    /// Set once epoll_pwait2 answered ENOSYS.
    static let lacksEpollPwait2 = Atomic<Bool>(false)

    static func eventFD() -> Int32 { eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK)) }

    @inline(__always)
    static func eventFDSignal(_ fd: Int32) {
        var one: UInt64 = 1
        _ = write(fd, &one, 8)
    }

    @inline(__always)
    static func bytesReadable(_ fd: Int32) -> Int64? {
        var value: Int32 = 0
        return kq_shim_ioctl_int(fd, UInt(FIONREAD), &value) == 0 ? Int64(value) : nil
    }

    /// Bytes queued in a socket's send buffer (SIOCOUTQ, the same number as TIOCOUTQ).
    @inline(__always)
    static func bytesQueuedForSend(_ fd: Int32) -> Int64? {
        var value: Int32 = 0
        return kq_shim_ioctl_int(fd, UInt(TIOCOUTQ), &value) == 0 ? Int64(value) : nil
    }

    static func socketOption(_ fd: Int32, _ level: Int32, _ name: Int32) -> Int32? {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd, level, name, &value, &length) == 0 ? value : nil
    }

    static func fileStatus(_ fd: Int32) -> stat? {
        var status = stat()
        return fstat(fd, &status) == 0 ? status : nil
    }

    static func isOpen(_ fd: Int32) -> Bool { kq_shim_fcntl(fd, F_GETFD) != -1 }

    static func pipeCapacity(_ fd: Int32) -> Int64? {
        let size = kq_shim_fcntl(fd, 1032)  // F_GETPIPE_SZ
        return size >= 0 ? Int64(size) : nil
    }

    static func currentOffset(_ fd: Int32) -> Int64? {
        let offset = lseek(fd, 0, SEEK_CUR)
        return offset >= 0 ? Int64(offset) : nil
    }

    /// close(2) of one of the engine's own descriptors, bypassing the close() interposer.
    static func closeInternal(_ fd: Int32) {
        if fd >= 0 { _ = kq_shim_real_close(fd) }
    }

    static func monotonicNow() -> timespec {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return now
    }
}

extension timespec {
    static let nanosecondsPerSecond = 1_000_000_000

    /// True when this is a valid kevent() timeout (SPEC.md 2.1).
    var isValidTimeout: Bool { tv_sec >= 0 && tv_nsec >= 0 && tv_nsec < Self.nanosecondsPerSecond }

    @inline(__always)
    func adding(_ other: timespec) -> timespec {
        var sum = timespec(tv_sec: tv_sec &+ other.tv_sec, tv_nsec: tv_nsec + other.tv_nsec)
        if sum.tv_nsec >= Self.nanosecondsPerSecond {
            sum.tv_sec &+= 1
            sum.tv_nsec -= Self.nanosecondsPerSecond
        }
        if sum.tv_sec < tv_sec { sum = timespec(tv_sec: Int.max, tv_nsec: 0) }  // saturate
        return sum
    }

    /// `self - other`, or zero when `other` is later.
    @inline(__always)
    func remaining(after other: timespec) -> timespec {
        var sec = tv_sec - other.tv_sec
        var nsec = tv_nsec - other.tv_nsec
        if nsec < 0 {
            sec -= 1
            nsec += Self.nanosecondsPerSecond
        }
        return sec < 0 ? timespec(tv_sec: 0, tv_nsec: 0) : timespec(tv_sec: sec, tv_nsec: nsec)
    }

    var isZero: Bool { tv_sec == 0 && tv_nsec == 0 }
}
