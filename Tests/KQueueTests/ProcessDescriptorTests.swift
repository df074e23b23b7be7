import CKQueueShim
import Glibc
import KQueue
import SystemPackage
import Testing

/// SPEC.md 3, EVFILT_PROCDESC and process descriptors, through the Swift API. Forking touches
/// process-wide state, so the suite is serialized; each child waits for a byte on a pipe, then exits.
@Suite("SPEC 3: EVFILT_PROCDESC and ProcessDescriptor", .serialized)
struct ProcessDescriptorTests {
    /// A child that exits with `code` once a byte (or the end) arrives on its gate. The gate is
    /// close-on-exec and opened with a byte, not by its end: a process that another test forks or
    /// spawns at the same moment may hold a copy of the write end for a while.
    private static func start(_ options: ProcessDescriptor.Options = [], code: Int32) throws -> (
        ProcessDescriptor, pid: pid_t, gate: Int32
    ) {
        let ends = try makePipe(nonblocking: false)
        let gate = [ends.read.rawValue, ends.write.rawValue]
        switch try ProcessDescriptor.fork(options: options) {
        case .child:
            _ = kq_shim_real_close(gate[1])  // only the parent's end keeps the gate shut
            var byte: UInt8 = 0
            _ = read(gate[0], &byte, 1)
            _exit(code)
        case .parent(let descriptor, let pid):
            _ = close(gate[0])
            return (descriptor, pid, gate[1])
        }
    }

    /// Lets the child behind `gate` exit.
    private static func open(_ gate: Int32) {
        var byte: UInt8 = 1
        _ = write(gate, &byte, 1)
        _ = Glibc.close(gate)
    }

    @Test("3.PROCDESC: NOTE_EXIT on a process descriptor returns the wait status, EV_EOF and EV_ONESHOT")
    func exitStatus() throws {
        let queue = try KernelQueue()
        let (child, pid, gate) = try Self.start(code: 42)
        #expect(try child.processID() == pid)
        try queue.apply([.processDescriptor(child)])
        #expect(try queue.events(maxEvents: 4, timeout: .zero).isEmpty)
        Self.open(gate)
        let event = try expectEvent(queue, ident: UInt(child.descriptor.rawValue), filter: .processDescriptor)
        #expect(event?.processExitStatus == .exited(code: 42))
        #expect(event?.flags == [.clear, .endOfFile, .oneShot])
        #expect(try child.processID() == pid)  // kept after the exit, as FreeBSD's pd_pid
        try child.kill(SIGTERM)  // an exited process ignores it: no error
        try child.close()  // reaps it (the library's reaper thread: bounded wait, a sanitizer build is slow)
        let deadline = ContinuousClock.now + .seconds(10)
        while kill(pid, 0) == 0 && ContinuousClock.now < deadline { sched_yield() }
        #expect(kill(pid, 0) == -1 && errno == ESRCH)
    }

    @Test("3.PROCDESC: closing the last descriptor kills a running child; with .daemon it lives on")
    func lastClose() throws {
        let observer = try KernelQueue()
        let (child, pid, gate) = try Self.start(code: 0)
        try observer.apply([.process(pid, note: .exit)])
        try child.close()
        let killed = try expectEvent(observer, ident: UInt(pid), filter: .process)
        #expect(killed?.processExitStatus == .signaled(signal: SIGKILL, coreDumped: false))
        _ = close(gate)  // its reader is dead: a byte would raise SIGPIPE

        let (daemon, daemonPID, daemonGate) = try Self.start(.daemon, code: 7)
        try observer.apply([.process(daemonPID, note: .exit)])
        try daemon.close()
        Self.open(daemonGate)  // it exits by itself: not killed at the close
        let exited = try expectEvent(observer, ident: UInt(daemonPID), filter: .process)
        #expect(exited?.processExitStatus == .exited(code: 7))
    }

    @Test("3.PROCDESC: FreeBSD's errnos: EINVAL for a bad signal or another kind of file, EBADF for pdgetpid/pdkill")
    func errors() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(readEnd, writeEnd) }
        let notADescriptor = ProcessDescriptor(readEnd)
        #expect(throws: Errno.badFileDescriptor) { try notADescriptor.processID() }
        #expect(throws: Errno.badFileDescriptor) { try notADescriptor.kill(SIGTERM) }
        #expect(throws: Errno.invalidArgument) { try notADescriptor.kill(-1) }
        #expect { try queue.apply([.processDescriptor(notADescriptor)]) } throws: {
            ($0 as? KQueueChangeError)?.errno == .invalidArgument
        }
        #expect(throws: Errno.invalidArgument) { try ProcessDescriptor.fork(options: .init(rawValue: 0x4)) }
    }
}
