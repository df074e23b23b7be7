import CKQueue
import CKQueueShim
import Glibc
import SystemPackage

/// EVFILT_VNODE (SPEC.md 3): changes to a file or directory, from the kqueue's
/// ``VnodeWatcher`` (inotify on the inode behind the descriptor).
///
/// Each inotify event is one occurrence with a set of NOTE_* bits; as on FreeBSD, when any of
/// them is wanted (`kn_sfflags & hint`), all of them are recorded in the knote's `fflags`,
/// which accumulate until the event is returned. Like FreeBSD's filter, the knote is ready
/// while `fflags` is not 0: without EV_CLEAR it is returned again and again; with EV_CLEAR
/// `fflags` reset when it is returned.
///
/// Mapping (SPEC.md 4): IN_MODIFY → WRITE (+EXTEND when the size grew, +ATTRIB when it shrank:
/// a truncation); IN_ATTRIB → ATTRIB,
/// or LINK when the link count changed, or DELETE when it reached 0; IN_MOVE_SELF → RENAME;
/// IN_DELETE_SELF → DELETE; IN_UNMOUNT → REVOKE with EV_EOF|EV_ONESHOT; IN_OPEN → OPEN;
/// IN_ACCESS → READ; IN_CLOSE_WRITE → CLOSE_WRITE; IN_CLOSE_NOWRITE → CLOSE; in a directory,
/// IN_CREATE/IN_DELETE/IN_MOVED_FROM/IN_MOVED_TO → WRITE, +LINK when a subdirectory came or
/// went (the directory's link count changed).
enum VnodeFilter: FilterOperations {
    static var filter: Int16 { FilterID.vnode }
    static var identIsDescriptor: Bool { true }

    /// The inotify events a knote wanting `notes` needs. Open, read and close are asked for
    /// only when wanted: they are frequent and each maps to a single note.
    static func inotifyMask(for notes: UInt32) -> UInt32 {
        var mask = UInt32(
            IN_MODIFY | IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF | IN_UNMOUNT | IN_CREATE | IN_DELETE | IN_MOVED_FROM
                | IN_MOVED_TO)
        if notes & Note.open != 0 { mask |= UInt32(IN_OPEN) }
        if notes & Note.read != 0 { mask |= UInt32(IN_ACCESS) }
        if notes & Note.closeWrite != 0 { mask |= UInt32(IN_CLOSE_WRITE) }
        if notes & Note.close != 0 { mask |= UInt32(IN_CLOSE_NOWRITE) }
        return mask
    }

    static func attach(_ knote: Int32, in state: inout QueueState) throws(Errno) {
        let fd = Int32(state.table[knote].ident)
        let status = try Syscall.fileStatus(fd)
        // Sockets, pipes, kqueues and other anonymous files are not vnodes (FreeBSD: EINVAL).
        switch status.st_mode & S_IFMT {
        case S_IFSOCK: throw .invalidArgument
        case S_IFIFO where isAnonymous(fd): throw .invalidArgument
        case S_IFREG, S_IFDIR, S_IFIFO, S_IFLNK: break
        default: if isAnonymous(fd) { throw .invalidArgument }
        }
        try watch(knote, fd: fd, status: status, in: &state)
    }

    private static func watch(_ knote: Int32, fd: Int32, status: stat, in state: inout QueueState) throws(Errno) {
        let mask = inotifyMask(for: state.table[knote].savedFlags)
        try state.sources.vnodes.watch(fd: fd, knote: knote, mask: mask, registrar: state.registrar)
        state.sources.vnodes.baselines[knote] = FileBaseline(status)
        state.setScannedEveryTime(filter, state.sources.vnodes.isWatching)
        Syscall.markWatched(fd)
    }

    /// True for a descriptor with no inode in a filesystem (`pipe:[…]`, `socket:[…]`,
    /// `anon_inode:…`).
    private static func isAnonymous(_ fd: Int32) -> Bool {
        guard let name = Syscall.descriptorTarget(fd) else { return false }
        return name.hasPrefix("pipe:") || name.hasPrefix("socket:") || name.hasPrefix("anon_inode:")
    }

    static func detach(_ knote: Int32, in state: inout QueueState) {
        state.sources.vnodes.unwatch(knote: knote)
        state.setScannedEveryTime(filter, state.sources.vnodes.isWatching)
    }

    /// A modification: the stored notes change, and the watch grows if they need more.
    static func touch(_ knote: Int32, with change: kevent, in state: inout QueueState) throws(Errno) {
        state.table[knote].savedFlags = change.fflags
        state.table[knote].savedData = change.data
        let fd = Int32(state.table[knote].ident)
        let status = try Syscall.fileStatus(fd)
        let baseline = state.sources.vnodes.baselines[knote]
        try watch(knote, fd: fd, status: status, in: &state)
        if let baseline { state.sources.vnodes.baselines[knote] = baseline }
    }

