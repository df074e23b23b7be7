import CKQueue
import CKQueueShim
import Glibc
import SystemPackage

/// EVFILT_PROC (SPEC.md 3).
///
/// - NOTE_EXIT: a pidfd per watched process, registered in the kqueue's epoll instance; it
///   becomes readable when the process exits, and the wait status is read without reaping
///   (the watcher never reaps). `filterState` holds the pidfd; epoll reports it with the
///   filter's tag carrying the knote's index as payload, and the report only asks the knote
///   to re-check its pidfd, so a report that outlived its knote is harmless.
/// - NOTE_FORK, NOTE_EXEC, NOTE_TRACK: the kernel's process connector
///   (``ProcessEventSource``), opened while some knote wants one of them. Without it
///   (no CAP_NET_ADMIN), asking for them fails with ENOTSUP, never silently.
/// - NOTE_TRACK: when a tracked process forks, the child is registered in the same kqueue
///   with the parent's flags, notes and udata, and reports NOTE_CHILD with `data` = the
///   parent's pid; if that fails, the parent's event carries NOTE_TRACKERR. NOTE_CHILD and
///   NOTE_EXIT never share one event.
///
/// Events accumulate in `fflags` until returned (EV_CLEAR is added, so they reset then).
///
/// The exit is recorded where it is learnt (the check after registration, the pidfd's report,
/// the return of a NOTE_CHILD event), never by the scan's `event`: recording it sets EV_ONESHOT,
/// and the scan drops a knote that was a oneshot when it took it from the queue. An exit the
/// scan found by itself would go out on a knote that stays, whose pidfd then reports again (the
/// exit's own edge, or the kernel's wakeup when the process is reaped): a second NOTE_EXIT.
enum ProcFilter: FilterOperations {
    static var filter: Int16 { FilterID.proc }
    /// The notes that need the process connector.
    static let connectorNotes: UInt32 = Note.fork | Note.exec | Note.track
    /// In `filterState`, above the pidfd's 32 bits: the knote's EV_ONESHOT was added by its
    /// recorded exit, not asked for (a child it forks earlier inherits only what was asked).
    private static let oneShotFromExit: Int64 = 1 << 32

    static func attach(_ knote: Int32, in state: inout QueueState) throws(Errno) {
        let wanted = state.table[knote].savedFlags
        let ident = state.table[knote].ident
        guard ident > 0, ident <= UInt(Int32.max) else { throw .noSuchProcess }
        let pidfd: Int32
        do throws(Errno) {
            pidfd = try KQueueRegistry.openProcessDescriptor(pid_t(ident))
        } catch {
            throw error == .invalidArgument ? .noSuchProcess : error
        }
        do throws(Errno) {
            try watch(knote, pidfd: pidfd, wanted: wanted, in: &state)
        } catch {
            closeProcessDescriptor(pidfd)
            throw error
        }
        state.table[knote].filterState = Int64(pidfd)
        state.table[knote].flags |= EV.clear  // SPEC.md 2: PROC adds EV_CLEAR
    }

    private static func watch(_ knote: Int32, pidfd: Int32, wanted: UInt32, in state: inout QueueState) throws(Errno) {
        // A process that already exited (a zombie) is accepted only for NOTE_EXIT, whose
        // event is then reported at once (FreeBSD: zpfind only when NOTE_EXIT is wanted).
        if wanted & Note.exit == 0 && Syscall.pidfdHasExited(pidfd) { throw .noSuchProcess }
        if wanted & connectorNotes != 0 { try retainConnector(in: &state) }
        let edge = UInt32(EPOLLIN.rawValue) | UInt32(EPOLLET.rawValue)
        do throws(Errno) {
            let tag = EpollTag.source(filter: filter, payload: UInt32(knote))
            try Syscall.epollCtl(state.epollFD, EPOLL_CTL_ADD, pidfd, events: edge, data: tag)
        } catch {
            if wanted & connectorNotes != 0 { state.sources.processEvents.release(registrar: state.registrar) }
            throw error
        }
    }

    /// The connector, for a knote wanting NOTE_FORK/EXEC/TRACK: ENOTSUP when unavailable.
    private static func retainConnector(in state: inout QueueState) throws(Errno) {
        do throws(Errno) {
            try state.sources.processEvents.retain(registrar: state.registrar)
        } catch {
            throw .notSupported
        }
    }

