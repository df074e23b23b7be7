import CKQueue
import CKQueueShim
import Glibc

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
enum VnodeFilter {
    static let delete: UInt32 = 0x0001
    static let write: UInt32 = 0x0002
    static let extend: UInt32 = 0x0004
    static let attrib: UInt32 = 0x0008
    static let link: UInt32 = 0x0010
    static let rename: UInt32 = 0x0020
    static let revoke: UInt32 = 0x0040
    static let open: UInt32 = 0x0080
    static let close: UInt32 = 0x0100
    static let closeWrite: UInt32 = 0x0200
    static let read: UInt32 = 0x0400

    /// The inotify events a knote wanting `notes` needs. Open, read and close are asked for
    /// only when wanted: they are frequent and each maps to a single note.
    static func inotifyMask(for notes: UInt32) -> UInt32 {
        var mask = UInt32(
            IN_MODIFY | IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF | IN_UNMOUNT | IN_CREATE | IN_DELETE | IN_MOVED_FROM
                | IN_MOVED_TO)
        if notes & open != 0 { mask |= UInt32(IN_OPEN) }
        if notes & read != 0 { mask |= UInt32(IN_ACCESS) }
        if notes & closeWrite != 0 { mask |= UInt32(IN_CLOSE_WRITE) }
        if notes & close != 0 { mask |= UInt32(IN_CLOSE_NOWRITE) }
        return mask
    }

    static func attach(_ index: Int32, in state: inout QueueState) -> Int32? {
        let fd = Int32(state.table[index].ident)
        guard let status = Syscall.fileStatus(fd) else { return EBADF }
        // Sockets, pipes, kqueues and other anonymous files are not vnodes (FreeBSD: EINVAL).
        switch status.st_mode & S_IFMT {
        case S_IFSOCK: return EINVAL
        case S_IFIFO where isAnonymous(fd): return EINVAL
        case S_IFREG, S_IFDIR, S_IFIFO, S_IFLNK: break
        default: if isAnonymous(fd) { return EINVAL }
        }
        return watch(index, fd: fd, status: status, in: &state)
    }

    private static func watch(_ index: Int32, fd: Int32, status: stat, in state: inout QueueState) -> Int32? {
        if state.vnodes.descriptor < 0 {
            let publish = state.internalDescriptors
            state.vnodes.onCreate = { publish.vnodeInotify.store($0, ordering: .releasing) }
        }
        let mask = inotifyMask(for: state.table[index].savedFlags)
        if let error = state.vnodes.watch(fd: fd, knote: index, mask: mask, epollFD: state.epollFD) { return error }
        state.vnodes.baselines[index] = (Int64(status.st_size), UInt64(status.st_nlink))
        kq_shim_mark_watched(fd)
        return nil
    }

    /// True for a descriptor with no inode in a filesystem (`pipe:[…]`, `socket:[…]`,
    /// `anon_inode:…`).
    private static func isAnonymous(_ fd: Int32) -> Bool {
        var target = [CChar](repeating: 0, count: 64)
        let n = readlink("/proc/self/fd/\(fd)", &target, target.count - 1)
        guard n > 0 else { return false }
        let name = String(decoding: target[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.hasPrefix("pipe:") || name.hasPrefix("socket:") || name.hasPrefix("anon_inode:")
    }

    static func detach(_ index: Int32, in state: inout QueueState) {
        state.vnodes.unwatch(knote: index)
    }

    /// A modification: the stored notes change, and the watch grows if they need more.
    static func modify(_ index: Int32, with change: kevent, in state: inout QueueState) -> Int32? {
        state.table[index].savedFlags = change.fflags
        state.table[index].savedData = change.data
        let fd = Int32(state.table[index].ident)
        guard let status = Syscall.fileStatus(fd) else { return EBADF }
        let baseline = state.vnodes.baselines[index]
        if let error = watch(index, fd: fd, status: status, in: &state) { return error }
        if let baseline { state.vnodes.baselines[index] = baseline }
        return nil
    }

    /// f_event: ready while something wanted happened since the last return.
    static func isReady(_ index: Int32, in state: borrowing QueueState) -> Bool {
        state.table[index].fflags != 0
    }

    /// Reads what happened to the watched files and records it in their knotes.
    static func readChanges(in state: inout QueueState) {
        for occurrence in state.vnodes.readOccurrences() {
            occurred(occurrence.mask, knote: occurrence.knote, in: &state)
        }
    }

    private static func occurred(_ mask: UInt32, knote index: Int32, in state: inout QueueState) {
        guard index >= 0, Int(index) < state.table.slots.count, state.table[index].status.contains(.inUse),
            state.table[index].filter == FilterID.vnode
        else { return }
        let notes = notes(for: mask, knote: index, in: &state)
        guard notes & state.table[index].savedFlags != 0 else { return }
        state.table[index].fflags |= notes
        if notes & revoke != 0 {
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
            let status = Syscall.fileStatus(Int32(state.table[index].ident))
        {
            let size = Int64(status.st_size)
            let links = UInt64(status.st_nlink)
            let before = state.vnodes.baselines[index] ?? (size, links)
            if mask & UInt32(IN_MODIFY) != 0 {
                notes |= write
                if size > before.size { notes |= extend }
                // Linux reports a truncation as a modification only; FreeBSD as ATTRIB too.
                if size < before.size { notes |= attrib }
            }
            if mask & UInt32(IN_ATTRIB) != 0 {
                if links == 0 && before.links != 0 {
                    notes |= delete
                } else if links != before.links {
                    notes |= link
                } else {
                    notes |= attrib
                }
            }
            state.vnodes.baselines[index] = (size, links)
        } else if mask & UInt32(IN_MODIFY) != 0 {
            notes |= write
        } else if mask & UInt32(IN_ATTRIB) != 0 {
            notes |= attrib
        }
        if mask & UInt32(IN_MOVE_SELF) != 0 { notes |= rename }
        if mask & UInt32(IN_DELETE_SELF) != 0 { notes |= delete }
        if mask & UInt32(IN_UNMOUNT) != 0 { notes |= revoke }
        if mask & UInt32(IN_OPEN) != 0 { notes |= open }
        if mask & UInt32(IN_ACCESS) != 0 { notes |= read }
        if mask & UInt32(IN_CLOSE_WRITE) != 0 { notes |= closeWrite }
        if mask & UInt32(IN_CLOSE_NOWRITE) != 0 { notes |= close }
        if mask & UInt32(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO) != 0 {
            notes |= write
            // A subdirectory added or removed changes the directory's link count (its ".."):
            // LINK then, but not for one renamed within the directory (FreeBSD: WRITE only).
            if isDirectory, let status = Syscall.fileStatus(Int32(state.table[index].ident)) {
                let links = UInt64(status.st_nlink)
                let before = state.vnodes.baselines[index] ?? (Int64(status.st_size), links)
                if links != before.links { notes |= link }
                state.vnodes.baselines[index] = (Int64(status.st_size), links)
            }
        }
        return notes
    }
}
