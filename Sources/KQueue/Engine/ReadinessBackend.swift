import CKQueueShim
import Glibc
import SystemPackage

/// Where a kqueue learns that descriptors are ready: the one seam between the core and the
/// kernel's readiness interface. The core and the filters speak epoll's vocabulary (an
/// interest word with EPOLLET, a 64-bit tag, reports as `epoll_event`); each case keeps it
/// its own way:
///
/// - ``epoll(_:)``: the epoll instance that is also the kqueue descriptor.
/// - ``ioURing(epoll:ring:)``: poll requests in a ring of the kqueue's own
///   (`CKQueueShim/ring_readiness.c`); a change is written to the submission queue and goes to
///   the kernel with the next wait, in one `io_uring_enter`. The epoll instance stays the
///   kqueue descriptor and holds only the ring's descriptor, which is readable while
///   completions wait: the kqueue stays pollable and nestable.
///
/// An enum of two cases rather than a protocol: every call is one predictable branch and
/// inlines, with no existential and no generic parameter spreading through the core.
///
/// Lock rule: everything except ``look(into:requested:timeout:)`` runs with the kqueue lock
/// held (the ring's queues then have one producer and one consumer each).
enum ReadinessBackend: @unchecked Sendable {  // SAFETY: the ring is used under the kqueue lock (see above)
    case epoll(Int32)
    case ioURing(epoll: Int32, ring: OpaquePointer)

    /// The kqueue descriptor the caller sees (an epoll instance in both cases).
    @inline(__always)
    var kqueueDescriptor: Int32 {
        switch self {
        case .epoll(let fd), .ioURing(let fd, _): fd
        }
    }

    /// Which backend this is.
    var kind: KernelQueue.Backend {
        switch self {
        case .epoll: .epoll
        case .ioURing: .ioURing
        }
    }

    /// A registration with no interest is still reported for hang-up and error (epoll); the
    /// ring does not poll it at all, so it needs no edge-triggered mode to stay quiet.
    @inline(__always)
    var reportsWithoutInterest: Bool {
        if case .epoll = self { return true }
        return false
    }

    /// The ring's descriptor (registered in the epoll instance), nil for epoll.
    var ringDescriptor: Int32? {
        switch self {
        case .epoll: nil
        case .ioURing(_, let ring): Syscall.ringDescriptor(ring)
        }
    }

    /// The tag of the ring's registration in the epoll instance: a wakeup slot the scan
    /// ignores (nobody waits in that epoll instance but outside pollers).
    static let ringTag = EpollTag.wakeup(slot: WakeupSignals.maximum)

    /// Opens the backend `kind` asks for. A ring that cannot be created (no io_uring, refused
    /// by `kernel.io_uring_disabled` or seccomp, ENOMEM) falls back to epoll; `fallback`
    /// receives why.
    static func open(_ kind: KernelQueue.Backend, fallback: inout Errno?) throws(Errno) -> ReadinessBackend {
        let epollFD = try Syscall.epollCreate()
        guard kind == .ioURing else { return .epoll(epollFD) }
        let ring: OpaquePointer
        do throws(Errno) {
            ring = try Syscall.ringOpen(entries: 256)
        } catch {
            fallback = error
            return .epoll(epollFD)
        }
        do throws(Errno) {
            let level = UInt32(EPOLLIN.rawValue)
            try Syscall.epollCtl(epollFD, EPOLL_CTL_ADD, Syscall.ringDescriptor(ring), events: level, data: ringTag)
        } catch {
            Syscall.ringClose(ring)
            Syscall.closeInternal(epollFD)
            throw error
        }
        return .ioURing(epoll: epollFD, ring: ring)
    }

    // MARK: Interest (epoll_ctl's three operations)

    @inline(__always)
    func add(_ fd: Int32, events: UInt32, tag: UInt64) throws(Errno) {
        switch self {
        case .epoll(let epollFD): try Syscall.epollCtl(epollFD, EPOLL_CTL_ADD, fd, events: events, data: tag)
        case .ioURing(let epollFD, let ring):
            if fd == epollFD { throw .invalidArgument }  // epoll's answer for an instance in itself
            try Syscall.ringCtl(ring, EPOLL_CTL_ADD, fd, events: events, data: tag)
        }
    }

    /// Changes a registration's interest; the file is polled again (a ready file is reported).
    @inline(__always)
    func modify(_ fd: Int32, events: UInt32, tag: UInt64) throws(Errno) {
        switch self {
        case .epoll(let epollFD): try Syscall.epollCtl(epollFD, EPOLL_CTL_MOD, fd, events: events, data: tag)
        case .ioURing(_, let ring): try Syscall.ringCtl(ring, EPOLL_CTL_MOD, fd, events: events, data: tag)
        }
    }

    /// Removes a registration that is going away; its failure changes nothing (see
    /// `Syscall.epollRemove`). The ring submits the removal at once: a pending poll holds its
    /// file, which must not outlive close(2).
    func remove(_ fd: Int32) {
        switch self {
        case .epoll(let epollFD): Syscall.epollRemove(epollFD, fd)
        case .ioURing(_, let ring): try? Syscall.ringCtl(ring, EPOLL_CTL_DEL, fd, events: 0, data: 0)
        }
    }

