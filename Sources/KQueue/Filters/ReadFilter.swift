import CKQueue
import CKQueueShim
import Glibc
import SystemPackage

/// EVFILT_READ (SPEC.md 3): `data` is what can be read now, by kind of file. Shares its
/// descriptor registration with EVFILT_WRITE (``DescriptorFilterOperations``); regular files,
/// which epoll refuses, are re-checked when inotify reports them grown (``RegularFileWatcher``).
enum ReadFilter: DescriptorFilterOperations {
    static var filter: Int16 { FilterID.read }
    static let hangup = UInt32(EPOLLHUP.rawValue) | UInt32(EPOLLRDHUP.rawValue) | UInt32(EPOLLERR.rawValue)
    static let readable = UInt32(EPOLLIN.rawValue)
    static var epollInterest: UInt32 { UInt32(EPOLLIN.rawValue) | UInt32(EPOLLRDHUP.rawValue) }
    static var reportedBits: UInt32 { readable | hangup }
    static var pollEvents: Int16 { Int16(POLLIN) | 0x2000 /* POLLRDHUP */ }

    static func attaching(_ knote: Int32, fd: Int32, kind: DescriptorKind, in state: inout QueueState) throws(Errno) {
        if kind == .streamSocket {
            let lowWater = (try? Syscall.socketOption(fd, SOL_SOCKET, SO_RCVLOWAT)) ?? 1
            state.sources.descriptors.entries[Int(fd)].receiveLowWater = Int64(max(1, lowWater))
            if case .ioURing = state.backend, Syscall.isTCP(fd) { state.backend.countBytes(fd) }
        }
        if kind == .regularFile {
            state.sources.regularFiles.watch(fd: fd, knote: knote, registrar: state.registrar)
            state.setScannedEveryTime(filter, state.sources.regularFiles.isWatching)
        }
    }

    static func detaching(_ knote: Int32, fd: Int32, kind: DescriptorKind, in state: inout QueueState) {
        guard kind == .regularFile else { return }
        state.sources.regularFiles.unwatch(knote: knote)
        state.setScannedEveryTime(filter, state.sources.regularFiles.isWatching)
    }

    /// Inotify reported regular files changed.
    static func sourceReported(_ payload: UInt32, in state: inout QueueState) { readFileChanges(in: &state) }

    /// Read at every scan while files are watched: a change that arrives between epoll's
    /// report and the read would otherwise wait for the next report.
    static func scanStarting(in state: inout QueueState) { readFileChanges(in: &state) }

    private static func readFileChanges(in state: inout QueueState) {
        for index in state.sources.regularFiles.readChanges() { state.recheck(index) }
    }

    /// Descriptors to move behind the scan's wakeup (shared with EVFILT_WRITE's delivery).
    static func scanEnded(in state: inout QueueState) { DescriptorFilter.movePendingToBack(in: &state) }

    static func closeSources(in state: inout QueueState) {
        state.sources.regularFiles.close(registrar: state.registrar)
    }

    static func evaluate(_ knote: inout Knote, entry: inout DescriptorEntry, fd: Int32, revents: UInt32) -> Bool {
        knote.fflags = 0
        let reported: Int64? = knote.status.contains(.dataFromBackend) ? knote.data : nil
        knote.status.remove(.dataFromBackend)
        if entry.kind == .streamSocket {
            return streamSocket(&knote, entry: &entry, fd: fd, revents: revents, bytes: reported)
        }
        switch entry.kind {
        case .streamSocket: return streamSocket(&knote, entry: &entry, fd: fd, revents: revents)
        case .listeningSocket:
            knote.data = Syscall.acceptQueueLength(fd) ?? (revents & readable != 0 ? 1 : 0)
            DescriptorFilter.setEndOfFile(&knote, false)
            return revents & readable != 0 && knote.data > 0
        case .datagramSocket, .pipe, .terminal, .other:
            return byteStream(&knote, kind: entry.kind, fd: fd, revents: revents)
        case .kqueue:
            knote.data = Int64(KQueueRegistry.pendingEvents(onKQueue: fd))
            DescriptorFilter.setEndOfFile(&knote, false)
            return knote.data > 0
        case .regularFile:
            return regularFile(&knote, fd: fd)
        case .alwaysReady, .unknown:
            knote.data = 0
            return true
        }
    }

    private static func lowWater(_ knote: Knote) -> Int64? {
        knote.savedFlags & Note.lowWater != 0 ? knote.savedData : nil
    }

    /// `bytes`: the count that came with the report (io_uring), else FIONREAD is asked.
    private static func streamSocket(
        _ knote: inout Knote, entry: inout DescriptorEntry, fd: Int32, revents: UInt32, bytes reported: Int64? = nil
    ) -> Bool {
        guard let bytes = reported ?? (try? Syscall.bytesReadable(fd)) else {
            // A listening TCP socket refuses FIONREAD: the socket listens since it was attached.
            if (try? Syscall.socketOption(fd, SOL_SOCKET, SO_ACCEPTCONN)) == 1 {
                entry.kind = .listeningSocket
                return evaluate(&knote, entry: &entry, fd: fd, revents: revents)
            }
            return false
        }
        knote.data = bytes
        var endOfFile = revents & hangup != 0
        if endOfFile && revents & (UInt32(EPOLLRDHUP.rawValue) | UInt32(EPOLLERR.rawValue)) == 0
            && !DescriptorFilter.hasBeenConnected(fd, entry: &entry)
        {
            endOfFile = false  // Linux reports a never-connected socket as hung up
        }
        if endOfFile { knote.fflags = DescriptorFilter.socketError(fd, revents: revents) }
        DescriptorFilter.setEndOfFile(&knote, endOfFile)
        return endOfFile || bytes >= (lowWater(knote) ?? entry.receiveLowWater)
    }

    /// Datagram sockets, pipes, terminals and other pollable files: `data` is FIONREAD.
    private static func byteStream(_ knote: inout Knote, kind: DescriptorKind, fd: Int32, revents: UInt32) -> Bool {
        let endOfFile = revents & hangup != 0
        knote.data = (try? Syscall.bytesReadable(fd)) ?? 0
        if kind == .datagramSocket && endOfFile { knote.fflags = DescriptorFilter.socketError(fd, revents: revents) }
        DescriptorFilter.setEndOfFile(&knote, endOfFile)
        if let lowWater = lowWater(knote) { return endOfFile || knote.data >= lowWater }
        if kind == .pipe { return endOfFile || knote.data > 0 }
        return endOfFile || revents & readable != 0
    }

    /// Regular files: `data` is the size less the offset (NOTE_FILE_POLL: always ready).
    private static func regularFile(_ knote: inout Knote, fd: Int32) -> Bool {
        guard let status = try? Syscall.fileStatus(fd), let offset = try? Syscall.currentOffset(fd) else {
            knote.data = 0
            return knote.savedFlags & Note.filePoll != 0
        }
        knote.data = Int64(status.st_size) - offset
        DescriptorFilter.setEndOfFile(&knote, false)
        return knote.data != 0 || knote.savedFlags & Note.filePoll != 0
    }
}
