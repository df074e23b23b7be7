import CKQueue
import CKQueueShim
import Glibc
import Synchronization
import SystemPackage

/// One kqueue: the epoll instance (whose descriptor is the kqueue descriptor), its eventfd,
/// and the lock-protected ``QueueState``. Both the Swift API (``KernelQueue``) and the C ABI
/// drive it through ``kevent(changes:changeCount:events:eventCapacity:timeout:)``.
///
/// Lock rule: `state`'s lock is held to apply changes and to copy events out, never while
/// waiting in epoll_pwait2; several threads may wait at once, each with its own buffer.
final class KQueueCore: Sendable {
    /// The kqueue descriptor (an epoll instance).
    let descriptor: Int32
    let eventFD: Int32
    let state: Mutex<QueueState>
    /// Descriptors created on first use, published for the fork child handler.
    let internalDescriptors: InternalDescriptors
    /// Set in a fork child: the kqueue no longer exists there (SPEC.md 2).
    let isForkedAway = Atomic<Bool>(false)

    /// Largest number of epoll results taken in one wait.
    static let maximumBatch = 1024

    /// Epoll results to take for an eventlist of `capacity`: no more than it holds, since a
    /// level-triggered report taken but not returned would go to the back of epoll's list.
    @inline(__always)
    static func batchSize(for capacity: Int) -> Int {
        min(capacity, maximumBatch)
    }

