import CKQueue
import CKQueueShim
import Glibc
import Synchronization
import SystemPackage

/// One kqueue: its readiness backend (``ReadinessBackend``: an epoll instance, whose
/// descriptor is the kqueue descriptor, alone or holding an io_uring ring), its eventfd, and
/// the lock-protected ``QueueState``. Both the Swift API (``KernelQueue``) and the C ABI
/// drive it through ``kevent(changes:changeCount:events:eventCapacity:timeout:)``.
///
/// Lock rule: `state`'s lock is held to apply changes and to copy events out, never while
/// waiting in epoll; several threads may wait at once, each with its own buffer.
final class KQueueCore: Sendable {
    /// The kqueue descriptor (an epoll instance).
    let descriptor: Int32
    let eventFD: Int32
    /// Where readiness comes from (also in `state`, for use under the lock).
    let backend: ReadinessBackend
    /// Why the backend is not the one asked for (io_uring unavailable), nil when it is.
    let fallback: Errno?
    let state: Mutex<QueueState>
    /// Descriptors created on first use, published for the fork child handler.
    let internalDescriptors: InternalDescriptors
    /// Set in a fork child: the kqueue no longer exists there (SPEC.md 2).
    let isForkedAway = Atomic<Bool>(false)
    /// EVFILT_LIO completions posted without the lock (``AIOMailbox``).
    let aioMailbox: AIOMailbox

    /// Largest number of epoll results taken in one wait.
    static let maximumBatch = 1024

    /// Epoll results to take for an eventlist of `capacity`: no more than it holds, since a
    /// level-triggered report taken but not returned would go to the back of epoll's list.
    @inline(__always)
    static func batchSize(for capacity: Int) -> Int {
        min(capacity, maximumBatch)
    }

    init(backend kind: KernelQueue.Backend) throws(Errno) {
        var fallback: Errno? = nil
        let backend = try ReadinessBackend.open(kind, fallback: &fallback)
        let epollFD = backend.kqueueDescriptor
        let eventFD: Int32
        do throws(Errno) {
            eventFD = try Syscall.eventFD()
            let edge = UInt32(EPOLLIN.rawValue) | UInt32(EPOLLET.rawValue)
            do throws(Errno) {
                try backend.add(eventFD, events: edge, tag: EpollTag.wakeup(slot: 0))
            } catch {
                Syscall.closeInternal(eventFD)
                throw error
            }
        } catch {
            backend.closeRing()
            Syscall.closeInternal(epollFD)
            throw error
        }
        let published = InternalDescriptors()
        if let ringFD = backend.ringDescriptor { published.insert(ringFD) }
        var initial = QueueState(backend: backend, eventFD: eventFD, internalDescriptors: published)
        do throws(Errno) {
            try initial.wakeups.createAll(registrar: initial.registrar)
        } catch {
            initial.wakeups.close(registrar: initial.registrar)
            if let ringFD = backend.ringDescriptor { published.remove(ringFD) }
            backend.closeRing()
            Syscall.closeInternal(epollFD)
            throw error
        }
        self.backend = backend
        self.fallback = fallback
        descriptor = epollFD
        self.eventFD = eventFD
        internalDescriptors = published
        aioMailbox = initial.aioMailbox
        state = Mutex(initial)
    }

    /// Marks this kqueue closed and releases its internal descriptors. The kqueue
    /// descriptor itself is closed by the caller (or already being closed by close(2)).
    func tearDown() {
        state.withLock { state in
            guard !state.isClosed else { return }
            state.tearDown()
        }
    }

    /// kevent(2): applies `changes`, then waits for and copies out events. Returns the
    /// number of entries written to `events`, or the errno.
    ///
    /// `failedChanges`, when given (room for `eventCapacity + 1`), receives the index in
    /// `changes` of each EV_ERROR entry written, and after them the index of the change that
    /// failed the call, so that the Swift API can name the change (an EV_ERROR entry keeps
    /// the change's filter and ident but, as on FreeBSD, not its flags). Only written on the
    /// error path.
    func kevent(
        changes: UnsafePointer<kevent>?, changeCount: Int,
        events: UnsafeMutablePointer<kevent>?, eventCapacity: Int,
        timeout: UnsafePointer<timespec>?, failedChanges: UnsafeMutablePointer<Int>? = nil
    ) -> Result<Int, Errno> {
        guard changeCount >= 0, eventCapacity >= 0 else { return .failure(.invalidArgument) }
        guard changeCount == 0 || changes != nil, eventCapacity == 0 || events != nil else {
            return .failure(.badAddress)
        }
        guard !isForkedAway.load(ordering: .relaxed) else { return .failure(.badFileDescriptor) }
        let lists = KEventBuffers(changes: changes, events: events, failedChanges: failedChanges)
        let applied = state.withLock { state in
            state.applyChanges(lists, count: changeCount, eventCapacity: eventCapacity)
        }
        switch applied {
        case .failed(let error):
            return .failure(error)
        case .finished(let count):
            return .success(count)
        case .wait(let buffer, let unsignaled, let filtersHaveWork):
            var wait = Wait(
                events: events.unsafelyUnwrapped, capacity: eventCapacity, timeout: timeout, buffer: buffer,
                unsignaled: unsignaled, filtersHaveWork: filtersHaveWork)
            return wait.run(on: self)
        }
    }

