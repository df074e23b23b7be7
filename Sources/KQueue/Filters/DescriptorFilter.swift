import CKQueue
import CKQueueShim
import Glibc
import SystemPackage

/// What EVFILT_READ and EVFILT_WRITE share: knotes found through ``DescriptorTable`` (two
/// slots per descriptor), the descriptor's kind, and its single epoll registration, whose
/// interest is the union of the enabled knotes' interests (``DescriptorFilter`` keeps it in
/// line, `DescriptorRegistration.swift`; delivery is in `DescriptorDelivery.swift`).
///
/// ``ReadFilter`` and ``WriteFilter`` conform: each gives its interest and its `f_event`
/// (``evaluate(_:entry:fd:revents:)``); everything else is shared here. ``EmptyFilter`` takes
/// the third slot and shares the registration, but is delivered from the active queue: an
/// epoll report only prompts its check.
protocol DescriptorFilterOperations: FilterOperations {
    /// The epoll interest of an enabled knote of this filter.
    static var epollInterest: UInt32 { get }
    /// The epoll report bits that concern this filter's knote.
    static var reportedBits: UInt32 { get }
    /// The poll(2) events of a re-check outside an epoll report.
    static var pollEvents: Int16 { get }
    /// `f_event` proper: is the knote's condition true now, and with what `data`, `fflags` and
    /// EOF? `revents` is what epoll or poll reported (0 for files epoll does not watch).
    static func evaluate(_ knote: inout Knote, entry: inout DescriptorEntry, fd: Int32, revents: UInt32) -> Bool
    /// This filter's own checks and sources when a knote attaches (before the registration).
    static func attaching(_ knote: Int32, fd: Int32, kind: DescriptorKind, in state: inout QueueState) throws(Errno)
    /// This filter's own sources when a knote detaches (after the registration shrank).
    static func detaching(_ knote: Int32, fd: Int32, kind: DescriptorKind, in state: inout QueueState)
}

extension DescriptorFilterOperations {
    static var identIsDescriptor: Bool { true }

    @inline(__always)
    static func find(_ ident: UInt, in state: inout QueueState) -> Int32? {
        guard ident <= UInt(Int32.max), let entry = state.sources.descriptors.existing(Int32(ident)) else { return nil }
        let index = entry.knote(filter)
        return index >= 0 ? index : nil
    }

    static func link(_ knote: Int32, in state: inout QueueState) throws(Errno) {
        let fd = Int32(state.table[knote].ident)
        // The number must name an open file before the table grows for it.
        try DescriptorFilter.classifyIfNeeded(fd, in: &state)
        let i = state.sources.descriptors.entry(fd)
        state.sources.descriptors.entries[i].setKnote(filter, knote)
    }

    static func unlink(_ knote: Int32, in state: inout QueueState) {
        state.sources.descriptors.entries[Int(state.table[knote].ident)].setKnote(filter, -1)
    }

    static func attach(_ knote: Int32, in state: inout QueueState) throws(Errno) {
        let fd = Int32(state.table[knote].ident)
        do throws(Errno) {
            try DescriptorFilter.attach(knote, fd: fd, as: Self.self, in: &state)
        } catch {
            // What was learned about the descriptor (its kind) must not outlive a failed
            // attach: the number may name another file by the next EV_ADD.
            let i = Int(fd)
            if state.sources.descriptors.entries[i].knoteCount <= 1 {
                state.sources.descriptors.entries[i].forgetFile()
            }
            throw error
        }
    }

    static func detach(_ knote: Int32, in state: inout QueueState) {
        let fd = Int32(state.table[knote].ident)
        // The knote is already unlinked from the entry: the registration shrinks or goes.
        DescriptorFilter.syncRegistration(fd: fd, in: &state)
        detaching(knote, fd: fd, kind: state.sources.descriptors.entries[Int(fd)].kind, in: &state)
        if state.sources.descriptors.entries[Int(fd)].isEmpty {
            state.sources.descriptors.entries[Int(fd)].forgetFile()
        }
    }

    /// Right after EV_ADD, EV_ENABLE or a modification: an epoll registration reports a ready
    /// source by itself when it was just added or modified (epoll re-polls the file), and so
    /// does a level-triggered one; otherwise the knote is re-checked from the active queue.
    static func registered(_ knote: Int32, justAttached: Bool, in state: inout QueueState) {
        let fd = Int32(state.table[knote].ident)
        guard state.sources.descriptors.entries[Int(fd)].kind.usesEpoll else {
            checkAndQueue(knote, in: &state)
            return
        }
        if justAttached { return }  // attach re-polled the registration, or checked the knote
        DescriptorFilter.syncAndCheck(knote, fd: fd, in: &state)
    }

