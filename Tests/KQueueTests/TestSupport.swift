import CKQueueShim
import Dispatch
import Glibc
import KQueue
import Synchronization
import Testing

// Helpers shared by the KQueue tests: descriptors (pipes, socket pairs, loopback TCP, FIFOs,
// ptys, temporary files), bounded waits on a kqueue, threads with a bounded join, and a
// forked child for checks that touch process-wide state.
//
// Waiting rule (DESIGN.md, Tests): never sleep a fixed time and hope. A test that expects an
// event waits on the kqueue with a deadline (`expectEvent`, `expectEvents`); a test that
// expects silence waits a short bounded time (`expectNoEvents`).

/// Longest wait for an event that should arrive: generous, since it only matters on failure.
let eventDeadline: Duration = .seconds(5)
/// How long "no event" is watched for.
let quietPeriod: Duration = .milliseconds(50)

// MARK: Descriptors

/// Throws the current errno when a C call returned a negative value.
@discardableResult
func sys<T: BinaryInteger>(_ result: T) throws(Errno) -> T {
    guard result >= 0 else { throw Errno(rawValue: errno) }
    return result
}

func descriptor(_ raw: Int32) -> FileDescriptor { FileDescriptor(rawValue: raw) }

/// Closes each descriptor, ignoring errors (for `defer`).
func closeAll(_ descriptors: FileDescriptor...) {
    for d in descriptors where d.rawValue >= 0 { _ = Glibc.close(d.rawValue) }
}

func makePipe(nonblocking: Bool = true) throws -> (read: FileDescriptor, write: FileDescriptor) {
    var fds: [Int32] = [-1, -1]
    try sys(pipe(&fds))
    let ends = (read: descriptor(fds[0]), write: descriptor(fds[1]))
    for end in [ends.read, ends.write] {
        try sys(kq_shim_fcntl_int(end.rawValue, F_SETFD, FD_CLOEXEC))
        if nonblocking { try setNonblocking(end) }
    }
    return ends
}

func makeSocketPair(type: Int32 = Int32(SOCK_STREAM.rawValue), nonblocking: Bool = true) throws
    -> (FileDescriptor, FileDescriptor)
{
    var fds: [Int32] = [-1, -1]
    let flags = Int32(SOCK_CLOEXEC.rawValue) | (nonblocking ? Int32(SOCK_NONBLOCK.rawValue) : 0)
    try sys(socketpair(AF_UNIX, type | flags, 0, &fds))
    return (descriptor(fds[0]), descriptor(fds[1]))
}

func setNonblocking(_ fd: FileDescriptor) throws {
    let flags = try sys(kq_shim_fcntl(fd.rawValue, F_GETFL))
    try sys(kq_shim_fcntl_int(fd.rawValue, F_SETFL, flags | O_NONBLOCK))
}

func setSocketOption(_ fd: FileDescriptor, _ level: Int32, _ name: Int32, _ value: Int32) throws {
    var value = value
    try sys(setsockopt(fd.rawValue, level, name, &value, socklen_t(MemoryLayout<Int32>.size)))
}

func socketOption(_ fd: FileDescriptor, _ level: Int32, _ name: Int32) throws -> Int32 {
    var value: Int32 = 0
    var length = socklen_t(MemoryLayout<Int32>.size)
    try sys(getsockopt(fd.rawValue, level, name, &value, &length))
    return value
}

func makeTCPSocket(nonblocking: Bool = false) throws -> FileDescriptor {
    let type =
        Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | (nonblocking ? Int32(SOCK_NONBLOCK.rawValue) : 0)
    return descriptor(try sys(socket(AF_INET, type, 0)))
}

func loopbackAddress(port: UInt16) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    return address
}

