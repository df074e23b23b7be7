import CKQueueShim
import Glibc
import Synchronization
import SystemPackage

/// Every system call of the library, wrapped once (swift-system's `Syscalls.swift`, SwiftNIO's
/// `System.swift`): a wrapper makes one call, captures `errno` at the call and throws it as
/// `Errno`, so no caller reads a global `errno` later. Each wrapper states its EINTR rule.
/// Calls a test can make fail through ``FaultInjector`` name their ``SyscallName``.
enum Syscall {
    /// The result of a C call that returns -1 and sets errno, as a value or the captured errno.
    @inline(__always)
    static func valueOrErrno<I: FixedWidthInteger>(_ name: SyscallName?, _ call: () -> I) throws(Errno) -> I {
        #if DEBUG
            if let name, let injected = FaultInjector.failure(for: name) { throw injected }
        #endif
        let result = call()
        if result == -1 { throw Errno(rawValue: Glibc.errno) }
        return result
    }

    /// Like ``valueOrErrno(_:_:)``, repeating the call while it fails with EINTR (for calls
    /// that never block, where EINTR can only mean "try again").
    @inline(__always)
    static func retryingInterrupts<I: FixedWidthInteger>(_ name: SyscallName?, _ call: () -> I) throws(Errno) -> I {
        while true {
            do throws(Errno) {
                return try valueOrErrno(name, call)
            } catch {
                guard error == .interrupted else { throw error }
            }
        }
    }

    // MARK: epoll

    /// EINTR: cannot happen (does not block).
    static func epollCreate() throws(Errno) -> Int32 {
        try valueOrErrno(.epollCreate) { epoll_create1(Int32(EPOLL_CLOEXEC)) }
    }

    /// EINTR: cannot happen (does not block).
    @inline(__always)
    static func epollCtl(_ epfd: Int32, _ op: Int32, _ fd: Int32, events: UInt32, data: UInt64) throws(Errno) {
        var event = epoll_event()
        event.events = events
        event.data.u64 = data
        _ = try valueOrErrno(.epollCtl) { epoll_ctl(epfd, op, fd, &event) }
    }

