import CKQueue
import CKQueueShim
import Glibc

/// Everything of one kqueue that the kqueue lock protects: the knote table, the descriptor
/// entries and the user-space active queue. Lives inside ``KQueueCore``'s `Mutex`, so every
/// method here runs with the lock held; none of them blocks (the wait happens outside).
struct QueueState: ~Copyable {
    /// The epoll instance, which is also the kqueue descriptor the caller sees.
    let epollFD: Int32
    /// Wakes waiters and makes the kqueue descriptor readable when the user-space active
    /// queue has entries. Registered edge-triggered; never read, only written.
    let eventFD: Int32

    var table = KnoteTable()
    var activeQueue = ActiveQueue()
    /// Orders user-space activations among descriptor readiness (rule 10).
    var wakeups: WakeupSignals
    /// Set once the kqueue is closed; every later call fails with EBADF.
    var isClosed = false
    /// Reusable epoll_wait buffers, one per concurrent waiter: the first in `spareBuffer`
    /// (an optional, so the single-waiter case touches no array), the others in the pool.
    var spareBuffer: EpollBuffer?
    var bufferPool: [EpollBuffer] = []
    var regularFiles = RegularFileWatcher()
    var vnodes = VnodeWatcher()
    var processEvents = ProcessEventSource()
    /// The EVFILT_SIGNAL knotes, checked when the signal handler's eventfd reports.
    var signalKnotes: [Int32] = []
    /// Relative timers (CLOCK_MONOTONIC) and NOTE_ABSTIME timers (CLOCK_REALTIME).
    var monotonicTimers = TimerClock(clock: CLOCK_MONOTONIC, tag: InternalSource.timerFD)
    var realtimeTimers = TimerClock(clock: CLOCK_REALTIME, tag: InternalSource.realtimeTimerFD)
    let internalDescriptors: InternalDescriptors
    /// Set while a scan copies events out: activations then wait for the scan's end to
    /// write the eventfd, since the scan delivers them itself when it has room.
    var deferWakeup = false
    /// Knotes queued while `deferWakeup` was set.
    var deferredActivations = 0
    /// Threads between taking a wait buffer and giving it back (in or around epoll_pwait2).
    var waiters = 0
    /// Numbers the scans, for ``Knote/returnedInScan``.
    var scanNumber: UInt32 = 0
    /// Level-triggered descriptors a scan returned after re-queueing a user-space knote
    /// (bounded: past its capacity, order among them is approximate).
    var descriptorsToMoveBack: [Int32] = {
        var list: [Int32] = []
        list.reserveCapacity(64)
        return list
    }()

    init(epollFD: Int32, eventFD: Int32, internalDescriptors: InternalDescriptors) {
        self.epollFD = epollFD
        self.eventFD = eventFD
        self.internalDescriptors = internalDescriptors
        wakeups = WakeupSignals(primary: eventFD)
    }

    // MARK: Registration (FreeBSD's kqueue_register)

    /// Applies one change. Returns 0 or an errno value.
    mutating func register(_ change: kevent) -> Int32 {
        let flags = change.flags
        if flags & (EV.enable | EV.disable) == EV.enable | EV.disable { return EINVAL }
        let filter = change.filter
        guard filter < 0, filter >= -FilterID.systemCount else { return EINVAL }
        if let unsupported = FilterDispatch.unsupportedError(filter: filter) { return unsupported }
        let isDescriptor = FilterDispatch.takesDescriptor(filter)
        if isDescriptor && change.ident > UInt(Int32.max) { return EBADF }

        guard let index = lookup(filter: filter, ident: change.ident) else {
            guard flags & EV.add != 0 else {
                if isDescriptor && !Syscall.isOpen(Int32(change.ident)) { return EBADF }
                return ENOENT
            }
            if flags & EV.keepUData != 0 { return EINVAL }
            return attachNew(change)
        }

        if flags & EV.delete != 0 {
            drop(index)
            return 0
        }
        if flags & EV.forceOneShot != 0 {
            table[index].flags |= EV.oneShot
            activate(index)
        }
        if flags & EV.enable != 0 {
            table[index].status.remove(.disabled)
        } else if flags & EV.disable != 0 {
            table[index].status.insert(.disabled)
            activeQueue.remove(index, in: &table)
        }
        if flags & EV.keepUData == 0 { table[index].udata = change.udata }
        table[index].ext.2 = change.ext.2
        table[index].ext.3 = change.ext.3
        if let error = FilterDispatch.modify(index, with: change, in: &self) { return error }
        recheckAfterRegistration(index)
        return 0
    }