    private static func closeProcessDescriptor(_ pidfd: Int32) {
        KQueueRegistry.processDescriptorClosing(pidfd)
        Syscall.closeInternal(pidfd)
    }

    static func detach(_ knote: Int32, in state: inout QueueState) {
        let pidfd = Int32(truncatingIfNeeded: state.table[knote].filterState)
        guard pidfd >= 0 else { return }
        if state.table[knote].savedFlags & connectorNotes != 0 {
            state.sources.processEvents.release(registrar: state.registrar)
        }
        Syscall.epollRemove(state.epollFD, pidfd)
        closeProcessDescriptor(pidfd)
        state.table[knote].filterState = -1
    }

    static func touch(_ knote: Int32, with change: kevent, in state: inout QueueState) throws(Errno) {
        let before = state.table[knote].savedFlags & connectorNotes != 0
        let after = change.fflags & connectorNotes != 0
        if after && !before { try retainConnector(in: &state) }
        if before && !after { state.sources.processEvents.release(registrar: state.registrar) }
        state.table[knote].savedFlags = change.fflags
        state.table[knote].savedData = change.data
    }

    /// A pidfd (payload: its knote's index) or the connector (``ProcessEventSource/payload``)
    /// reported.
    static func sourceReported(_ payload: UInt32, in state: inout QueueState) {
        if payload == ProcessEventSource.payload {
            readProcessEvents(in: &state)
        } else {
            pidfdReported(Int32(bitPattern: payload), in: &state)
        }
    }

    static func closeSources(in state: inout QueueState) {
        state.sources.processEvents.close(registrar: state.registrar)
    }

    /// Epoll reported the pidfd of the knote at `index` (maybe a knote since dropped): at the
    /// process's exit, and again when it is reaped.
    private static func pidfdReported(_ index: Int32, in state: inout QueueState) {
        guard index >= 0, Int(index) < state.table.slots.count, state.table[index].status.contains(.inUse),
            state.table[index].filter == FilterID.proc
        else { return }
        if hasExited(index, in: state) && state.table[index].savedFlags & Note.exit == 0
            && state.table[index].fflags == 0
        {
            state.drop(index)  // FreeBSD's EV_DROP: the process is gone, nothing was asked
            return
        }
        // Merges into an event already queued (NOTE_EXEC|NOTE_EXIT), as FreeBSD's filt_proc.
        if recordExit(index, in: &state) { state.activate(index) }
    }

    private static func hasExited(_ index: Int32, in state: borrowing QueueState) -> Bool {
        let pidfd = Int32(truncatingIfNeeded: state.table[index].filterState)
        return pidfd >= 0 && Syscall.pidfdHasExited(pidfd)
    }

    /// Records the exit once, if the process exited and NOTE_EXIT is wanted: NOTE_EXIT with the
    /// wait status, EV_EOF and EV_ONESHOT (FreeBSD's filt_proc at NOTE_EXIT), so the knote is
    /// dropped when its event is returned. Not while a NOTE_CHILD event is pending (the exit
    /// follows it, ``deliver(_:into:in:)``). Returns true when it recorded the exit now.
    private static func recordExit(_ knote: Int32, in state: inout QueueState) -> Bool {
        guard state.table[knote].savedFlags & Note.exit != 0, !state.table[knote].status.contains(.endOfFile),
            state.table[knote].fflags & Note.child == 0, hasExited(knote, in: state)
        else { return false }
        let pidfd = Int32(truncatingIfNeeded: state.table[knote].filterState)
        // A status the kernel cannot tell is said so (NOTE_EXIT_UNKNOWN), never shown as 0.
        if let status = Syscall.pidfdExitStatus(pidfd, pid: pid_t(state.table[knote].ident)) {
            state.table[knote].fflags |= Note.exit
            state.table[knote].data = Int64(status)
        } else {
            state.table[knote].fflags |= Note.exit | Note.exitUnknown
            state.table[knote].data = 0
        }
        if state.table[knote].flags & EV.oneShot == 0 { state.table[knote].filterState |= oneShotFromExit }
        state.table[knote].flags |= EV.oneShot
        state.table[knote].status.insert(.endOfFile)
        return true
    }

