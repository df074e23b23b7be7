import CKQueueLoopShim
import Glibc
import KQueue

/// Every system call of KQueueLoop, wrapped once (the KQueue library's `Syscalls.swift` style):
/// a wrapper makes one call, captures `errno` at the call and throws it as `Errno`. Each
/// wrapper states its EINTR rule.
enum LoopSyscall {
    /// The result of a C call that returns -1 and sets errno, as a value or the captured errno.
    @inline(__always)
    static func valueOrErrno<I: FixedWidthInteger>(_ call: () -> I) throws(Errno) -> I {
        let result = call()
        if result == -1 { throw Errno(rawValue: Glibc.errno) }
        return result
    }

    /// Like ``valueOrErrno(_:)``, repeating the call while it fails with EINTR (for calls that
    /// never block, where EINTR can only mean "try again").
    @inline(__always)
    static func retryingInterrupts<I: FixedWidthInteger>(_ call: () -> I) throws(Errno) -> I {
        while true {
            do throws(Errno) {
                return try valueOrErrno(call)
            } catch {
                guard error == .interrupted else { throw error }
            }
        }
    }

    // MARK: Threads

    /// The calling thread's identity, for "am I on the loop thread?".
    @inline(__always)
    static func currentThread() -> UInt { UInt(pthread_self()) }

    /// Starts a joinable thread running `body`.
    static func startThread(_ body: @escaping @Sendable () -> Void) throws(Errno) -> pthread_t {
        let context = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
        var thread = pthread_t()
        let status = pthread_create(
            &thread, nil,
            { context in
                // SAFETY: `context` is the retained ThreadBody passed below, released here once.
                let body = Unmanaged<ThreadBody>.fromOpaque(context!).takeRetainedValue()
                body.run()
                return nil
            }, context)
        guard status == 0 else {
            Unmanaged<ThreadBody>.fromOpaque(context).release()
            throw Errno(rawValue: status)
        }
        return thread
    }

    /// Waits for `thread` to end. EINTR: pthread_join never returns it.
    static func joinThread(_ thread: pthread_t) { _ = pthread_join(thread, nil) }

    /// Lets `thread` end without a join (a loop shut down from its own thread).
    static func detachThread(_ thread: pthread_t) { _ = pthread_detach(thread) }

    /// Names the calling thread (at most 15 bytes are kept), for `top -H` and debuggers.
    static func nameCurrentThread(_ name: String) {
        kq_loop_name_thread(String(decoding: name.utf8.prefix(15), as: UTF8.self))
    }

    // MARK: Sockets

    /// A non-blocking, close-on-exec socket. EINTR: cannot happen.
    static func socket(family: Int32, type: Int32) throws(Errno) -> Int32 {
        try valueOrErrno {
            Glibc.socket(family, type | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
    }

    /// EINTR: cannot happen.
    static func setOption(_ fd: Int32, level: Int32, name: Int32, value: Int32) throws(Errno) {
        var value = value
        _ = try valueOrErrno { setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size)) }
    }

    /// EINTR: cannot happen.
    static func option(_ fd: Int32, level: Int32, name: Int32) throws(Errno) -> Int32 {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        _ = try valueOrErrno { getsockopt(fd, level, name, &value, &length) }
        return value
    }

    /// EINTR: cannot happen.
    static func bind(_ fd: Int32, _ address: SocketAddress) throws(Errno) {
        _ = try address.withSockaddr { pointer, length throws(Errno) in
            try valueOrErrno { Glibc.bind(fd, pointer, length) }
        }
    }

    /// EINTR: cannot happen.
    static func listen(_ fd: Int32, backlog: Int32) throws(Errno) {
        _ = try valueOrErrno { Glibc.listen(fd, backlog) }
    }

    /// Accepts one connection as a non-blocking, close-on-exec socket; nil when none is
    /// waiting (EAGAIN). EINTR: retried (a non-blocking accept returns at once).
    static func accept(_ fd: Int32) throws(Errno) -> Int32? {
        do throws(Errno) {
            return try retryingInterrupts { kq_loop_accept(fd) }
        } catch {
            // ECONNABORTED: the peer gave up before we accepted; like "none waiting".
            if error == .wouldBlock || error == .connectionAbort { return nil }
            throw error
        }
    }

