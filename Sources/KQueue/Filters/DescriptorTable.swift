import CKQueueShim
import Glibc
import SystemPackage

/// Per-descriptor state of one kqueue: the READ, WRITE and EMPTY knotes on that number share
/// one epoll registration (epoll allows one per descriptor and open file), whose interest is
/// the union of the enabled knotes' interests.
struct DescriptorEntry {
    /// Knote indices, -1 for none.
    var read: Int32 = -1
    var write: Int32 = -1
    /// Tag of the live epoll registration, packed with the descriptor into `epoll_data`;
    /// an event whose tag differs is stale (an earlier open file behind the same number).
    /// Grows by one for every new registration and is never reused for the same number.
    var generation: UInt32 = 0
    var isRegistered = false
    /// The `events` word of the live registration, EPOLLET included.
    var registeredEvents: UInt32 = 0
    var kind: DescriptorKind = .unknown
    /// Set once epoll reported readiness that no knote could use (a low-water mark not
    /// reached, an unconnected socket): the registration then runs edge-triggered so that a
    /// condition which persists cannot wake every wait.
    var edgeForced = false
    /// SO_RCVLOWAT as read when the first READ knote attached.
    var receiveLowWater: Int64 = 1
    /// A stream socket seen connected (WRITE on a never-connected socket never fires).
    var wasConnected = false
    /// The EVFILT_EMPTY knote, -1 for none (last, so that the entry's stride stays 40 bytes).
    var empty: Int32 = -1

    var isEmpty: Bool { read < 0 && write < 0 && empty < 0 }

    /// How many knotes the entry holds.
    var knoteCount: Int { (read >= 0 ? 1 : 0) + (write >= 0 ? 1 : 0) + (empty >= 0 ? 1 : 0) }

    /// The live registration is edge-triggered (EPOLLET).
    var isEdgeTriggered: Bool { registeredEvents & UInt32(EPOLLET.rawValue) != 0 }

    /// The knote of `filter` (READ, WRITE or EMPTY) on this descriptor, -1 for none.
    @inline(__always)
    func knote(_ filter: Int16) -> Int32 {
        filter == FilterID.read ? read : filter == FilterID.write ? write : empty
    }

    @inline(__always)
    mutating func setKnote(_ filter: Int16, _ index: Int32) {
        if filter == FilterID.read {
            read = index
        } else if filter == FilterID.write {
            write = index
        } else {
            empty = index
        }
    }

    /// Forgets what was learned about the open file (its number may name another one next).
    mutating func forgetFile() {
        kind = .unknown
        edgeForced = false
        wasConnected = false
    }
}

/// EVFILT_READ, EVFILT_WRITE and EVFILT_EMPTY's table: one ``DescriptorEntry`` per descriptor number
/// (grown on demand), and the descriptors a scan moves to the back of epoll's list.
struct DescriptorTable: ~Copyable {
    var entries = SlotBuffer<DescriptorEntry>(capacity: 64)
    /// Level-triggered descriptors a scan returned after re-queueing a knote of the active
    /// queue (bounded: past its capacity, order among them is approximate).
    var toMoveBack: [Int32] = {
        var list: [Int32] = []
        list.reserveCapacity(64)
        return list
    }()

    /// The entry for `fd`, created empty if the table is too short.
    @inline(__always)
    mutating func entry(_ fd: Int32) -> Int {
        let i = Int(fd)
        if i >= entries.count {
            entries.grow(to: max(i + 1, entries.count * 2), filling: DescriptorEntry())
        }
        return i
    }

    @inline(__always)
    func existing(_ fd: Int32) -> DescriptorEntry? {
        fd >= 0 && Int(fd) < entries.count ? entries[Int(fd)] : nil
    }
}

/// What kind of open file a watched descriptor is; decides how readiness and `data` are found.
enum DescriptorKind: UInt8 {
    case unknown
    case streamSocket
    /// A stream socket after listen(2): `data` is the accept-queue length.
    case listeningSocket
    case datagramSocket
    case pipe
    /// Regular files and directories: epoll refuses them, readiness is computed here.
    case regularFile
    case terminal
    /// Any other pollable file (eventfd, timerfd, character devices, ...).
    case other
    /// A kqueue created by this library: `data` is its number of pending events.
    case kqueue
    /// A file that does not support poll (epoll_ctl says EPERM), e.g. /dev/null: always ready.
    case alwaysReady

    /// Readiness is tracked by epoll (else by the user-space active queue).
    var usesEpoll: Bool {
        switch self {
        case .regularFile, .alwaysReady, .unknown: return false
        default: return true
        }
    }
}

extension DescriptorKind {
    /// Finds out what kind of file `fd` is (EBADF if it is not open).
    static func classify(_ fd: Int32) throws(Errno) -> DescriptorKind {
        let status = try Syscall.fileStatus(fd)
        switch status.st_mode & S_IFMT {
        case S_IFSOCK:
            let type = (try? Syscall.socketOption(fd, SOL_SOCKET, SO_TYPE)) ?? Int32(SOCK_STREAM.rawValue)
            if type == Int32(SOCK_DGRAM.rawValue) || type == Int32(SOCK_RAW.rawValue) { return .datagramSocket }
            if (try? Syscall.socketOption(fd, SOL_SOCKET, SO_ACCEPTCONN)) == 1 { return .listeningSocket }
            return .streamSocket
        case S_IFIFO: return .pipe
        case S_IFREG, S_IFDIR: return .regularFile
        case S_IFCHR: return Syscall.isTerminal(fd) ? .terminal : .other
        default: return KQueueRegistry.isKQueue(fd) ? .kqueue : .other
        }
    }
}