    /// `f_event` outside an epoll report: files epoll does not watch are evaluated directly;
    /// a knote of an epoll-watched descriptor asks poll(2) for the current readiness.
    static func event(_ knote: Int32, in state: inout QueueState) -> Bool {
        let fd = Int32(state.table[knote].ident)
        guard let entry = state.sources.descriptors.existing(fd), entry.kind.usesEpoll else {
            return evaluate(knote, revents: 0, in: &state)
        }
        let revents = Syscall.currentReadiness(fd, events: pollEvents)
        return revents != 0 && evaluate(knote, revents: revents, in: &state)
    }

    /// ``evaluate(_:entry:fd:revents:)`` on the knote and its descriptor's entry in place.
    @inline(__always)
    static func evaluate(_ knote: Int32, revents: UInt32, in state: inout QueueState) -> Bool {
        // SAFETY: a knote and its descriptor entry live in two different tables; both
        // pointers stay valid while the lock is held and neither table grows here.
        let knotePointer = state.table.slots.pointer(Int(knote))
        let fd = Int32(knotePointer.pointee.ident)
        let entryPointer = state.sources.descriptors.entries.pointer(Int(fd))
        return evaluate(&knotePointer.pointee, entry: &entryPointer.pointee, fd: fd, revents: revents)
    }

    static func deliver(_ knote: Int32, into event: inout kevent, in state: inout QueueState) -> Bool { false }
}

/// The shared work of EVFILT_READ and EVFILT_WRITE.
enum DescriptorFilter {
    static let edgeTriggered = UInt32(EPOLLET.rawValue)
    static let hangupOrError = UInt32(EPOLLHUP.rawValue) | UInt32(EPOLLERR.rawValue)

    /// Brings the registration of `fd` in line after a change to `knote` and makes sure a
    /// ready source is reported once: an enabled EV_CLEAR knote has epoll re-poll the file
    /// (one report per condition: a check from the active queue as well, and epoll's next
    /// edge for the same change, would return it twice); another on an edge-triggered
    /// registration that was not re-polled is checked from the active queue.
    @discardableResult
    static func syncAndCheck(_ knote: Int32, fd: Int32, in state: inout QueueState) -> Result<SyncResult, Errno> {
        let enabled = !state.table[knote].status.contains(.disabled)
        let repoll = state.table[knote].flags & EV.clear != 0 && enabled
        let result = syncRegistration(fd: fd, repoll: repoll, in: &state)
        let edgeTriggered = state.sources.descriptors.entries[Int(fd)].isEdgeTriggered
        if edgeTriggered && result != .success(.repolled) && enabled { state.queueForRecheck(knote) }
        return result
    }

    /// Finds out what `fd` is (EBADF if it is not open) unless a knote on it already did.
    static func classifyIfNeeded(_ fd: Int32, in state: inout QueueState) throws(Errno) {
        if let entry = state.sources.descriptors.existing(fd), entry.kind != .unknown { return }
        let kind = try DescriptorKind.classify(fd)
        state.sources.descriptors.entries[state.sources.descriptors.entry(fd)].kind = kind
    }

    static func attach<F: DescriptorFilterOperations>(
        _ knote: Int32, fd: Int32, as filter: F.Type, in state: inout QueueState
    ) throws(Errno) {
        let i = Int(fd)
        try classifyIfNeeded(fd, in: &state)
        try F.attaching(knote, fd: fd, kind: state.sources.descriptors.entries[i].kind, in: &state)
        Syscall.markWatched(fd)
        guard state.sources.descriptors.entries[i].kind.usesEpoll else { return }
        switch syncRegistration(fd: fd, in: &state) {
        case .success(.unchanged):
            // The registration already had this interest and was not re-polled: the new knote
            // is checked as a modified one is.
            if case .failure(let error) = syncAndCheck(knote, fd: fd, in: &state) {
                state.activeQueue.remove(knote, in: &state.table)  // the caller frees the knote
                throw error
            }
        case .success(.repolled):
            break
        case .failure(.notPermitted):
            // The file does not support poll: it is always ready (like a regular file).
            state.sources.descriptors.entries[i].kind = .alwaysReady
        case .failure(let error):
            throw error
        }
    }

    /// True once a stream socket has been seen connected (a hang-up report on a socket that
    /// never connected is Linux's way of saying "not connected", not an end of file).
    static func hasBeenConnected(_ fd: Int32, entry: inout DescriptorEntry) -> Bool {
        if entry.wasConnected { return true }
        let connected = Syscall.hasPeer(fd)
        if connected { entry.wasConnected = true }
        return connected
    }

    /// The socket's pending error for `fflags` with EV_EOF, read only when epoll reported one.
    static func socketError(_ fd: Int32, revents: UInt32) -> UInt32 {
        guard revents & UInt32(EPOLLERR.rawValue) != 0 else { return 0 }
        return Syscall.socketError(fd)
    }

    @inline(__always)
    static func setEndOfFile(_ knote: inout Knote, _ endOfFile: Bool) {
        if endOfFile { knote.status.insert(.endOfFile) } else { knote.status.remove(.endOfFile) }
    }
}
