import CKQueue
import CKQueueShim
import Glibc

/// EVFILT_WRITE (SPEC.md 3): `data` is the room for writing now, by kind of file.
enum WriteFilter {
    static let writable = UInt32(EPOLLOUT.rawValue)
    static let hangupOrError = UInt32(EPOLLHUP.rawValue) | UInt32(EPOLLERR.rawValue)

    static func evaluate(_ knote: inout Knote, entry: inout DescriptorEntry, fd: Int32, revents: UInt32) -> Bool {
        let lowWater: Int64? = knote.savedFlags & Note.lowWater != 0 ? knote.savedData : nil
        let endOfFile = revents & hangupOrError != 0
        knote.fflags = 0
        switch entry.kind {
        case .streamSocket, .datagramSocket:
            // A connection-oriented socket that is not connected never fires; Linux reports
            // such a socket as writable and hung up.
            if entry.kind == .streamSocket && revents & UInt32(EPOLLERR.rawValue) == 0
                && !DescriptorFilter.hasBeenConnected(fd, entry: &entry)
            {
                return false
            }
            let size = Int64(Syscall.socketOption(fd, SOL_SOCKET, SO_SNDBUF) ?? 0)
            knote.data = max(0, size - (Syscall.bytesQueuedForSend(fd) ?? 0))
            if endOfFile { knote.fflags = DescriptorFilter.socketError(fd, revents: revents) }
            ReadFilter.setEndOfFile(&knote, endOfFile)
            return endOfFile || (revents & writable != 0 && knote.data >= (lowWater ?? 1))
        case .listeningSocket:
            return false
        case .pipe:
            let capacity = Syscall.pipeCapacity(fd) ?? Int64(PIPE_BUF)
            knote.data = max(0, capacity - (Syscall.bytesReadable(fd) ?? 0))
            ReadFilter.setEndOfFile(&knote, endOfFile)
            return endOfFile || (revents & writable != 0 && knote.data >= (lowWater ?? Int64(PIPE_BUF)))
        case .terminal, .other, .kqueue:
            knote.data = 0
            ReadFilter.setEndOfFile(&knote, endOfFile)
            return endOfFile || revents & writable != 0
        case .regularFile, .alwaysReady, .unknown:
            knote.data = 0
            return true
        }
    }
}
