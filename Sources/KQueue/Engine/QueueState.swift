import CKQueue
import CKQueueShim
import Glibc
import SystemPackage

/// Everything of one kqueue that the kqueue lock protects: the knote table, the active
/// queue and the filters' sources. Lives inside ``KQueueCore``'s `Mutex`, so every method
/// here runs with the lock held; none of them blocks (the wait happens outside).
struct QueueState: ~Copyable {
    /// Where readiness comes from: epoll, or io_uring poll requests (the kqueue descriptor
    /// is the backend's epoll instance either way).
    let backend: ReadinessBackend
    /// Wakes waiters and makes the kqueue descriptor readable when the active queue has
    /// entries. Registered edge-triggered; never read, only written.
    let eventFD: Int32
    /// The kqueue's own descriptors, published for the fork child handler.
    let internalDescriptors: InternalDescriptors
    /// EVFILT_LIO completions posted from outside the lock (shared with ``KQueueCore``).
    let aioMailbox = AIOMailbox()

    var table = KnoteTable()
    var activeQueue = ActiveQueue()
    /// Orders activations among descriptor readiness (rule 10).
    var wakeups: WakeupSignals
    var sources = FilterSources()
    /// Set once the kqueue is closed; every later call fails with EBADF.
    var isClosed = false
    /// Reusable epoll_wait buffers, one per concurrent waiter.
    var buffers = EpollBufferPool()
    /// Threads between taking a wait buffer and giving it back (in or around epoll_wait).
    var waiters = 0
    /// Set while a call applies changes it will collect itself, or while a scan copies events
    /// out: activations then leave the wakeup eventfd alone, since the call delivers them.
    var deferWakeup = false
    /// Knotes queued while `deferWakeup` was set.
    var deferredActivations = 0
    /// Numbers the scans, for ``Knote/returnedInScan``.
    var scanNumber: UInt32 = 0
    /// Filters whose ``FilterOperations/scanStarting(in:)`` runs at every scan (bit `~filter`).
    var filtersScannedEveryTime: UInt16 = 0
    /// Filters whose ``FilterOperations/scanEnded(in:)`` runs at the end of this scan.
    var filtersAwaitingScanEnd: UInt16 = 0
    /// Filters with work a waiting thread may do (``FilterOperations/workBeforeWaiting(in:)``).
    var filtersWithWork: UInt16 = 0

    init(backend: ReadinessBackend, eventFD: Int32, internalDescriptors: InternalDescriptors) {
        self.backend = backend
        self.eventFD = eventFD
        self.internalDescriptors = internalDescriptors
        wakeups = WakeupSignals(primary: eventFD)
    }

    /// Registers and publishes descriptors the kqueue creates for its filters.
    var registrar: InternalRegistrar { InternalRegistrar(backend: backend, published: internalDescriptors) }

    // MARK: Registration (FreeBSD's kqueue_register)

    /// Applies one change.
    mutating func register(_ change: kevent) throws(Errno) {
        let flags = change.flags
        if flags & (EV.enable | EV.disable) == EV.enable | EV.disable { throw .invalidArgument }
        let filter = change.filter
        guard filter < 0, filter >= -FilterID.systemCount else { throw .invalidArgument }
        if let error = FilterTable.registrationError(filter, in: &self) { throw error }
        let isDescriptor = FilterTable.identIsDescriptor(filter, in: &self)
        if isDescriptor && change.ident > UInt(Int32.max) { throw .badFileDescriptor }

        guard let index = FilterTable.find(filter, ident: change.ident, in: &self) else {
            guard flags & EV.add != 0 else {
                if isDescriptor && !Syscall.isOpen(Int32(change.ident)) { throw .badFileDescriptor }
                throw .noSuchFileOrDirectory
            }
            if flags & EV.keepUData != 0 { throw .invalidArgument }
            try attachNew(change)
            return
        }
        if flags & EV.delete != 0 {
            drop(index)
            return
        }
        try modify(index, with: change)
    }

    private mutating func modify(_ index: Int32, with change: kevent) throws(Errno) {
        let flags = change.flags
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
        try FilterTable.touch(index, with: change, in: &self)
        guard table[index].status.contains(.inUse) else { return }  // the filter dropped it
        FilterTable.registered(index, justAttached: false, in: &self)
    }

    private mutating func attachNew(_ change: kevent) throws(Errno) {
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
        do throws(Errno) {
            try FilterTable.link(index, in: &self)
        } catch {
            table.free(index)
            throw error
        }
        do throws(Errno) {
            try FilterTable.attach(index, in: &self)
        } catch {
            FilterTable.unlink(index, in: &self)
            table.free(index)
            throw error
        }
        guard table[index].status.contains(.inUse) else { return }  // the filter dropped it
        FilterTable.registered(index, justAttached: true, in: &self)
    }

