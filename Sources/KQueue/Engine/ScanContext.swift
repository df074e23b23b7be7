import CKQueue

/// One call's scan: where its events go and what the scan has seen so far (FreeBSD's
/// kqueue_scan locals). Lives on the caller's stack; the scan fills it under the lock.
///
/// Sendable for the trip into the lock: the caller guarantees its eventlist stays valid and
/// unshared for the duration of the kevent() call (as for ``KEventBuffers``).
struct ScanContext: @unchecked Sendable {
    /// The caller's eventlist.
    let events: UnsafeMutablePointer<kevent>
    let capacity: Int
    /// Entries written so far by this call.
    var written: Int
    /// Reports of the current batch that yielded no event (internal wakeups, stale or
    /// filtered reports): they took room in the batch and may have hidden ready knotes.
    var absorbed = 0
    /// A wakeup eventfd was collected in the current batch.
    var sawWakeup = false
    /// The call's own changes activated knotes without writing a wakeup: the scan returns them.
    var drainUnsignaled: Bool

    init(events: UnsafeMutablePointer<kevent>, capacity: Int, written: Int = 0, drainUnsignaled: Bool = false) {
        self.events = events
        self.capacity = capacity
        self.written = written
        self.drainUnsignaled = drainUnsignaled
    }

    @inline(__always)
    var hasRoom: Bool { written < capacity }

    @inline(__always)
    mutating func append(_ event: kevent) {
        events[written] = event
        written += 1
    }
}
