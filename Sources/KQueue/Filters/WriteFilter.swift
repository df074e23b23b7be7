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

    /// Linux reports a stream socket that never connected as hung up, and one whose
    /// connection ended (a reset, a refused connect, a UNIX peer gone) the same way; only the
    /// latter has its receiving side shut down as well (POLLRDHUP).
    private static func isDisconnected(_ fd: Int32, revents: UInt32) -> Bool {
        guard revents & UInt32(EPOLLHUP.rawValue) != 0 else { return false }
        let rdhup = UInt32(EPOLLRDHUP.rawValue)
        return Syscall.currentReadiness(fd, events: Int16(POLLOUT) | Int16(truncatingIfNeeded: rdhup)) & rdhup != 0
    }

    private static func readerIsGone(_ fd: Int32) -> Bool {
        Syscall.currentReadiness(fd, events: Int16(POLLOUT)) & UInt32(EPOLLERR.rawValue) != 0
    }

    static func evaluate(_ knote: inout Knote, entry: inout DescriptorEntry, fd: Int32, revents: UInt32) -> Bool {
        let lowWater: Int64? = knote.savedFlags & Note.lowWater != 0 ? knote.savedData : nil
        let endOfFile = revents & DescriptorFilter.hangupOrError != 0
        knote.fflags = 0
        switch entry.kind {
        case .streamSocket, .datagramSocket:
            // FreeBSD's filt_sowrite: a socket that cannot send any more (SBS_CANTSENDMORE)
            // fires with EV_EOF; one that is not connected, never.
            var cannotSend = entry.kind == .streamSocket && Syscall.sendIsShutDown(fd)
            if entry.kind == .streamSocket && !cannotSend && revents & UInt32(EPOLLERR.rawValue) == 0
                && !DescriptorFilter.hasBeenConnected(fd, entry: &entry)
            {
                guard isDisconnected(fd, revents: revents) else { return false }
                cannotSend = true
            }
            let size = Int64((try? Syscall.socketOption(fd, SOL_SOCKET, SO_SNDBUF)) ?? 0)
            knote.data = max(0, size - ((try? Syscall.bytesQueuedForSend(fd)) ?? 0))
            if endOfFile || cannotSend { knote.fflags = DescriptorFilter.socketError(fd, revents: revents) }
            DescriptorFilter.setEndOfFile(&knote, endOfFile || cannotSend)
            if cannotSend { return true }
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
