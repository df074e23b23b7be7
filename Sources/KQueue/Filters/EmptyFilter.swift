import CKQueue
import CKQueueShim
import Glibc
import SystemPackage

/// EVFILT_EMPTY (SPEC.md 3): ready when the socket's send queue is empty (FreeBSD's
/// filt_soempty: `sbused(&so->so_snd) == 0`, `data` the bytes still queued, so 0 in an event).
///
/// * TCP: the queue is what SIOCOUTQ counts (sent and not acknowledged, plus not yet sent),
///   less the FIN's sequence number while it is unacknowledged, and nothing once the
///   connection is closed (FreeBSD drops the send buffer then). Linux tells no one when
///   acknowledgements empty it, so a waiting knote is looked at again on a schedule that
///   follows the queue (``EmptySocketWatcher``), and at every epoll report of the descriptor
///   (write space, hang-up, error), whose registration it shares with READ and WRITE (the
///   third slot of ``DescriptorTable``).
/// * A listening socket is ready at once (`SOLISTENING`), as is every other socket: in FreeBSD
///   12 UNIX stream and seqpacket sockets append straight to the peer's receive buffer and UDP
///   sends at once, so their send buffer never holds data.
///
/// A knote's `filterState` is 1 for a TCP socket, 0 otherwise. EV_CLEAR: once returned, the
/// knote fires again only after the application sent more and the queue emptied again (TCP:
/// the send interposers tell of the send), or at the next write-space edge (others: FreeBSD
/// wakes it when the peer reads).
enum EmptyFilter: DescriptorFilterOperations {
    static var filter: Int16 { FilterID.empty }
    static var epollInterest: UInt32 { UInt32(EPOLLOUT.rawValue) }
    static var reportedBits: UInt32 { UInt32(EPOLLOUT.rawValue) | DescriptorFilter.hangupOrError }
    static var pollEvents: Int16 { Int16(POLLOUT) }

    /// Linux's TCP states (linux/tcp.h) that matter here.
    private enum TCPState {
        static let finWait1: UInt8 = 4
        static let close: UInt8 = 7
        static let lastAck: UInt8 = 9
        static let listen: UInt8 = 10
        static let closing: UInt8 = 11
    }

    /// Only sockets have a send buffer (FreeBSD: every other file's fo_kqfilter says EINVAL).
    static func attaching(_ knote: Int32, fd: Int32, kind: DescriptorKind, in state: inout QueueState) throws(Errno) {
        switch kind {
        case .streamSocket, .listeningSocket, .datagramSocket: break
        default: throw .invalidArgument
        }
        let protocolNumber = (try? Syscall.socketOption(fd, SOL_SOCKET, SO_PROTOCOL)) ?? 0
        state.table[knote].filterState = protocolNumber == Int32(IPPROTO_TCP) ? 1 : 0
    }

    static func detaching(_ knote: Int32, fd: Int32, kind: DescriptorKind, in state: inout QueueState) {
        state.sources.emptySockets.forget(knote)
    }

    /// After EV_ADD, EV_ENABLE or a change: the registration follows the knote's state, and the
    /// queue is looked at afresh (FreeBSD calls f_event at registration: an EV_CLEAR knote
    /// added again fires again for a queue that is still empty).
    static func registered(_ knote: Int32, justAttached: Bool, in state: inout QueueState) {
        let fd = Int32(state.table[knote].ident)
        if !justAttached { DescriptorFilter.syncRegistration(fd: fd, in: &state) }
        state.sources.emptySockets.forget(knote)
        checkAndQueue(knote, in: &state)
    }

    /// An epoll report of the descriptor: look at the queue now. Kept out of line: READ and
    /// WRITE's delivery loop, which calls it, stays as compact as it was.
    @inline(never)
    static func reported(_ knote: Int32, revents: UInt32, in state: inout QueueState) {
        guard !state.table[knote].status.contains(.disabled), revents & reportedBits != 0 else { return }
        // A connection that ended wakes FreeBSD's knote too (its send buffer is dropped).
        if revents & DescriptorFilter.hangupOrError != 0 { state.sources.emptySockets.forget(knote) }
        state.recheck(knote)
    }

