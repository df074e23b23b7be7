import CKQueue
import CKQueueShim
import Glibc

/// The filter-operations table (FreeBSD's `struct filterops`), as a switch on the filter
/// value: attach, detach, modify (f_touch) and the readiness check (f_event). Each filter's
/// operations live in its own file; the core in ``QueueState`` knows nothing filter-specific.
enum FilterDispatch {
    @inline(__always)
    static func isDescriptorFilter(_ filter: Int16) -> Bool {
        filter == FilterID.read || filter == FilterID.write
    }

    /// Filters whose ident must be an open descriptor (FreeBSD's `f_isfd`): EBADF otherwise,
    /// and close(2) of the descriptor removes their knotes.
    @inline(__always)
    static func takesDescriptor(_ filter: Int16) -> Bool {
        isDescriptorFilter(filter) || filter == FilterID.vnode
    }

    /// The errno for a known filter this implementation does not provide, or nil.
    static func unsupportedError(filter: Int16) -> Int32? {
        switch filter {
        case FilterID.read, FilterID.write, FilterID.user, FilterID.timer, FilterID.proc, FilterID.vnode,
            FilterID.signal:
            return nil
        // SPEC.md 3: only a submitted aio request registers EVFILT_AIO.
        case FilterID.aio: return EPERM
        default: return ENOSYS
        }
    }

    /// Attaches a freshly allocated knote to its source. Returns an errno on failure.
    static func attach(_ index: Int32, in state: inout QueueState) -> Int32? {
        switch state.table[index].filter {
        case FilterID.read, FilterID.write: return DescriptorFilter.attach(index, in: &state)
        case FilterID.user: return UserFilter.attach(index, in: &state)
        case FilterID.timer: return TimerFilter.attach(index, in: &state)
        case FilterID.proc: return ProcFilter.attach(index, in: &state)
        case FilterID.vnode: return VnodeFilter.attach(index, in: &state)
        case FilterID.signal: return SignalFilter.attach(index, in: &state)
        default: return ENOSYS
        }
    }

    static func detach(_ index: Int32, in state: inout QueueState) {
        switch state.table[index].filter {
        case FilterID.read, FilterID.write: DescriptorFilter.detach(index, in: &state)
        case FilterID.timer: TimerFilter.detach(index, in: &state)
        case FilterID.proc: ProcFilter.detach(index, in: &state)
        case FilterID.vnode: VnodeFilter.detach(index, in: &state)
        case FilterID.signal: SignalFilter.detach(index, in: &state)
        default: break
        }
    }

    /// A change on an existing knote (FreeBSD's f_touch with EVENT_REGISTER, or the plain
    /// copy of fflags and data for descriptor filters).
    static func modify(_ index: Int32, with change: kevent, in state: inout QueueState) -> Int32? {
        switch state.table[index].filter {
        case FilterID.user:
            UserFilter.modify(index, with: change, in: &state)
        case FilterID.timer:
            return TimerFilter.modify(index, with: change, in: &state)
        case FilterID.proc:
            return ProcFilter.modify(index, with: change, in: &state)
        case FilterID.vnode:
            return VnodeFilter.modify(index, with: change, in: &state)
        default:
            state.table[index].savedFlags = change.fflags
            state.table[index].savedData = change.data
        }
        return nil
    }

    /// True when epoll, not the user-space active queue, reports this knote's readiness.
    static func usesEpoll(_ index: Int32, in state: borrowing QueueState) -> Bool {
        let knote = state.table[index]
        guard isDescriptorFilter(knote.filter),
            let entry = state.table.existingDescriptor(Int32(knote.ident))
        else { return false }
        return entry.kind.usesEpoll
    }

    /// f_event for knotes on the user-space queue: is the source ready now? Updates the
    /// knote's `data` and `fflags` for the event about to be returned.
    static func isReady(_ index: Int32, in state: inout QueueState) -> Bool {
        switch state.table[index].filter {
        case FilterID.read, FilterID.write:
            return DescriptorFilter.recheck(index, in: &state)
        case FilterID.user:
            return UserFilter.isTriggered(state.table[index])
        case FilterID.timer:
            return TimerFilter.isReady(index, in: &state)
        case FilterID.proc:
            return ProcFilter.isReady(index, in: &state)
        case FilterID.vnode:
            return VnodeFilter.isReady(index, in: state)
        case FilterID.signal:
            return SignalFilter.isReady(index, in: &state)
        default:
            return false
        }
    }

    /// Fills in the event a queued knote returns (FreeBSD's f_touch with EVENT_PROCESS for
    /// filters that have one). Returns true when the filter reset the knote's state itself.
    static func prepareDelivery(_ index: Int32, into event: inout kevent, in state: inout QueueState) -> Bool {
        switch state.table[index].filter {
        case FilterID.user:
            UserFilter.process(index, into: &event, in: &state)
            return true
        case FilterID.signal:
            SignalFilter.process(index, into: &event, in: &state)
            return true
        case FilterID.proc:
            ProcFilter.process(index, into: event, in: &state)
            return false
        default:
            return false
        }
    }
}
