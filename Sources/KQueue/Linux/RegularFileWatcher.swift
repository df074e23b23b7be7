import CKQueueShim
import Glibc

/// Re-arms READ knotes on regular files when the file changes. epoll refuses regular files,
/// so their readiness (size minus offset) is computed in user space; one inotify instance per
/// kqueue, created on first use, reports IN_MODIFY on `/proc/self/fd/N` (the inode behind
/// descriptor N) so that a knote that had reached `data == 0` fires again when the file grows.
struct RegularFileWatcher {
    private(set) var descriptor: Int32 = -1
    private var knotesByWatch: [Int32: [Int32]] = [:]

    private var reader = InotifyReader()
    private var changed: [Int32] = []

    /// True while some file is watched.
    var isWatching: Bool { !knotesByWatch.isEmpty }

    private var watchByKnote: [Int32: Int32] = [:]
    /// Published so that a fork child can close the descriptor without the kqueue lock.
    var onCreate: (@Sendable (Int32) -> Void)? = nil

    mutating func watch(fd: Int32, knote: Int32, epollFD: Int32) {
        if descriptor < 0 {
            // Without it, a knote degrades to no re-arm on growth.
            let created = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
            guard created >= 0,
                Syscall.registerInternal(
                    created, in: epollFD, events: UInt32(EPOLLIN.rawValue), tag: InternalSource.inotify) == nil
            else { return }
            descriptor = created
            onCreate?(created)
        }
        let watch = inotify_add_watch(descriptor, "/proc/self/fd/\(fd)", UInt32(IN_MODIFY | IN_ATTRIB | IN_MASK_ADD))
        guard watch >= 0 else { return }
        knotesByWatch[watch, default: []].append(knote)
        watchByKnote[knote] = watch
    }

    mutating func unwatch(knote: Int32) {
        guard let watch = watchByKnote.removeValue(forKey: knote) else { return }
        knotesByWatch[watch]?.removeAll { $0 == knote }
        if knotesByWatch[watch]?.isEmpty ?? false {
            knotesByWatch[watch] = nil
            _ = inotify_rm_watch(descriptor, watch)
        }
    }

    /// Reads pending inotify events; returns the knotes whose file changed. Reuses one read
    /// buffer and one result array, so a scan of a kqueue watching files does not allocate.
    mutating func readChanges() -> [Int32] {
        guard descriptor >= 0 else { return [] }
        changed.removeAll(keepingCapacity: true)
        reader.drain(descriptor) { event in
            if let knotes = knotesByWatch[event.wd] { changed.append(contentsOf: knotes) }
        }
        return changed
    }

    mutating func close() {
        reader.release()
        Syscall.closeInternal(descriptor)
        descriptor = -1
        knotesByWatch = [:]
        watchByKnote = [:]
    }
}