    /// f_event: ready while something wanted happened since the last return.
    static func event(_ knote: Int32, in state: inout QueueState) -> Bool {
        state.table[knote].fflags != 0
    }

    /// Inotify reported: record what happened to the watched files in their knotes.
    static func sourceReported(_ payload: UInt32, in state: inout QueueState) { readChanges(in: &state) }

    /// Read at every scan while files are watched: removing the last watch queues
    /// IN_IGNORED, which left unread keeps the descriptor ready and a wait spinning.
    static func scanStarting(in state: inout QueueState) { readChanges(in: &state) }

    static func closeSources(in state: inout QueueState) {
        state.sources.vnodes.close(registrar: state.registrar)
        state.setScannedEveryTime(filter, false)
    }

    private static func readChanges(in state: inout QueueState) {
        for occurrence in state.sources.vnodes.readOccurrences() {
            occurred(occurrence.mask, knote: occurrence.knote, in: &state)
        }
        // IN_IGNORED may have ended the last watch.
        state.setScannedEveryTime(filter, state.sources.vnodes.isWatching)
    }

    private static func occurred(_ mask: UInt32, knote index: Int32, in state: inout QueueState) {
        guard index >= 0, Int(index) < state.table.slots.count, state.table[index].status.contains(.inUse),
            state.table[index].filter == FilterID.vnode
        else { return }
        let notes = notes(for: mask, knote: index, in: &state)
        guard notes & state.table[index].savedFlags != 0 else { return }
        state.table[index].fflags |= notes
        if notes & Note.revoke != 0 {
            state.table[index].flags |= EV.oneShot
            state.table[index].status.insert(.endOfFile)
        }
        state.activate(index)
    }

    /// The NOTE_* bits of one inotify event for this knote's file.
    private static func notes(for mask: UInt32, knote index: Int32, in state: inout QueueState) -> UInt32 {
        var notes: UInt32 = 0
        let isDirectory = mask & UInt32(IN_ISDIR) != 0
        if mask & UInt32(IN_MODIFY | IN_ATTRIB) != 0,
            let status = try? Syscall.fileStatus(Int32(state.table[index].ident))
        {
            let size = Int64(status.st_size)
            let links = UInt64(status.st_nlink)
            // fstat shows the file as it is now, after every occurrence still unread: each
            // occurrence moves only the part of the baseline it concerns, so that a later
            // occurrence (an unlink after a write) still sees its own change.
            let now = FileBaseline(status)
            let before = state.sources.vnodes.baselines[index] ?? now
            var after = before
            if mask & UInt32(IN_MODIFY) != 0 {
                notes |= Note.write
                if size > before.size { notes |= Note.extend }
                // Linux reports a truncation as a modification only; FreeBSD as ATTRIB too.
                if size < before.size { notes |= Note.attrib }
                after.size = size
            }
            if mask & UInt32(IN_ATTRIB) != 0 {
                if links == 0 && before.links != 0 {
                    notes |= Note.delete
                } else if links != before.links {
                    notes |= Note.link
                } else {
                    notes |= Note.attrib
                }
                if now.mode != before.mode || now.owner != before.owner { notes |= Note.attrib }
                after.links = links
                after.mode = now.mode
                after.owner = now.owner
            }
            state.sources.vnodes.baselines[index] = after
        } else if mask & UInt32(IN_MODIFY) != 0 {
            notes |= Note.write
        } else if mask & UInt32(IN_ATTRIB) != 0 {
            notes |= Note.attrib
        }
        if mask & UInt32(IN_MOVE_SELF) != 0 { notes |= Note.rename }
        if mask & UInt32(IN_DELETE_SELF) != 0 { notes |= Note.delete }
        if mask & UInt32(IN_UNMOUNT) != 0 { notes |= Note.revoke }
        if mask & UInt32(IN_OPEN) != 0 { notes |= Note.open }
        if mask & UInt32(IN_ACCESS) != 0 { notes |= Note.read }
        if mask & UInt32(IN_CLOSE_WRITE) != 0 { notes |= Note.closeWrite }
        if mask & UInt32(IN_CLOSE_NOWRITE) != 0 { notes |= Note.close }
        if mask & UInt32(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO) != 0 {
            notes |= Note.write
            // A subdirectory added or removed changes the directory's link count (its ".."):
            // LINK then, but not for one renamed within the directory (FreeBSD: WRITE only).
            if isDirectory, let status = try? Syscall.fileStatus(Int32(state.table[index].ident)) {
                let links = UInt64(status.st_nlink)
                var baseline = state.sources.vnodes.baselines[index] ?? FileBaseline(status)
                if links != baseline.links { notes |= Note.link }
                baseline.links = links
                state.sources.vnodes.baselines[index] = baseline
            }
        }
        return notes
    }
}