    @inline(__always)
    mutating func lookup(filter: Int16, ident: UInt) -> Int32? {
        FilterTable.find(filter, ident: ident, in: &self)
    }

    /// Detaches and frees a knote (EV_DELETE, a delivered EV_ONESHOT, close of its descriptor).
    mutating func drop(_ index: Int32) {
        activeQueue.remove(index, in: &table)
        FilterTable.unlink(index, in: &self)
        FilterTable.detach(index, in: &self)
        table.free(index)
    }

    // MARK: Activation

    /// Marks a knote active and queues it unless it is disabled (FreeBSD's KNOTE_ACTIVATE).
    mutating func activate(_ index: Int32) {
        table[index].status.insert(.active)
        if !table[index].status.contains(.disabled) { enqueue(index) }
    }

    /// Marks a knote active and queues it even if the filter cannot tell readiness without
    /// asking again: the next scan re-checks it with ``FilterOperations/event(_:in:)``.
    mutating func queueForRecheck(_ index: Int32) {
        table[index].status.insert(.active)
        enqueue(index)
    }

    mutating func enqueue(_ index: Int32) {
        guard !table[index].status.contains(.queued) else { return }
        table[index].segment = wakeups.nextSequence
        activeQueue.append(index, in: &table)
        if deferWakeup { deferredActivations += 1 } else { signalWakeup() }
    }

    /// Readiness of a queued-by-check knote may have changed (e.g. its file grew): queue it if so.
    mutating func recheck(_ index: Int32) {
        guard table[index].status.contains(.inUse), !table[index].status.contains(.queued) else { return }
        if FilterTable.event(index, in: &self) { activate(index) }
    }

    /// Opens a wakeup segment for what was queued since the last one: its eventfd edge wakes
    /// one waiter, makes the kqueue descriptor readable for poll(2) or an outer kqueue, and
    /// marks the activation's place among descriptor events.
    @inline(__always)
    mutating func signalWakeup() {
        wakeups.openSegment(registrar: registrar)
    }

    /// `filter`'s ``FilterOperations/scanStarting(in:)`` runs at every scan, or no longer.
    mutating func setScannedEveryTime(_ filter: Int16, _ enabled: Bool) {
        let bit = UInt16(1) << UInt16(~filter)
        if enabled { filtersScannedEveryTime |= bit } else { filtersScannedEveryTime &= ~bit }
    }

    /// `filter` has work a waiting thread may do, or no longer.
    mutating func setHasWork(_ filter: Int16, _ enabled: Bool) {
        let bit = UInt16(1) << UInt16(~filter)
        if enabled { filtersWithWork |= bit } else { filtersWithWork &= ~bit }
    }

    /// A waiting call would block: the filters with work do a piece of it in its thread. True
    /// when one did some (the call looks again without blocking).
    mutating func workBeforeWaiting() -> Bool {
        var pending = filtersWithWork
        var worked = false
        while pending != 0 {
            let bit = pending.trailingZeroBitCount
            pending &= pending - 1
            if FilterTable.workBeforeWaiting(~Int16(bit), in: &self) { worked = true }
        }
        return worked
    }

    /// `filter`'s ``FilterOperations/scanEnded(in:)`` runs once the current scan ends.
    mutating func requestScanEnd(_ filter: Int16) {
        filtersAwaitingScanEnd |= UInt16(1) << UInt16(~filter)
    }

    // MARK: Descriptor lifetime

    /// `fd` is being closed: remove every knote on it, as FreeBSD's close() does.
    mutating func descriptorClosing(_ fd: Int32) {
        guard fd >= 0 else { return }
        for filter in FilterTable.allFilters where FilterTable.identIsDescriptor(filter, in: &self) {
            if let index = lookup(filter: filter, ident: UInt(fd)) { drop(index) }
        }
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
            // every wait until it is closed, which the last waiter to leave does (the ring: a
            // completion nobody takes).
            backend.wakeAllWaiters(eventFD: eventFD)
            return
        }
        closeInternalDescriptors()
    }

    /// Closes the descriptors the kqueue created (not the kqueue descriptor itself).
    mutating func closeInternalDescriptors() {
        for filter in FilterTable.allFilters { FilterTable.closeSources(filter, in: &self) }
        wakeups.close(registrar: registrar)
        buffers.releaseAll()
        if let ringFD = backend.ringDescriptor { internalDescriptors.remove(ringFD) }
        backend.closeRing()
    }
}
