/// Where a registration lives in the loop's slot table, carried in each kevent's `udata`:
/// the slot index in the low 32 bits, the slot's generation in the high 32. A slot's
/// generation changes each time it is freed, so an event still in flight for a registration
/// that was cancelled is recognised as stale and dropped (SwiftNIO's `epoll_data` scheme).
struct SlotToken: Hashable, Sendable {
    var index: Int32
    var generation: UInt32

    /// Never nil: generations start at 1. A nil `udata` is the loop's own wakeup event.
    @inline(__always)
    var udata: UnsafeMutableRawPointer? {
        UnsafeMutableRawPointer(bitPattern: UInt(UInt32(bitPattern: index)) | UInt(generation) << 32)
    }

    @inline(__always)
    init(index: Int32, generation: UInt32) {
        self.index = index
        self.generation = generation
    }

    @inline(__always)
    init?(udata: UnsafeMutableRawPointer?) {
        guard let udata else { return nil }
        let raw = UInt(bitPattern: udata)
        index = Int32(bitPattern: UInt32(truncatingIfNeeded: raw))
        generation = UInt32(truncatingIfNeeded: raw >> 32)
    }
}
