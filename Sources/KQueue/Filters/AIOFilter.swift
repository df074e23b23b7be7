import CKQueue
import SystemPackage

/// EVFILT_AIO (SPEC.md 3): a knote registered by a submitted request (``QueueState/submitAIO(_:tags:errors:)``,
/// FreeBSD's aio_aqueue), never by a change: EV_ADD of a new knote from user space fails with
/// EPERM, as FreeBSD's filt_aioattach does; changes to an existing one (EV_DELETE, EV_DISABLE,
/// EV_ENABLE) work as for any knote. Ready once the request is done: `data` is its error
/// (0 on success), flags gain EV_EOF; without EV_ONESHOT or EV_CLEAR it stays ready until the
/// request is returned (aio_return, or the Swift completion taken).
enum AIOFilter: FilterOperations {
    static var filter: Int16 { FilterID.aio }
    static func attach(_ knote: Int32, in state: inout QueueState) throws(Errno) { throw .notPermitted }
    /// Nothing of a change is kept: `savedData` marks the request done.
    static func touch(_ knote: Int32, with change: kevent, in state: inout QueueState) throws(Errno) {}
    static func event(_ knote: Int32, in state: inout QueueState) -> Bool { state.table[knote].savedData != 0 }

    // A Swift request's ident is its tag (``AIORequestID``), which names its slot: its knote
    // is found there, and stays out of the ident table (a hash insert and remove saved per
    // request). A C request's ident is its aiocb's address, in the ident table.
    static func find(_ ident: UInt, in state: inout QueueState) -> Int32? {
        guard ident & AIORequestID.swiftBit != 0 else {
            return state.table.others.value(filter: filter, ident: ident)
        }
        guard let slot = state.sources.aio.slot(of: AIORequestID(rawValue: ident).tag) else { return nil }
        let knote = state.sources.aio.jobs[slot].knote
        return knote >= 0 && state.table[knote].ident == ident ? knote : nil
    }

    static func link(_ knote: Int32, in state: inout QueueState) throws(Errno) {
        let ident = state.table[knote].ident
        if ident & AIORequestID.swiftBit == 0 { state.table.others.insert(filter: filter, ident: ident, value: knote) }
    }

    static func unlink(_ knote: Int32, in state: inout QueueState) {
        let ident = state.table[knote].ident
        if ident & AIORequestID.swiftBit == 0 { state.table.others.remove(filter: filter, ident: ident) }
    }

    static func detach(_ knote: Int32, in state: inout QueueState) {
        let tag = UInt64(bitPattern: state.table[knote].filterState)
        if let slot = state.sources.aio.slot(of: tag), state.sources.aio.jobs[slot].knote == knote {
            state.sources.aio.jobs[slot].knote = -1
        }
    }

    /// The backend's eventfd: completions (or list completions posted to this kqueue).
    static func sourceReported(_ payload: UInt32, in state: inout QueueState) { state.reapAIO() }
    static func closeSources(in state: inout QueueState) { state.closeAIO() }
    /// Requests queued for the helper threads: a thread that would wait runs some itself.
    static func workBeforeWaiting(in state: inout QueueState) -> Bool { state.assistAIO() }
}

/// EVFILT_LIO (SPEC.md 3): registered by lio_listio(LIO_NOWAIT) with SIGEV_KEVENT, ident the
/// list; ready once every request of the list is done (`data` 0, no EV_EOF, as FreeBSD's
/// filt_lio). A change that would add one from user space: EPERM.
enum LIOFilter: FilterOperations {
    static var filter: Int16 { FilterID.lio }
    static func attach(_ knote: Int32, in state: inout QueueState) throws(Errno) { throw .notPermitted }
    static func touch(_ knote: Int32, with change: kevent, in state: inout QueueState) throws(Errno) {}
    static func event(_ knote: Int32, in state: inout QueueState) -> Bool { state.table[knote].savedData != 0 }
    static func detach(_ knote: Int32, in state: inout QueueState) { AIOFilter.detach(knote, in: &state) }
}
