import CKQueue
import CKQueueShim
import Glibc
import SystemPackage

/// The inotify instance behind a kqueue's EVFILT_VNODE knotes, created on first use and
/// registered in the kqueue's epoll instance. Each knote watches the inode behind its
/// descriptor (`/proc/self/fd/N`), so the watch follows the file across renames; knotes on the
/// same inode share one watch, whose mask only grows until its last knote leaves.
///
/// Separate from ``RegularFileWatcher``'s instance: removing a READ knote's watch must not end
/// a VNODE knote's watch on the same inode (inotify has one watch per inode per instance).
struct VnodeWatcher {
    private(set) var descriptor: Int32 = -1
    private var knotesByWatch: [Int32: [Int32]] = [:]
    private var watchByKnote: [Int32: Int32] = [:]
    /// What each knote last saw of its file: the size (for NOTE_EXTEND) and the link count
    /// (for NOTE_LINK and NOTE_DELETE).
    var baselines: [Int32: FileBaseline] = [:]
    private var reader = InotifyReader()
    private var occurrences: [Occurrence] = []

    /// One inotify event for one knote.
    struct Occurrence {
        var knote: Int32
        var mask: UInt32
    }

    var isWatching: Bool { !watchByKnote.isEmpty }

    /// Watches the inode behind `fd` for `knote` with at least `mask`.
    mutating func watch(fd: Int32, knote: Int32, mask: UInt32, registrar: InternalRegistrar) throws(Errno) {
        if descriptor < 0 {
            let created = try Syscall.inotifyInit()
            let tag = EpollTag.source(filter: FilterID.vnode)
            try registrar.register(created, events: UInt32(EPOLLIN.rawValue), tag: tag)
            descriptor = created
        }
        let watch = try Syscall.inotifyAddWatch(descriptor, descriptor: fd, mask: mask | UInt32(IN_MASK_ADD))
        if let previous = watchByKnote[knote] {
            if previous == watch { return }  // a modification: the same inode, a grown mask
            remove(knote: knote, from: previous)
        }
        knotesByWatch[watch, default: []].append(knote)
        watchByKnote[knote] = watch
    }

    mutating func unwatch(knote: Int32) {
        guard let watch = watchByKnote[knote] else { return }
        remove(knote: knote, from: watch)
    }

    private mutating func remove(knote: Int32, from watch: Int32) {
        watchByKnote[knote] = nil
        baselines[knote] = nil
        knotesByWatch[watch]?.removeAll { $0 == knote }
        if knotesByWatch[watch]?.isEmpty ?? false {
            knotesByWatch[watch] = nil
            Syscall.inotifyRemoveWatch(descriptor, watch)
        }
    }

    /// Reads pending inotify events: one occurrence per (event, knote on its inode). Reuses
    /// one buffer and one result array.
    mutating func readOccurrences() -> [Occurrence] {
        occurrences.removeAll(keepingCapacity: true)
        reader.drain(descriptor) { event in
            if event.mask & UInt32(IN_IGNORED) != 0 {
                // The kernel removed the watch (the inode is gone): its knotes stay, quiet.
                if let knotes = knotesByWatch.removeValue(forKey: event.wd) {
                    for knote in knotes { watchByKnote[knote] = nil }
                }
                return
            }
            guard let knotes = knotesByWatch[event.wd] else { return }
            for knote in knotes { occurrences.append(Occurrence(knote: knote, mask: event.mask)) }
        }
        return occurrences
    }

    mutating func close(registrar: InternalRegistrar) {
        reader.release()
        registrar.close(descriptor)
        descriptor = -1
        knotesByWatch = [:]
        watchByKnote = [:]
        baselines = [:]
    }
}

/// What a VNODE knote last saw of its file.
struct FileBaseline {
    var size: Int64
    var links: UInt64
    /// Mode and owner: inotify merges a chmod's IN_ATTRIB with an unlink's that follows it
    /// unread, so a change here is how the chmod's NOTE_ATTRIB is still seen.
    var mode: UInt32
    var owner: UInt64

    init(_ status: stat) {
        size = Int64(status.st_size)
        links = UInt64(status.st_nlink)
        mode = status.st_mode
        owner = UInt64(status.st_uid) << 32 | UInt64(status.st_gid)
    }
}
