import CKQueue
import SystemPackage

/// EVFILT_USER (SPEC.md 3): events with no kernel object, triggered by a change with
/// NOTE_TRIGGER. The stored `fflags` are combined with FFNOP/FFAND/FFOR/FFCOPY. User knotes
/// live only in the table and the active queue; they use no descriptor of their own.
enum UserFilter: FilterOperations {
    static var filter: Int16 { FilterID.user }

    /// `filterState` 1: triggered (FreeBSD's kn_hookid).
    static func event(_ knote: Int32, in state: inout QueueState) -> Bool { state.table[knote].filterState != 0 }

    static func attach(_ knote: Int32, in state: inout QueueState) throws(Errno) {
        let fflags = state.table[knote].savedFlags
        state.table[knote].filterState = fflags & Note.trigger != 0 ? 1 : 0
        state.table[knote].savedFlags = fflags & Note.ffFlagsMask
    }

    static func touch(_ knote: Int32, with change: kevent, in state: inout QueueState) throws(Errno) {
        if change.fflags & Note.trigger != 0 { state.table[knote].filterState = 1 }
        let value = change.fflags & Note.ffFlagsMask
        switch change.fflags & Note.ffControlMask {
        case Note.ffAnd: state.table[knote].savedFlags &= value
        case Note.ffOr: state.table[knote].savedFlags |= value
        case Note.ffCopy: state.table[knote].savedFlags = value
        default: break  // NOTE_FFNOP
        }
        state.table[knote].savedData = change.data
        // FreeBSD resets the state when the change carries EV_CLEAR; a change that also
        // carries NOTE_TRIGGER still fires (SPEC.md: NOTE_TRIGGER, with or without EV_ADD).
        if change.flags & EV.clear != 0 && change.fflags & Note.trigger == 0 {
            state.table[knote].filterState = 0
            state.table[knote].status.remove(.active)
        }
    }

    static func deliver(_ knote: Int32, into event: inout kevent, in state: inout QueueState) -> Bool {
        event.fflags = state.table[knote].savedFlags
        event.data = state.table[knote].savedData
        if state.table[knote].flags & EV.clear != 0 {
            state.table[knote].filterState = 0
        }
        return true
    }
}
