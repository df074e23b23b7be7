import CKQueueShim
import Glibc

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
    var baselines: [Int32: (size: Int64, links: UInt64)] = [:]
    private var reader = InotifyReader()
    private var occurrences: [Occurrence] = []

    /// One inotify event for one knote.
    struct Occurrence {
        var knote: Int32
        var mask: UInt32
    }

    /// Published so that a fork child can close the descriptor without the kqueue lock.
    var onCreate: (@Sendable (Int32) -> Void)? = nil

    var isWatching: Bool { !watchByKnote.isEmpty }

    /// Watches the inode behind `fd` for `knote` with at least `mask`. Returns an errno.
    mutating func watch(fd: Int32, knote: Int32, mask: UInt32, epollFD: Int32) -> Int32? {
        if descriptor < 0 {
            let created = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
            guard created >= 0 else { return Syscall.errno }
            let level = UInt32(EPOLLIN.rawValue)
            if let error = Syscall.registerInternal(
                created, in: epollFD, events: level, tag: InternalSource.vnodeInotify)
            {
                return error
            }
            descriptor = created
            onCreate?(created)
        }
        let watch = inotify_add_watch(descriptor, "/proc/self/fd/\(fd)", mask | UInt32(IN_MASK_ADD))
        guard watch >= 0 else { return Syscall.errno }
        if let previous = watchByKnote[knote] {
            if previous == watch { return nil }  // a modification: the same inode, a grown mask
            remove(knote: knote, from: previous)
        }
        knotesByWatch[watch, default: []].append(knote)
        watchByKnote[knote] = watch
        return nil
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
            _ = inotify_rm_watch(descriptor, watch)
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

    mutating func close() {
        reader.release()
        Syscall.closeInternal(descriptor)
        descriptor = -1
        knotesByWatch = [:]
        watchByKnote = [:]
        baselines = [:]
    }
}
