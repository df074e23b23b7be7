import CKQueue
import CKQueueShim
import Glibc

/// The copy-out half of kevent() (FreeBSD's kqueue_scan): turns one epoll wait's results
/// into kevents. Runs with the kqueue lock held.
extension QueueState {
    /// Writes events for the `count` epoll results in `ready` into `events[written...]`,
    /// never past `capacity`. Returns the new number written.
    ///
    /// `newScan` starts a new call's scan; a further look in the same call continues it (a
    /// knote returned by the call is not returned again). Also returns how many reports
    /// yielded no event.
    mutating func collect(
        _ ready: UnsafeMutablePointer<epoll_event>, count: Int,
        into events: UnsafeMutablePointer<kevent>, written start: Int, capacity: Int, newScan: Bool,
        drainUnsignaled: Bool = false
    ) -> (written: Int, absorbed: Int) {
        var written = start
        var absorbed = 0
        var sawWakeup = false
        deferWakeup = true
        deferredActivations = 0
        if newScan { scanNumber &+= 1 }
        descriptorsToMoveBack.removeAll(keepingCapacity: true)
        // Timer expiries and file changes first: they happened before this call looked, so a
        // knote they find already queued merges them into the event it is about to return.
        // File changes are read whether or not this batch had room for inotify's report, and
        // whenever inotify is reported even with nothing watched: removing the last watch
        // queues IN_IGNORED, which left unread keeps the descriptor ready and a wait spinning.
        var fileReported = false
        var vnodeReported = false
        var processesReported = false
        for k in 0..<count {
            switch ready[k].data.u64 {
            case InternalSource.timerFD:
                TimerFilter.expire(realtime: false, in: &self)
            case InternalSource.realtimeTimerFD:
                TimerFilter.expire(realtime: true, in: &self)
            case InternalSource.inotify:
                fileReported = true
            case InternalSource.vnodeInotify:
                vnodeReported = true
            case InternalSource.processEvents:
                processesReported = true
            default:
                break
            }
        }
        if regularFiles.isWatching || fileReported {
            for index in regularFiles.readChanges() { recheckUserSpaceKnote(index) }
        }
        if vnodes.isWatching || vnodeReported { VnodeFilter.readChanges(in: &self) }
        if processesReported { ProcFilter.readProcessEvents(in: &self) }
        for k in 0..<count {
            let reportStart = written
            defer { if written == reportStart { absorbed += 1 } }
            let tag = ready[k].data.u64
            let generation = UInt32(truncatingIfNeeded: tag >> 32)
            if generation == 0 {
                if let slot = WakeupSignals.slot(forTag: tag) {
                    sawWakeup = true
                    let covered = wakeups.consume(slot: slot)
                    written = drainActiveQueue(into: events, written: written, capacity: capacity, upTo: covered)
                    continue
                }
                if tag == InternalSource.signals { SignalFilter.delivered(in: &self) }
                if let index = ProcFilter.index(forTag: tag) { ProcFilter.reported(index, in: &self) }
                continue  // inotify and timerfds: handled above
            }
            let fd = Int32(bitPattern: UInt32(truncatingIfNeeded: tag))
            let before = written
            let requeuedBefore = deferredActivations
            written = deliverDescriptor(
                fd, generation: generation, revents: ready[k].events, into: events, written: written,
                capacity: capacity)
            // A level-triggered descriptor returned after a user-space knote went back to the
            // queue: epoll put it back on its list before the knote's new edge is written.
            if written > before && requeuedBefore > 0 && descriptorsToMoveBack.count < descriptorsToMoveBack.capacity,
                table.descriptors[Int(fd)].isRegistered,
                table.descriptors[Int(fd)].registeredEvents & DescriptorFilter.edgeTriggered == 0
            {
                descriptorsToMoveBack.append(fd)
            }
        }
        // Knotes activated during this scan (timer expiries, file growth, re-checks) were
        // ready before the call returns: they go out now if there is room (a knote this call
        // already returned is skipped by the drain).
        // So do knotes this call's own changes activated without a wakeup (`drainUnsignaled`).
        if !activeQueue.isEmpty && written < capacity && (!sawWakeup || deferredActivations > 0 || drainUnsignaled) {
            written = drainActiveQueue(into: events, written: written, capacity: capacity, upTo: wakeups.nextSequence)
        }
        deferWakeup = false
        // Queued knotes left behind (no room, level events back at the tail) get a segment of
        // their own, so a later wait, in this thread or another, returns them. Knotes whose
        // edge is still pending need none.
        if !activeQueue.isEmpty && (sawWakeup || deferredActivations > 0 || drainUnsignaled) { signalWakeup() }
        // ...and those descriptors go behind it, as on FreeBSD's single queue (rule 10):
        // removing and adding a registration puts it at the tail of epoll's list.
        for fd in descriptorsToMoveBack { DescriptorFilter.reregister(fd: fd, in: &self) }
        return (written, absorbed)
    }