    /// Starts a non-blocking connect: true when it completed at once, false while in progress
    /// (EINPROGRESS). EINTR: the connect goes on in the background, as EINPROGRESS.
    static func connect(_ fd: Int32, _ address: SocketAddress) throws(Errno) -> Bool {
        do throws(Errno) {
            _ = try address.withSockaddr { pointer, length throws(Errno) in
                try valueOrErrno { Glibc.connect(fd, pointer, length) }
            }
            return true
        } catch {
            if error == .nowInProgress || error == .interrupted { return false }
            throw error
        }
    }

    /// TCP keepalive: after `idle` seconds without traffic the kernel probes the peer every
    /// `interval` seconds and, after `count` unanswered probes, fails the connection with
    /// ETIMEDOUT (a half-open connection: the peer vanished without a FIN or RST).
    static func setKeepAlive(_ fd: Int32, idle: Int32, interval: Int32, count: Int32) throws(Errno) {
        try setOption(fd, level: SOL_SOCKET, name: SO_KEEPALIVE, value: 1)
        try setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_KEEPIDLE, value: idle)
        try setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_KEEPINTVL, value: interval)
        try setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_KEEPCNT, value: count)
    }

    /// The socket's pending error (SO_ERROR), nil when there is none.
    static func pendingError(_ fd: Int32) -> Errno? {
        guard let value = try? option(fd, level: SOL_SOCKET, name: SO_ERROR), value != 0 else { return nil }
        return Errno(rawValue: value)
    }

    /// The address a socket is bound to. EINTR: cannot happen.
    static func localAddress(_ fd: Int32) throws(Errno) -> SocketAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = try withUnsafeMutablePointer(to: &storage) { pointer throws(Errno) in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address throws(Errno) in
                try valueOrErrno { getsockname(fd, address, &length) }
            }
        }
        return SocketAddress(storage)
    }

    /// Reads up to `count` bytes: the count (0 at end of stream), or nil when nothing is
    /// there (EAGAIN). EINTR: retried (a non-blocking read returns at once).
    @inline(__always)
    static func receive(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) throws(Errno) -> Int? {
        let result = Glibc.recv(fd, buffer, count, 0)
        if result >= 0 { return result }
        let error = Errno(rawValue: Glibc.errno)
        if error == .wouldBlock { return nil }
        if error == .interrupted { return try receive(fd, buffer, count) }
        throw error
    }

    /// Writes up to `count` bytes without raising SIGPIPE: the count written, or nil when
    /// there is no room (EAGAIN). EINTR: retried.
    @inline(__always)
    static func send(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) throws(Errno) -> Int? {
        let result = Glibc.send(fd, buffer, count, Int32(MSG_NOSIGNAL))
        if result >= 0 { return result }
        let error = Errno(rawValue: Glibc.errno)
        if error == .wouldBlock { return nil }
        if error == .interrupted { return try send(fd, buffer, count) }
        throw error
    }

    /// Half-closes a socket: SHUT_WR ends the stream we send. EINTR: cannot happen.
    static func shutdown(_ fd: Int32, how: Int32) throws(Errno) {
        _ = try valueOrErrno { Glibc.shutdown(fd, how) }
    }

    /// CLOCK_MONOTONIC in nanoseconds (vDSO: no system call).
    @inline(__always)
    static func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
    }

    /// Gives the CPU to another runnable thread, if there is one.
    static func yieldProcessor() { _ = sched_yield() }

    /// Closes a descriptor the loop owns. EINTR: not retried (Linux has released the
    /// descriptor even then); other errors cannot concern an open descriptor we own.
    static func close(_ fd: Int32) { _ = Glibc.close(fd) }
}

/// The closure a new thread runs, kept alive across pthread_create.
private final class ThreadBody {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}

extension LoopSyscall {
    /// A POSIX semaphore, for a thread that waits until the loop ran a job for it.
    ///
    /// `@unchecked Sendable`: `sem_t` is made to be shared between threads (POSIX: sem_post and
    /// sem_wait are thread-safe); it lives at a fixed address allocated here.
    final class Semaphore: @unchecked Sendable {
        private let semaphore = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)

        init() { sem_init(semaphore, 0, 0) }

        deinit {
            sem_destroy(semaphore)
            semaphore.deallocate()
        }

        func signal() { sem_post(semaphore) }

        /// EINTR: retried (a signal handler ran; the wait goes on).
        func wait() {
            while sem_wait(semaphore) != 0 && Glibc.errno == EINTR {}
        }
    }
}