    private mutating func attachNew(_ change: kevent) -> Int32 {
        if FilterDispatch.isDescriptorFilter(change.filter) {
            // The number must name an open file before the descriptor table grows for it.
            if let error = DescriptorFilter.classifyIfNeeded(Int32(change.ident), in: &self) { return error }
        }
        var knote = Knote()
        knote.ident = change.ident
        knote.filter = change.filter
        knote.flags = change.flags & ~(EV.actions | EV.keepUData)
        knote.savedFlags = change.fflags
        knote.savedData = change.data
        knote.udata = change.udata
        knote.ext = change.ext
        if change.flags & EV.disable != 0 { knote.status.insert(.disabled) }
        let index = table.allocate(knote)
        link(index)
        if let error = FilterDispatch.attach(index, in: &self) {
            unlink(index)
            table.free(index)
            // What was learned about the descriptor (its kind) must not outlive a failed
            // attach: the number may name another file by the next EV_ADD.
            if FilterDispatch.isDescriptorFilter(change.filter),
                table.existingDescriptor(Int32(change.ident))?.isEmpty == true
            {
                descriptorClosing(Int32(change.ident))
            }
            return error
        }
        recheckAfterRegistration(index, justAttached: true)
        return 0
    }

    /// Right after EV_ADD, EV_ENABLE or a modification the filter is checked once: a
    /// source that is already ready is queued at once (SPEC.md 2, registration rules).
    private mutating func recheckAfterRegistration(_ index: Int32, justAttached: Bool = false) {
        guard table[index].status.contains(.inUse) else { return }  // the filter dropped it
        if FilterDispatch.usesEpoll(index, in: self) {
            if justAttached { return }  // attaching added or modified the registration: re-polled
            let fd = Int32(table[index].ident)
            // An EV_CLEAR knote is re-checked by epoll itself (one report per condition:
            // checking it from the queue as well would return it twice for one change).
            let repoll = table[index].flags & EV.clear != 0 && !table[index].status.contains(.disabled)
            let result = DescriptorFilter.syncRegistration(fd: fd, repoll: repoll, in: &self)
            // A level-triggered registration reports a ready source by itself, and so does
            // one epoll just re-polled; otherwise check this knote from the user-space queue.
            let edgeTriggered = table.descriptors[Int(fd)].registeredEvents & DescriptorFilter.edgeTriggered != 0
            if edgeTriggered && result != .repolled && !table[index].status.contains(.disabled) {
                queueForRecheck(index)
            }
            return
        }
        guard !table[index].status.contains(.disabled) else { return }
        if FilterDispatch.isReady(index, in: &self) { table[index].status.insert(.active) }
        if table[index].status.contains(.active) { enqueue(index) }
    }

    /// Queues a knote of an epoll-watched descriptor for a re-check with poll(2) by the next
    /// scans (edge-triggered registrations report a condition only once).
    mutating func queueForRecheck(_ index: Int32) {
        table[index].status.insert(.active)
        enqueue(index)
    }

    // MARK: Lookup

    @inline(__always)
    func lookup(filter: Int16, ident: UInt) -> Int32? {
        if FilterDispatch.isDescriptorFilter(filter) {
            guard ident <= UInt(Int32.max), let entry = table.existingDescriptor(Int32(ident)) else { return nil }
            let index = filter == FilterID.read ? entry.read : entry.write
            return index >= 0 ? index : nil
        }
        return table.others.value(filter: filter, ident: ident)
    }

