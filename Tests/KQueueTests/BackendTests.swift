import Glibc
import Testing

@testable import KQueue

/// The readiness backends (docs/ARCHITECTURE.md, "The io_uring backend"): each request gives
/// the backend it names where it is available, epoll otherwise, and both deliver the same
/// events. Process-wide cases (seccomp, KQUEUE_BACKEND, fork, exec) are in Tests/C/backend.c.
@Suite("Backends: selection and fallback", .serialized)
struct BackendTests {
    @Test("backend: epoll asked for gives epoll")
    func epollAskedGivesEpoll() throws {
        let queue = try KernelQueue(backend: .backend(.epoll))
        #expect(queue.backend == .epoll)
        #expect(queue.backendFallback == nil)
        try expectPipeEvent(queue)
    }

    @Test("backend: io_uring asked for gives io_uring where available, else epoll with the reason")
    func ioURingAskedGivesRingOrEpoll() throws {
        try onThreadOfItsOwn {
            let queue = try KernelQueue(backend: .backend(.ioURing))
            if let unavailable = KernelQueue.backendReport.ioURingUnavailable {
                #expect(queue.backend == .epoll)
                #expect(queue.backendFallback == unavailable)
            } else {
                #expect(queue.backend == .ioURing)
                #expect(queue.backendFallback == nil)
            }
            try expectPipeEvent(queue)
        }
    }

    #if DEBUG
        @Test("backend: a ring set-up failing with ENOMEM or EPERM falls back to epoll")
        func ringSetupFailureFallsBack() throws {
            for error in [Errno.noMemory, .notPermitted] {
                FaultInjector.arm(.ringSetup, errno: error)
                defer { FaultInjector.disarm() }
                let queue = try KernelQueue(backend: .backend(.ioURing))
                #expect(queue.backend == .epoll)
                #expect(queue.backendFallback == error)
                try expectPipeEvent(queue)
            }
        }
    #endif

    @Test("backend: KQUEUE_BACKEND's spellings parse, unknown ones do not")
    func requestParsing() {
        #expect(KernelQueue.BackendRequest("epoll") == .backend(.epoll))
        #expect(KernelQueue.BackendRequest("io_uring") == .backend(.ioURing))
        #expect(KernelQueue.BackendRequest("IO_URING") == .backend(.ioURing))
        #expect(KernelQueue.BackendRequest("auto") == .automatic)
        #expect(KernelQueue.BackendRequest("kqueue") == nil)
    }

    @Test("backend: the report names the backend a new kqueue gets and why")
    func reportIsConsistent() throws {
        let report = KernelQueue.backendReport
        #expect(!report.reason.isEmpty)
        if report.request == .backend(.ioURing) && report.ioURingUnavailable != nil { #expect(report.chosen == .epoll) }
        if report.request == .backend(.epoll) { #expect(report.chosen == .epoll) }
        let queue = try KernelQueue()
        #expect(queue.backend == report.chosen)
    }

    /// A pipe's READ event with its byte count, on `queue`.
    private func expectPipeEvent(_ queue: KernelQueue) throws {
        let pipe = try makePipe()
        defer { closeAll(pipe.read, pipe.write) }
        try queue.apply([.read(pipe.read)])
        #expect(try keventRaw(queue, [], capacity: 4).isEmpty)
        _ = try send(pipe.write, count: 3)
        let events = try keventRaw(queue, [], capacity: 4, timeout: .seconds(1))
        #expect(events.count == 1 && events.first?.data == 3)
    }
}