    /// The watcher's timerfd reported (payload 0): look at the knotes whose time has come. The
    /// send eventfd reported (payload 1): look at the idle knotes whose socket was sent on.
    static func sourceReported(_ payload: UInt32, in state: inout QueueState) {
        if payload == EmptySocketWatcher.sendPayload {
            for (knote, sends) in state.sources.emptySockets.idleKnotes() {
                guard let sends, Syscall.emptySends(Int32(state.table[knote].ident)) != sends else { continue }
                state.recheck(knote)
            }
            return
        }
        for knote in state.sources.emptySockets.due() {
            guard state.table[knote].status.contains(.inUse), state.table[knote].filter == filter,
                !state.table[knote].status.contains(.disabled)
            else { continue }
            state.recheck(knote)
        }
        state.sources.emptySockets.rearm()
    }

    static func closeSources(in state: inout QueueState) {
        state.sources.emptySockets.close(registrar: state.registrar)
    }

    /// `f_event` with the kqueue at hand: ready now, or looked at again later.
    static func event(_ knote: Int32, in state: inout QueueState) -> Bool {
        let fd = Int32(state.table[knote].ident)
        let isTCP = state.table[knote].filterState == 1
        guard isTCP, state.sources.descriptors.existing(fd)?.kind != .listeningSocket else {
            state.table[knote].data = 0
            return true
        }
        let (bytes, info) = queuedBytes(fd)
        state.table[knote].data = bytes
        state.table[knote].fflags = 0
        if bytes > 0 {
            let roundTrip = Int64(info?.rtt_us ?? 0) * 1_000
            // A failure leaves the knote to the next epoll report: the timerfd could not be made.
            try? state.sources.emptySockets.outstanding(
                knote, bytes: bytes, roundTrip: roundTrip, registrar: state.registrar)
            return false
        }
        if let idle = state.sources.emptySockets.idleState(knote) {
            // An EV_CLEAR knote already returned for this empty queue fires again only once
            // the application sent since (the interposers counted it), or more data was
            // acknowledged (a send they could not see).
            let sent = idle.sends != nil && Syscall.emptySends(fd) != idle.sends
            let acknowledged = info?.bytes_acked ?? Syscall.tcpSendInfo(fd)?.bytes_acked ?? idle.acknowledged
            if !sent && acknowledged == idle.acknowledged {
                try? state.sources.emptySockets.stayIdle(
                    knote, acknowledged: idle.acknowledged, sends: idle.sends, registrar: state.registrar)
                return false
            }
        }
        state.sources.emptySockets.forget(knote)
        return true
    }

    /// The event is returned: an EV_CLEAR knote of a TCP socket becomes idle, waiting for
    /// acknowledged data.
    static func deliver(_ knote: Int32, into event: inout kevent, in state: inout QueueState) -> Bool {
        let flags = state.table[knote].flags
        guard flags & EV.clear != 0, flags & EV.oneShot == 0, state.table[knote].filterState == 1 else {
            return false
        }
        let fd = Int32(state.table[knote].ident)
        try? state.sources.emptySockets.idle(knote, fd: fd, backend: state.backend, registrar: state.registrar)
        return false
    }

    /// The bytes FreeBSD's `sbused(&so->so_snd)` would count, and TCP_INFO when it was read.
    private static func queuedBytes(_ fd: Int32) -> (Int64, kq_tcp_send_info?) {
        // SIOCOUTQ fails (EINVAL) on a socket that listens: nothing queued.
        guard let queued = try? Syscall.bytesQueuedForSend(fd), queued > 0 else { return (0, nil) }
        guard let info = Syscall.tcpSendInfo(fd) else { return (queued, nil) }
        switch info.state {
        case TCPState.close, TCPState.listen:
            return (0, info)  // Linux keeps counting a reset connection's purged queue
        case TCPState.finWait1, TCPState.closing, TCPState.lastAck:
            return (max(0, queued - 1), info)  // the FIN takes one sequence number, not a byte
        default:
            return (queued, info)
        }
    }

    /// Required by ``DescriptorFilterOperations``; EMPTY is evaluated by ``event(_:in:)``.
    static func evaluate(_ knote: inout Knote, entry: inout DescriptorEntry, fd: Int32, revents: UInt32) -> Bool {
        false
    }
}
