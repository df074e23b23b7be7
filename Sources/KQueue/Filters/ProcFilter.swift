import CKQueue
import CKQueueShim
import Glibc

/// EVFILT_PROC (SPEC.md 3): the exit of a process (NOTE_EXIT), through a pidfd per watched
/// process, registered in the kqueue's epoll instance. The pidfd becomes readable when the
/// process exits; the wait status is read without reaping (the watcher never reaps).
///
/// NOTE_FORK, NOTE_EXEC and NOTE_TRACK need the kernel's process connector (netlink,
/// CAP_NET_ADMIN), which this implementation does not use: asking for them fails with
/// ENOTSUP, never silently.
///
/// `filterState` holds the pidfd. Epoll reports it with an internal tag carrying the knote's
/// index; the report only asks the knote to re-check its pidfd, so a report that outlived
/// its knote is harmless.
enum ProcFilter {
    static let exit: UInt32 = 0x8000_0000
    static let fork: UInt32 = 0x4000_0000
    static let exec: UInt32 = 0x2000_0000
    static let track: UInt32 = 0x0000_0001
    /// The notes that need the process connector.
    static let unsupportedNotes: UInt32 = fork | exec | track

    /// Internal epoll tags (generation 0) from here on carry a PROC knote's index.
    static let tagBase: UInt64 = 1 << 31

    static func index(forTag tag: UInt64) -> Int32? {
        tag >= tagBase && tag - tagBase <= UInt64(Int32.max) ? Int32(tag - tagBase) : nil
    }

    static func attach(_ index: Int32, in state: inout QueueState) -> Int32? {
        let wanted = state.table[index].savedFlags
        if wanted & unsupportedNotes != 0 { return ENOTSUP }
        let ident = state.table[index].ident
        guard ident > 0, ident <= UInt(Int32.max) else { return ESRCH }
        let pidfd = KQueueRegistry.openProcessDescriptor(pid_t(ident))
        guard pidfd >= 0 else {
            let error = Syscall.errno
            return error == EINVAL ? ESRCH : error
        }
        // A process that already exited (a zombie) is accepted only for NOTE_EXIT, whose
        // event is then reported at once (FreeBSD: zpfind only when NOTE_EXIT is wanted).
        if wanted & exit == 0 && kq_shim_pidfd_has_exited(pidfd) == 1 {
            KQueueRegistry.processDescriptorClosing(pidfd)
            Syscall.closeInternal(pidfd)
            return ESRCH
        }
        let edge = UInt32(EPOLLIN.rawValue) | UInt32(EPOLLET.rawValue)
        guard Syscall.epollCtl(state.epollFD, EPOLL_CTL_ADD, pidfd, events: edge, data: tagBase + UInt64(index)) == 0
        else {
            let error = Syscall.errno
            KQueueRegistry.processDescriptorClosing(pidfd)
            Syscall.closeInternal(pidfd)
            return error
        }
        state.table[index].filterState = Int64(pidfd)
        state.table[index].flags |= EV.clear  // SPEC.md 2: PROC adds EV_CLEAR
        return nil
    }

    static func detach(_ index: Int32, in state: inout QueueState) {
        let pidfd = Int32(truncatingIfNeeded: state.table[index].filterState)
        guard pidfd >= 0 else { return }
        _ = Syscall.epollCtl(state.epollFD, EPOLL_CTL_DEL, pidfd, events: 0, data: 0)
        KQueueRegistry.processDescriptorClosing(pidfd)
        Syscall.closeInternal(pidfd)
        state.table[index].filterState = -1
    }

    static func modify(_ index: Int32, with change: kevent, in state: inout QueueState) -> Int32? {
        if change.fflags & unsupportedNotes != 0 { return ENOTSUP }
        state.table[index].savedFlags = change.fflags
        state.table[index].savedData = change.data
        return nil
    }

    /// Epoll reported the pidfd of the knote at `index` (maybe a knote since dropped).
    static func reported(_ index: Int32, in state: inout QueueState) {
        guard index >= 0, Int(index) < state.table.slots.count, state.table[index].status.contains(.inUse),
            state.table[index].filter == FilterID.proc
        else { return }
        if hasExited(index, in: state) && state.table[index].savedFlags & exit == 0 {
            state.drop(index)  // FreeBSD's EV_DROP: the process is gone, nothing was asked
            return
        }
        state.recheckUserSpaceKnote(index)
    }

    private static func hasExited(_ index: Int32, in state: borrowing QueueState) -> Bool {
        let pidfd = Int32(truncatingIfNeeded: state.table[index].filterState)
        return pidfd >= 0 && kq_shim_pidfd_has_exited(pidfd) == 1
    }

    /// f_event: once the process exited, the event carries NOTE_EXIT and the wait status,
    /// and the knote becomes a oneshot with EV_EOF (SPEC.md 3).
    static func isReady(_ index: Int32, in state: inout QueueState) -> Bool {
        guard hasExited(index, in: state), state.table[index].savedFlags & exit != 0 else { return false }
        let pidfd = Int32(truncatingIfNeeded: state.table[index].filterState)
        var status: Int32 = 0
        if kq_shim_pidfd_exit_status(pidfd, pid_t(state.table[index].ident), &status) != 0 { status = 0 }
        state.table[index].fflags = exit
        state.table[index].data = Int64(status)
        state.table[index].flags |= EV.oneShot
        state.table[index].status.insert(.endOfFile)
        return true
    }
}
