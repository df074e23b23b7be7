import CKQueue
import CKQueueShim
import Glibc
import SystemPackage

/// EVFILT_FS's source: mounts attached to and detached from the caller's mount namespace, one
/// descriptor per kqueue while FS knotes exist. Two ways, the first that works:
///
/// 1. **fanotify** (`FAN_REPORT_MNT` on the namespace, Linux 6.15+, CAP_SYS_ADMIN over the
///    namespace): the kernel queues one event per attach and per detach, so every mount and
///    every unmount is seen, even one undone before the kqueue looks.
/// 2. **the mount table**: `/proc/self/mountinfo`, registered for EPOLLPRI, is reported when the
///    table changes (unprivileged, every kernel); the watcher then lists the mounts and compares
///    them with the last list: a new ID is a mount, a missing one an unmount. IDs come from
///    listmount(2) (Linux 6.8+: 64-bit, never reused, so an unmount and a mount in between two
///    looks are both seen), else from the file itself (32-bit IDs the kernel reuses: such a pair
///    on one reused ID is not seen). A mount attached and detached again between two looks
///    leaves no trace in the table: not seen.
///
/// Both are edge-triggered; the changes are read when epoll reports them.
struct MountWatcher {
    private(set) var descriptor: Int32 = -1
    /// The knotes to tell (FreeBSD's fs_knlist, per kqueue).
    private(set) var knotes: [Int32] = []
    /// The descriptor is the fanotify group (else /proc/self/mountinfo).
    private var usesEvents = false
    /// The mount IDs at the last look, sorted (mount-table way).
    private var known: [UInt64] = []
    private var current: [UInt64] = []
    /// listmount(2) works here (else: the IDs of /proc/self/mountinfo).
    private var unique = true

    /// Starts watching for `knote`: opens the source on first use; otherwise first returns what
    /// changed since the last look, for the knotes already there, so that the new knote sees
    /// only later changes.
    mutating func add(_ knote: Int32, registrar: InternalRegistrar) throws(Errno) -> UInt32 {
        var pending: UInt32 = 0
        if descriptor < 0 {
            try open(registrar: registrar)
        } else {
            pending = changes()
        }
        knotes.append(knote)
        return pending
    }

    private mutating func open(registrar: InternalRegistrar) throws(Errno) {
        let tag = EpollTag.source(filter: FilterID.fs)
        if let fd = try? Syscall.openMountEvents() {
            try registrar.register(fd, events: UInt32(EPOLLIN.rawValue) | UInt32(EPOLLET.rawValue), tag: tag)
            descriptor = fd
            usesEvents = true
            return
        }
        let fd = try Syscall.openMountTable()
        try registrar.register(fd, events: UInt32(EPOLLPRI.rawValue) | UInt32(EPOLLET.rawValue), tag: tag)
        descriptor = fd
        usesEvents = false
        do throws(Errno) {
            try list()
            swap(&known, &current)
        } catch {
            close(registrar: registrar)
            throw error
        }
    }

    mutating func remove(_ knote: Int32, registrar: InternalRegistrar) {
        knotes.removeAll { $0 == knote }
        if knotes.isEmpty { close(registrar: registrar) }
    }

    /// The VQ_* bits of what happened since the last look.
    mutating func changes() -> UInt32 {
        guard descriptor >= 0 else { return 0 }
        if usesEvents {
            let read = Syscall.readMountEvents(descriptor)
            var bits: UInt32 = 0
            if read & Int32(KQ_MOUNT_ATTACHED) != 0 { bits |= Note.vqMount }
            if read & Int32(KQ_MOUNT_DETACHED) != 0 { bits |= Note.vqUnmount }
            // The queue overflowed: events of both kinds were lost, most likely.
            if read & Int32(KQ_MOUNT_EVENTS_LOST) != 0 { bits |= Note.vqMount | Note.vqUnmount }
            return bits
        }
        guard (try? list()) != nil else { return 0 }
        var bits: UInt32 = 0
        var i = 0
        var j = 0
        while i < known.count || j < current.count {
            if j == current.count || (i < known.count && known[i] < current[j]) {
                bits |= Note.vqUnmount
                i += 1
            } else if i == known.count || current[j] < known[i] {
                bits |= Note.vqMount
                j += 1
            } else {
                i += 1
                j += 1
            }
            if bits == Note.vqMount | Note.vqUnmount { break }
        }
        swap(&known, &current)
        return bits
    }

    /// Lists the mounts into `current`, sorted.
    private mutating func list() throws(Errno) {
        if unique {
            do throws(Errno) {
                try Syscall.mountIDs(descriptor, unique: true, into: &current)
                current.sort()
                return
            } catch {
                guard error == .noFunction else { throw error }
                unique = false
                // The IDs of the last list are of the other kind: list them again.
                if !known.isEmpty {
                    var again: [UInt64] = []
                    try Syscall.mountIDs(descriptor, unique: false, into: &again)
                    known = again.sorted()
                }
            }
        }
        try Syscall.mountIDs(descriptor, unique: false, into: &current)
        current.sort()
    }

    mutating func close(registrar: InternalRegistrar) {
        registrar.close(descriptor)
        descriptor = -1
        knotes = []
        known = []
        current = []
    }
}
