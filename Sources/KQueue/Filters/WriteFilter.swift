import CKQueue
import CKQueueShim
import Glibc
import SystemPackage

/// EVFILT_WRITE (SPEC.md 3): `data` is the room for writing now, by kind of file. Shares its
/// descriptor registration with EVFILT_READ (``DescriptorFilterOperations``).
enum WriteFilter: DescriptorFilterOperations {
    static var filter: Int16 { FilterID.write }
    static let writable = UInt32(EPOLLOUT.rawValue)
    static var epollInterest: UInt32 { writable }
    static var reportedBits: UInt32 { writable | DescriptorFilter.hangupOrError }
    static var pollEvents: Int16 { Int16(POLLOUT) }

    static func attaching(_ knote: Int32, fd: Int32, kind: DescriptorKind, in state: inout QueueState) throws(Errno) {
        if kind == .pipe && readerIsGone(fd) { throw .brokenPipe }
    }

    static func detaching(_ knote: Int32, fd: Int32, kind: DescriptorKind, in state: inout QueueState) {}

    private static func readerIsGone(_ fd: Int32) -> Bool {
        Syscall.currentReadiness(fd, events: Int16(POLLOUT)) & UInt32(EPOLLERR.rawValue) != 0
    }

    static func evaluate(_ knote: inout Knote, entry: inout DescriptorEntry, fd: Int32, revents: UInt32) -> Bool {
        let lowWater: Int64? = knote.savedFlags & Note.lowWater != 0 ? knote.savedData : nil
        let endOfFile = revents & DescriptorFilter.hangupOrError != 0
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
            let size = Int64((try? Syscall.socketOption(fd, SOL_SOCKET, SO_SNDBUF)) ?? 0)
            knote.data = max(0, size - ((try? Syscall.bytesQueuedForSend(fd)) ?? 0))
            if endOfFile { knote.fflags = DescriptorFilter.socketError(fd, revents: revents) }
            DescriptorFilter.setEndOfFile(&knote, endOfFile)
            return endOfFile || (revents & writable != 0 && knote.data >= (lowWater ?? 1))
        case .listeningSocket:
            return false
        case .pipe:
            let capacity = (try? Syscall.pipeCapacity(fd)) ?? Int64(PIPE_BUF)
            knote.data = max(0, capacity - ((try? Syscall.bytesReadable(fd)) ?? 0))
            DescriptorFilter.setEndOfFile(&knote, endOfFile)
            return endOfFile || (revents & writable != 0 && knote.data >= (lowWater ?? Int64(PIPE_BUF)))
        case .terminal, .other, .kqueue:
            knote.data = 0
            DescriptorFilter.setEndOfFile(&knote, endOfFile)
            return endOfFile || revents & writable != 0
        case .regularFile, .alwaysReady, .unknown:
            knote.data = 0
            return true
        }
    }
}
