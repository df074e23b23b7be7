/// The knotes whose ident is not a descriptor (user events, timers, signals, processes):
/// an open-addressing hash table from (filter, ident) to knote index.
///
/// Measured against `Dictionary` with a million timers: SipHash on every change (twice per
/// EV_ADD) and the rehash stalls were most of the cost of adding a timer. Here the hash is a
/// multiply-shift, probing is linear, deletion shifts entries back (no tombstones), and the
/// table doubles at half full.
struct IdentTable: ~Copyable {
    private struct Entry {
        var ident: UInt
        var filter: Int16
        /// Knote index; -1 marks an empty slot.
        var value: Int32
    }

    private var entries: UnsafeMutablePointer<Entry>
    private var mask: Int
    private(set) var count = 0

    init(capacity: Int = 64) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        entries = .allocate(capacity: size)
        entries.initialize(repeating: Entry(ident: 0, filter: 0, value: -1), count: size)
        mask = size - 1
    }

    deinit { entries.deallocate() }

    @inline(__always)
    private func home(_ filter: Int16, _ ident: UInt) -> Int {
        var hash = UInt64(ident) &* 0x9E37_79B9_7F4A_7C15
        hash ^= UInt64(UInt16(bitPattern: filter)) &* 0xC2B2_AE3D_27D4_EB4F
        hash ^= hash >> 29
        return Int(truncatingIfNeeded: hash) & mask
    }

    /// The slot holding (filter, ident), or the empty slot where it would go.
    @inline(__always)
    private func find(_ filter: Int16, _ ident: UInt) -> Int {
        var slot = home(filter, ident)
        while entries[slot].value >= 0 && !(entries[slot].ident == ident && entries[slot].filter == filter) {
            slot = (slot + 1) & mask
        }
        return slot
    }

    @inline(__always)
    func value(filter: Int16, ident: UInt) -> Int32? {
        let slot = find(filter, ident)
        return entries[slot].value >= 0 ? entries[slot].value : nil
    }

    mutating func insert(filter: Int16, ident: UInt, value: Int32) {
        if (count + 1) * 2 > mask + 1 { grow() }
        let slot = find(filter, ident)
        if entries[slot].value < 0 { count += 1 }
        entries[slot] = Entry(ident: ident, filter: filter, value: value)
    }

    mutating func remove(filter: Int16, ident: UInt) {
        var hole = find(filter, ident)
        guard entries[hole].value >= 0 else { return }
        count -= 1
        // Backward-shift deletion: move later entries of the probe run into the hole when
        // their home slot does not lie (cyclically) between the hole and them.
        var next = (hole + 1) & mask
        while entries[next].value >= 0 {
            let wanted = home(entries[next].filter, entries[next].ident)
            let distanceToNext = (next - wanted) & mask
            let distanceToHole = (hole - wanted) & mask
            if distanceToHole <= distanceToNext {
                entries[hole] = entries[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        entries[hole].value = -1
        // Shrink at one eighth full (it grows at one half): no resize thrash, and a table that
        // held a million timers gives its memory back as they go.
        if count * 8 < mask + 1 && mask + 1 > 1024 { resize(to: (mask + 1) / 2) }
    }

    private mutating func grow() { resize(to: (mask + 1) * 2) }

    private mutating func resize(to size: Int) {
        let old = entries
        let oldSize = mask + 1
        entries = .allocate(capacity: size)
        entries.initialize(repeating: Entry(ident: 0, filter: 0, value: -1), count: size)
        mask = size - 1
        for slot in 0..<oldSize where old[slot].value >= 0 {
            entries[find(old[slot].filter, old[slot].ident)] = old[slot]
        }
        old.deallocate()
    }
}