    init() throws(Errno) {
        let epollFD = Syscall.epollCreate()
        guard epollFD >= 0 else { throw Errno(rawValue: Syscall.errno) }
        let eventFD = Syscall.eventFD()
        guard eventFD >= 0 else {
            let error = Syscall.errno
            Syscall.closeInternal(epollFD)
            throw Errno(rawValue: error)
        }
        let edge = UInt32(EPOLLIN.rawValue) | UInt32(EPOLLET.rawValue)
        guard Syscall.epollCtl(epollFD, EPOLL_CTL_ADD, eventFD, events: edge, data: InternalSource.eventFD) == 0 else {
            let error = Syscall.errno
            Syscall.closeInternal(eventFD)
            Syscall.closeInternal(epollFD)
            throw Errno(rawValue: error)
        }
        descriptor = epollFD
        self.eventFD = eventFD
        let published = InternalDescriptors()
        internalDescriptors = published
        var initial = QueueState(epollFD: epollFD, eventFD: eventFD, internalDescriptors: published)
        initial.regularFiles.onCreate = { published.inotify.store($0, ordering: .releasing) }
        guard initial.wakeups.createAll(epollFD: epollFD, publish: { published.publishWakeup(slot: $0, $1) }) else {
            let error = Syscall.errno
            initial.wakeups.close()
            Syscall.closeInternal(epollFD)
            throw Errno(rawValue: error)
        }
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
    func kevent(
        changes: UnsafePointer<kevent>?, changeCount: Int,
        events: UnsafeMutablePointer<kevent>?, eventCapacity: Int,
        timeout: UnsafePointer<timespec>?
    ) -> Result<Int, Errno> {
        guard changeCount >= 0, eventCapacity >= 0 else { return .failure(Errno(rawValue: EINVAL)) }
        guard changeCount == 0 || changes != nil, eventCapacity == 0 || events != nil else {
            return .failure(Errno(rawValue: EFAULT))
        }
        guard !isForkedAway.load(ordering: .relaxed) else { return .failure(Errno(rawValue: EBADF)) }
        let wantsWait = eventCapacity > 0
        let io = KEventBuffers(changes: changes, events: events)
        // Changes first, all of them before any event is collected (SPEC.md 2.2).
        // Changes that activate a knote in a call that then collects (a NOTE_TRIGGER with an
        // eventlist) leave the wakeup eventfd alone: the call's own scan returns the knote,
        // which spares two system calls (the eventfd write, and the wait that would consume
        // its edge). Whatever the scan does not return is signalled then, and every path that
        // ends the call without a scan signals at once.
        let applied = state.withLock {
            state -> (errors: Int, error: Int32, buffer: EpollBuffer?, unsignaled: Bool) in
            if state.isClosed { return (0, EBADF, nil, false) }
            state.deferWakeup = wantsWait
            state.deferredActivations = 0
            let result = state.apply(changes: io, count: changeCount, eventCapacity: eventCapacity)
            state.deferWakeup = false
            let unsignaled = state.deferredActivations > 0
            if result.error != 0 || result.errors > 0 || !wantsWait {
                if unsignaled { state.signalWakeup() }
                return (result.errors, result.error, nil, false)
            }
            state.waiters += 1
            return (0, 0, state.takeBuffer(capacity: Self.batchSize(for: eventCapacity)), unsignaled)
        }
        if applied.error != 0 { return .failure(Errno(rawValue: applied.error)) }
        guard let buffer = applied.buffer else { return .success(applied.errors) }
        return wait(
            events: events.unsafelyUnwrapped, capacity: eventCapacity, timeout: timeout, buffer: buffer,
            unsignaled: applied.unsignaled)
    }

    private func wait(
        events: UnsafeMutablePointer<kevent>, capacity: Int, timeout: UnsafePointer<timespec>?,
        buffer: EpollBuffer, unsignaled ownActivations: Bool
    ) -> Result<Int, Errno> {
        var unsignaled = ownActivations
        var remaining = timespec()
        var deadline = timespec()
        if let timeout {
            guard timeout.pointee.isValidTimeout else {
                giveBack(buffer, signal: unsignaled)
                return .failure(Errno(rawValue: EINVAL))
            }
            remaining = timeout.pointee
            if !remaining.isZero { deadline = Syscall.monotonicNow().adding(remaining) }
        }
        var zero = timespec(tv_sec: 0, tv_nsec: 0)
        let ready = buffer.events.baseAddress!
        let io = KEventBuffers(changes: nil, events: events)
        var written = 0
        var newScan = true
        // Extra zero-timeout looks in one call: reports that yield no event (internal
        // wakeups, stale or filtered reports) take room in a batch and may hide ready knotes.
        var extraLooks = 3
        while true {
            let requested = Int32(min(Self.batchSize(for: capacity - written), buffer.events.count))
            let n: Int32
            kq_shim_signal_interruptions_reset()
            if written > 0 || unsignaled || (timeout != nil && remaining.isZero) {
                n = Syscall.epollWait(descriptor, ready, requested, &zero)
            } else if timeout == nil {
                n = Syscall.epollWait(descriptor, ready, requested, nil)
            } else {
                n = Syscall.epollWait(descriptor, ready, requested, &remaining)
            }
            if n < 0 && Syscall.errno == EINTR && kq_shim_signal_interruption_was_transparent() != 0 {
                // Only EVFILT_SIGNAL's handler ran, for a signal the application ignores: on
                // FreeBSD that signal is discarded and its knote wakes the wait. Wait on.
                if timeout != nil && !remaining.isZero {
                    remaining = deadline.remaining(after: Syscall.monotonicNow())
                }
                continue
            }
            if n < 0 {
                let error = Syscall.errno
                giveBack(buffer, signal: unsignaled)
                if written > 0 { return .success(written) }
                // SPEC.md 2.8: a signal ends the wait with EINTR; changes stay applied.
                return .failure(Errno(rawValue: error == EINVAL ? EBADF : error))
            }
            let before = written
            let startScan = newScan
            let mayLookAgain = n == requested && extraLooks > 0
            let polling = timeout != nil && remaining.isZero
            // The lock that collects also ends the wait when this look is the last one, so a
            // call takes the kqueue lock twice, not three times.
            let drainUnsignaled = unsignaled
            unsignaled = false
            let outcome = state.withLock { state -> (written: Int, absorbed: Int, ended: Bool)? in
                if state.isClosed {
                    state.endWait(returning: buffer)
                    return nil
                }
                let result = state.collect(
                    buffer.events.baseAddress!, count: Int(n), into: io.events!, written: before, capacity: capacity,
                    newScan: startScan, drainUnsignaled: drainUnsignaled)
                let looksAgain = result.written < capacity && mayLookAgain && result.absorbed > 0
                let ends = !looksAgain && (result.written > 0 || polling)
                if ends { state.endWait(returning: buffer) }
                return (result.written, result.absorbed, ends)
            }
            guard let outcome else { return .failure(Errno(rawValue: EBADF)) }
            written = outcome.written
            if outcome.ended { return .success(written) }
            if written > before { newScan = false }
            if written < capacity && mayLookAgain && outcome.absorbed > 0 {
                extraLooks -= 1
                continue
            }
            // Nothing usable (a spurious or filtered wake): never return 0 before the
            // timeout has passed (SPEC.md 2.7).
            if timeout != nil {
                let now = Syscall.monotonicNow()
                remaining = deadline.remaining(after: now)
                if remaining.isZero {
                    giveBack(buffer)
                    return .success(0)
                }
            }
            extraLooks = 3
        }
    }

    /// Ends a wait: the buffer goes back to the pool, or, once the kqueue is closed, away, and
    /// the last waiter to leave a closed kqueue closes its internal descriptors.
    private func giveBack(_ buffer: EpollBuffer, signal: Bool = false) {
        state.withLock { state in
            if signal && !state.isClosed { state.signalWakeup() }
            state.endWait(returning: buffer)
        }
    }

    /// True while `descriptor` still names this kqueue's epoll instance: there, adding the
    /// eventfd again fails with EEXIST, without side effects (modifying it would re-arm its
    /// edge and make the kqueue look readable). Elsewhere the add fails, or succeeds in a
    /// stranger's epoll instance and is undone at once.
    func ownsDescriptor() -> Bool {
        state.withLock { state in
            if state.isClosed { return true }
            let added = Syscall.epollCtl(descriptor, EPOLL_CTL_ADD, eventFD, events: 0, data: InternalSource.eventFD)
            if added != 0 { return Syscall.errno == EEXIST }
            _ = Syscall.epollCtl(descriptor, EPOLL_CTL_DEL, eventFD, events: 0, data: 0)
            return false
        }
    }

    /// Number of events a wait would return now (`data` for a kqueue watched by another).
    func pendingEventCount() -> Int {
        state.withLock { state in
            guard !state.isClosed else { return 0 }
            let scratch = state.takeBuffer(capacity: 64)
            defer { state.returnBuffer(scratch) }
            return state.pendingEventCount(scratch: scratch.events)
        }
    }
}

extension QueueState {
    /// Applies a changelist in order (SPEC.md 2.2-2.4): failed changes and receipts become
    /// EV_ERROR entries at the front of the eventlist. `error` is set when a failed change
    /// found no room (the call fails with it; later changes are not processed).
    mutating func apply(changes io: KEventBuffers, count: Int, eventCapacity: Int) -> (errors: Int, error: Int32) {
        var errors = 0
        for i in 0..<count {
            var change = io.changes.unsafelyUnwrapped[i]
            if change.filter == 0 { continue }  // SPEC.md 2.2: skipped
            change.flags &= ~EV.systemFlags
            let error = register(change)
            guard error != 0 || change.flags & EV.receipt != 0 else { continue }
            guard errors < eventCapacity else {
                // No room: an error fails the call; a receipt ends change processing.
                return (errors, error)
            }
            change.flags = EV.error
            change.data = Int64(error)
            io.events.unsafelyUnwrapped[errors] = change
            errors += 1
        }
        return (errors, 0)
    }

