import Synchronization
import SystemPackage

/// The system calls a test can make fail (``FaultInjector``), by the C name it passes.
enum SyscallName: Int32, CaseIterable {
    case epollCreate, epollCtl, epollWait, eventFD, timerFDCreate, timerFDSetTime, inotifyInit,
        inotifyAddWatch, read, write, fstat, pidfdOpen, processConnectorOpen, listmount,
        fanotifyInit, ringSetup

    /// The C function's name.
    var cName: String {
        switch self {
        case .epollCreate: "epoll_create1"
        case .epollCtl: "epoll_ctl"
        case .epollWait: "epoll_wait"
        case .eventFD: "eventfd"
        case .timerFDCreate: "timerfd_create"
        case .timerFDSetTime: "timerfd_settime"
        case .inotifyInit: "inotify_init1"
        case .inotifyAddWatch: "inotify_add_watch"
        case .read: "read"
        case .write: "write"
        case .fstat: "fstat"
        case .pidfdOpen: "pidfd_open"
        case .processConnectorOpen: "proc_connector_open"
        case .listmount: "listmount"
        case .fanotifyInit: "fanotify_init"
        case .ringSetup: "io_uring_setup"
        }
    }

    init?(cName: String) {
        guard let found = Self.allCases.first(where: { $0.cName == cName }) else { return nil }
        self = found
    }
}

#if DEBUG
    /// Test-only: makes a chosen internal system call fail with a chosen errno, so that the
    /// engine's error paths can be tested (C tests reach it through `kqueue_test_inject_fault`,
    /// exported by debug builds of libkqueue.so only). Compiled out of release builds: there it
    /// costs nothing; in debug builds one relaxed load per wrapped call.
    ///
    /// One rule at a time: the next `skip` calls of `name` succeed, the `count` after them fail.
    enum FaultInjector {
        private static let armedCall = Atomic<Int32>(-1)
        private static let error = Atomic<Int32>(0)
        private static let skip = Atomic<Int>(0)
        private static let remaining = Atomic<Int>(0)

        static func arm(_ name: SyscallName, errno: Errno, skip: Int = 0, count: Int = 1) {
            armedCall.store(-1, ordering: .sequentiallyConsistent)
            error.store(errno.rawValue, ordering: .relaxed)
            self.skip.store(skip, ordering: .relaxed)
            remaining.store(count, ordering: .relaxed)
            armedCall.store(name.rawValue, ordering: .sequentiallyConsistent)
        }

        static func disarm() { armedCall.store(-1, ordering: .sequentiallyConsistent) }

        /// The injected failure for this call of `name`, or nil.
        @inline(__always)
        static func failure(for name: SyscallName) -> Errno? {
            guard armedCall.load(ordering: .relaxed) == name.rawValue else { return nil }
            return consume()
        }

        private static func consume() -> Errno? {
            if skip.subtract(1, ordering: .relaxed).newValue >= 0 { return nil }
            let left = remaining.subtract(1, ordering: .relaxed).newValue
            if left < 0 { return nil }
            if left == 0 { disarm() }
            return Errno(rawValue: error.load(ordering: .relaxed))
        }
    }

    /// The C entry point of ``FaultInjector`` (debug builds only; not part of `<sys/event.h>`).
    /// Returns 0, or -1 for an unknown call name; an `error` of 0 disarms.
    @_spi(Testing)
    public func kqueueTestInjectFault(call: String, error: Int32, skip: Int, count: Int) -> Int32 {
        guard error != 0 else {
            FaultInjector.disarm()
            return 0
        }
        guard let name = SyscallName(cName: call) else { return -1 }
        FaultInjector.arm(name, errno: Errno(rawValue: error), skip: skip, count: count)
        return 0
    }
#endif
