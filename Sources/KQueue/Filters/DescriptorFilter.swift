import CKQueue
import CKQueueShim
import Glibc

/// What EVFILT_READ and EVFILT_WRITE share: the descriptor's kind and its single epoll
/// registration, whose interest is the union of the enabled knotes on the descriptor.
///
/// Mode: level-triggered, so that epoll's own ready list is the queue of ready descriptors
/// and a returned level event costs no extra system call. The registration runs
/// edge-triggered (EPOLLET) when a knote wants EV_CLEAR or a low-water mark, when no knote
/// is enabled (only HUP/ERR could be reported), or after readiness was reported that no knote
/// could use; a level knote on an edge-triggered registration is re-armed (EPOLL_CTL_MOD,
/// which re-polls the file) after each delivery.
enum DescriptorFilter {
    static let readInterest = UInt32(EPOLLIN.rawValue) | UInt32(EPOLLRDHUP.rawValue)
    static let writeInterest = UInt32(EPOLLOUT.rawValue)
    static let hangupOrError = UInt32(EPOLLHUP.rawValue) | UInt32(EPOLLERR.rawValue)
    static let edgeTriggered = UInt32(EPOLLET.rawValue)

    /// Finds out what `fd` is (EBADF if it is not open) unless a knote on it already did.
    static func classifyIfNeeded(_ fd: Int32, in state: inout QueueState) -> Int32? {
        if let entry = state.table.existingDescriptor(fd), entry.kind != .unknown { return nil }
        guard let kind = classify(fd) else { return Syscall.errno }
        state.table.descriptors[state.table.descriptorEntry(fd)].kind = kind
        return nil
    }

    static func attach(_ index: Int32, in state: inout QueueState) -> Int32? {
        let fd = Int32(state.table[index].ident)
        let i = state.table.descriptorEntry(fd)
        if let error = classifyIfNeeded(fd, in: &state) { return error }
        let kind = state.table.descriptors[i].kind
        let filter = state.table[index].filter
        if filter == FilterID.write && kind == .pipe && readerIsGone(fd) { return EPIPE }
        if filter == FilterID.read && kind == .streamSocket {
            state.table.descriptors[i].receiveLowWater = Int64(
                max(1, Syscall.socketOption(fd, SOL_SOCKET, SO_RCVLOWAT) ?? 1))
        }
        kq_shim_mark_watched(fd)
        if kind.usesEpoll {
            let result = syncRegistration(fd: fd, in: &state)
            if let error = result.error {
                if error != EPERM { return error }
                // The file does not support poll: it is always ready (like a regular file).
                state.table.descriptors[i].kind = .alwaysReady
            } else {
                // An edge-triggered registration that already had this interest was not
                // re-polled: check the new knote from the user-space queue.
                let edgeTriggered = state.table.descriptors[i].registeredEvents & edgeTriggered != 0
                if result == .unchanged && edgeTriggered && !state.table[index].status.contains(.disabled) {
                    state.queueForRecheck(index)
                }
                return nil
            }
        }
        if state.table.descriptors[i].kind == .regularFile && filter == FilterID.read {
            state.regularFiles.watch(fd: fd, knote: index, epollFD: state.epollFD)
        }
        return nil
    }

    static func detach(_ index: Int32, in state: inout QueueState) {
        let fd = Int32(state.table[index].ident)
        // The knote is already unlinked from the entry: the registration shrinks or goes.
        syncRegistration(fd: fd, in: &state)
        if state.table[index].filter == FilterID.read, state.table.descriptors[Int(fd)].kind == .regularFile {
            state.regularFiles.unwatch(knote: index)
        }
        if state.table.descriptors[Int(fd)].isEmpty {
            state.table.descriptors[Int(fd)].kind = .unknown
            state.table.descriptors[Int(fd)].edgeForced = false
            state.table.descriptors[Int(fd)].wasConnected = false
        }
    }

