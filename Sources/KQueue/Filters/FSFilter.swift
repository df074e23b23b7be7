import CKQueue
import SystemPackage

/// EVFILT_FS (SPEC.md 3): mounts and unmounts in the caller's mount namespace
/// (``MountWatcher``). As FreeBSD's filt_fsattach and filt_fsevent: any ident (FreeBSD checks
/// none), EV_CLEAR added, `fflags` the VQ_* bits of what happened since the last return
/// (whatever `fflags` the registration gave), `data` 0; ready while `fflags` is not 0.
/// Linux can tell VQ_MOUNT and VQ_UNMOUNT; FreeBSD 12 raises the others only for NFS.
enum FSFilter: FilterOperations {
    static var filter: Int16 { FilterID.fs }

    static func attach(_ knote: Int32, in state: inout QueueState) throws(Errno) {
        state.table[knote].flags |= EV.clear
        let pending = try state.sources.mounts.add(knote, registrar: state.registrar)
        if pending != 0 { tell(pending, except: knote, in: &state) }
    }

    static func detach(_ knote: Int32, in state: inout QueueState) {
        state.sources.mounts.remove(knote, registrar: state.registrar)
    }

    static func event(_ knote: Int32, in state: inout QueueState) -> Bool {
        state.table[knote].data = 0
        return state.table[knote].fflags != 0
    }

    /// The mount table changed: every knote records what happened.
    static func sourceReported(_ payload: UInt32, in state: inout QueueState) {
        let bits = state.sources.mounts.changes()
        if bits != 0 { tell(bits, except: -1, in: &state) }
    }

    private static func tell(_ bits: UInt32, except skipped: Int32, in state: inout QueueState) {
        for knote in state.sources.mounts.knotes where knote != skipped {
            state.table[knote].fflags |= bits
            state.activate(knote)
        }
    }

    static func closeSources(in state: inout QueueState) {
        state.sources.mounts.close(registrar: state.registrar)
    }
}
