import CKQueue
import Glibc

/// Delivery of epoll reports for descriptors watched by EVFILT_READ and EVFILT_WRITE.
extension DescriptorFilter {
    /// One epoll report for a watched descriptor: returns its READ and WRITE knotes that are
    /// ready, then applies EV_ONESHOT / EV_DISPATCH and re-arms edge-triggered registrations.
    @inline(__always)
    static func reported(
        _ fd: Int32, generation: UInt32, revents: UInt32, into context: inout ScanContext, in state: inout QueueState
    ) {
        guard let entry = state.sources.descriptors.existing(fd), entry.isRegistered, entry.generation == generation
        else {
            return  // stale: an earlier registration of this number
        }
        let before = context.written
        let requeuedBefore = state.deferredActivations
        var outcome = DeliveryOutcome()
        deliver(ReadFilter.self, fd: fd, revents: revents, entry: entry, into: &context, outcome: &outcome, in: &state)
        deliver(WriteFilter.self, fd: fd, revents: revents, entry: entry, into: &context, outcome: &outcome, in: &state)
        if entry.empty >= 0 { EmptyFilter.reported(entry.empty, revents: revents, in: &state) }
        if outcome.unusable && !state.sources.descriptors.entries[Int(fd)].edgeForced {
            state.sources.descriptors.entries[Int(fd)].edgeForced = true
            outcome.changed = true
        }
        if outcome.changed { syncRegistration(fd: fd, in: &state) }
        // A level-triggered descriptor returned after a knote went back to the active queue:
        // epoll put it back on its list before the knote's new edge is written.
        if context.written > before && requeuedBefore > 0 { moveBackLater(fd, in: &state) }
    }

    /// What delivering one report did to the registration.
    struct DeliveryOutcome {
        /// Readiness was reported that no knote could use.
        var unusable = false
        /// The registration must be brought in line (a knote was disabled or the mode changed).
        var changed = false
    }

    @inline(__always)
    private static func deliver<F: DescriptorFilterOperations>(
        _ filter: F.Type, fd: Int32, revents: UInt32, entry: DescriptorEntry, into context: inout ScanContext,
        outcome: inout DeliveryOutcome, in state: inout QueueState
    ) {
        let index = state.sources.descriptors.entries[Int(fd)].knote(F.filter)
        guard index >= 0, !state.table[index].status.contains(.disabled), revents & F.reportedBits != 0 else { return }
        guard state.table[index].returnedInScan != state.scanNumber else {
            // Returned by this call already, reported again by a later look of it: a new edge,
            // which epoll will not report again; the next call re-checks the knote.
            if entry.isEdgeTriggered { state.queueForRecheck(index) }
            return
        }
        guard context.hasRoom else {
            // No room: an edge-triggered report would be lost; keep the knote queued.
            if entry.isEdgeTriggered { state.queueForRecheck(index) }
            return
        }
        if F.filter == FilterID.read, let bytes = state.backend.reportedBytes(fd) {
            state.table[index].data = bytes
            state.table[index].status.insert(.dataFromBackend)
        }
        guard F.evaluate(index, revents: revents, in: &state) else {
            outcome.unusable = true
            return
        }
        // Epoll reported it: this delivery supersedes a queued re-check.
        state.activeQueue.remove(index, in: &state.table)
        state.table[index].returnedInScan = state.scanNumber
        context.append(state.table[index].event())
        let flags = state.table[index].flags
        if flags & EV.oneShot != 0 {
            state.drop(index)
        } else if flags & EV.dispatch != 0 {
            state.table[index].status.insert(.disabled)
            outcome.changed = true
        } else if flags & EV.clear == 0 && entry.isEdgeTriggered {
            // Level-triggered on an edge-triggered registration: epoll will not report it
            // again, so the active queue re-checks it (re-arming the registration would
            // re-report an EV_CLEAR knote sharing it).
            state.queueForRecheck(index)
        }
    }

    private static func moveBackLater(_ fd: Int32, in state: inout QueueState) {
        let entry = state.sources.descriptors.entries[Int(fd)]
        guard entry.isRegistered, !entry.isEdgeTriggered,
            state.sources.descriptors.toMoveBack.count < state.sources.descriptors.toMoveBack.capacity
        else { return }
        state.sources.descriptors.toMoveBack.append(fd)
        state.requestScanEnd(FilterID.read)
    }

    /// The end of a scan, after its wakeup was written: the descriptors to move go behind it,
    /// as on FreeBSD's single queue (rule 10): removing and adding a registration puts it at
    /// the tail of epoll's list.
    static func movePendingToBack(in state: inout QueueState) {
        for fd in state.sources.descriptors.toMoveBack { reregister(fd: fd, in: &state) }
        state.sources.descriptors.toMoveBack.removeAll(keepingCapacity: true)
    }

    /// Events a report of `fd` would give now, for a kqueue's pending count. Peeking consumes
    /// an edge-triggered report: its knotes then re-check from the active queue (and are
    /// counted there).
    static func pendingEvents(_ fd: Int32, generation: UInt32, revents: UInt32, in state: inout QueueState) -> Int {
        guard let entry = state.sources.descriptors.existing(fd), entry.isRegistered, entry.generation == generation
        else { return 0 }
        var count = 0
        for pass in 0..<2 {
            let index = pass == 0 ? entry.read : entry.write
            let bits = pass == 0 ? ReadFilter.reportedBits : WriteFilter.reportedBits
            guard index >= 0, !state.table[index].status.contains(.disabled), revents & bits != 0 else { continue }
            if entry.isEdgeTriggered {
                state.queueForRecheck(index)
            } else if !state.table[index].status.contains(.queued) {
                count += 1
            }
        }
        // EVFILT_EMPTY: a report only prompts a check, which queues the knote if it is ready.
        if entry.empty >= 0 { EmptyFilter.reported(entry.empty, revents: revents, in: &state) }
        return count
    }
}
