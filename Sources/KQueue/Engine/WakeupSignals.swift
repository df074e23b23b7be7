import CKQueueShim
import Glibc

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

    static func tag(_ slot: Int) -> UInt64 {
        slot == 0 ? InternalSource.eventFD : InternalSource.firstExtraWakeup + UInt64(slot - 1)
    }

    static func slot(forTag tag: UInt64) -> Int? {
        if tag == InternalSource.eventFD { return 0 }
        if tag >= InternalSource.firstExtraWakeup && tag < InternalSource.firstExtraWakeup + UInt64(maximum - 1) {
            return Int(tag - InternalSource.firstExtraWakeup) + 1
        }
        return nil
    }

    init(primary: Int32) { descriptors[0] = primary }

    /// Creates the other eventfds. Returns false if one could not be created.
    mutating func createAll(epollFD: Int32, publish: (Int, Int32) -> Void) -> Bool {
        for slot in 1..<Self.maximum where descriptors[slot] < 0 {
            guard let fd = Self.create(epollFD: epollFD, slot: slot) else { return false }
            descriptors[slot] = fd
            publish(slot, fd)
        }
        return true
    }

    /// The segment number an activation queued now will be returned under (before
    /// ``openSegment(epollFD:publish:)`` is called for it).
    var nextSequence: UInt32 { sequence &+ 1 }

    /// Opens a segment for what was queued since the last one: writes a free eventfd, or
    /// extends the latest pending one when all are in flight.
    mutating func openSegment(epollFD: Int32, publish: (Int, Int32) -> Void) {
        sequence &+= 1
        for slot in 0..<Self.maximum where pending[slot] == 0 {
            if descriptors[slot] < 0 {
                guard let fd = Self.create(epollFD: epollFD, slot: slot) else { continue }
                descriptors[slot] = fd
                publish(slot, fd)
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

    mutating func close() {
        for fd in descriptors { Syscall.closeInternal(fd) }
        descriptors = [-1, -1, -1, -1]
    }

    private static func create(epollFD: Int32, slot: Int) -> Int32? {
        let fd = Syscall.eventFD()
        guard fd >= 0 else { return nil }
        let edge = UInt32(EPOLLIN.rawValue) | UInt32(EPOLLET.rawValue)
        return Syscall.registerInternal(fd, in: epollFD, events: edge, tag: tag(slot)) == nil ? fd : nil
    }
}
