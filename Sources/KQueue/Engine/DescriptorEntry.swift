import CKQueueShim
import Glibc

/// Per-descriptor state of one kqueue: the READ and WRITE knotes on that number share one
/// epoll registration (epoll allows one per descriptor and open file), whose interest is the
/// union of the enabled knotes' interests.
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

    var isEmpty: Bool { read < 0 && write < 0 }

    @inline(__always)
    static func tag(fd: Int32, generation: UInt32) -> UInt64 {
        UInt64(generation) << 32 | UInt64(UInt32(bitPattern: fd))
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

/// Tags of the kqueue's own descriptors in `epoll_data`: generation 0 is never used for a
/// watched descriptor.
enum InternalSource {
    static let eventFD: UInt64 = 0
    static let inotify: UInt64 = 1
    static let timerFD: UInt64 = 2
    static let realtimeTimerFD: UInt64 = 3
    /// The inotify instance of EVFILT_VNODE knotes (``VnodeWatcher``).
    static let vnodeInotify: UInt64 = 4
    /// The process-wide eventfd of EVFILT_SIGNAL's handler (`CKQueueShim/signals.c`).
    static let signals: UInt64 = 5
    /// The process connector of EVFILT_PROC's NOTE_FORK/EXEC/TRACK (``ProcessEventSource``).
    static let processEvents: UInt64 = 6
    /// Eventfds 1... of ``WakeupSignals`` (index 0 uses `eventFD`).
    static let firstExtraWakeup: UInt64 = 16
}
