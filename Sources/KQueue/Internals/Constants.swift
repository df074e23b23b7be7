import CKQueue

// The engine's kqueue constants, each read from <sys/event.h> (swift-system's
// Internals/Constants.swift is the model): the header is the one home of every value, so the
// engine and the C ABI cannot disagree. The public option sets (Flags, Filter, the *Note
// types) keep literal values for `@inlinable` use; ConstantsTests checks each of them
// against the same header.

/// `EV_*` flags of `struct kevent`.
enum EV {
    static let add = UInt16(truncatingIfNeeded: EV_ADD)
    static let delete = UInt16(truncatingIfNeeded: EV_DELETE)
    static let enable = UInt16(truncatingIfNeeded: EV_ENABLE)
    static let disable = UInt16(truncatingIfNeeded: EV_DISABLE)
    static let oneShot = UInt16(truncatingIfNeeded: EV_ONESHOT)
    static let clear = UInt16(truncatingIfNeeded: EV_CLEAR)
    static let receipt = UInt16(truncatingIfNeeded: EV_RECEIPT)
    static let dispatch = UInt16(truncatingIfNeeded: EV_DISPATCH)
    static let forceOneShot = UInt16(truncatingIfNeeded: EV_FORCEONESHOT)
    static let keepUData = UInt16(truncatingIfNeeded: EV_KEEPUDATA)
    static let systemFlags = UInt16(truncatingIfNeeded: EV_SYSFLAGS)
    static let error = UInt16(truncatingIfNeeded: EV_ERROR)
    static let eof = UInt16(truncatingIfNeeded: EV_EOF)
    /// Action bits that are never stored in a knote nor returned.
    static let actions: UInt16 = add | delete | enable | disable | forceOneShot
}

/// `EVFILT_*` filter numbers.
enum FilterID {
    static let read = Int16(truncatingIfNeeded: EVFILT_READ)
    static let write = Int16(truncatingIfNeeded: EVFILT_WRITE)
    static let aio = Int16(truncatingIfNeeded: EVFILT_AIO)
    static let vnode = Int16(truncatingIfNeeded: EVFILT_VNODE)
    static let proc = Int16(truncatingIfNeeded: EVFILT_PROC)
    static let signal = Int16(truncatingIfNeeded: EVFILT_SIGNAL)
    static let timer = Int16(truncatingIfNeeded: EVFILT_TIMER)
    static let procdesc = Int16(truncatingIfNeeded: EVFILT_PROCDESC)
    static let fs = Int16(truncatingIfNeeded: EVFILT_FS)
    static let lio = Int16(truncatingIfNeeded: EVFILT_LIO)
    static let user = Int16(truncatingIfNeeded: EVFILT_USER)
    static let sendfile = Int16(truncatingIfNeeded: EVFILT_SENDFILE)
    static let empty = Int16(truncatingIfNeeded: EVFILT_EMPTY)
    static let systemCount = Int16(truncatingIfNeeded: EVFILT_SYSCOUNT)
}

/// `NOTE_*` values of `fflags`, by filter.
enum Note {
    // EVFILT_READ, EVFILT_WRITE
    static let lowWater = UInt32(truncatingIfNeeded: NOTE_LOWAT)
    static let filePoll = UInt32(truncatingIfNeeded: NOTE_FILE_POLL)

    // EVFILT_USER
    static let ffAnd = UInt32(truncatingIfNeeded: NOTE_FFAND)
    static let ffOr = UInt32(truncatingIfNeeded: NOTE_FFOR)
    static let ffCopy = UInt32(truncatingIfNeeded: NOTE_FFCOPY)
    static let ffControlMask = UInt32(truncatingIfNeeded: NOTE_FFCTRLMASK)
    static let ffFlagsMask = UInt32(truncatingIfNeeded: NOTE_FFLAGSMASK)
    static let trigger = UInt32(truncatingIfNeeded: NOTE_TRIGGER)

    // EVFILT_VNODE
    static let delete = UInt32(truncatingIfNeeded: NOTE_DELETE)
    static let write = UInt32(truncatingIfNeeded: NOTE_WRITE)
    static let extend = UInt32(truncatingIfNeeded: NOTE_EXTEND)
    static let attrib = UInt32(truncatingIfNeeded: NOTE_ATTRIB)
    static let link = UInt32(truncatingIfNeeded: NOTE_LINK)
    static let rename = UInt32(truncatingIfNeeded: NOTE_RENAME)
    static let revoke = UInt32(truncatingIfNeeded: NOTE_REVOKE)
    static let open = UInt32(truncatingIfNeeded: NOTE_OPEN)
    static let close = UInt32(truncatingIfNeeded: NOTE_CLOSE)
    static let closeWrite = UInt32(truncatingIfNeeded: NOTE_CLOSE_WRITE)
    static let read = UInt32(truncatingIfNeeded: NOTE_READ)

    // EVFILT_PROC
    static let exit = UInt32(truncatingIfNeeded: NOTE_EXIT)
    static let fork = UInt32(truncatingIfNeeded: NOTE_FORK)
    static let exec = UInt32(truncatingIfNeeded: NOTE_EXEC)
    static let track = UInt32(truncatingIfNeeded: NOTE_TRACK)
    static let trackError = UInt32(truncatingIfNeeded: NOTE_TRACKERR)
    static let child = UInt32(truncatingIfNeeded: NOTE_CHILD)
    static let exitUnknown = UInt32(truncatingIfNeeded: NOTE_EXIT_UNKNOWN)

    // EVFILT_FS (FreeBSD's vfsquery flags)
    static let vqMount = UInt32(truncatingIfNeeded: VQ_MOUNT)
    static let vqUnmount = UInt32(truncatingIfNeeded: VQ_UNMOUNT)

    // EVFILT_TIMER
    static let seconds = UInt32(truncatingIfNeeded: NOTE_SECONDS)
    static let milliseconds = UInt32(truncatingIfNeeded: NOTE_MSECONDS)
    static let microseconds = UInt32(truncatingIfNeeded: NOTE_USECONDS)
    static let nanoseconds = UInt32(truncatingIfNeeded: NOTE_NSECONDS)
    static let absoluteTime = UInt32(truncatingIfNeeded: NOTE_ABSTIME)
}
