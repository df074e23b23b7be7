import CKQueue
import SystemPackage

/// A filter's operations (FreeBSD's `struct filterops`): the only way the core reaches a
/// filter. Each filter is one conforming type in its own file; ``FilterTable`` maps a filter
/// number to it, statically. Every operation runs with the kqueue lock held and must not block.
///
/// A knote is named by its index in ``KnoteTable``; `state` is the whole kqueue.
protocol FilterOperations {
    /// The `EVFILT_*` number.
    static var filter: Int16 { get }
    /// FreeBSD's `f_isfd`: the ident is a descriptor, which must be open (EBADF), and close(2)
    /// of it removes the knote.
    static var identIsDescriptor: Bool { get }
    /// An error every change of this filter fails with before its knote is looked up
    /// (EVFILT_AIO: EPERM; filters not implemented: ENOSYS), or nil.
    static var registrationError: Errno? { get }

    /// Where lookup finds the knote for `ident` (default: the kqueue's ident table).
    static func find(_ ident: UInt, in state: inout QueueState) -> Int32?
    /// Records a new knote where ``find(_:in:)`` will find it; may refuse the ident.
    static func link(_ knote: Int32, in state: inout QueueState) throws(Errno)
    static func unlink(_ knote: Int32, in state: inout QueueState)

    /// `f_attach`: connects a new knote to its source.
    static func attach(_ knote: Int32, in state: inout QueueState) throws(Errno)
    /// `f_detach`: disconnects a knote that is going away (already unlinked).
    static func detach(_ knote: Int32, in state: inout QueueState)
    /// `f_touch` with EVENT_REGISTER: a change to an existing knote (its fflags and data).
    static func touch(_ knote: Int32, with change: kevent, in state: inout QueueState) throws(Errno)
    /// After EV_ADD, EV_ENABLE or a modification: check the source once and queue the knote
    /// if it is ready (default: ask ``event(_:in:)``).
    static func registered(_ knote: Int32, justAttached: Bool, in state: inout QueueState)
    /// `f_event`: is the source ready now? Sets the knote's `data` and `fflags` for the event.
    static func event(_ knote: Int32, in state: inout QueueState) -> Bool
    /// `f_touch` with EVENT_PROCESS: fills in the event a queued knote returns. Returns true
    /// when the filter reset the knote's state itself (EV_CLEAR then leaves it alone).
    static func deliver(_ knote: Int32, into event: inout kevent, in state: inout QueueState) -> Bool

    /// An internal source of this filter, registered with ``EpollTag/source(filter:payload:)``,
    /// was reported by epoll.
    static func sourceReported(_ payload: UInt32, in state: inout QueueState)
    /// Called at the start of every scan while the filter is in
    /// ``QueueState/filtersScannedEveryTime`` and its source was not reported in that scan.
    static func scanStarting(in state: inout QueueState)
    /// Called once at the end of a scan in which the filter asked for it
    /// (``QueueState/requestScanEnd(_:)``), after the scan's wakeup was written.
    static func scanEnded(in state: inout QueueState)
    /// The kqueue is closing: release the filter's internal sources.
    static func closeSources(in state: inout QueueState)
    /// A waiting call found nothing to return and would block: while the filter is in
    /// ``QueueState/filtersWithWork``, it may do a bounded piece of its own work in the
    /// waiting thread instead (EVFILT_AIO runs requests queued for its helper threads). True
    /// when it did some: the call then looks again without blocking.
    static func workBeforeWaiting(in state: inout QueueState) -> Bool
}

extension FilterOperations {
    static var identIsDescriptor: Bool { false }
    static var registrationError: Errno? { nil }

    static func find(_ ident: UInt, in state: inout QueueState) -> Int32? {
        state.table.others.value(filter: filter, ident: ident)
    }

    static func link(_ knote: Int32, in state: inout QueueState) throws(Errno) {
        state.table.others.insert(filter: filter, ident: state.table[knote].ident, value: knote)
    }

    static func unlink(_ knote: Int32, in state: inout QueueState) {
        state.table.others.remove(filter: filter, ident: state.table[knote].ident)
    }

    static func detach(_ knote: Int32, in state: inout QueueState) {}

    static func touch(_ knote: Int32, with change: kevent, in state: inout QueueState) throws(Errno) {
        state.table[knote].savedFlags = change.fflags
        state.table[knote].savedData = change.data
    }

    static func registered(_ knote: Int32, justAttached: Bool, in state: inout QueueState) {
        checkAndQueue(knote, in: &state)
    }

    /// Checks the source once (``event(_:in:)``) and queues the knote if it is ready, or was
    /// already active, unless it is disabled: FreeBSD's check after registration.
    static func checkAndQueue(_ knote: Int32, in state: inout QueueState) {
        guard !state.table[knote].status.contains(.disabled) else { return }
        if event(knote, in: &state) { state.table[knote].status.insert(.active) }
        if state.table[knote].status.contains(.active) { state.enqueue(knote) }
    }

    static func deliver(_ knote: Int32, into event: inout kevent, in state: inout QueueState) -> Bool { false }
    static func sourceReported(_ payload: UInt32, in state: inout QueueState) {}
    static func scanStarting(in state: inout QueueState) {}
    static func scanEnded(in state: inout QueueState) {}
    static func closeSources(in state: inout QueueState) {}
    static func workBeforeWaiting(in state: inout QueueState) -> Bool { false }
}
