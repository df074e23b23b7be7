import CKQueue

/// EVFILT_USER (SPEC.md 3): events with no kernel object, triggered by a change with
/// NOTE_TRIGGER. The stored `fflags` are combined with FFNOP/FFAND/FFOR/FFCOPY. User knotes
/// live only in the table and the active queue; they use no descriptor of their own.
enum UserFilter {
    /// `filterState` 1: triggered (FreeBSD's kn_hookid).
    static func isTriggered(_ knote: Knote) -> Bool { knote.filterState != 0 }

    static func attach(_ index: Int32, in state: inout QueueState) -> Int32? {
        let fflags = state.table[index].savedFlags
        state.table[index].filterState = fflags & Note.trigger != 0 ? 1 : 0
        state.table[index].savedFlags = fflags & Note.ffFlagsMask
        return nil
    }

    static func modify(_ index: Int32, with change: kevent, in state: inout QueueState) {
        if change.fflags & Note.trigger != 0 { state.table[index].filterState = 1 }
        let value = change.fflags & Note.ffFlagsMask
        switch change.fflags & Note.ffControlMask {
        case Note.ffAnd: state.table[index].savedFlags &= value
        case Note.ffOr: state.table[index].savedFlags |= value
        case Note.ffCopy: state.table[index].savedFlags = value
        default: break  // NOTE_FFNOP
        }
        state.table[index].savedData = change.data
        // FreeBSD resets the state when the change carries EV_CLEAR; a change that also
        // carries NOTE_TRIGGER still fires (SPEC.md: NOTE_TRIGGER, with or without EV_ADD).
        if change.flags & EV.clear != 0 && change.fflags & Note.trigger == 0 {
            state.table[index].filterState = 0
            state.table[index].status.remove(.active)
        }
    }

    static func process(_ index: Int32, into event: inout kevent, in state: inout QueueState) {
        event.fflags = state.table[index].savedFlags
        event.data = state.table[index].savedData
        if state.table[index].flags & EV.clear != 0 {
            state.table[index].filterState = 0
        }
    }
}