    private mutating func link(_ index: Int32) {
        let knote = table[index]
        if FilterDispatch.isDescriptorFilter(knote.filter) {
            let fd = Int32(knote.ident)
            let i = table.descriptorEntry(fd)
            if knote.filter == FilterID.read {
                table.descriptors[i].read = index
            } else {
                table.descriptors[i].write = index
            }
        } else {
            table.others.insert(filter: knote.filter, ident: knote.ident, value: index)
        }
    }

    private mutating func unlink(_ index: Int32) {
        let knote = table[index]
        if FilterDispatch.isDescriptorFilter(knote.filter) {
            let i = Int(knote.ident)
            if knote.filter == FilterID.read { table.descriptors[i].read = -1 } else { table.descriptors[i].write = -1 }
        } else {
            table.others.remove(filter: knote.filter, ident: knote.ident)
        }
    }

    /// Detaches and frees a knote (EV_DELETE, a delivered EV_ONESHOT, close of its descriptor).
    mutating func drop(_ index: Int32) {
        activeQueue.remove(index, in: &table)
        unlink(index)
        FilterDispatch.detach(index, in: &self)
        table.free(index)
    }

    // MARK: Activation

    /// Marks a knote active and queues it unless it is disabled (FreeBSD's KNOTE_ACTIVATE).
    mutating func activate(_ index: Int32) {
        table[index].status.insert(.active)
        if !table[index].status.contains(.disabled) { enqueue(index) }
    }

    mutating func enqueue(_ index: Int32) {
        guard !table[index].status.contains(.queued) else { return }
        table[index].segment = wakeups.nextSequence
        activeQueue.append(index, in: &table)
        if deferWakeup { deferredActivations += 1 } else { signalWakeup() }
    }

    /// Opens a wakeup segment for what was queued since the last one: its eventfd edge wakes
    /// one waiter, makes the kqueue descriptor readable for poll(2) or an outer kqueue, and
    /// marks the activation's place among descriptor events.
    @inline(__always)
    mutating func signalWakeup() {
        let published = internalDescriptors
        wakeups.openSegment(epollFD: epollFD) { slot, fd in published.publishWakeup(slot: slot, fd) }
    }

    // MARK: Descriptor lifetime

    /// `fd` is being closed: remove every knote on it, as FreeBSD's close() does.
    mutating func descriptorClosing(_ fd: Int32) {
        if fd >= 0, let vnode = lookup(filter: FilterID.vnode, ident: UInt(fd)) { drop(vnode) }
        guard let entry = table.existingDescriptor(fd) else { return }
        if entry.read >= 0 { drop(entry.read) }
        if entry.write >= 0 { drop(entry.write) }
        let i = Int(fd)
        table.descriptors[i].kind = .unknown
        table.descriptors[i].edgeForced = false
        table.descriptors[i].wasConnected = false
    }

    /// Releases everything the kqueue owns except its descriptor, which the caller closes.
    mutating func tearDown() {
        guard !isClosed else { return }
        isClosed = true
        for index in table.liveIndices where table[index].status.contains(.inUse) {
            drop(index)
        }
        guard waiters == 0 else {
            // Threads blocked in this kqueue's wait must all wake and report EBADF. An edge
            // wakes one thread; the primary eventfd, made level-triggered and signalled, wakes
            // every wait until it is closed, which the last waiter to leave does.
            let level = UInt32(EPOLLIN.rawValue)
            _ = Syscall.epollCtl(epollFD, EPOLL_CTL_MOD, eventFD, events: level, data: InternalSource.eventFD)
            Syscall.eventFDSignal(eventFD)
            return
        }
        closeInternalDescriptors()
    }

    /// Closes the descriptors the kqueue created (not the kqueue descriptor itself).
    mutating func closeInternalDescriptors() {
        regularFiles.close()
        vnodes.close()
        processEvents.close()
        monotonicTimers.close()
        realtimeTimers.close()
        wakeups.close()
        spareBuffer?.events.deallocate()
        spareBuffer = nil
        for buffer in bufferPool { buffer.events.deallocate() }
        bufferPool.removeAll()
    }
}
