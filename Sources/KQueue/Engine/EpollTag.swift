/// The 64-bit `epoll_data` of every registration in a kqueue's epoll instance: what a report
/// names, made and read only here.
///
/// - A watched descriptor (bit 63 clear): the registration's generation (1...2³¹−1) in bits
///   32–62 and the descriptor number in bits 0–31. A report whose generation is not the live
///   one is stale (an earlier open file behind the same number).
/// - An internal source (bit 63 set): the owning filter's number in bits 32–47 (0 for the
///   core's own wakeup eventfds) and a payload the owner chose in bits 0–31.
enum EpollTag {
    private static let internalBit: UInt64 = 1 << 63
    /// The largest generation; the next one wraps to 1.
    static let maximumGeneration = UInt32(Int32.max)
    /// The "owner" of the core's wakeup eventfds.
    private static let coreOwner: Int16 = 0

    @inline(__always)
    static func descriptor(_ fd: Int32, generation: UInt32) -> UInt64 {
        UInt64(generation) << 32 | UInt64(UInt32(bitPattern: fd))
    }

    /// The generation after `generation` (never 0, never past ``maximumGeneration``).
    static func nextGeneration(after generation: UInt32) -> UInt32 {
        generation >= maximumGeneration ? 1 : generation + 1
    }

    /// An internal source owned by `filter`, with the owner's `payload`.
    static func source(filter: Int16, payload: UInt32 = 0) -> UInt64 {
        internalBit | UInt64(UInt16(bitPattern: filter)) << 32 | UInt64(payload)
    }

    /// Wakeup eventfd number `slot` of ``WakeupSignals``.
    static func wakeup(slot: Int) -> UInt64 { source(filter: coreOwner, payload: UInt32(slot)) }

    /// Who a report is for.
    enum Owner {
        case descriptor(fd: Int32, generation: UInt32)
        case wakeup(slot: Int)
        case source(filter: Int16, payload: UInt32)
    }

    /// Routes a report's tag to its owner: the one place tags are read.
    @inline(__always)
    static func owner(of tag: UInt64) -> Owner {
        let payload = UInt32(truncatingIfNeeded: tag)
        if tag & internalBit == 0 {
            return .descriptor(fd: Int32(bitPattern: payload), generation: UInt32(truncatingIfNeeded: tag >> 32))
        }
        let filter = Int16(bitPattern: UInt16(truncatingIfNeeded: tag >> 32))
        return filter == coreOwner ? .wakeup(slot: Int(payload)) : .source(filter: filter, payload: payload)
    }
}
