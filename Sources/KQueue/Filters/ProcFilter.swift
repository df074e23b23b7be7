import CKQueue
import CKQueueShim
import Glibc

/// EVFILT_PROC (SPEC.md 3).
///
/// - NOTE_EXIT: a pidfd per watched process, registered in the kqueue's epoll instance; it
///   becomes readable when the process exits, and the wait status is read without reaping
///   (the watcher never reaps). `filterState` holds the pidfd; epoll reports it with an
///   internal tag carrying the knote's index, and the report only asks the knote to re-check
///   its pidfd, so a report that outlived its knote is harmless.
/// - NOTE_FORK, NOTE_EXEC, NOTE_TRACK: the kernel's process connector
///   (``ProcessEventSource``), opened while some knote wants one of them. Without it
///   (no CAP_NET_ADMIN), asking for them fails with ENOTSUP, never silently.
/// - NOTE_TRACK: when a tracked process forks, the child is registered in the same kqueue
///   with the parent's flags, notes and udata, and reports NOTE_CHILD with `data` = the
///   parent's pid; if that fails, the parent's event carries NOTE_TRACKERR. NOTE_CHILD and
///   NOTE_EXIT never share one event.
///
/// Events accumulate in `fflags` until returned (EV_CLEAR is added, so they reset then).
enum ProcFilter {
    static let exit: UInt32 = 0x8000_0000
    static let fork: UInt32 = 0x4000_0000
    static let exec: UInt32 = 0x2000_0000
    static let track: UInt32 = 0x0000_0001
    static let trackError: UInt32 = 0x0000_0002
    static let child: UInt32 = 0x0000_0004
    /// The notes that need the process connector.
    static let connectorNotes: UInt32 = fork | exec | track

    /// Internal epoll tags (generation 0) from here on carry a PROC knote's index.
    static let tagBase: UInt64 = 1 << 31

    static func index(forTag tag: UInt64) -> Int32? {
        tag >= tagBase && tag - tagBase <= UInt64(Int32.max) ? Int32(tag - tagBase) : nil
    }

