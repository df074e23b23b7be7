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
///   NOTE_EXIT never share one event. A child already reaped when its fork is read (it lived
///   less long than the connector's latency) is followed all the same, without a pidfd: its
///   exit and wait status come from the connector's exit message, which follows the fork
///   message and precedes the reaping (FreeBSD creates the child's knote at fork).
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

    static func attach(_ knote: Int32, in state: inout QueueState) throws(Errno) {
        let wanted = state.table[knote].savedFlags
        let ident = state.table[knote].ident
        guard ident > 0, ident <= UInt(Int32.max) else { throw .noSuchProcess }
        // A child being followed existed at its fork, whatever happened to it since.
        let following = state.sources.processEvents.following == pid_t(ident)
        let pidfd: Int32
        do throws(Errno) {
            pidfd = try KQueueRegistry.openProcessDescriptor(pid_t(ident))
        } catch {
            guard error == .invalidArgument || error == .noSuchProcess else { throw error }
            guard following else { throw .noSuchProcess }
            try attachReaped(knote, wanted: wanted, in: &state)
            return
        }
        do throws(Errno) {
            try watch(knote, pidfd: pidfd, wanted: wanted, acceptingExited: following, in: &state)
        } catch {
            closeProcessDescriptor(pidfd)
            throw error
        }
        state.table[knote].filterState = ProcessWatch(pidfd: pidfd).rawValue
        state.table[knote].flags |= EV.clear  // SPEC.md 2: PROC adds EV_CLEAR
    }

    /// A followed child that was already reaped: no pidfd, its exit comes from the connector.
    private static func attachReaped(_ knote: Int32, wanted: UInt32, in state: inout QueueState) throws(Errno) {
        if wanted & connectorNotes != 0 { try retainConnector(in: &state) }
        state.table[knote].filterState = ProcessWatch.reaped.rawValue
        state.table[knote].flags |= EV.clear
    }

    private static func watch(
        _ knote: Int32, pidfd: Int32, wanted: UInt32, acceptingExited: Bool, in state: inout QueueState
    ) throws(Errno) {
        // A process that already exited (a zombie) is accepted only for NOTE_EXIT, whose
        // event is then reported at once (FreeBSD: zpfind only when NOTE_EXIT is wanted), or
        // as a followed child.
        if wanted & Note.exit == 0 && !acceptingExited && Syscall.pidfdHasExited(pidfd) { throw .noSuchProcess }
        if wanted & connectorNotes != 0 { try retainConnector(in: &state) }
        let edge = UInt32(EPOLLIN.rawValue) | UInt32(EPOLLET.rawValue)
        do throws(Errno) {
            let tag = EpollTag.source(filter: filter, payload: UInt32(knote))
            try state.backend.add(pidfd, events: edge, tag: tag)
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
        if state.table[knote].savedFlags & connectorNotes != 0 {
            state.sources.processEvents.release(registrar: state.registrar)
        }
        let pidfd = ProcessWatch(rawValue: state.table[knote].filterState).pidfd
        if pidfd >= 0 {
            state.backend.remove(pidfd)
            closeProcessDescriptor(pidfd)
        }
        state.table[knote].filterState = ProcessWatch.detached.rawValue
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
        exitLearnt(index, in: &state)
    }

    /// The process of the knote at `index` may have exited: record it, or drop the knote.
    private static func exitLearnt(_ index: Int32, in state: inout QueueState) {
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
        let watch = ProcessWatch(rawValue: state.table[index].filterState)
        if watch.isReaped { return watch.connectorExitRead }
        return watch.pidfd >= 0 && Syscall.pidfdHasExited(watch.pidfd)
    }

    /// The wait status of an exited process, nil when it cannot be known.
    private static func exitStatus(_ index: Int32, in state: borrowing QueueState) -> Int32? {
        let watch = ProcessWatch(rawValue: state.table[index].filterState)
        if watch.isReaped { return watch.connectorStatus }
        return Syscall.pidfdExitStatus(watch.pidfd, pid: pid_t(state.table[index].ident))
    }

    /// Records the exit once, if the process exited and NOTE_EXIT is wanted: NOTE_EXIT with the
    /// wait status, EV_EOF and EV_ONESHOT (FreeBSD's filt_proc at NOTE_EXIT), so the knote is
    /// dropped when its event is returned. Not while a NOTE_CHILD event is pending (the exit
    /// follows it, ``deliver(_:into:in:)``). Returns true when it recorded the exit now.
    private static func recordExit(_ knote: Int32, in state: inout QueueState) -> Bool {
        guard state.table[knote].savedFlags & Note.exit != 0, !state.table[knote].status.contains(.endOfFile),
            state.table[knote].fflags & Note.child == 0, hasExited(knote, in: state)
        else { return false }
        readForksBeforeExit(knote, in: &state)
        guard state.table[knote].status.contains(.inUse), state.table[knote].fflags & Note.child == 0 else {
            return false
        }
        // A status the kernel cannot tell is said so (NOTE_EXIT_UNKNOWN), never shown as 0.
        if let status = exitStatus(knote, in: state) {
            state.table[knote].fflags |= Note.exit
            state.table[knote].data = Int64(status)
        } else {
            state.table[knote].fflags |= Note.exit | Note.exitUnknown
            state.table[knote].data = 0
        }
        addOneShot(knote, in: &state)
        state.table[knote].status.insert(.endOfFile)
        return true
    }

    /// A process's forks and execs reach the connector before its exit happens (the kernel
    /// sends them from fork and exec themselves), but the exit may be learnt first: the pidfd's
    /// report can come before the connector's (on io_uring the connector's poll, re-armed with
    /// the next wait, completes behind it), and the exit recorded now goes out, and drops the
    /// knote, before the connector is read. So the connector is read first: a child forked
    /// just before the exit is followed (NOTE_TRACK), a fork or exec merges into the exit's
    /// event. Not from within a read (it goes on to the end of the socket anyway).
    private static func readForksBeforeExit(_ knote: Int32, in state: inout QueueState) {
        let watch = ProcessWatch(rawValue: state.table[knote].filterState)
        guard state.table[knote].savedFlags & connectorNotes != 0, !watch.isReaped,
            state.sources.processEvents.isOpen, !state.sources.processEvents.reading
        else { return }
        readProcessEvents(in: &state)
    }

    /// EV_ONESHOT that the application did not ask for (a child forked before it is read
    /// inherits only what was asked).
    private static func addOneShot(_ knote: Int32, in state: inout QueueState) {
        guard state.table[knote].flags & EV.oneShot == 0 else { return }
        state.table[knote].flags |= EV.oneShot
        var watch = ProcessWatch(rawValue: state.table[knote].filterState)
        watch.oneShotAdded = true
        state.table[knote].filterState = watch.rawValue
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

    /// Reads the connector's fork, exec and exit events and records them in the knotes watching
    /// those processes.
    static func readProcessEvents(in state: inout QueueState) {
        let nested = state.sources.processEvents.reading
        state.sources.processEvents.reading = true
        defer { state.sources.processEvents.reading = nested }
        var overflowed = false
        withUnsafeTemporaryAllocation(of: kq_proc_event.self, capacity: 64) { buffer in
            while true {
                let batch = state.sources.processEvents.read(into: buffer)
                overflowed = overflowed || batch.overflowed
                for event in buffer[0..<batch.count] { occurred(event, in: &state) }
                if batch.count < buffer.count { break }
            }
        }
        if overflowed { eventsLost(in: &state) }
    }

    /// The connector lost events: a tracked process may have forked unseen (NOTE_TRACKERR),
    /// and a followed child that was already reaped may have lost its exit message (its exit
    /// is reported with NOTE_EXIT_UNKNOWN).
    private static func eventsLost(in state: inout QueueState) {
        for index in state.table.liveIndices where state.table[index].filter == FilterID.proc {
            var watch = ProcessWatch(rawValue: state.table[index].filterState)
            if watch.isReaped && !watch.connectorExitRead {
                watch.connectorExitRead = true
                state.table[index].filterState = watch.rawValue
                exitLearnt(index, in: &state)
                guard state.table[index].status.contains(.inUse) else { continue }
            }
            if state.table[index].savedFlags & Note.track != 0 {
                state.table[index].fflags |= Note.trackError
                state.activate(index)
            }
        }
    }

    private static func occurred(_ event: kq_proc_event, in state: inout QueueState) {
        switch event.kind {
        case Int32(KQ_PROC_EVENT_FORK):
            forked(child: event.pid, parent: event.parent, in: &state)
        case Int32(KQ_PROC_EVENT_EXEC):
            guard let index = state.lookup(filter: FilterID.proc, ident: UInt(UInt32(bitPattern: event.pid))),
                state.table[index].savedFlags & Note.exec != 0
            else { return }
            state.table[index].fflags |= Note.exec
            state.activate(index)
        default:
            exited(event.pid, status: event.status, in: &state)
        }
    }

    /// The connector's exit message: only a followed child that was already reaped needs it
    /// (the others learn their exit from their pidfd).
    private static func exited(_ pid: Int32, status: Int32, in state: inout QueueState) {
        guard let index = state.lookup(filter: FilterID.proc, ident: UInt(UInt32(bitPattern: pid))) else { return }
        var watch = ProcessWatch(rawValue: state.table[index].filterState)
        guard watch.isReaped, !watch.connectorExitRead else { return }
        watch.connectorExitRead = true
        watch.connectorStatus = status
        state.table[index].filterState = watch.rawValue
        exitLearnt(index, in: &state)
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
        if ProcessWatch(rawValue: parentKnote.filterState).oneShotAdded { stored &= ~EV.oneShot }
        let change = kevent(
            ident: UInt(UInt32(bitPattern: pid)), filter: FilterID.proc, flags: stored | EV.add | EV.enable,
            fflags: parentKnote.savedFlags, data: 0, udata: parentKnote.udata, ext: parentKnote.ext)
        state.sources.processEvents.following = pid
        let registered = (try? state.register(change)) != nil
        state.sources.processEvents.following = 0
        guard registered, let index = state.lookup(filter: FilterID.proc, ident: change.ident) else { return false }
        // Its first event is NOTE_CHILD alone, even if it already exited (the exit follows,
        // recorded when NOTE_CHILD is returned).
        state.table[index].flags = stored | EV.clear
        var watch = ProcessWatch(rawValue: state.table[index].filterState)
        watch.oneShotAdded = false
        state.table[index].filterState = watch.rawValue
        state.table[index].status.remove(.endOfFile)
        state.table[index].fflags = Note.child
        state.table[index].data = Int64(parent)
        // Reaped, and NOTE_EXIT not asked: NOTE_CHILD is its last event. Its own forks were
        // all sent before it exited, so they are read before NOTE_CHILD is returned.
        if watch.isReaped && parentKnote.savedFlags & Note.exit == 0 { addOneShot(index, in: &state) }
        state.activate(index)
        return true
    }
}

/// What an EVFILT_PROC knote keeps in `filterState`: its pidfd in the low 32 bits (-1: none),
/// and above them what the filter must remember without a field in every knote.
private struct ProcessWatch {
    var rawValue: Int64

    private static let oneShotAddedBit: Int64 = 1 << 32
    private static let reapedBit: Int64 = 1 << 33
    private static let exitReadBit: Int64 = 1 << 34
    private static let statusKnownBit: Int64 = 1 << 35
    private static let statusShift: Int64 = 40

    init(rawValue: Int64) { self.rawValue = rawValue }
    init(pidfd: Int32) { rawValue = Int64(UInt32(bitPattern: pidfd)) }

    /// A followed child that was already reaped: no pidfd.
    static let reaped = ProcessWatch(rawValue: Int64(UInt32.max) | reapedBit)
    static let detached = ProcessWatch(pidfd: -1)

    var pidfd: Int32 { Int32(truncatingIfNeeded: rawValue) }
    /// The knote's EV_ONESHOT came from the filter (the recorded exit), not the application.
    var oneShotAdded: Bool {
        get { rawValue & Self.oneShotAddedBit != 0 }
        set { rawValue = newValue ? rawValue | Self.oneShotAddedBit : rawValue & ~Self.oneShotAddedBit }
    }
    /// Followed after it was reaped: its exit comes from the connector's exit message.
    var isReaped: Bool { rawValue & Self.reapedBit != 0 }
    /// The connector's exit message was read, or lost (then the status is unknown).
    var connectorExitRead: Bool {
        get { rawValue & Self.exitReadBit != 0 }
        set { rawValue = newValue ? rawValue | Self.exitReadBit : rawValue & ~Self.exitReadBit }
    }
    /// The wait status from the connector's exit message.
    var connectorStatus: Int32? {
        get { rawValue & Self.statusKnownBit != 0 ? Int32((rawValue >> Self.statusShift) & 0xffff) : nil }
        set {
            rawValue &= ~(Self.statusKnownBit | (0xffff << Self.statusShift))
            if let status = newValue { rawValue |= Self.statusKnownBit | (Int64(status & 0xffff) << Self.statusShift) }
        }
    }
}
