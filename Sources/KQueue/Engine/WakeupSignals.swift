import CKQueueShim
import Glibc
import SystemPackage

/// How user-space activations (user events, timers, regular files) take their place in
/// epoll's ready list, so that rule 10 (first activated, first returned) holds across
/// descriptors and user-space sources.
///
/// Each activation opens a *segment*: a sequence number written to a free eventfd. The
/// eventfd's edge lands at the tail of epoll's ready list, behind descriptors that became
/// ready earlier and ahead of later ones; when the scan meets that edge it returns the queued
/// knotes of segments up to that number. Up to ``maximum`` segments can be in flight; past
/// that, activations join the latest one. The eventfds are created with the kqueue, so its
/// descriptor count never changes with what it watches.
struct WakeupSignals {
    static let maximum = 4
    /// Descriptor of each eventfd (-1: not created yet). Index 0 is created with the kqueue.
    private(set) var descriptors: [Int32] = [-1, -1, -1, -1]
    /// The latest segment each eventfd's pending edge covers; 0 when no edge is pending.
    private var pending: [UInt32] = [0, 0, 0, 0]
    /// The latest segment opened.
    private(set) var sequence: UInt32 = 0
    private var latest = 0

    init(primary: Int32) { descriptors[0] = primary }

    /// Creates the other eventfds.
    mutating func createAll(registrar: InternalRegistrar) throws(Errno) {
        for slot in 1..<Self.maximum where descriptors[slot] < 0 {
            descriptors[slot] = try Self.create(registrar: registrar, slot: slot)
        }
    }

    /// The segment number an activation queued now will be returned under (before
    /// ``openSegment(registrar:)`` is called for it).
    var nextSequence: UInt32 { sequence &+ 1 }

    /// Opens a segment for what was queued since the last one: writes a free eventfd, or
    /// extends the latest pending one when all are in flight.
    mutating func openSegment(registrar: InternalRegistrar) {
        sequence &+= 1
        for slot in 0..<Self.maximum where pending[slot] == 0 {
            if descriptors[slot] < 0 {
                guard let fd = try? Self.create(registrar: registrar, slot: slot) else { continue }
                descriptors[slot] = fd
            }
            pending[slot] = sequence
            latest = slot
            Syscall.eventFDSignal(descriptors[slot])
            return
        }
        pending[latest] = sequence  // all in flight: the latest edge covers this segment too
    }

    /// An eventfd's edge was collected: returns the latest segment it covers, and frees it.
    mutating func consume(slot: Int) -> UInt32 {
        let covered = pending[slot]
        pending[slot] = 0
        return covered
    }

    /// Closes the eventfds: the primary one (slot 0, created with the kqueue and closed by
    /// the fork child handler through ``KQueueCore``) and the published others.
    mutating func close(registrar: InternalRegistrar) {
        Syscall.closeInternal(descriptors[0])
        for slot in 1..<Self.maximum { registrar.close(descriptors[slot]) }
        descriptors = [-1, -1, -1, -1]
    }

    private static func create(registrar: InternalRegistrar, slot: Int) throws(Errno) -> Int32 {
        let fd = try Syscall.eventFD()
        let edge = UInt32(EPOLLIN.rawValue) | UInt32(EPOLLET.rawValue)
        try registrar.register(fd, events: edge, tag: EpollTag.wakeup(slot: slot))
        return fd
    }
}