    static func attach(_ index: Int32, in state: inout QueueState) -> Int32? {
        let wanted = state.table[index].savedFlags
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
            closeProcessDescriptor(pidfd)
            return ESRCH
        }
        if wanted & connectorNotes != 0, let error = retainConnector(in: &state) {
            closeProcessDescriptor(pidfd)
            return error
        }
        let edge = UInt32(EPOLLIN.rawValue) | UInt32(EPOLLET.rawValue)
        guard Syscall.epollCtl(state.epollFD, EPOLL_CTL_ADD, pidfd, events: edge, data: tagBase + UInt64(index)) == 0
        else {
            let error = Syscall.errno
            if wanted & connectorNotes != 0 { state.processEvents.release() }
            closeProcessDescriptor(pidfd)
            return error
        }
        state.table[index].filterState = Int64(pidfd)
        state.table[index].flags |= EV.clear  // SPEC.md 2: PROC adds EV_CLEAR
        return nil
    }

    /// The connector, for a knote wanting NOTE_FORK/EXEC/TRACK: ENOTSUP when unavailable.
    private static func retainConnector(in state: inout QueueState) -> Int32? {
        if state.processEvents.descriptor < 0 {
            let publish = state.internalDescriptors
            state.processEvents.onChange = { publish.processConnector.store($0, ordering: .releasing) }
        }
        return state.processEvents.retain(epollFD: state.epollFD) == nil ? nil : ENOTSUP
    }

    private static func closeProcessDescriptor(_ pidfd: Int32) {
        KQueueRegistry.processDescriptorClosing(pidfd)
        Syscall.closeInternal(pidfd)
    }

    static func detach(_ index: Int32, in state: inout QueueState) {
        let pidfd = Int32(truncatingIfNeeded: state.table[index].filterState)
        guard pidfd >= 0 else { return }
        if state.table[index].savedFlags & connectorNotes != 0 { state.processEvents.release() }
        _ = Syscall.epollCtl(state.epollFD, EPOLL_CTL_DEL, pidfd, events: 0, data: 0)
        closeProcessDescriptor(pidfd)
        state.table[index].filterState = -1
    }

    static func modify(_ index: Int32, with change: kevent, in state: inout QueueState) -> Int32? {
        let before = state.table[index].savedFlags & connectorNotes != 0
        let after = change.fflags & connectorNotes != 0
        if after && !before, let error = retainConnector(in: &state) { return error }
        if before && !after { state.processEvents.release() }
        state.table[index].savedFlags = change.fflags
        state.table[index].savedData = change.data
        return nil
    }

    /// Epoll reported the pidfd of the knote at `index` (maybe a knote since dropped).
    static func reported(_ index: Int32, in state: inout QueueState) {
        guard index >= 0, Int(index) < state.table.slots.count, state.table[index].status.contains(.inUse),
            state.table[index].filter == FilterID.proc
        else { return }
        if hasExited(index, in: state) && state.table[index].savedFlags & exit == 0
            && state.table[index].fflags == 0
        {
            state.drop(index)  // FreeBSD's EV_DROP: the process is gone, nothing was asked
            return
        }
        state.recheckUserSpaceKnote(index)
    }

    private static func hasExited(_ index: Int32, in state: borrowing QueueState) -> Bool {
        let pidfd = Int32(truncatingIfNeeded: state.table[index].filterState)
        return pidfd >= 0 && kq_shim_pidfd_has_exited(pidfd) == 1
    }

    /// f_event: what happened since the last return (fork, exec from the connector; the exit
    /// from the pidfd, with the wait status, EV_EOF and EV_ONESHOT).
    static func isReady(_ index: Int32, in state: inout QueueState) -> Bool {
        // A pending NOTE_CHILD event goes out alone; the exit follows in its own event.
        if state.table[index].fflags & child != 0 { return true }
        if state.table[index].savedFlags & exit != 0 && hasExited(index, in: state) {
            let pidfd = Int32(truncatingIfNeeded: state.table[index].filterState)
            var status: Int32 = 0
            if kq_shim_pidfd_exit_status(pidfd, pid_t(state.table[index].ident), &status) != 0 { status = 0 }
            state.table[index].fflags |= exit
            state.table[index].data = Int64(status)
            state.table[index].flags |= EV.oneShot
            state.table[index].status.insert(.endOfFile)
        }
        return state.table[index].fflags != 0
    }

    /// After a NOTE_CHILD event is returned, the child's exit (if any) gets an event of its own.
    static func process(_ index: Int32, into event: kevent, in state: inout QueueState) {
        if event.fflags & child != 0 && state.table[index].savedFlags & exit != 0 && hasExited(index, in: state) {
            state.enqueue(index)
        }
    }

    /// Reads the connector's fork and exec events and records them in the knotes watching
    /// those processes.
    static func readProcessEvents(in state: inout QueueState) {
        var overflowed = false
        withUnsafeTemporaryAllocation(of: kq_proc_event.self, capacity: 64) { buffer in
            while true {
                let batch = state.processEvents.read(into: buffer)
                overflowed = overflowed || batch.overflowed
                for event in buffer[0..<batch.count] { occurred(event, in: &state) }
                if batch.count < buffer.count { break }
            }
        }
        if overflowed {
            // Events were lost: a tracked process may have forked unseen.
            for index in state.table.liveIndices
            where state.table[index].filter == FilterID.proc && state.table[index].savedFlags & track != 0 {
                state.table[index].fflags |= trackError
                state.activate(index)
            }
        }
    }

    private static func occurred(_ event: kq_proc_event, in state: inout QueueState) {
        if event.kind == Int32(KQ_PROC_EVENT_FORK) {
            forked(child: event.pid, parent: event.parent, in: &state)
            return
        }
        guard let index = state.lookup(filter: FilterID.proc, ident: UInt(UInt32(bitPattern: event.pid))),
            state.table[index].savedFlags & exec != 0
        else { return }
        state.table[index].fflags |= exec
        state.activate(index)
    }

    private static func forked(child pid: Int32, parent: Int32, in state: inout QueueState) {
        guard let index = state.lookup(filter: FilterID.proc, ident: UInt(UInt32(bitPattern: parent))) else { return }
        let wanted = state.table[index].savedFlags
        if wanted & track != 0 && !follow(child: pid, of: index, parent: parent, in: &state) {
            state.table[index].fflags |= trackError
        }
        if wanted & fork != 0 { state.table[index].fflags |= fork }
        if state.table[index].fflags != 0 { state.activate(index) }
    }

    /// NOTE_TRACK: registers the child with the parent's flags, notes and udata, and queues
    /// its NOTE_CHILD event. Returns false when the child could not be followed.
    private static func follow(child pid: Int32, of parentIndex: Int32, parent: Int32, in state: inout QueueState)
        -> Bool
    {
        let parentKnote = state.table[parentIndex]
        let stored = parentKnote.flags & (EV.oneShot | EV.clear | EV.dispatch)
        let change = kevent(
            ident: UInt(UInt32(bitPattern: pid)), filter: FilterID.proc, flags: stored | EV.add | EV.enable,
            fflags: parentKnote.savedFlags, data: 0, udata: parentKnote.udata, ext: parentKnote.ext)
        guard state.register(change) == 0, let index = state.lookup(filter: FilterID.proc, ident: change.ident) else {
            return false
        }
        // Its first event is NOTE_CHILD alone, even if it already exited (the exit follows).
        state.table[index].flags = stored | EV.clear
        state.table[index].status.remove(.endOfFile)
        state.table[index].fflags = (state.table[index].fflags & ~exit) | child
        state.table[index].data = Int64(parent)
        state.activate(index)
        return true
    }
}