    /// The epoll `events` word the descriptor's enabled knotes need.
    static func desiredEvents(_ entry: DescriptorEntry, in table: borrowing KnoteTable) -> UInt32 {
        var events: UInt32 = 0
        var edge = entry.edgeForced
        for pass in 0..<2 {
            let index = pass == 0 ? entry.read : entry.write
            guard index >= 0 else { continue }
            let interest = pass == 0 ? readInterest : writeInterest
            let knote = table[index]
            guard !knote.status.contains(.disabled) else { continue }
            events |= interest
            if knote.flags & EV.clear != 0 || knote.savedFlags & Note.lowWater != 0 { edge = true }
        }
        if events == 0 { edge = true }  // quiet: HUP and ERR cannot be masked out
        return edge ? events | edgeTriggered : events
    }

    /// What ``syncRegistration(fd:in:)`` did.
    enum SyncResult: Equatable {
        case unchanged
        /// The registration was added or modified: epoll re-polled the file and reports what
        /// is ready now.
        case repolled
        case failed(Int32)

        var error: Int32? {
            if case .failed(let error) = self { return error }
            return nil
        }
    }

    /// Brings the epoll registration of `fd` in line with its knotes.
    ///
    /// An edge-triggered registration only ever gains interest bits (until it is removed):
    /// modifying it makes epoll re-poll the file and report an EV_CLEAR knote again although
    /// its source did not change, while a stale bit costs at most one ignored report per edge.
    ///
    /// With `repoll`, the registration is modified even when unchanged, so that epoll polls
    /// the file again and reports it once if it is ready.
    @discardableResult
    static func syncRegistration(fd: Int32, repoll: Bool = false, in state: inout QueueState) -> SyncResult {
        let i = Int(fd)
        guard i < state.table.descriptors.count else { return .unchanged }
        let entry = state.table.descriptors[i]
        guard entry.kind.usesEpoll else { return .unchanged }
        if entry.isEmpty {
            if entry.isRegistered {
                _ = Syscall.epollCtl(state.epollFD, EPOLL_CTL_DEL, fd, events: 0, data: 0)
                state.table.descriptors[i].isRegistered = false
            }
            return .unchanged
        }
        var events = desiredEvents(entry, in: state.table)
        if entry.isRegistered {
            if entry.registeredEvents & edgeTriggered != 0 { events |= entry.registeredEvents | edgeTriggered }
            if events == entry.registeredEvents && !repoll { return .unchanged }
            let tag = DescriptorEntry.tag(fd: fd, generation: entry.generation)
            if Syscall.epollCtl(state.epollFD, EPOLL_CTL_MOD, fd, events: events, data: tag) == 0 {
                state.table.descriptors[i].registeredEvents = events
                return .repolled
            }
            // ENOENT: the number now names another open file (closed behind our back and
            // reused); the old registration went with the old file. Register the new one.
            guard Syscall.errno == ENOENT else { return .failed(Syscall.errno) }
        }
        var generation = entry.generation &+ 1
        if generation == 0 { generation = 1 }
        let tag = DescriptorEntry.tag(fd: fd, generation: generation)
        guard Syscall.epollCtl(state.epollFD, EPOLL_CTL_ADD, fd, events: events, data: tag) == 0 else {
            return .failed(Syscall.errno)
        }
        state.table.descriptors[i].generation = generation
        state.table.descriptors[i].isRegistered = true
        state.table.descriptors[i].registeredEvents = events
        return .repolled
    }

    /// Removes and adds the registration of `fd` again: epoll re-polls the file and, if it is
    /// ready, queues it at the tail of its list.
    static func reregister(fd: Int32, in state: inout QueueState) {
        let i = Int(fd)
        guard i < state.table.descriptors.count, state.table.descriptors[i].isRegistered else { return }
        _ = Syscall.epollCtl(state.epollFD, EPOLL_CTL_DEL, fd, events: 0, data: 0)
        state.table.descriptors[i].isRegistered = false
        syncRegistration(fd: fd, in: &state)
    }

