import CKQueue
import CKQueueShim
import Glibc

/// EVFILT_READ (SPEC.md 3): `data` is what can be read now, by kind of file.
enum ReadFilter {
    static let hangup = UInt32(EPOLLHUP.rawValue) | UInt32(EPOLLRDHUP.rawValue) | UInt32(EPOLLERR.rawValue)
    static let readable = UInt32(EPOLLIN.rawValue)

    static func evaluate(_ knote: inout Knote, entry: inout DescriptorEntry, fd: Int32, revents: UInt32) -> Bool {
        let lowWater: Int64? = knote.savedFlags & Note.lowWater != 0 ? knote.savedData : nil
        var endOfFile = revents & hangup != 0
        knote.fflags = 0
        switch entry.kind {
        case .streamSocket:
            guard let bytes = Syscall.bytesReadable(fd) else {
                // A listening TCP socket refuses FIONREAD: the socket listens since it was attached.
                if Syscall.socketOption(fd, SOL_SOCKET, SO_ACCEPTCONN) == 1 {
                    entry.kind = .listeningSocket
                    return evaluate(&knote, entry: &entry, fd: fd, revents: revents)
                }
                return false
            }
            knote.data = bytes
            if endOfFile && revents & (UInt32(EPOLLRDHUP.rawValue) | UInt32(EPOLLERR.rawValue)) == 0
                && !DescriptorFilter.hasBeenConnected(fd, entry: &entry)
            {
                endOfFile = false  // Linux reports a never-connected socket as hung up
            }
            if endOfFile { knote.fflags = DescriptorFilter.socketError(fd, revents: revents) }
            setEndOfFile(&knote, endOfFile)
            return endOfFile || bytes >= (lowWater ?? entry.receiveLowWater)
        case .listeningSocket:
            var queued = kq_shim_tcp_accept_queue_length(fd)
            if queued < 0 { queued = kq_shim_unix_accept_queue_length(fd) }
            knote.data = queued >= 0 ? Int64(queued) : (revents & readable != 0 ? 1 : 0)
            setEndOfFile(&knote, false)
            return revents & readable != 0 && knote.data > 0
        case .datagramSocket:
            knote.data = Syscall.bytesReadable(fd) ?? 0
            if endOfFile { knote.fflags = DescriptorFilter.socketError(fd, revents: revents) }
            setEndOfFile(&knote, endOfFile)
            if let lowWater { return endOfFile || knote.data >= lowWater }
            return endOfFile || revents & readable != 0
        case .pipe, .terminal, .other:
            knote.data = Syscall.bytesReadable(fd) ?? 0
            setEndOfFile(&knote, endOfFile)
            if let lowWater { return endOfFile || knote.data >= lowWater }
            if entry.kind == .pipe { return endOfFile || knote.data > 0 }
            return endOfFile || revents & readable != 0
        case .kqueue:
            knote.data = Int64(KQueueRegistry.pendingEvents(onKQueue: fd))
            setEndOfFile(&knote, false)
            return knote.data > 0
        case .regularFile:
            guard let status = Syscall.fileStatus(fd), let offset = Syscall.currentOffset(fd) else {
                endOfFile = false
                knote.data = 0
                return knote.savedFlags & Note.filePoll != 0
            }
            knote.data = Int64(status.st_size) - offset
            setEndOfFile(&knote, false)
            return knote.data != 0 || knote.savedFlags & Note.filePoll != 0
        case .alwaysReady, .unknown:
            knote.data = 0
            return true
        }
    }

    @inline(__always)
    static func setEndOfFile(_ knote: inout Knote, _ endOfFile: Bool) {
        if endOfFile { knote.status.insert(.endOfFile) } else { knote.status.remove(.endOfFile) }
    }
}