    /// A TCP socket's READ byte count may come with its reports (io_uring: SIOCINQ linked
    /// after the read poll); epoll has none to give.
    func countBytes(_ fd: Int32) {
        guard case .ioURing(_, let ring) = self else { return }
        Syscall.ringCountBytes(ring, fd)
    }

    /// The byte count that came with this scan's report of `fd`, if any (else FIONREAD).
    @inline(__always)
    func reportedBytes(_ fd: Int32) -> Int64? {
        guard case .ioURing(_, let ring) = self else { return nil }
        return Syscall.ringBytes(ring, fd)
    }

    // MARK: Waiting and reports

    /// One wait, without the lock: epoll fills `buffer` and returns the count; the ring
    /// submits the queued changes, waits for a completion and returns 1 ("maybe reports":
    /// ``take(into:requested:looked:)`` counts them under the lock).
    @inline(__always)
    func look(
        into buffer: UnsafeMutablePointer<epoll_event>, requested: Int32, timeout: UnsafePointer<timespec>?
    ) throws(Errno) -> Int32 {
        switch self {
        case .epoll(let epollFD):
            return try Syscall.epollWait(epollFD, buffer, requested, timeout)
        case .ioURing(_, let ring):
            let polling = timeout.map { $0.pointee.tv_sec == 0 && $0.pointee.tv_nsec == 0 } ?? false
            // A poll with nothing to submit needs no system call: completions are in memory.
            if !polling || Syscall.ringHasPending(ring) { try Syscall.ringEnter(ring, timeout) }
            return 1
        }
    }

    /// The reports of the last look, under the lock: epoll's are in `buffer` already; the
    /// ring's completions are moved there now.
    @inline(__always)
    func take(into buffer: UnsafeMutablePointer<epoll_event>, requested: Int32, looked: Int32) -> Int32 {
        switch self {
        case .epoll: looked
        case .ioURing(_, let ring): Syscall.ringTake(ring, buffer, requested)
        }
    }

    /// The end of a locked section before a wait: the ring writes the arms it queued (a
    /// level registration reported in this scan, changes) to the submission queue.
    @inline(__always)
    func prepareWait() {
        guard case .ioURing(_, let ring) = self else { return }
        Syscall.ringPrepare(ring)
    }

    /// The end of a call that does not wait: its changes go to the kernel now, so that the
    /// kqueue descriptor's readiness (poll, an outer kqueue) follows them.
    @inline(__always)
    func submitChanges() {
        guard case .ioURing(_, let ring) = self, Syscall.ringHasPending(ring) else { return }
        Syscall.ringSubmit(ring)
    }

    /// Reports available now, without waiting (a kqueue's pending count for a watcher).
    func peek(into scratch: UnsafeMutableBufferPointer<epoll_event>) -> Int32 {
        switch self {
        case .epoll(let epollFD):
            var zero = timespec(tv_sec: 0, tv_nsec: 0)
            return (try? Syscall.epollWait(epollFD, scratch.baseAddress!, Int32(scratch.count), &zero)) ?? 0
        case .ioURing(_, let ring):
            Syscall.ringSubmit(ring)
            let n = Syscall.ringTake(ring, scratch.baseAddress!, Int32(scratch.count))
            Syscall.ringSubmit(ring)  // level registrations just taken are asked again
            return n
        }
    }

    /// Makes every thread waiting in this kqueue return (it is closing): epoll's primary
    /// eventfd becomes level-triggered and signalled; the ring posts a completion nobody takes.
    func wakeAllWaiters(eventFD: Int32) {
        switch self {
        case .epoll(let epollFD):
            let level = UInt32(EPOLLIN.rawValue)
            // Cannot fail: the eventfd is registered in this live epoll instance.
            try? Syscall.epollCtl(epollFD, EPOLL_CTL_MOD, eventFD, events: level, data: EpollTag.wakeup(slot: 0))
            Syscall.eventFDSignal(eventFD)
        case .ioURing(_, let ring):
            Syscall.ringWakeAll(ring)
        }
    }

    /// True while `kqueueDescriptor` still names this kqueue's epoll instance: adding its
    /// anchor (the eventfd, or the ring's descriptor) again fails there with EEXIST, without
    /// side effects. Elsewhere the add fails, or succeeds in a stranger's instance and is undone.
    func ownsKQueueDescriptor(eventFD: Int32) -> Bool {
        let fd = kqueueDescriptor
        let anchor = ringDescriptor ?? eventFD
        let tag = ringDescriptor == nil ? EpollTag.wakeup(slot: 0) : Self.ringTag
        do throws(Errno) {
            try Syscall.epollCtl(fd, EPOLL_CTL_ADD, anchor, events: 0, data: tag)
        } catch {
            return error == .fileExists
        }
        Syscall.epollRemove(fd, anchor)
        return false
    }

    /// Releases the ring (its pending polls are cancelled, and the files they held let go).
    /// The epoll instance is the kqueue descriptor: its owner closes it.
    func closeRing() {
        guard case .ioURing(_, let ring) = self else { return }
        Syscall.ringClose(ring)
    }
}
