import CKQueue

/// One registration: a (ident, filter) pair in one kqueue (FreeBSD's `struct knote`).
///
/// Keeps what the caller asked for (`savedFlags`, `savedData`, `udata`, `flags`) apart from
/// what will be returned (`fflags`, `data`). Knotes live by value in ``KnoteTable``; they are
/// referred to by their index in it, so the hot path neither allocates nor retains.
struct Knote {
    var ident: UInt = 0
    var filter: Int16 = 0
    /// Stored EV_* flags: the change's flags less ADD, DELETE, ENABLE, DISABLE, FORCEONESHOT.
    var flags: UInt16 = 0
    /// `fflags` and `data` as given at registration (FreeBSD's `kn_sfflags`, `kn_sdata`).
    var savedFlags: UInt32 = 0
    var savedData: Int64 = 0
    var udata: UnsafeMutableRawPointer? = nil
    var ext: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    /// What the next event returns.
    var fflags: UInt32 = 0
    var data: Int64 = 0
    var status: KnoteStatus = []
    /// Links in the kqueue's user-space active queue (indices, -1 for none).
    var previous: Int32 = -1
    var next: Int32 = -1
    /// Filter-private state (e.g. an inotify watch, a triggered user event).
    var filterState: Int64 = 0
    /// The ``WakeupSignals`` segment the knote was queued under.
    var segment: UInt32 = 0
    /// The scan that last returned it (one call never returns a knote twice).
    var returnedInScan: UInt32 = 0

    /// The kevent this knote returns now.
    @inline(__always)
    func event(extraFlags: UInt16 = 0) -> kevent {
        kevent(
            ident: ident, filter: filter, flags: flags | extraFlags, fflags: fflags, data: data,
            udata: udata, ext: ext)
    }
}

/// Status bits of a knote (FreeBSD's KN_*).
struct KnoteStatus: OptionSet {
    var rawValue: UInt8
    /// The source has an event to report (KN_ACTIVE).
    static let active = KnoteStatus(rawValue: 1 << 0)
    /// On the user-space active queue (KN_QUEUED).
    static let queued = KnoteStatus(rawValue: 1 << 1)
    /// EV_DISABLE, or EV_DISPATCH after a delivery (KN_DISABLED).
    static let disabled = KnoteStatus(rawValue: 1 << 2)
    /// The slot holds a live knote.
    static let inUse = KnoteStatus(rawValue: 1 << 3)
    /// The last check saw end-of-file (reported as EV_EOF).
    static let endOfFile = KnoteStatus(rawValue: 1 << 4)
}

/// EV_* and NOTE_* values as Swift constants for the engine (the header's macros are not
/// all importable with the right types).
enum EV {
    static let add: UInt16 = 0x0001
    static let delete: UInt16 = 0x0002
    static let enable: UInt16 = 0x0004
    static let disable: UInt16 = 0x0008
    static let oneShot: UInt16 = 0x0010
    static let clear: UInt16 = 0x0020
    static let receipt: UInt16 = 0x0040
    static let dispatch: UInt16 = 0x0080
    static let forceOneShot: UInt16 = 0x0100
    static let keepUData: UInt16 = 0x0200
    static let systemFlags: UInt16 = 0xF000
    static let error: UInt16 = 0x4000
    static let eof: UInt16 = 0x8000
    /// Action bits that are never stored in a knote nor returned.
    static let actions: UInt16 = add | delete | enable | disable | forceOneShot
}

enum FilterID {
    static let read: Int16 = -1
    static let write: Int16 = -2
    static let aio: Int16 = -3
    static let vnode: Int16 = -4
    static let proc: Int16 = -5
    static let signal: Int16 = -6
    static let timer: Int16 = -7
    static let procdesc: Int16 = -8
    static let fs: Int16 = -9
    static let lio: Int16 = -10
    static let user: Int16 = -11
    static let sendfile: Int16 = -12
    static let empty: Int16 = -13
    static let systemCount: Int16 = 13
}

enum Note {
    static let lowWater: UInt32 = 0x0001
    static let filePoll: UInt32 = 0x0002
    static let ffNop: UInt32 = 0
    static let ffAnd: UInt32 = 0x4000_0000
    static let ffOr: UInt32 = 0x8000_0000
    static let ffCopy: UInt32 = 0xC000_0000
    static let ffControlMask: UInt32 = 0xC000_0000
    static let ffFlagsMask: UInt32 = 0x00FF_FFFF
    static let trigger: UInt32 = 0x0100_0000
}