    /// Removes `fd` from an epoll instance, for a registration that is going away. Its failure
    /// changes nothing: ENOENT or EBADF mean the registration already went with its file (a
    /// descriptor closed behind our back), and nothing else can fail for a valid `epfd`.
    static func epollRemove(_ epfd: Int32, _ fd: Int32) {
        var unused = epoll_event()
        if epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &unused) != 0 { return }
    }

    /// Waits on an epoll instance: `nil` waits forever, a zero timeout polls (both with plain
    /// `epoll_wait`), other timeouts use `epoll_pwait2` for nanoseconds. Where the kernel (before
    /// 5.11) or a tool such as valgrind does not know it, `epoll_wait` with the timeout rounded
    /// up to whole milliseconds: never early, at most 1 ms late.
    ///
    /// EINTR: returned to the caller; kevent() fails with it (SPEC.md 2.8).
    @inline(__always)
    static func epollWait(
        _ epfd: Int32, _ buffer: UnsafeMutablePointer<epoll_event>, _ count: Int32,
        _ timeout: UnsafePointer<timespec>?
    ) throws(Errno) -> Int32 {
        // Polling and waiting forever need no nanoseconds: epoll_wait spares the kernel
        // copying and checking a timespec (measured ~25 ns per call here).
        guard let timeout else { return try valueOrErrno(.epollWait) { epoll_wait(epfd, buffer, count, -1) } }
        if timeout.pointee.tv_sec == 0 && timeout.pointee.tv_nsec == 0 {
            return try valueOrErrno(.epollWait) { epoll_wait(epfd, buffer, count, 0) }
        }
        if !lacksEpollPwait2.load(ordering: .relaxed) {
            do throws(Errno) {
                return try valueOrErrno(.epollWait) { kq_shim_epoll_pwait2(epfd, buffer, count, timeout) }
            } catch {
                guard error == .noFunction else { throw error }
                lacksEpollPwait2.store(true, ordering: .relaxed)
            }
        }
        let milliseconds = roundedUpMilliseconds(timeout.pointee)
        return try valueOrErrno(.epollWait) { epoll_wait(epfd, buffer, count, milliseconds) }
    }

    /// Set once epoll_pwait2 answered ENOSYS.
    static let lacksEpollPwait2 = Atomic<Bool>(false)

    private static func roundedUpMilliseconds(_ timeout: timespec) -> Int32 {
        let total = timeout.tv_sec.multipliedReportingOverflow(by: 1000)
        let rounded = total.partialValue.addingReportingOverflow((timeout.tv_nsec + 999_999) / 1_000_000)
        let fits = !total.overflow && !rounded.overflow && rounded.partialValue <= Int(Int32.max)
        return fits ? Int32(rounded.partialValue) : Int32.max
    }

    // MARK: io_uring (the readiness ring, CKQueueShim/ring_readiness.c: raw system calls,
    // which Swift cannot make: io_uring_setup/enter/register have no libc wrapper)

    /// Creates a readiness ring. EINTR: cannot happen. ENOSYS also when the kernel lacks a
    /// feature or opcode the backend needs; EPERM when `kernel.io_uring_disabled` or a
    /// seccomp filter refuses it.
    static func ringOpen(entries: UInt32) throws(Errno) -> OpaquePointer {
        #if DEBUG
            if let injected = FaultInjector.failure(for: .ringSetup) { throw injected }
        #endif
        var ring: OpaquePointer? = nil
        let result = kq_shim_ring_open(entries, &ring)
        guard result == 0, let ring else { throw Errno(rawValue: -result) }
        return ring
    }

    /// Unmaps and closes a ring (the kernel cancels its pending polls).
    static func ringClose(_ ring: OpaquePointer) { kq_shim_ring_close(ring) }

    static func ringDescriptor(_ ring: OpaquePointer) -> Int32 { kq_shim_ring_fd(ring) }

    /// epoll_ctl's operations on the ring's poll requests. Errors as epoll_ctl's (ENOENT,
    /// EEXIST), ENOMEM for the table; a bad descriptor is reported by its poll, and dropped.
    @inline(__always)
    static func ringCtl(_ ring: OpaquePointer, _ op: Int32, _ fd: Int32, events: UInt32, data: UInt64) throws(Errno) {
        #if DEBUG
            // The registration call of either backend: tests inject "epoll_ctl" for both.
            if op != EPOLL_CTL_DEL, let injected = FaultInjector.failure(for: .epollCtl) { throw injected }
        #endif
        let result = kq_shim_ring_ctl(ring, op, fd, events, data)
        if result != 0 { throw Errno(rawValue: -result) }
    }

    /// Writes the queued arms to the submission queue. EBUSY (queue full even after a
    /// submission) keeps the rest for the next call: ignored.
    @inline(__always)
    static func ringPrepare(_ ring: OpaquePointer) { _ = kq_shim_ring_prepare(ring) }

    @inline(__always)
    static func ringHasPending(_ ring: OpaquePointer) -> Bool { kq_shim_ring_pending(ring) != 0 }

    /// Submits without waiting. EINTR: retried inside. Other errors leave the requests in the
    /// queue for the next wait, which reports them: ignored here.
    static func ringSubmit(_ ring: OpaquePointer) { _ = kq_shim_ring_submit(ring) }

    /// Makes every wait on the ring return (the kqueue is closing).
    static func ringWakeAll(_ ring: OpaquePointer) { _ = kq_shim_ring_wake_all(ring) }

    /// Submits and waits for a completion (`nil`: forever; zero: submit only). EINTR: returned
    /// to the caller (SPEC.md 2.8). ETIME: the timeout passed, or (when the call submitted
    /// requests, and the kernel then hides the wait's error) a signal ended it: the caller
    /// tells them apart by its clock.
    @inline(__always)
    static func ringEnter(_ ring: OpaquePointer, _ timeout: UnsafePointer<timespec>?) throws(Errno) {
        #if DEBUG
            if let injected = FaultInjector.failure(for: .epollWait) { throw injected }  // the wait of either backend
        #endif
        let result = kq_shim_ring_enter(ring, timeout)
        if result != 0 { throw Errno(rawValue: -result) }
    }

    /// Moves up to `capacity` completions into `buffer` as epoll reports.
    @inline(__always)
    static func ringTake(_ ring: OpaquePointer, _ buffer: UnsafeMutablePointer<epoll_event>, _ capacity: Int32) -> Int32
    {
        kq_shim_ring_take(ring, buffer, capacity)
    }

    /// Marks `fd` a TCP socket: READ's byte count comes through the ring (SIOCINQ linked
    /// after its one-shot read poll, in the same submission).
    static func ringCountBytes(_ ring: OpaquePointer, _ fd: Int32) { kq_shim_ring_count_bytes(ring, fd) }

    /// The byte count the last take brought for `fd`, if it brought one.
    @inline(__always)
    static func ringBytes(_ ring: OpaquePointer, _ fd: Int32) -> Int64? {
        var bytes: Int64 = 0
        return kq_shim_ring_bytes(ring, fd, &bytes) == 1 ? bytes : nil
    }

    /// True for a TCP socket (SO_PROTOCOL). EINTR: cannot happen.
    static func isTCP(_ fd: Int32) -> Bool {
        (try? socketOption(fd, SOL_SOCKET, SO_PROTOCOL)) == Int32(IPPROTO_TCP)
    }

    /// Whether a ring can be created here: nil, or the errno that refused it.
    static func ringProbe() -> Errno? {
        #if DEBUG
            if let injected = FaultInjector.failure(for: .ringSetup) { return injected }
        #endif
        let result = kq_shim_ring_probe()
        return result == 0 ? nil : Errno(rawValue: result)
    }

    // MARK: eventfd, timerfd, inotify

    /// EINTR: cannot happen (does not block).
    static func eventFD() throws(Errno) -> Int32 {
        try valueOrErrno(.eventFD) { eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK)) }
    }

    /// Adds 1 to an eventfd (its edge wakes a waiter). EINTR: retried. EAGAIN (the counter is
    /// full) leaves the eventfd readable, which is all a signal needs; EBADF and EINVAL cannot
    /// happen for the engine's own eventfd and an 8-byte write.
    @inline(__always)
    static func eventFDSignal(_ fd: Int32) {
        var one: UInt64 = 1
        _ = try? retryingInterrupts(.write) { write(fd, &one, 8) }
    }

    /// EINTR: cannot happen (does not block).
    static func timerFDCreate(_ clock: clockid_t) throws(Errno) -> Int32 {
        try valueOrErrno(.timerFDCreate) { timerfd_create(clock, Int32(TFD_CLOEXEC | TFD_NONBLOCK)) }
    }

    /// EINTR: cannot happen. Fails only with EINVAL for a value the engine computed wrongly, or
    /// EBADF once the application closed the engine's descriptor behind its back.
    static func timerFDSetTime(_ fd: Int32, flags: Int32, _ spec: itimerspec) throws(Errno) {
        var spec = spec
        _ = try valueOrErrno(.timerFDSetTime) { timerfd_settime(fd, flags, &spec, nil) }
    }

    /// Reads a timerfd's expiration count. EINTR: retried. EAGAIN (nothing expired: a spurious
    /// report) and ECANCELED (the realtime clock was set) are both returned as errors.
    static func timerFDRead(_ fd: Int32) throws(Errno) -> UInt64 {
        var count: UInt64 = 0
        _ = try retryingInterrupts(.read) { read(fd, &count, 8) }
        return count
    }

    /// EINTR: cannot happen (does not block).
    static func inotifyInit() throws(Errno) -> Int32 {
        try valueOrErrno(.inotifyInit) { inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK)) }
    }

    /// Watches the inode behind descriptor `fd` (through `/proc/self/fd/N`, so the watch
    /// follows the file across renames). EINTR: cannot happen.
    static func inotifyAddWatch(_ inotify: Int32, descriptor fd: Int32, mask: UInt32) throws(Errno) -> Int32 {
        try valueOrErrno(.inotifyAddWatch) { inotify_add_watch(inotify, "/proc/self/fd/\(fd)", mask) }
    }

    /// Ends a watch. EINVAL means the kernel already ended it (the inode went away and
    /// IN_IGNORED is queued): nothing left to do either way.
    static func inotifyRemoveWatch(_ inotify: Int32, _ watch: Int32) {
        if inotify_rm_watch(inotify, watch) != 0 { return }
    }

    /// Reads from one of the engine's nonblocking descriptors. EINTR: retried. EAGAIN: thrown
    /// (drained).
    static func readInternal(_ fd: Int32, into buffer: UnsafeMutableRawPointer, count: Int) throws(Errno) -> Int {
        try retryingInterrupts(.read) { read(fd, buffer, count) }
    }

    // MARK: Descriptors and files

    /// close(2) of one of the engine's own descriptors, bypassing the close() interposer.
    /// EINTR: never retried (Linux has released the number even then); a failure leaves
    /// nothing to undo.
    static func closeInternal(_ fd: Int32) {
        guard fd >= 0 else { return }
        if kq_shim_real_close(fd) != 0 { return }
    }

    /// EINTR: cannot happen.
    static func isOpen(_ fd: Int32) -> Bool { kq_shim_fcntl(fd, F_GETFD) != -1 }

    /// EINTR: cannot happen.
    static func fileStatus(_ fd: Int32) throws(Errno) -> stat {
        var status = stat()
        _ = try valueOrErrno(.fstat) { fstat(fd, &status) }
        return status
    }

    /// The file offset (for READ on a regular file). EINTR: cannot happen.
    static func currentOffset(_ fd: Int32) throws(Errno) -> Int64 {
        Int64(try valueOrErrno(nil) { lseek(fd, 0, SEEK_CUR) })
    }

    /// F_GETPIPE_SZ. EINTR: cannot happen.
    static func pipeCapacity(_ fd: Int32) throws(Errno) -> Int64 {
        Int64(try valueOrErrno(nil) { kq_shim_fcntl(fd, 1032) })
    }

    /// Bytes that can be read now (FIONREAD). EINTR: cannot happen.
    @inline(__always)
    static func bytesReadable(_ fd: Int32) throws(Errno) -> Int64 {
        var value: Int32 = 0
        _ = try valueOrErrno(nil) { kq_shim_ioctl_int(fd, UInt(FIONREAD), &value) }
        return Int64(value)
    }

    /// Bytes queued in a socket's send buffer (SIOCOUTQ, the same number as TIOCOUTQ).
    @inline(__always)
    static func bytesQueuedForSend(_ fd: Int32) throws(Errno) -> Int64 {
        var value: Int32 = 0
        _ = try valueOrErrno(nil) { kq_shim_ioctl_int(fd, UInt(TIOCOUTQ), &value) }
        return Int64(value)
    }

    /// An integer socket option. EINTR: cannot happen.
    static func socketOption(_ fd: Int32, _ level: Int32, _ name: Int32) throws(Errno) -> Int32 {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        _ = try valueOrErrno(nil) { getsockopt(fd, level, name, &value, &length) }
        return value
    }

    /// True when the socket has a peer (getpeername succeeds). EINTR: cannot happen.
    static func hasPeer(_ fd: Int32) -> Bool {
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        return withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) == 0 }
        }
    }

    /// True for a terminal. EINTR: cannot happen.
    static func isTerminal(_ fd: Int32) -> Bool { isatty(fd) == 1 }

    /// The current readiness of one descriptor (poll(2) without waiting): its `revents` in
    /// epoll's bit values (POLL* and EPOLL* are equal on Linux), 0 when not ready. EINTR: retried.
    static func currentReadiness(_ fd: Int32, events: Int16) -> UInt32 {
        var poller = pollfd(fd: fd, events: events, revents: 0)
        guard (try? retryingInterrupts(nil, { poll(&poller, 1, 0) })) == 1 else { return 0 }
        return UInt32(UInt16(bitPattern: poller.revents))
    }

    /// The target of `/proc/self/fd/N` (e.g. `pipe:[123]`), or nil. EINTR: cannot happen.
    static func descriptorTarget(_ fd: Int32) -> String? {
        var target = [CChar](repeating: 0, count: 64)
        let n = readlink("/proc/self/fd/\(fd)", &target, target.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: target[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A clock's time in nanoseconds. Cannot fail for the clocks the engine uses.
    static func now(_ clock: clockid_t) -> Int64 {
        var time = timespec()
        clock_gettime(clock, &time)
        return Int64(time.tv_sec) &* 1_000_000_000 &+ Int64(time.tv_nsec)
    }

    static func monotonicNow() -> timespec {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return now
    }

    /// malloc_trim(3): gives freed heap memory back to the system, after a large table was
    /// released (rare: its cost does not matter).
    static func returnFreeMemory() { kq_shim_return_free_memory() }

    // MARK: Sockets (C shim)

    /// A socket's pending error, read without consuming it for the application
    /// (`CKQueueShim/shim.c`). 0 when none.
    static func socketError(_ fd: Int32) -> UInt32 { UInt32(bitPattern: kq_shim_take_socket_error(fd)) }

    /// True once the application shut down the socket's sending side (the shutdown(2)
    /// interposer records it; Linux's poll does not tell). One atomic load.
    @inline(__always)
    static func sendIsShutDown(_ fd: Int32) -> Bool { kq_shim_send_is_shut_down(fd) != 0 }

    /// Connections waiting on a listening socket (TCP_INFO, else UNIX sock_diag), or nil.
    static func acceptQueueLength(_ fd: Int32) -> Int64? {
        var queued = kq_shim_tcp_accept_queue_length(fd)
        if queued < 0 { queued = kq_shim_unix_accept_queue_length(fd) }
        return queued >= 0 ? Int64(queued) : nil
    }

    /// TCP_INFO's state, smoothed RTT and acknowledged bytes (EVFILT_EMPTY); nil for a socket
    /// that is not TCP. EINTR: cannot happen.
    static func tcpSendInfo(_ fd: Int32) -> kq_tcp_send_info? {
        var info = kq_tcp_send_info()
        return kq_shim_tcp_send_info(fd, &info) == 0 ? info : nil
    }

    /// EVFILT_EMPTY: marks `fd` so that the application's next send on it writes
    /// ``emptySendWakeDescriptor()``; returns the socket's send count (nil: no slot).
    static func armEmptySend(_ fd: Int32) -> Int64? {
        let count = kq_shim_empty_arm(fd)
        return count >= 0 ? count : nil
    }

    /// The send count of `fd` (it moved since ``armEmptySend(_:)``: the application sent).
    static func emptySends(_ fd: Int32) -> Int64? {
        let count = kq_shim_empty_sends(fd)
        return count >= 0 ? count : nil
    }

    /// The process-wide eventfd the send interposers write for armed sockets (-1: none could
    /// be made).
    static func emptySendWakeDescriptor() -> Int32 { kq_shim_empty_wake_fd() }

    // MARK: Mounts (EVFILT_FS)

    /// Opens `/proc/self/mountinfo`, which raises EPOLLPRI when the mount table of the
    /// caller's namespace changes. EINTR: cannot happen for a proc file.
    static func openMountTable() throws(Errno) -> Int32 {
        try valueOrErrno(nil) { open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC) }
    }

    /// A fanotify group told of every mount attached to or detached from the caller's mount
    /// namespace (Linux 6.15+, CAP_SYS_ADMIN over it). EINTR: cannot happen.
    static func openMountEvents() throws(Errno) -> Int32 {
        #if DEBUG
            if let injected = FaultInjector.failure(for: .fanotifyInit) { throw injected }
            // A kernel without listmount (before 6.8) has no mount events either (6.15).
            if FaultInjector.failure(for: .listmount) != nil { throw .invalidArgument }
        #endif
        let fd = kq_shim_mount_events_open()
        guard fd >= 0 else { throw Errno(rawValue: -fd) }
        return fd
    }

    /// Reads every queued mount event: KQ_MOUNT_* bits. EINTR: retried in C.
    static func readMountEvents(_ fd: Int32) -> Int32 { kq_shim_mount_events_read(fd) }

    /// The mount IDs of the caller's namespace, into `ids` (grown as needed): listmount(2)'s
    /// unique IDs with `unique` (ENOSYS before Linux 6.8), else the first field of each line
    /// of `mountinfo`.
    static func mountIDs(_ mountinfo: Int32, unique: Bool, into ids: inout [UInt64]) throws(Errno) {
        #if DEBUG
            if unique, let injected = FaultInjector.failure(for: .listmount) { throw injected }
        #endif
        var capacity = max(ids.capacity, 64)
        while true {
            ids.removeAll(keepingCapacity: true)
            let n = withUnsafeTemporaryAllocation(of: UInt64.self, capacity: capacity) { buffer in
                let n = kq_shim_mount_ids(mountinfo, unique ? 1 : 0, buffer.baseAddress, capacity)
                if n > 0 && n <= capacity { ids.append(contentsOf: buffer[0..<n]) }
                return n
            }
            if n < 0 { throw Errno(rawValue: Int32(-n)) }
            if n <= capacity { return }
            capacity = n + n / 4
        }
    }

    // MARK: Processes (C shim)

    /// pidfd_open(2). EINTR: cannot happen.
    static func pidfdOpen(_ pid: pid_t) throws(Errno) -> Int32 {
        try valueOrErrno(.pidfdOpen) { kq_shim_pidfd_open(pid, 0) }
    }

    /// True once the process behind `pidfd` has exited.
    static func pidfdHasExited(_ pidfd: Int32) -> Bool { kq_shim_pidfd_has_exited(pidfd) == 1 }

    /// The wait status of an exited process, without reaping it; nil when it cannot be known.
    static func pidfdExitStatus(_ pidfd: Int32, pid: pid_t) -> Int32? {
        var status: Int32 = 0
        return kq_shim_pidfd_exit_status(pidfd, pid, &status) == 0 ? status : nil
    }

    /// A socket on the kernel's process connector. EINTR: cannot happen.
    static func processConnectorOpen() throws(Errno) -> Int32 {
        #if DEBUG
            if let injected = FaultInjector.failure(for: .processConnectorOpen) { throw injected }
        #endif
        let fd = kq_shim_proc_connector_open()
        guard fd >= 0 else { throw Errno(rawValue: -fd) }
        return fd
    }

    /// Reads the connector's pending events (EINTR retried, EAGAIN ends the read in C).
    static func processConnectorRead(
        _ fd: Int32, into buffer: UnsafeMutableBufferPointer<kq_proc_event>
    ) -> ProcessEventBatch {
        var overflowed: Int32 = 0
        let n = kq_shim_proc_connector_read(fd, buffer.baseAddress, Int32(buffer.count), &overflowed)
        return ProcessEventBatch(count: Int(max(0, n)), overflowed: overflowed != 0)
    }

    // MARK: Signals (C shim, signals.c)

    /// Starts observing `signal` for one knote (reference counted): 0 or an errno.
    static func signalWatch(_ signal: Int32) throws(Errno) {
        let error = kq_shim_signal_watch(signal)
        if error != 0 { throw Errno(rawValue: error) }
    }

    static func signalUnwatch(_ signal: Int32) { kq_shim_signal_unwatch(signal) }

    /// `signal(sig, SIG_IGN or SIG_DFL)`, for ``Signal/ignore()`` (through the interposed
    /// `signal`, so the kqueue's counting handler stays installed). EINTR: cannot happen.
    static func setDisposition(_ signal: Int32, ignore: Bool) throws(Errno) {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = ignore ? SIG_IGN : SIG_DFL
        _ = try valueOrErrno(nil) { sigaction(signal, &action, nil) }
    }

    /// `kill(pid, sig)`. EINTR: cannot happen.
    static func sendSignal(_ signal: Int32, to pid: pid_t) throws(Errno) {
        _ = try valueOrErrno(nil) { kill(pid, signal) }
    }

    /// Deliveries of `signal` observed so far in the process.
    static func signalCount(_ signal: Int32) -> UInt64 { kq_shim_signal_count(signal) }

    /// The process-wide eventfd the signal handler writes.
    static func signalWakeDescriptor() -> Int32 { kq_shim_signal_wake_fd() }

    /// The process-wide signalfd (never read) that is readable while a watched signal is pending.
    static func signalPendingDescriptor() -> Int32 { kq_shim_signal_pending_fd() }

    /// Counts each watched signal that is pending and not counted yet (blocked in every thread).
    static func observePendingSignals() { _ = kq_shim_signal_observe_pending() }

    /// Resets, before a wait, the flag that tells whether an EINTR was only EVFILT_SIGNAL's own.
    static func resetSignalInterruptions() { kq_shim_signal_interruptions_reset() }

    /// Since the reset: the application's own handler ran (or a default action) in this thread.
    static func applicationHandlerRan() -> Bool { kq_shim_signal_application_handler_ran() != 0 }

    /// After an EINTR: true when only EVFILT_SIGNAL's handler ran, for an ignored signal.
    static func interruptionWasTransparent() -> Bool { kq_shim_signal_interruption_was_transparent() != 0 }

    // MARK: close(2) interposition and fork(2) handlers (C shim)

    /// The function the close()/dup2()/dup3()/close_range() interposers call for a watched
    /// number, before it is closed.
    static func setCloseHook(_ hook: kq_shim_close_hook) { kq_shim_set_close_hook(hook) }

    /// pthread_atfork(3): 0, or its error number (ENOMEM).
    static func installForkHooks(
        prepare: kq_shim_fork_hook, parent: kq_shim_fork_hook, child: kq_shim_fork_hook
    ) -> Int32 {
        kq_shim_install_fork_hooks(prepare, parent, child)
    }

    /// EVFILT_SIGNAL's fork handlers: its lock is held across fork; the child gets the
    /// application's dispositions back (no kqueue survives fork).
    static func signalForkPrepare() { kq_shim_signal_fork_prepare() }
    static func signalForkParent() { kq_shim_signal_fork_parent() }
    static func signalForkChild() { kq_shim_signal_fork_child() }

    /// A later close() of `fd` tells the engine first.
    static func markWatched(_ fd: Int32) { kq_shim_mark_watched(fd) }

    static func clearWatched(_ fd: Int32) { kq_shim_clear_watched(fd) }
}

/// What one read of the process connector returned.
struct ProcessEventBatch {
    var count: Int
    /// The socket lost events since the last read.
    var overflowed: Bool
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

// MARK: EVFILT_AIO's backends (CKQueueShim/aio_backend.c)

extension Syscall {
    /// A descriptor's status flags (`F_GETFL`: access mode, O_DIRECT, ...), nil if it is not
    /// open. EINTR: cannot happen.
    static func statusFlags(_ fd: Int32) -> Int32? {
        let flags = kq_shim_fcntl(fd, F_GETFL)
        return flags == -1 ? nil : flags
    }

    /// Opens an I/O backend of `kind` (`KQ_AIO_BACKEND_*`). EINTR: cannot happen.
    static func aioBackendOpen(kind: Int32) throws(Errno) -> OpaquePointer {
        var error: Int32 = 0
        guard let backend = kq_aio_backend_open(kind, &error) else { throw Errno(rawValue: error) }
        return backend
    }

    /// Starts requests; returns how many were taken (a prefix). Blocks only to wait out a full
    /// ring (EBUSY/EAGAIN, by reaping into the backend's list); EINTR is retried.
    static func aioBackendSubmit(_ backend: OpaquePointer, _ ops: UnsafePointer<kq_aio_op>, count: Int) throws(Errno)
        -> Int
    {
        let taken = kq_aio_backend_submit(backend, ops, Int32(count))
        if taken < 0 { throw Errno(rawValue: -taken) }
        return Int(taken)
    }

    /// Reads the backend's eventfd down to zero (never blocks).
    static func aioBackendAcknowledge(_ backend: OpaquePointer) { kq_aio_backend_acknowledge(backend) }

    /// Requests queued for the helper threads, not yet taken (a hint).
    static func aioBackendShared(_ backend: OpaquePointer) -> Int { Int(kq_aio_backend_shared(backend)) }

    /// Runs up to a chunk of the requests queued for the helper threads in this thread.
    static func aioBackendAssist(_ backend: OpaquePointer) -> Int { Int(kq_aio_backend_assist(backend)) }

    /// Takes up to `capacity` completions, never blocking.
    static func aioBackendReap(
        _ backend: OpaquePointer, into out: UnsafeMutablePointer<kq_aio_completion>, capacity: Int
    )
        -> Int
    {
        Int(kq_aio_backend_reap(backend, out, Int32(capacity)))
    }

    /// Cancels one request: nil when it was cancelled, else `.alreadyInProcess` (running) or
    /// `.noSuchFileOrDirectory` (not in flight).
    static func aioBackendCancel(_ backend: OpaquePointer, tag: UInt64) -> Errno? {
        let result = kq_aio_backend_cancel(backend, tag)
        return result == 0 ? nil : Errno(rawValue: -result)
    }

    /// Blocks until a completion may be ready (EINTR: returns, the caller loops).
    static func aioBackendWait(_ backend: OpaquePointer) { _ = kq_aio_backend_wait(backend) }

    static func aioBackendClose(_ backend: OpaquePointer) { kq_aio_backend_close(backend) }

    /// The C ABI's completion hook (libkqueue.so's aio_error and friends learn of completions).
    static func aioCompletionHook(token: UnsafeMutableRawPointer?, error: Int32, status: Int64) {
        kq_aio_call_completion_hook(token, error, status)
    }
}