    /// Returns the knotes of the user-space active queue queued under segments up to
    /// `covered`, in FIFO order, each at most once.
    mutating func drainActiveQueue(
        into events: UnsafeMutablePointer<kevent>, written start: Int, capacity: Int, upTo covered: UInt32
    ) -> Int {
        var written = start
        var remaining = activeQueue.count  // re-queued level knotes wait for the next call
        while remaining > 0, written < capacity, activeQueue.head >= 0,
            Int32(bitPattern: table[activeQueue.head].segment &- covered) <= 0
        {
            let index = activeQueue.popFirst(in: &table)!
            remaining -= 1
            let flags = table[index].flags
            if table[index].status.contains(.disabled) { continue }
            if flags & EV.oneShot != 0 {
                // FreeBSD returns a oneshot as recorded, without asking the filter again.
                var event = table[index].event(extraFlags: eofFlag(index))
                _ = FilterDispatch.prepareDelivery(index, into: &event, in: &self)
                events[written] = event
                written += 1
                drop(index)
                continue
            }
            if table[index].returnedInScan == scanNumber {
                enqueue(index)  // already returned by this call: stays queued for the next
                continue
            }
            guard FilterDispatch.isReady(index, in: &self) else {
                table[index].status.remove(.active)
                continue
            }
            table[index].returnedInScan = scanNumber
            var event = table[index].event(extraFlags: eofFlag(index))
            let touched = FilterDispatch.prepareDelivery(index, into: &event, in: &self)
            events[written] = event
            written += 1
            if flags & (EV.clear | EV.dispatch) != 0 {
                if !touched && flags & EV.clear != 0 {
                    table[index].data = 0
                    table[index].fflags = 0
                }
                if flags & EV.dispatch != 0 { table[index].status.insert(.disabled) }
                table[index].status.remove(.active)
            } else {
                enqueue(index)  // level-triggered: back to the tail, under a later segment
            }
        }
        return written
    }

    /// Readiness of a user-space knote may have changed (e.g. its file grew): queue it if so.
    mutating func recheckUserSpaceKnote(_ index: Int32) {
        guard table[index].status.contains(.inUse), !table[index].status.contains(.queued) else { return }
        if FilterDispatch.isReady(index, in: &self) { activate(index) }
    }

    /// One epoll result for a watched descriptor: returns its READ and WRITE knotes that are
    /// ready, then applies EV_ONESHOT / EV_DISPATCH and re-arms edge-triggered registrations.
    private mutating func deliverDescriptor(
        _ fd: Int32, generation: UInt32, revents: UInt32, into events: UnsafeMutablePointer<kevent>,
        written start: Int, capacity: Int
    ) -> Int {
        guard let entry = table.existingDescriptor(fd), entry.isRegistered, entry.generation == generation else {
            return start  // stale: an earlier registration of this number
        }
        var written = start
        var unusable = false
        var changed = false
        let edgeTriggered = entry.registeredEvents & DescriptorFilter.edgeTriggered != 0
        for pass in 0..<2 {
            let filter = pass == 0 ? FilterID.read : FilterID.write
            let index = filter == FilterID.read ? table.descriptors[Int(fd)].read : table.descriptors[Int(fd)].write
            guard index >= 0, !table[index].status.contains(.disabled), table[index].returnedInScan != scanNumber else {
                continue
            }
            let interest =
                filter == FilterID.read
                ? ReadFilter.readable | ReadFilter.hangup : WriteFilter.writable | WriteFilter.hangupOrError
            guard revents & interest != 0 else { continue }
            guard written < capacity else {
                // No room: an edge-triggered report would be lost; keep the knote queued.
                if edgeTriggered { queueForRecheck(index) }
                continue
            }
            guard DescriptorFilter.evaluate(index, revents: revents, in: &self) else {
                unusable = true
                continue
            }
            // Epoll reported it: this delivery supersedes a queued re-check.
            activeQueue.remove(index, in: &table)
            table[index].returnedInScan = scanNumber
            events[written] = table[index].event(extraFlags: eofFlag(index))
            written += 1
            let flags = table[index].flags
            if flags & EV.oneShot != 0 {
                drop(index)
            } else if flags & EV.dispatch != 0 {
                table[index].status.insert(.disabled)
                changed = true
            } else if flags & EV.clear == 0 && edgeTriggered {
                // Level-triggered on an edge-triggered registration: epoll will not report it
                // again, so the user-space queue re-checks it (re-arming the registration
                // would re-report an EV_CLEAR knote sharing it).
                queueForRecheck(index)
            }
        }
        if unusable && !table.descriptors[Int(fd)].edgeForced {
            table.descriptors[Int(fd)].edgeForced = true
            changed = true
        }
        if changed { DescriptorFilter.syncRegistration(fd: fd, in: &self) }
        return written
    }

