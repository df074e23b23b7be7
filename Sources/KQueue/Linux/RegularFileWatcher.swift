import CKQueue
import CKQueueShim
import Glibc

/// Re-arms READ knotes on regular files when the file changes. epoll refuses regular files,
/// so their readiness (size minus offset) is computed in user space; one inotify instance per
/// kqueue, created on first use, reports IN_MODIFY on `/proc/self/fd/N` (the inode behind
/// descriptor N) so that a knote that had reached `data == 0` fires again when the file grows.
struct RegularFileWatcher {
    private(set) var descriptor: Int32 = -1
    private var knotesByWatch: [Int32: [Int32]] = [:]
    private var watchByKnote: [Int32: Int32] = [:]
    private var reader = InotifyReader()
    private var changed: [Int32] = []

    /// True while some file is watched.
    var isWatching: Bool { !knotesByWatch.isEmpty }

    /// Watches the file behind `fd` for `knote`. Without inotify (it could not be created, or
    /// the watch failed), the knote still works, without the re-arm on growth.
    mutating func watch(fd: Int32, knote: Int32, registrar: InternalRegistrar) {
        if descriptor < 0 {
            guard let created = try? Syscall.inotifyInit() else { return }
            let tag = EpollTag.source(filter: FilterID.read)
            guard (try? registrar.register(created, events: UInt32(EPOLLIN.rawValue), tag: tag)) != nil else { return }
            descriptor = created
        }
        let mask = UInt32(IN_MODIFY | IN_ATTRIB | IN_MASK_ADD)
        guard let watch = try? Syscall.inotifyAddWatch(descriptor, descriptor: fd, mask: mask) else { return }
        knotesByWatch[watch, default: []].append(knote)
        watchByKnote[knote] = watch
    }

    mutating func unwatch(knote: Int32) {
        guard let watch = watchByKnote.removeValue(forKey: knote) else { return }
        knotesByWatch[watch]?.removeAll { $0 == knote }
        if knotesByWatch[watch]?.isEmpty ?? false {
            knotesByWatch[watch] = nil
            Syscall.inotifyRemoveWatch(descriptor, watch)
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

    mutating func close(registrar: InternalRegistrar) {
        reader.release()
        registrar.close(descriptor)
        descriptor = -1
        knotesByWatch = [:]
        watchByKnote = [:]
    }
}
