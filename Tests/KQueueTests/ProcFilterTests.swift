import CKQueueShim
import Glibc
import KQueue
import SystemPackage
import Testing

/// SPEC.md 3, EVFILT_PROC, through the Swift API. Forking touches process-wide state, so the
/// suite is serialized; the children exit at once or when told, and are always reaped.
@Suite("SPEC 3: EVFILT_PROC", .serialized)
struct ProcFilterTests {
    @Test("3.PROC: NOTE_EXIT returns the wait status, EV_EOF and EV_ONESHOT; the watcher never reaps")
    func exitStatus() throws {
        let queue = try KernelQueue()
        var gate: [Int32] = [-1, -1]
        try sys(pipe(&gate))
        let pid = try spawnShell("read -r line; exit 42", input: gate[0])
        _ = close(gate[0])
        try queue.apply([.process(pid, note: .exit)])
        #expect(try queue.events(maxEvents: 4, timeout: .zero).isEmpty)
        var byte = UInt8(ascii: "\n")  // the line the shell waits for
        _ = write(gate[1], &byte, 1)
        _ = close(gate[1])
        let event = try expectEvent(queue, ident: UInt(pid), filter: .process)
        #expect(event?.fflags == ProcessNote.exit.rawValue)
        #expect(event.map { ($0.data >> 8) & 0xff } == 42)
        #expect(event?.flags == [.clear, .endOfFile, .oneShot])
        #expect(try reap(pid, timeout: .seconds(5)) == 42)
        #expect(event?.processExitStatus == .exited(code: 42))
    }

    @Test("3.PROC: a typed exit status decodes exits, signals and core dumps, and says when it is unknown")
    func typedExitStatus() {
        #expect(ProcessExitStatus(waitStatus: 0) == .exited(code: 0))
        #expect(ProcessExitStatus(waitStatus: 42 << 8) == .exited(code: 42))
        #expect(ProcessExitStatus(waitStatus: SIGKILL) == .signaled(signal: SIGKILL, coreDumped: false))
        #expect(ProcessExitStatus(waitStatus: SIGSEGV | 0x80) == .signaled(signal: SIGSEGV, coreDumped: true))
        let unknown = KEvent(
            ident: 1, filter: .process, flags: [.endOfFile],
            fflags: ProcessNote([.exit, .exitStatusUnknown]).rawValue, data: 0)
        #expect(unknown.processExitStatus == .unknown)
        let fork = KEvent(ident: 1, filter: .process, flags: [], fflags: ProcessNote.fork.rawValue, data: 0)
        #expect(fork.processExitStatus == nil)
        #expect("\(ProcessExitStatus.signaled(signal: 9, coreDumped: true))" == "killed by SIGKILL (core dumped)")
    }

    @Test("3.PROC: the exit status is exact after the application reaped the process first")
    func exitStatusAfterReap() throws {
        let queue = try KernelQueue()
        let pid = try spawnShell("kill -KILL $$")
        try queue.apply([.process(pid, note: .exit)])
        #expect(try reap(pid, timeout: .seconds(5)) != nil)  // reaped before the event is collected
        let event = try expectEvent(queue, ident: UInt(pid), filter: .process)
        #expect(event?.processExitStatus == .signaled(signal: SIGKILL, coreDumped: false))
    }

    @Test("3.PROC: a missing pid is ESRCH; NOTE_FORK/EXEC/TRACK work or fail with ENOTSUP (no process connector)")
    func errors() throws {
        let queue = try KernelQueue()
        let pid = try spawnShell("exit 0")
        _ = try reap(pid, timeout: .seconds(5))
        expectChangeFailure(.noSuchProcess) { try queue.apply([.process(pid, note: .exit)]) }
        for note: ProcessNote in [[.exit, .fork], .exec, .track] {
            do {
                try queue.apply([.process(getpid(), note: note)])
                try queue.apply([.process(getpid(), flags: .delete)])
            } catch {
                #expect(error.errno == .notSupported)
            }
        }
    }
}