    /// Finds out what kind of file `fd` is; nil with `errno` set (EBADF) if it is not open.
    static func classify(_ fd: Int32) -> DescriptorKind? {
        guard let status = Syscall.fileStatus(fd) else { return nil }
        switch status.st_mode & S_IFMT {
        case S_IFSOCK:
            let type = Syscall.socketOption(fd, SOL_SOCKET, SO_TYPE) ?? Int32(SOCK_STREAM.rawValue)
            if type == Int32(SOCK_DGRAM.rawValue) || type == Int32(SOCK_RAW.rawValue) { return (.datagramSocket) }
            if Syscall.socketOption(fd, SOL_SOCKET, SO_ACCEPTCONN) == 1 { return (.listeningSocket) }
            return (.streamSocket)
        case S_IFIFO: return (.pipe)
        case S_IFREG, S_IFDIR: return (.regularFile)
        case S_IFCHR: return (isatty(fd) == 1 ? .terminal : .other)
        default:
            return (KQueueRegistry.isKQueue(fd) ? .kqueue : .other)
        }
    }

    private static func readerIsGone(_ fd: Int32) -> Bool {
        var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        return poll(&poller, 1, 0) == 1 && poller.revents & Int16(POLLERR) != 0
    }

    /// f_event for READ and WRITE: is the knote's condition true now, and with what `data`,
    /// `fflags` and EOF? `revents` is what epoll reported (0 for files epoll does not watch).
    static func evaluate(_ index: Int32, revents: UInt32, in state: inout QueueState) -> Bool {
        // SAFETY: a knote and its descriptor entry live in two different tables; both
        // pointers stay valid while the lock is held and neither table grows here.
        let knote = state.table.slots.pointer(Int(index))
        let fd = Int32(knote.pointee.ident)
        let entry = state.table.descriptors.pointer(Int(fd))
        return knote.pointee.filter == FilterID.read
            ? ReadFilter.evaluate(&knote.pointee, entry: &entry.pointee, fd: fd, revents: revents)
            : WriteFilter.evaluate(&knote.pointee, entry: &entry.pointee, fd: fd, revents: revents)
    }

    /// f_event outside an epoll report: files epoll does not watch are evaluated directly;
    /// a knote of an epoll-watched descriptor asks poll(2) for the current readiness.
    static func recheck(_ index: Int32, in state: inout QueueState) -> Bool {
        let fd = Int32(state.table[index].ident)
        guard let entry = state.table.existingDescriptor(fd), entry.kind.usesEpoll else {
            return evaluate(index, revents: 0, in: &state)
        }
        let interest =
            state.table[index].filter == FilterID.read ? Int16(POLLIN) | 0x2000 /* POLLRDHUP */ : Int16(POLLOUT)
        var poller = pollfd(fd: fd, events: interest, revents: 0)
        guard poll(&poller, 1, 0) == 1 else { return false }
        // POLL* and EPOLL* bits have the same values on Linux.
        return evaluate(index, revents: UInt32(UInt16(bitPattern: poller.revents)), in: &state)
    }

    /// True once a stream socket has been seen connected (a hang-up report on a socket that
    /// never connected is Linux's way of saying "not connected", not an end of file).
    static func hasBeenConnected(_ fd: Int32, entry: inout DescriptorEntry) -> Bool {
        if entry.wasConnected { return true }
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let connected = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) == 0 }
        }
        if connected { entry.wasConnected = true }
        return connected
    }

    /// The socket's pending error for `fflags` with EV_EOF, read only when epoll reported one.
    static func socketError(_ fd: Int32, revents: UInt32) -> UInt32 {
        guard revents & UInt32(EPOLLERR.rawValue) != 0 else { return 0 }
        return UInt32(bitPattern: kq_shim_take_socket_error(fd))
    }
}