func withSocketAddress<R>(_ address: sockaddr_in, _ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) rethrows
    -> R
{
    var address = address
    return try withUnsafePointer(to: &address) {
        try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            try body($0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
}

func localPort(_ fd: FileDescriptor) throws -> UInt16 {
    var address = sockaddr_in()
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = try withUnsafeMutablePointer(to: &address) {
        try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { try sys(getsockname(fd.rawValue, $0, &length)) }
    }
    return UInt16(bigEndian: address.sin_port)
}

/// A TCP socket listening on 127.0.0.1 on a free port.
func makeTCPListener(backlog: Int32 = 16) throws -> (listener: FileDescriptor, port: UInt16) {
    let listener = try makeTCPSocket()
    do {
        try setSocketOption(listener, SOL_SOCKET, SO_REUSEADDR, 1)
        _ = try withSocketAddress(loopbackAddress(port: 0)) { try sys(bind(listener.rawValue, $0, $1)) }
        try sys(listen(listener.rawValue, backlog))
        return (listener, try localPort(listener))
    } catch {
        closeAll(listener)
        throw error
    }
}

/// Connects a new socket to 127.0.0.1:`port`. A nonblocking connect may still be in progress.
func connectTCP(port: UInt16, nonblocking: Bool = false, configure: (FileDescriptor) throws -> Void = { _ in }) throws
    -> FileDescriptor
{
    let socket = try makeTCPSocket(nonblocking: nonblocking)
    do {
        try configure(socket)
        let result = withSocketAddress(loopbackAddress(port: port)) { Glibc.connect(socket.rawValue, $0, $1) }
        if result != 0 && !(nonblocking && errno == EINPROGRESS) { throw Errno(rawValue: errno) }
        return socket
    } catch {
        closeAll(socket)
        throw error
    }
}

/// A connected loopback TCP pair (client, accepted server side), both nonblocking.
func makeTCPConnection(configure: (FileDescriptor) throws -> Void = { _ in }) throws -> (
    client: FileDescriptor, server: FileDescriptor
) {
    let (listener, port) = try makeTCPListener()
    defer { closeAll(listener) }
    try configure(listener)
    let client = try connectTCP(port: port, configure: configure)
    let server = descriptor(accept(listener.rawValue, nil, nil))
    guard server.rawValue >= 0 else {
        let error = Errno(rawValue: errno)
        closeAll(client)
        throw error
    }
    try setNonblocking(client)
    try setNonblocking(server)
    return (client, server)
}

/// Writes all of `bytes` (the descriptor must accept them without blocking).
@discardableResult
func send(_ fd: FileDescriptor, _ bytes: [UInt8]) throws -> Int {
    try bytes.withUnsafeBytes { buffer in try sys(Glibc.write(fd.rawValue, buffer.baseAddress, buffer.count)) }
}

@discardableResult
func send(_ fd: FileDescriptor, count: Int, byte: UInt8 = 0x61) throws -> Int {
    try send(fd, [UInt8](repeating: byte, count: count))
}

/// Reads up to `count` bytes; returns how many were read (0 at EOF or when nothing is there).
@discardableResult
func receive(_ fd: FileDescriptor, count: Int) throws -> Int {
    var buffer = [UInt8](repeating: 0, count: max(count, 1))
    let n = buffer.withUnsafeMutableBytes { Glibc.read(fd.rawValue, $0.baseAddress, count) }
    if n < 0 {
        if errno == EAGAIN { return 0 }
        throw Errno(rawValue: errno)
    }
    return n
}

/// Reads everything available now from a nonblocking descriptor; returns the byte count.
@discardableResult
func drain(_ fd: FileDescriptor) throws -> Int {
    var total = 0
    while true {
        let n = try receive(fd, count: 65536)
        if n == 0 { return total }
        total += n
    }
}

/// Writes to a nonblocking descriptor until it would block, in `chunk`-byte writes; returns
/// the byte count.
@discardableResult
func fill(_ fd: FileDescriptor, chunk: Int = 4096) throws -> Int {
    let bytes = [UInt8](repeating: 0x62, count: chunk)
    var total = 0
    while true {
        let n = bytes.withUnsafeBytes { Glibc.write(fd.rawValue, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EAGAIN { return total }
            throw Errno(rawValue: errno)
        }
        total += n
    }
}

/// A new empty directory under the system temporary directory.
func makeTemporaryDirectory() throws -> String {
    var template = Array("/tmp/kqueue-tests-XXXXXX".utf8CString)
    guard let path = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
        throw Errno(rawValue: errno)
    }
    return String(cString: path)
}

/// A new regular file holding `contents`; returns its path and a read-only descriptor on it.
func makeTemporaryFile(contents: [UInt8]) throws -> (path: String, fd: FileDescriptor) {
    var template = Array("/tmp/kqueue-tests-file-XXXXXX".utf8CString)
    let fd = try template.withUnsafeMutableBufferPointer { try sys(mkstemp($0.baseAddress!)) }
    let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    defer { _ = Glibc.close(fd) }
    if !contents.isEmpty { try send(descriptor(fd), contents) }
    let reader = try sys(open(path, O_RDONLY | O_CLOEXEC))
    return (path, descriptor(reader))
}

/// A pseudo-terminal pair with the terminal side in raw mode, both nonblocking.
func makePseudoTerminal() throws -> (controller: FileDescriptor, terminal: FileDescriptor) {
    // posix_openpt/grantpt/unlockpt/ptsname are not imported without _GNU_SOURCE: do what
    // they do with the Linux ioctls (TIOCSPTLCK, TIOCGPTN; same values on every Linux arch
    // this runs on).
    let controller = try sys(open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC))
    do {
        var unlock: Int32 = 0
        try sys(kq_shim_ioctl_int(controller, 0x4004_5431, &unlock))
        var number: Int32 = 0
        try sys(kq_shim_ioctl_int(controller, 0x8004_5430, &number))
        let terminal = try sys(open("/dev/pts/\(number)", O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK))
        var attributes = termios()
        try sys(tcgetattr(terminal, &attributes))
        cfmakeraw(&attributes)
        try sys(tcsetattr(terminal, TCSANOW, &attributes))
        try setNonblocking(descriptor(controller))
        return (descriptor(controller), descriptor(terminal))
    } catch {
        _ = Glibc.close(controller)
        throw error
    }
}

/// Descriptor numbers far above what the lowest-free allocation of the other (parallel)
/// tests reaches, so that a test can close a number and give it to a new file with dup2
/// without racing anyone for it.
private let nextReservedNumber = Atomic<Int32>(12_000)

func reservedDescriptorNumber() -> Int32 {
    nextReservedNumber.add(1, ordering: .relaxed).newValue
}

/// Moves `fd` to a reserved number (dup2, then closes the original).
func moveToReservedNumber(_ fd: FileDescriptor) throws -> FileDescriptor {
    let number = reservedDescriptorNumber()
    try sys(dup2(fd.rawValue, number))
    _ = Glibc.close(fd.rawValue)
    return descriptor(number)
}

/// Entries in /proc/self/fd.
func openDescriptorCount() -> Int {
    guard let directory = opendir("/proc/self/fd") else { return -1 }
    defer { closedir(directory) }
    var count = 0
    while readdir(directory) != nil { count += 1 }
    return count - 2  // "." and ".."
}

/// Descriptors registered in a kqueue's epoll instance (`tfd:` lines of its fdinfo): the
/// kqueue's own eventfds and timerfds plus every watched descriptor.
func registeredDescriptorCount(_ queue: KernelQueue) -> Int {
    guard let file = fopen("/proc/self/fdinfo/\(queue.descriptor.rawValue)", "r") else { return -1 }
    defer { fclose(file) }
    var count = 0
    var line = [CChar](repeating: 0, count: 512)
    while fgets(&line, Int32(line.count), file) != nil {
        if line.starts(with: Array("tfd:".utf8CString.dropLast())) { count += 1 }
    }
    return count
}

// MARK: kqueue calls

/// A change for any filter by raw value.
func change(
    _ ident: UInt, _ filter: Filter, _ flags: Flags = .add, fflags: UInt32 = 0, data: Int64 = 0,
    udata: UnsafeMutableRawPointer? = nil
) -> KEvent {
    KEvent(ident: ident, filter: filter, flags: flags, fflags: fflags, data: data, udata: udata)
}

/// An opaque udata value for checks.
func tag(_ value: UInt) -> UnsafeMutableRawPointer? { UnsafeMutableRawPointer(bitPattern: value) }

/// Calls the buffer-level kevent with room for `capacity` entries; returns what was written
/// (the throw, if any, is left to the caller).
func keventRaw(_ queue: KernelQueue, _ changes: [KEvent], capacity: Int, timeout: Duration? = .zero) throws(Errno)
    -> [KEvent]
{
    var buffer = [KEvent](repeating: KEvent(ident: 0, filter: Filter(rawValue: 0)), count: capacity)
    let count = try changes.withUnsafeBufferPointer { changes throws(Errno) in
        try buffer.withUnsafeMutableBufferPointer { events throws(Errno) in
            try queue.kevent(changes: changes, events: events, timeout: timeout)
        }
    }
    return Array(buffer.prefix(count))
}

/// Expects `body` to throw a ``KQueueChangeError`` with `errno`.
func expectChangeFailure(
    _ errno: Errno, _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) {
    do {
        try body()
        Issue.record("expected \(errno), nothing was thrown. \(comment ?? "")", sourceLocation: sourceLocation)
    } catch let error as KQueueChangeError {
        #expect(error.errno == errno, "\(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected a KQueueChangeError, got \(error)", sourceLocation: sourceLocation)
    }
}

/// The error a change gets, applied alone (nil on success). The thrown error must name it.
func changeError(
    _ queue: KernelQueue, _ change: KEvent, sourceLocation: SourceLocation = #_sourceLocation
) -> Errno? {
    do {
        try queue.apply([change])
        return nil
    } catch {
        #expect(error.change == change && error.index == 0, "\(error)", sourceLocation: sourceLocation)
        return error.errno
    }
}

/// One wait for events, again after EINTR until `timeout` has passed: the test process's
/// other tests and its runtime may send signals it catches (SIGCHLD of a spawned compiler, a
/// sanitizer's own handlers), which end a wait with EINTR as on FreeBSD (SPEC.md 2.8). The
/// tests of EINTR itself call kevent() directly.
func waitForEvents(_ queue: KernelQueue, maxEvents: Int = 64, timeout: Duration) throws -> [KEvent] {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while true {
        let remaining = deadline - clock.now
        do {
            return try queue.events(maxEvents: maxEvents, timeout: remaining > .zero ? remaining : .zero)
        } catch Errno.interrupted {
            continue
        } catch {
            throw error
        }
    }
}

/// Events pending right now (a poll).
func pendingEvents(_ queue: KernelQueue, max: Int = 64) throws -> [KEvent] {
    try queue.events(maxEvents: max, timeout: .zero)
}

/// Waits up to `timeout` for an event of (`ident`, `filter`) that satisfies `predicate`;
/// other events returned meanwhile are dropped. Records an issue and returns nil if none came.
@discardableResult
func expectEvent(
    _ queue: KernelQueue, ident: UInt, filter: Filter, timeout: Duration = eventDeadline,
    where predicate: (KEvent) -> Bool = { _ in true }, _ comment: Comment? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> KEvent? {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    var seen: [KEvent] = []
    while true {
        let remaining = deadline - clock.now
        let events = try waitForEvents(queue, timeout: remaining > .zero ? remaining : .zero)
        if let match = events.first(where: { $0.ident == ident && $0.filter == filter && predicate($0) }) {
            return match
        }
        seen.append(contentsOf: events.prefix(8 - min(8, seen.count)))
        if clock.now >= deadline {
            Issue.record(
                Comment(
                    rawValue: "no matching event for ident \(ident) filter \(filter) within \(timeout); saw \(seen)"
                        + (comment.map { " (\($0.rawValue))" } ?? "")),
                sourceLocation: sourceLocation)
            return nil
        }
    }
}

/// Waits up to `timeout` until an event for each (ident, filter) key has been seen; returns
/// the first event seen per key, in arrival order. Records an issue for the missing ones.
@discardableResult
func expectEvents(
    _ queue: KernelQueue, _ keys: [(UInt, Filter)], timeout: Duration = eventDeadline,
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> [KEvent] {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    var found: [KEvent] = []
    func isWanted(_ event: KEvent) -> Bool { keys.contains { $0.0 == event.ident && $0.1 == event.filter } }
    func isFound(_ event: KEvent) -> Bool { found.contains { $0.ident == event.ident && $0.filter == event.filter } }
    while found.count < keys.count {
        let remaining = deadline - clock.now
        for event in try waitForEvents(queue, timeout: remaining > .zero ? remaining : .zero)
        where isWanted(event) && !isFound(event) {
            found.append(event)
        }
        if found.count < keys.count && clock.now >= deadline {
            let missing = keys.filter { key in !found.contains { $0.ident == key.0 && $0.filter == key.1 } }
            Issue.record(
                "missing events within \(timeout): \(missing.map { "(\($0.0), \($0.1))" })",
                sourceLocation: sourceLocation)
            break
        }
    }
    return found
}

/// Waits `period` and expects the kqueue to return nothing at all.
func expectNoEvents(
    _ queue: KernelQueue, for period: Duration = quietPeriod, _ comment: Comment? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let events = try waitForEvents(queue, timeout: period)
    if !events.isEmpty {
        Issue.record(
            Comment(rawValue: "expected no events, got \(events)" + (comment.map { " (\($0.rawValue))" } ?? "")),
            sourceLocation: sourceLocation)
    }
}

/// Waits `period` and expects no event for (`ident`, `filter`) (others are dropped).
func expectNoEvent(
    _ queue: KernelQueue, ident: UInt, filter: Filter, for period: Duration = quietPeriod, _ comment: Comment? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let clock = ContinuousClock()
    let deadline = clock.now + period
    while true {
        let remaining = deadline - clock.now
        guard remaining > .zero else { return }
        let events = try waitForEvents(queue, timeout: remaining)
        if let event = events.first(where: { $0.ident == ident && $0.filter == filter }) {
            Issue.record(
                Comment(
                    rawValue: "expected no event for \(ident)/\(filter), got \(event)"
                        + (comment.map { " (\($0.rawValue))" } ?? "")), sourceLocation: sourceLocation)
            return
        }
    }
}

extension UInt {
    init(_ fd: FileDescriptor) { self.init(fd.rawValue) }
}

// MARK: Threads

/// A value shared between threads.
final class Shared<Value: Sendable>: Sendable {
    private let storage: Mutex<Value>
    init(_ value: Value) { storage = Mutex(value) }
    var value: Value { storage.withLock { $0 } }
    func update<R>(_ body: (inout Value) -> R) -> R { storage.withLock { body(&$0) } }
}

extension Duration {
    var inNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

/// A plain pthread (not the cooperative pool, which blocking tests must not starve) with a
/// bounded join.
final class TestThread: @unchecked Sendable {
    /// Written once by `init` before the thread is visible to anyone else.
    private(set) var id = pthread_t()
    private let finished = DispatchSemaphore(value: 0)
    private let body: @Sendable () -> Void
    private let isFinished = Atomic<Bool>(false)
    private var joined = false

    init(_ body: @escaping @Sendable () -> Void) throws {
        self.body = body
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(
            &thread, nil,
            { raw in
                let me = Unmanaged<TestThread>.fromOpaque(raw!).takeRetainedValue()
                me.body()
                me.isFinished.store(true, ordering: .releasing)
                me.finished.signal()
                return nil
            }, context)
        guard result == 0 else {
            Unmanaged<TestThread>.fromOpaque(context).release()
            throw Errno(rawValue: result)
        }
        id = thread
    }

    var hasFinished: Bool { isFinished.load(ordering: .acquiring) }

    /// Waits up to `timeout` for the thread to end. Returns false if it is still running.
    func wait(timeout: Duration) -> Bool {
        if hasFinished { return true }
        let nanoseconds = Int(max(0, timeout.inNanoseconds))
        guard finished.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .success else { return false }
        finished.signal()  // keep it signalled for later waits
        return true
    }

    /// Joins the thread if it ends within `timeout`; otherwise detaches it (it is left
    /// running) and returns false.
    @discardableResult
    func join(timeout: Duration = .seconds(10)) -> Bool {
        guard !joined else { return true }
        joined = true
        guard wait(timeout: timeout) else {
            pthread_detach(id)
            return false
        }
        pthread_join(id, nil)
        return true
    }
}

// MARK: Processes

/// Exit status of a child as waitpid reports it: the exit code, or -(signal number).
func decodeWaitStatus(_ status: Int32) -> Int32 {
    status & 0x7f == 0 ? (status >> 8) & 0xff : -(status & 0x7f)
}

/// Forks; the child runs `child` and `_exit`s with what it returns. Only async-signal-safe
/// work is allowed in the child (the parent is multithreaded): plain system calls, no
/// allocation, no Swift runtime locks. Waits for the child at most `timeout` (then kills it);
/// returns its decoded status, or nil if it had to be killed.
func runInForkedChild(timeout: Duration = .seconds(10), _ child: () -> Int32) throws -> Int32? {
    let pid = fork()
    if pid == 0 { _exit(child()) }
    try sys(pid)
    return try reap(pid, timeout: timeout)
}

/// Starts `/bin/sh -c script` through posix_spawn, with `input` (if given) as its standard
/// input. Tests that only need a process to watch use this rather than fork(): a forked copy
/// of the multithreaded test process now and then hangs under ThreadSanitizer.
func spawnShell(_ script: String, input: Int32? = nil) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    var result = posix_spawn_file_actions_init(&actions)
    guard result == 0 else { throw Errno(rawValue: result) }
    defer { posix_spawn_file_actions_destroy(&actions) }
    if let input {
        result = posix_spawn_file_actions_adddup2(&actions, input, 0)
        guard result == 0 else { throw Errno(rawValue: result) }
    }
    let words: [String] = ["/bin/sh", "-c", script]
    let arguments: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
    defer { arguments.forEach { free($0) } }
    var pid: pid_t = 0
    result = posix_spawn(&pid, "/bin/sh", &actions, nil, arguments, environ)
    guard result == 0 else { throw Errno(rawValue: result) }
    return pid
}

/// Waits at most `timeout` for child `pid` to exit (SIGKILL after that) and reaps it.
func reap(_ pid: pid_t, timeout: Duration) throws -> Int32? {
    var killed = false
    let pidfd = kq_shim_pidfd_open(pid, 0)
    if pidfd >= 0 {
        var poller = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
        let n = poll(&poller, 1, Int32(timeout.inNanoseconds / 1_000_000))
        _ = Glibc.close(pidfd)
        if n == 0 {
            kill(pid, SIGKILL)
            killed = true
        }
    }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 {
        guard errno == EINTR else { throw Errno(rawValue: errno) }
    }
    return killed ? nil : decodeWaitStatus(status)
}

/// Runs `body` on a thread of its own, which ends afterwards. io_uring sends the completion
/// work of the polls a thread armed to that thread, with a wakeup that ends an epoll_wait
/// there with EINTR (docs/GUARANTEES.md, the io_uring backend's limits); a test that makes an
/// io_uring kqueue on one of the runner's shared threads could so interrupt another test's
/// kevent() waiting on that thread later.
func onThreadOfItsOwn(_ body: @escaping @Sendable () throws -> Void) throws {
    let outcome = Mutex<Result<Void, any Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    var thread = pthread_t()
    let box = Unmanaged.passRetained(
        ThreadBody {
            let result = Result { try body() }
            outcome.withLock { $0 = result }
            done.signal()
        })
    let created = pthread_create(
        &thread, nil,
        { context in
            let body = Unmanaged<ThreadBody>.fromOpaque(context!).takeRetainedValue()
            body.run()
            return nil
        }, box.toOpaque())
    guard created == 0 else {
        box.release()
        throw Errno(rawValue: created)
    }
    done.wait()
    pthread_join(thread, nil)
    try outcome.withLock { $0! }.get()
}

private final class ThreadBody: Sendable {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}