    @inline(__always)
    private func eofFlag(_ index: Int32) -> UInt16 {
        table[index].status.contains(.endOfFile) ? EV.eof : 0
    }

    /// Events pending now: the user-space queue plus what epoll has ready. Used for `data`
    /// when this kqueue is watched by another (SPEC.md 3: a kqueue descriptor).
    mutating func pendingEventCount(scratch: UnsafeMutableBufferPointer<epoll_event>) -> Int {
        var zero = timespec(tv_sec: 0, tv_nsec: 0)
        let n = Syscall.epollWait(epollFD, scratch.baseAddress!, Int32(scratch.count), &zero)
        var descriptorEvents = 0
        var tookWakeup = false
        for k in 0..<max(0, Int(n)) {
            let tag = scratch[k].data.u64
            let generation = UInt32(truncatingIfNeeded: tag >> 32)
            if generation == 0 {
                if let slot = WakeupSignals.slot(forTag: tag) {
                    _ = wakeups.consume(slot: slot)
                    tookWakeup = true
                } else if tag == InternalSource.timerFD || tag == InternalSource.realtimeTimerFD {
                    TimerFilter.expire(realtime: tag == InternalSource.realtimeTimerFD, in: &self)
                } else if tag == InternalSource.inotify {
                    for index in regularFiles.readChanges() { recheckUserSpaceKnote(index) }
                } else if tag == InternalSource.vnodeInotify {
                    VnodeFilter.readChanges(in: &self)
                } else if tag == InternalSource.signals {
                    SignalFilter.delivered(in: &self)
                } else if tag == InternalSource.processEvents {
                    ProcFilter.readProcessEvents(in: &self)
                } else if let index = ProcFilter.index(forTag: tag) {
                    ProcFilter.reported(index, in: &self)
                }
                continue
            }
            let fd = Int32(bitPattern: UInt32(truncatingIfNeeded: tag))
            guard let entry = table.existingDescriptor(fd), entry.isRegistered, entry.generation == generation else {
                continue
            }
            let revents = scratch[k].events
            let edgeTriggered = entry.registeredEvents & DescriptorFilter.edgeTriggered != 0
            for pass in 0..<2 {
                let index = pass == 0 ? entry.read : entry.write
                let interest =
                    pass == 0
                    ? ReadFilter.readable | ReadFilter.hangup : WriteFilter.writable | WriteFilter.hangupOrError
                guard index >= 0, !table[index].status.contains(.disabled), revents & interest != 0 else { continue }
                if edgeTriggered {
                    // Peeking consumed an edge-triggered report: the knote re-checks from the
                    // user-space queue (and is counted there).
                    queueForRecheck(index)
                } else if !table[index].status.contains(.queued) {
                    descriptorEvents += 1
                }
            }
        }
        // The peek took wakeup edges off epoll's list: give what is queued a fresh one, so the
        // kqueue stays readable exactly while something is pending.
        if tookWakeup && !activeQueue.isEmpty { signalWakeup() }
        return activeQueue.count + descriptorEvents
    }
}
