import CKQueue
import CKQueueShim
import Glibc

/// The copy-out half of kevent() (FreeBSD's kqueue_scan): turns one epoll wait's results
/// into kevents. Runs with the kqueue lock held.
extension QueueState {
    /// Writes events for the `count` epoll results in `ready` into the context's eventlist,
    /// never past its capacity.
    ///
    /// `newScan` starts a new call's scan; a further look in the same call continues it (a
    /// knote returned by the call is not returned again).
    mutating func collect(
        _ ready: UnsafeMutablePointer<epoll_event>, count: Int, into context: inout ScanContext, newScan: Bool
    ) {
        context.absorbed = 0
        context.sawWakeup = false
        deferWakeup = true
        deferredActivations = 0
        if newScan { scanNumber &+= 1 }
        routeSources(ready, count: count)
        for k in 0..<count {
            let before = context.written
            switch EpollTag.owner(of: ready[k].data.u64) {
            case .descriptor(let fd, let generation):
                DescriptorFilter.reported(
                    fd, generation: generation, revents: ready[k].events, into: &context, in: &self)
            case .wakeup(let slot):
                guard slot < WakeupSignals.maximum else { break }
                context.sawWakeup = true
                drainActiveQueue(into: &context, upTo: wakeups.consume(slot: slot))
            case .source:
                break  // routed above
            }
            if context.written == before { context.absorbed += 1 }
        }
        finishScan(&context)
    }

    /// Internal sources first (timer expiries, file changes, signals, process events): they
    /// happened before this call looked, so a knote they find already queued merges them into
    /// the event it is about to return. Filters that asked for it are scanned even when their
    /// source was not reported (reading inotify only when reported would leave changes behind).
    @inline(__always)
    private mutating func routeSources(_ ready: UnsafeMutablePointer<epoll_event>, count: Int) {
        var reported: UInt16 = 0
        for k in 0..<count {
            guard case .source(let filter, let payload) = EpollTag.owner(of: ready[k].data.u64) else { continue }
            reported |= UInt16(1) << UInt16(~filter)
            FilterTable.sourceReported(filter, payload: payload, in: &self)
        }
        var pending = filtersScannedEveryTime & ~reported
        while pending != 0 {
            let bit = pending.trailingZeroBitCount
            pending &= pending - 1
            FilterTable.scanStarting(~Int16(bit), in: &self)
        }
    }

    /// Knotes activated during this scan (timer expiries, file growth, re-checks) were ready
    /// before the call returns: they go out now if there is room (a knote this call already
    /// returned is skipped by the drain), and so do knotes this call's own changes activated
    /// without a wakeup. Queued knotes left behind (no room, level events back at the tail) get
    /// a segment of their own, so a later wait, in this thread or another, returns them.
    @inline(__always)
    private mutating func finishScan(_ context: inout ScanContext) {
        let activatedHere = deferredActivations > 0 || context.drainUnsignaled
        if !activeQueue.isEmpty && context.hasRoom && (!context.sawWakeup || activatedHere) {
            drainActiveQueue(into: &context, upTo: wakeups.nextSequence)
        }
        deferWakeup = false
        // Counted after the drain: a level knote it returned went back to the queue under a
        // segment no edge covers yet, and needs one (else the next call would miss it).
        let queuedHere = deferredActivations > 0 || context.drainUnsignaled
        if !activeQueue.isEmpty && (context.sawWakeup || queuedHere) { signalWakeup() }
        context.drainUnsignaled = false
        var pending = filtersAwaitingScanEnd
        filtersAwaitingScanEnd = 0
        while pending != 0 {
            let bit = pending.trailingZeroBitCount
            pending &= pending - 1
            FilterTable.scanEnded(~Int16(bit), in: &self)
        }
    }

    /// Returns the knotes of the active queue queued under segments up to `covered`, in FIFO
    /// order, each at most once.
    mutating func drainActiveQueue(into context: inout ScanContext, upTo covered: UInt32) {
        var remaining = activeQueue.count  // re-queued level knotes wait for the next call
        while remaining > 0, context.hasRoom, activeQueue.head >= 0,
            Int32(bitPattern: table[activeQueue.head].segment &- covered) <= 0
        {
            let index = activeQueue.popFirst(in: &table)!
            remaining -= 1
            if table[index].status.contains(.disabled) { continue }
            if table[index].flags & EV.oneShot != 0 {
                // FreeBSD returns a oneshot as recorded, without asking the filter again.
                var event = table[index].event()
                _ = FilterTable.deliver(index, into: &event, in: &self)
                context.append(event)
                drop(index)
                continue
            }
            if table[index].returnedInScan == scanNumber {
                enqueue(index)  // already returned by this call: stays queued for the next
                continue
            }
            guard FilterTable.event(index, in: &self) else {
                table[index].status.remove(.active)
                continue
            }
            deliverQueued(index, into: &context)
        }
    }

    /// Returns a ready queued knote and applies EV_CLEAR, EV_DISPATCH or level re-queueing.
    private mutating func deliverQueued(_ index: Int32, into context: inout ScanContext) {
        table[index].returnedInScan = scanNumber
        var event = table[index].event()
        let resetByFilter = FilterTable.deliver(index, into: &event, in: &self)
        context.append(event)
        let flags = table[index].flags
        guard flags & (EV.clear | EV.dispatch) != 0 else {
            enqueue(index)  // level-triggered: back to the tail, under a later segment
            return
        }
        if !resetByFilter && flags & EV.clear != 0 {
            table[index].data = 0
            table[index].fflags = 0
        }
        if flags & EV.dispatch != 0 { table[index].status.insert(.disabled) }
        table[index].status.remove(.active)
    }

    /// Events pending now: the active queue plus what epoll has ready. Used for `data` when
    /// this kqueue is watched by another (SPEC.md 3: a kqueue descriptor).
    mutating func pendingEventCount(scratch: UnsafeMutableBufferPointer<epoll_event>) -> Int {
        let n = backend.peek(into: scratch)
        routeSources(scratch.baseAddress!, count: Int(n))
        var descriptorEvents = 0
        var tookWakeup = false
        for k in 0..<Int(n) {
            switch EpollTag.owner(of: scratch[k].data.u64) {
            case .descriptor(let fd, let generation):
                descriptorEvents += DescriptorFilter.pendingEvents(
                    fd, generation: generation, revents: scratch[k].events, in: &self)
            case .wakeup(let slot):
                guard slot < WakeupSignals.maximum else { break }
                _ = wakeups.consume(slot: slot)
                tookWakeup = true
            case .source:
                break  // routed above
            }
        }
        // The peek took wakeup edges off epoll's list: give what is queued a fresh one, so the
        // kqueue stays readable exactly while something is pending.
        if tookWakeup && !activeQueue.isEmpty { signalWakeup() }
        return activeQueue.count + descriptorEvents
    }
}
