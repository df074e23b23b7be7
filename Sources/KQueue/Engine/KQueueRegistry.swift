import CKQueue
import CKQueueShim
import Glibc
import SystemPackage

/// Every live kqueue of the process, by descriptor number. The C ABI finds a kqueue here;
/// the close(2) interposer and the fork handler reach every kqueue through it.
///
/// Lock order: the registry lock is never held while taking a kqueue lock (the close hook
/// takes a snapshot first), while a kqueue lock may be held when asking the registry.
enum KQueueRegistry {
    /// Guarded by `lock`, a plain pthread mutex so the fork handlers can hold it across fork;
    /// everywhere else it is taken through ``withLock(_:)``.
    nonisolated(unsafe) private static var queues: [KQueueCore?] = []
    nonisolated(unsafe) private static var liveCount = 0
    /// Kqueues inherited by a fork child: unusable there, kept referenced (not freed, since
    /// their locks may be held by threads that do not exist in the child).
    nonisolated(unsafe) private static var forkOrphans: [KQueueCore] = []
    /// The pidfds of EVFILT_PROC knotes in every kqueue, so that a fork child can close them
    /// without touching kqueue locks. Guarded by `lock`.
    nonisolated(unsafe) private static var processDescriptors: Set<Int32> = []
    nonisolated(unsafe) private static let lock: UnsafeMutablePointer<pthread_mutex_t> = {
        let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(lock, nil)
        return lock
    }()

    /// Runs `body` with the registry lock held.
    @inline(__always)
    private static func withLock<T>(_ body: () throws(Errno) -> T) throws(Errno) -> T {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return try body()
    }

    @inline(__always)
    private static func withLock<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return body()
    }

    /// Installs the close and fork hooks once, before the first kqueue exists: 0, or the
    /// error of pthread_atfork (ENOMEM), which then fails every kqueue() (a kqueue a fork
    /// child would inherit must not exist).
    private static let hookInstallation: Int32 = {
        Syscall.setCloseHook { fd in KQueueRegistry.descriptorClosing(fd) }
        // EVFILT_SIGNAL's lock is held across fork too, so no disposition is half-written in
        // the child (neither path ever holds both locks otherwise).
        return Syscall.installForkHooks(
            prepare: {
                pthread_mutex_lock(KQueueRegistry.lock)
                Syscall.signalForkPrepare()
            },
            parent: {
                Syscall.signalForkParent()
                pthread_mutex_unlock(KQueueRegistry.lock)
            },
            child: { KQueueRegistry.forkChild() })
    }()

    /// Creates a kqueue and makes it known to the process.
    static func create(backend request: KernelQueue.BackendRequest? = nil) throws(Errno) -> KQueueCore {
        guard hookInstallation == 0 else { throw Errno(rawValue: hookInstallation) }
        let core = try KQueueCore(backend: BackendSelection.backend(for: request ?? BackendSelection.processRequest))
        let fd = Int(core.descriptor)
        // The number was free when epoll_create1 returned it: any kqueue still listed under it
        // was closed behind our back (e.g. by a raw close syscall). Reclaim it now.
        let stale = withLock { () -> KQueueCore? in
            if fd >= queues.count { queues.append(contentsOf: repeatElement(nil, count: fd + 1 - queues.count)) }
            let stale = queues[fd]
            queues[fd] = core
            if stale == nil { liveCount += 1 }
            return stale
        }
        stale?.tearDown()
        Syscall.markWatched(core.descriptor)
        reclaimClosedQueues()
        return core
    }

    /// A kqueue whose descriptor was closed without passing through close(2)'s interposer
    /// (a raw syscall, closefrom) would keep its internal descriptors forever. On each
    /// kqueue() call, check that every listed kqueue's number still names its own epoll
    /// instance (its eventfd is registered there) and reclaim the ones that do not.
    private static func reclaimClosedQueues() {
        let snapshot = withLock { queues.compactMap { $0 } }
        for core in snapshot where !core.ownsDescriptor() {
            if unlist(core) { core.tearDown() }
        }
    }

    @inline(__always)
    static func lookup(_ fd: Int32) -> KQueueCore? {
        guard fd >= 0 else { return nil }
        return withLock { Int(fd) < queues.count ? queues[Int(fd)] : nil }
    }

    static func isKQueue(_ fd: Int32) -> Bool { lookup(fd) != nil }

    /// `data` for EVFILT_READ on a kqueue descriptor.
    static func pendingEvents(onKQueue fd: Int32) -> Int {
        lookup(fd)?.pendingEventCount() ?? 0
    }

    /// Forgets a kqueue and releases its internals; its descriptor is closed by the caller.
    static func remove(_ core: KQueueCore) {
        _ = unlist(core)
        core.tearDown()
    }

    /// Takes `core` off the list if it is still listed under its number; true if it was.
    private static func unlist(_ core: KQueueCore) -> Bool {
        withLock {
            let fd = Int(core.descriptor)
            guard fd < queues.count, queues[fd] === core else { return false }
            queues[fd] = nil
            liveCount -= 1
            return true
        }
    }

    /// Called by the close(2) interposer before `fd` is closed: a kqueue descriptor releases
    /// its kqueue; any other descriptor loses its knotes in every kqueue (SPEC.md 2).
    static func descriptorClosing(_ fd: Int32) {
        let affected = withLock { () -> ClosingDescriptor in
            var closing: KQueueCore? = nil
            if fd >= 0, Int(fd) < queues.count, let core = queues[Int(fd)] {
                queues[Int(fd)] = nil
                liveCount -= 1
                closing = core
            }
            return ClosingDescriptor(kqueue: closing, others: queues.compactMap { $0 })
        }
        affected.kqueue?.tearDown()
        for core in affected.others {
            core.state.withLock { state in
                if !state.isClosed { state.descriptorClosing(fd) }
            }
        }
        Syscall.clearWatched(fd)
    }

    /// Opens a pidfd for an EVFILT_PROC knote and lists it, both under the registry lock, so
    /// that a concurrent fork's child never inherits it unlisted (called with a kqueue lock
    /// held: allowed, see above).
    static func openProcessDescriptor(_ pid: pid_t) throws(Errno) -> Int32 {
        try withLock { () throws(Errno) -> Int32 in
            let pidfd = try Syscall.pidfdOpen(pid)
            processDescriptors.insert(pidfd)
            return pidfd
        }
    }

    /// An EVFILT_PROC knote is about to close `pidfd`.
    static func processDescriptorClosing(_ pidfd: Int32) {
        _ = withLock { processDescriptors.remove(pidfd) }
    }

    /// fork(2) child: no kqueue is inherited. Close every kqueue's descriptors without
    /// touching their locks (another thread of the parent may have held one), and keep the
    /// objects alive forever so no deinit runs against that state.
    private static func forkChild() {
        for case let core? in queues {
            core.isForkedAway.store(true, ordering: .relaxed)
            core.internalDescriptors.closeAll()
            Syscall.closeInternal(core.eventFD)
            Syscall.closeInternal(core.descriptor)
            Syscall.clearWatched(core.descriptor)
            forkOrphans.append(core)
        }
        for pidfd in processDescriptors { Syscall.closeInternal(pidfd) }
        Syscall.signalForkChild()
        processDescriptors = []
        queues = []
        liveCount = 0
        pthread_mutex_unlock(lock)
    }
}

/// The kqueues a close(2) concerns: the kqueue whose descriptor it is (if any), and the
/// others, which lose their knotes on it.
private struct ClosingDescriptor {
    var kqueue: KQueueCore?
    var others: [KQueueCore]
}
