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

    /// The kevent this knote returns now (with EV_EOF when the last check saw end-of-file).
    @inline(__always)
    func event() -> kevent {
        let eof = status.contains(.endOfFile) ? EV.eof : 0
        return kevent(
            ident: ident, filter: filter, flags: flags | eof, fflags: fflags, data: data, udata: udata, ext: ext)
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
    /// `data` holds the byte count the backend reported with this report (io_uring's
    /// SIOCINQ): READ's check uses it instead of asking FIONREAD.
    static let dataFromBackend = KnoteStatus(rawValue: 1 << 5)
}