    /// Ends a wait: the buffer goes back to the pool, or, once the kqueue is closed, away, and
    /// the last waiter to leave a closed kqueue closes its internal descriptors.
    func giveBack(_ buffer: EpollBuffer, signal: Bool = false) {
        state.withLock { state in
            if signal && !state.isClosed { state.signalWakeup() }
            if !state.isClosed { state.backend.prepareWait() }
            state.endWait(returning: buffer)
        }
    }

    /// True while `descriptor` still names this kqueue's epoll instance (modifying a
    /// registration instead would re-arm its edge and make the kqueue look readable).
    func ownsDescriptor() -> Bool {
        state.withLock { state in
            if state.isClosed { return true }
            return backend.ownsKQueueDescriptor(eventFD: eventFD)
        }
    }

    /// Number of events a wait would return now (`data` for a kqueue watched by another).
    func pendingEventCount() -> Int {
        state.withLock { state in
            guard !state.isClosed else { return 0 }
            let scratch = state.buffers.take(capacity: 64)
            defer { state.buffers.give(scratch) }
            return state.pendingEventCount(scratch: scratch.events)
        }
    }
}

/// What applying a changelist left the call to do.
enum AppliedChanges {
    /// The call fails with this errno (changes before the failing one stay applied).
    case failed(Errno)
    /// The call returns this many entries (EV_ERROR and receipt entries) without waiting.
    case finished(Int)
    /// The call waits with this buffer; `unsignaled` when its own changes activated knotes
    /// without writing a wakeup (the scan returns them); `filtersHaveWork` when a filter has
    /// work this thread may do before it blocks (the first look then does not block).
    case wait(EpollBuffer, unsignaled: Bool, filtersHaveWork: Bool)
}

extension QueueState {
    /// Applies a changelist, all of it before any event is collected (SPEC.md 2.2), and
    /// decides whether the call waits.
    ///
    /// Changes that activate a knote in a call that then collects (a NOTE_TRIGGER with an
    /// eventlist) leave the wakeup eventfd alone: the call's own scan returns the knote, which
    /// spares two system calls (the eventfd write, and the wait that would consume its edge).
    /// Whatever the scan does not return is signalled then, and every path that ends the call
    /// without a scan signals at once.
    mutating func applyChanges(_ lists: KEventBuffers, count: Int, eventCapacity: Int) -> AppliedChanges {
        if isClosed { return .failed(.badFileDescriptor) }
        let wantsWait = eventCapacity > 0
        deferWakeup = wantsWait
        deferredActivations = 0
        let outcome = apply(changes: lists, count: count, eventCapacity: eventCapacity)
        deferWakeup = false
        let unsignaled = deferredActivations > 0
        if outcome.error != nil || outcome.errorEntries > 0 || !wantsWait {
            if unsignaled { signalWakeup() }
            backend.submitChanges()
            if let error = outcome.error { return .failed(error) }
            return .finished(outcome.errorEntries)
        }
        waiters += 1
        backend.prepareWait()
        return .wait(
            buffers.take(capacity: KQueueCore.batchSize(for: eventCapacity)), unsignaled: unsignaled,
            filtersHaveWork: filtersWithWork != 0)
    }

    /// What ``apply(changes:count:eventCapacity:)`` did.
    struct ChangelistOutcome {
        /// EV_ERROR entries written at the front of the eventlist.
        var errorEntries = 0
        /// Set when a failed change found no room: the call fails with it.
        var error: Errno? = nil
    }

    /// Applies a changelist in order (SPEC.md 2.2-2.4): failed changes and receipts become
    /// EV_ERROR entries at the front of the eventlist. A failed change without room fails the
    /// call; a receipt without room ends change processing.
    mutating func apply(changes lists: KEventBuffers, count: Int, eventCapacity: Int) -> ChangelistOutcome {
        var outcome = ChangelistOutcome()
        for i in 0..<count {
            var change = lists.changes.unsafelyUnwrapped[i]
            if change.filter == 0 { continue }  // SPEC.md 2.2: skipped
            change.flags &= ~EV.systemFlags
            var error: Errno? = nil
            do { try register(change) } catch let failure { error = failure }
            guard error != nil || change.flags & EV.receipt != 0 else { continue }
            lists.failedChanges?[outcome.errorEntries] = i
            guard outcome.errorEntries < eventCapacity else {
                outcome.error = error
                return outcome
            }
            change.flags = EV.error
            change.data = Int64(error?.rawValue ?? 0)
            lists.events.unsafelyUnwrapped[outcome.errorEntries] = change
            outcome.errorEntries += 1
        }
        return outcome
    }

    /// A waiter leaves: its buffer goes back to the pool, or, once the kqueue is closed,
    /// away, and the last waiter to leave a closed kqueue closes its internal descriptors.
    @inline(__always)
    mutating func endWait(returning buffer: EpollBuffer) {
        waiters -= 1
        guard isClosed else {
            buffers.give(buffer)
            return
        }
        buffer.events.deallocate()
        if waiters == 0 { closeInternalDescriptors() }
    }
}

/// The caller's change and event lists, handed into the lock. The caller guarantees they
/// stay valid and unshared for the duration of the kevent() call.
struct KEventBuffers: @unchecked Sendable {
    let changes: UnsafePointer<kevent>?
    let events: UnsafeMutablePointer<kevent>?
    /// Where the index of each failed change goes (see ``KQueueCore/kevent``), or nil.
    let failedChanges: UnsafeMutablePointer<Int>?
}
