import CKQueue
import CKQueueShim
import Glibc

/// The copy-out half of kevent() (FreeBSD's kqueue_scan): turns one epoll wait's results
/// into kevents. Runs with the kqueue lock held.
extension QueueState {
    /// Writes events for the `count` epoll results in `ready` into `events[written...]`,
    /// never past `capacity`. Returns the new number written.
    mutating func collect(
        _ ready: UnsafeMutablePointer<epoll_event>, count: Int,
        into events: UnsafeMutablePointer<kevent>, written start: Int, capacity: Int
    ) -> Int {
        var written = start
        var sawWakeup = false
        deferWakeup = true
        for k in 0..<count {
            let tag = ready[k].data.u64
            let generation = UInt32(truncatingIfNeeded: tag >> 32)
            if generation == 0 {
                switch tag {
                case InternalSource.eventFD:
                    wakeupPending = false
                    sawWakeup = true
                    written = drainActiveQueue(into: events, written: written, capacity: capacity)
                case InternalSource.inotify:
                    for index in regularFiles.readChanges() { recheckUserSpaceKnote(index) }
                case InternalSource.timerFD:
                    TimerFilter.expire(realtime: false, in: &self)
                case InternalSource.realtimeTimerFD:
                    TimerFilter.expire(realtime: true, in: &self)
                default:
                    break
                }
                continue
            }
            let fd = Int32(bitPattern: UInt32(truncatingIfNeeded: tag))
            written = deliverDescriptor(
                fd, generation: generation, revents: ready[k].events, into: events, written: written,
                capacity: capacity)
        }
        deferWakeup = false
        // Knotes activated during this scan (timer expiries, file growth) go out now when the
        // queue was not drained yet in this call; otherwise they would be returned twice.
        if !sawWakeup && !activeQueue.isEmpty && written < capacity {
            written = drainActiveQueue(into: events, written: written, capacity: capacity)
        }
        // Queued knotes left behind (no room, or level events back at the tail): make sure a
        // later wait, in this thread or another, sees them.
        if !activeQueue.isEmpty { signalWakeup() }
        return written
    }

    /// Returns the knotes of the user-space active queue in FIFO order, each at most once.
    mutating func drainActiveQueue(into events: UnsafeMutablePointer<kevent>, written start: Int, capacity: Int) -> Int {
        var written = start
        var remaining = activeQueue.count  // re-queued level knotes wait for the next call
        while remaining > 0, written < capacity, let index = activeQueue.popFirst(in: &table) {
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
            guard FilterDispatch.isReady(index, in: &self) else {
                table[index].status.remove(.active)
                continue
            }
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
                activeQueue.append(index, in: &table)  // level-triggered: back to the tail
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
        var rearm = false
        var unusable = false
        var changed = false
        for pass in 0..<2 {
            let filter = pass == 0 ? FilterID.read : FilterID.write
            let index = filter == FilterID.read ? table.descriptors[Int(fd)].read : table.descriptors[Int(fd)].write
            guard index >= 0, !table[index].status.contains(.disabled) else { continue }
            let interest = filter == FilterID.read ? ReadFilter.readable | ReadFilter.hangup : WriteFilter.writable | WriteFilter.hangupOrError
            guard revents & interest != 0 else { continue }
            guard written < capacity else {
                rearm = true
                continue
            }
            guard DescriptorFilter.evaluate(index, revents: revents, in: &self) else {
                unusable = true
                continue
            }
            events[written] = table[index].event(extraFlags: eofFlag(index))
            written += 1
            let flags = table[index].flags
            if flags & EV.oneShot != 0 {
                drop(index)
            } else if flags & EV.dispatch != 0 {
                table[index].status.insert(.disabled)
                changed = true
            } else if flags & EV.clear == 0 {
                rearm = true
            }
        }
        if unusable && !table.descriptors[Int(fd)].edgeForced {
            table.descriptors[Int(fd)].edgeForced = true
            changed = true
        }
        // A level-triggered registration needs nothing more: epoll reports it again.
        let edgeTriggered = table.descriptors[Int(fd)].registeredEvents & DescriptorFilter.edgeTriggered != 0
        if changed || (rearm && edgeTriggered) {
            DescriptorFilter.syncRegistration(fd: fd, rearm: rearm, in: &self)
        }
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
        var count = activeQueue.count
        guard n > 0 else { return count }
        for k in 0..<Int(n) {
            let tag = scratch[k].data.u64
            let generation = UInt32(truncatingIfNeeded: tag >> 32)
            if generation == 0 {
                if tag == InternalSource.eventFD { Syscall.eventFDSignal(eventFD) }  // put the edge back
                continue
            }
            let fd = Int32(bitPattern: UInt32(truncatingIfNeeded: tag))
            guard let entry = table.existingDescriptor(fd), entry.isRegistered, entry.generation == generation else { continue }
            if entry.read >= 0 && !table[entry.read].status.contains(.disabled) { count += 1 }
            if entry.write >= 0 && !table[entry.write].status.contains(.disabled) { count += 1 }
            // Peeking consumed an edge-triggered report: re-arming re-polls and restores it.
            if entry.registeredEvents & DescriptorFilter.edgeTriggered != 0 {
                DescriptorFilter.syncRegistration(fd: fd, rearm: true, in: &self)
            }
        }
        return count
    }
}
