import Glibc
import Synchronization
import Testing

@testable import KQueueLoop

// Helpers of the KQueueLoop tests. Waiting rule (as in KQueueTests): never sleep a fixed
// time and hope; wait for a condition with a deadline (`eventually`), or watch a short
// bounded time for something that must not happen (`stays`).

/// Longest wait for something that should happen: generous, it only matters on failure.
let deadline: Duration = .seconds(10)

/// Waits until `condition` holds, checking every millisecond, at most `timeout`.
func eventually(timeout: Duration = deadline, _ condition: () -> Bool) async -> Bool {
    let end = ContinuousClock.now + timeout
    while ContinuousClock.now < end {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(1))
    }
    return condition()
}

/// Checks for `period` that `condition` keeps holding.
func stays(for period: Duration = .milliseconds(50), _ condition: () -> Bool) async -> Bool {
    let end = ContinuousClock.now + period
    while ContinuousClock.now < end {
        if !condition() { return false }
        try? await Task.sleep(for: .milliseconds(1))
    }
    return condition()
}

/// A value shared between the loop thread and the test.
final class Shared<Value: Sendable>: Sendable {
    private let storage: Mutex<Value>
    init(_ value: Value) { storage = Mutex(value) }
    var value: Value { storage.withLock { $0 } }
    func update<R: Sendable>(_ body: @Sendable (inout Value) -> R) -> R { storage.withLock { body(&$0) } }
}

/// Runs `body` on the loop thread and returns its result.
func onLoop<R: Sendable>(_ loop: EventLoop, _ body: @escaping @Sendable () -> R) -> R {
    // runOnLoop's body is typed-throwing; this one does not throw.
    do throws(Errno) {
        return try loop.runOnLoop { () throws(Errno) -> R in body() }
    } catch {
        fatalError("the loop stopped: \(error)")
    }
}

/// Registrations alive on the loop (slots in use), read on its thread.
func liveRegistrations(_ loop: EventLoop) -> Int { onLoop(loop) { loop.core.liveSlots } }

func makePipe() throws -> (read: FileDescriptor, write: FileDescriptor) {
    var fds: [Int32] = [-1, -1]
    guard pipe(&fds) == 0 else { throw Errno(rawValue: errno) }
    for fd in fds {
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }
    return (FileDescriptor(rawValue: fds[0]), FileDescriptor(rawValue: fds[1]))
}

func closeAll(_ descriptors: FileDescriptor...) {
    for descriptor in descriptors { _ = Glibc.close(descriptor.rawValue) }
}

func writeByte(_ descriptor: FileDescriptor) {
    var byte: UInt8 = 0x61
    _ = Glibc.write(descriptor.rawValue, &byte, 1)
}

/// Whether `descriptor` is open in this process.
func isOpen(_ descriptor: FileDescriptor) -> Bool { fcntl(descriptor.rawValue, F_GETFD) != -1 }

/// Starts `/bin/sh -c script` (posix_spawn: no fork of the multithreaded test process).
func spawnShell(_ script: String) throws -> pid_t {
    let words = ["/bin/sh", "-c", script]
    let arguments: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
    defer { arguments.forEach { free($0) } }
    var pid: pid_t = 0
    let result = posix_spawn(&pid, "/bin/sh", nil, nil, arguments, environ)
    guard result == 0 else { throw Errno(rawValue: result) }
    return pid
}

/// Reaps `pid` if it is still a zombie (the loop's process filter does not reap).
func reapQuietly(_ pid: pid_t) {
    var status: Int32 = 0
    _ = waitpid(pid, &status, 0)
}

/// Waits until `value` stops changing for `quiet`, at most `timeout`; returns the value, or
/// nil when it kept changing.
func settled(quiet: Duration = .milliseconds(100), timeout: Duration = deadline, _ value: () -> Int) async -> Int? {
    let end = ContinuousClock.now + timeout
    while ContinuousClock.now < end {
        let seen = value()
        if await stays(for: quiet, { value() == seen }) { return seen }
    }
    return nil
}