    /// After EV_ADD, EV_ENABLE or a change: a process that already exited (a zombie, or one
    /// that exited while the knote was disabled) reports its exit at once.
    static func registered(_ knote: Int32, justAttached: Bool, in state: inout QueueState) {
        if recordExit(knote, in: &state) { state.table[knote].status.insert(.active) }
        checkAndQueue(knote, in: &state)
    }

    /// f_event: what was recorded since the last return (fork and exec from the connector,
    /// NOTE_CHILD, the exit).
    static func event(_ knote: Int32, in state: inout QueueState) -> Bool {
        state.table[knote].fflags != 0
    }

    /// A NOTE_CHILD event goes out alone. Its knote is cleared here, and a known exit becomes
    /// the knote's next event (a oneshot, returned as recorded).
    static func deliver(_ knote: Int32, into event: inout kevent, in state: inout QueueState) -> Bool {
        guard event.fflags & Note.child != 0, state.table[knote].flags & EV.oneShot == 0 else { return false }
        state.table[knote].fflags = 0
        state.table[knote].data = 0
        if recordExit(knote, in: &state) { state.enqueue(knote) }
        return true
    }

    /// Reads the connector's fork and exec events and records them in the knotes watching
    /// those processes.
    static func readProcessEvents(in state: inout QueueState) {
        var overflowed = false
        withUnsafeTemporaryAllocation(of: kq_proc_event.self, capacity: 64) { buffer in
            while true {
                let batch = state.sources.processEvents.read(into: buffer)
                overflowed = overflowed || batch.overflowed
                for event in buffer[0..<batch.count] { occurred(event, in: &state) }
                if batch.count < buffer.count { break }
            }
        }
        if overflowed {
            // Events were lost: a tracked process may have forked unseen.
            for index in state.table.liveIndices
            where state.table[index].filter == FilterID.proc && state.table[index].savedFlags & Note.track != 0 {
                state.table[index].fflags |= Note.trackError
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
            state.table[index].savedFlags & Note.exec != 0
        else { return }
        state.table[index].fflags |= Note.exec
        state.activate(index)
    }

    private static func forked(child pid: Int32, parent: Int32, in state: inout QueueState) {
        guard let index = state.lookup(filter: FilterID.proc, ident: UInt(UInt32(bitPattern: parent))) else { return }
        let wanted = state.table[index].savedFlags
        if wanted & Note.track != 0 && !follow(child: pid, of: index, parent: parent, in: &state) {
            state.table[index].fflags |= Note.trackError
        }
        if wanted & Note.fork != 0 { state.table[index].fflags |= Note.fork }
        if state.table[index].fflags != 0 { state.activate(index) }
    }

    /// NOTE_TRACK: registers the child with the parent's flags, notes and udata, and queues
    /// its NOTE_CHILD event. Returns false when the child could not be followed.
    private static func follow(child pid: Int32, of parentIndex: Int32, parent: Int32, in state: inout QueueState)
        -> Bool
    {
        let parentKnote = state.table[parentIndex]
        var stored = parentKnote.flags & (EV.oneShot | EV.clear | EV.dispatch)
        // A parent whose exit is already recorded (its fork is read late) passes on the
        // EV_ONESHOT it was asked for, not the one of its exit.
        if parentKnote.filterState & oneShotFromExit != 0 { stored &= ~EV.oneShot }
        let change = kevent(
            ident: UInt(UInt32(bitPattern: pid)), filter: FilterID.proc, flags: stored | EV.add | EV.enable,
            fflags: parentKnote.savedFlags, data: 0, udata: parentKnote.udata, ext: parentKnote.ext)
        guard (try? state.register(change)) != nil, let index = state.lookup(filter: FilterID.proc, ident: change.ident)
        else {
            return false
        }
        // Its first event is NOTE_CHILD alone, even if it already exited (the exit follows,
        // recorded when NOTE_CHILD is returned).
        state.table[index].flags = stored | EV.clear
        state.table[index].filterState &= ~oneShotFromExit
        state.table[index].status.remove(.endOfFile)
        state.table[index].fflags = Note.child
        state.table[index].data = Int64(parent)
        state.activate(index)
        return true
    }
}