    /// An epoll_wait buffer of at least `capacity` entries, from the pool when possible.
    mutating func takeBuffer(capacity: Int) -> EpollBuffer {
        if let buffer = spareBuffer {
            spareBuffer = nil
            if buffer.events.count >= capacity { return buffer }
            buffer.events.deallocate()
        } else if let buffer = bufferPool.popLast() {
            if buffer.events.count >= capacity { return buffer }
            buffer.events.deallocate()
        }
        return EpollBuffer(events: .allocate(capacity: max(capacity, 64)))
    }

    /// Puts a buffer back for the next waiter.
    mutating func returnBuffer(_ buffer: EpollBuffer) {
        if spareBuffer == nil {
            spareBuffer = buffer
        } else {
            bufferPool.append(buffer)
        }
    }

    /// A waiter leaves: its buffer goes back to the pool, or, once the kqueue is closed,
    /// away, and the last waiter to leave a closed kqueue closes its internal descriptors.
    mutating func endWait(returning buffer: EpollBuffer) {
        waiters -= 1
        guard isClosed else {
            returnBuffer(buffer)
            return
        }
        buffer.events.deallocate()
        if waiters == 0 { closeInternalDescriptors() }
    }
}

/// An epoll_wait result buffer. Owned by one waiter at a time: taken from the kqueue's pool
/// under the lock and given back under the lock.
struct EpollBuffer: @unchecked Sendable {
    let events: UnsafeMutableBufferPointer<epoll_event>
}

/// A kqueue's descriptors created on first use, readable without the kqueue lock.
final class InternalDescriptors: Sendable {
    let inotify = Atomic<Int32>(-1)
    let vnodeInotify = Atomic<Int32>(-1)
    let processConnector = Atomic<Int32>(-1)
    let monotonicTimer = Atomic<Int32>(-1)
    let realtimeTimer = Atomic<Int32>(-1)
    let wakeup1 = Atomic<Int32>(-1)
    let wakeup2 = Atomic<Int32>(-1)
    let wakeup3 = Atomic<Int32>(-1)

    func publishWakeup(slot: Int, _ fd: Int32) {
        switch slot {
        case 1: wakeup1.store(fd, ordering: .releasing)
        case 2: wakeup2.store(fd, ordering: .releasing)
        case 3: wakeup3.store(fd, ordering: .releasing)
        default: break
        }
    }

    /// Closes them all (fork child, where the kqueue lock may be held by a lost thread).
    func closeAll() {
        Syscall.closeInternal(inotify.load(ordering: .acquiring))
        Syscall.closeInternal(vnodeInotify.load(ordering: .acquiring))
        Syscall.closeInternal(processConnector.load(ordering: .acquiring))
        Syscall.closeInternal(monotonicTimer.load(ordering: .acquiring))
        Syscall.closeInternal(realtimeTimer.load(ordering: .acquiring))
        Syscall.closeInternal(wakeup1.load(ordering: .acquiring))
        Syscall.closeInternal(wakeup2.load(ordering: .acquiring))
        Syscall.closeInternal(wakeup3.load(ordering: .acquiring))
    }
}

/// The caller's change and event lists, handed into the lock. The caller guarantees they
/// stay valid and unshared for the duration of the kevent() call.
struct KEventBuffers: @unchecked Sendable {
    let changes: UnsafePointer<kevent>?
    let events: UnsafeMutablePointer<kevent>?
}
