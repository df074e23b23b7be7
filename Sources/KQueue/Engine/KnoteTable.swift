/// Where a kqueue's knotes live: a slab of ``Knote`` values addressed by index, and a hash
/// table from (filter, ident) to index for filters that keep no table of their own
/// (EVFILT_READ and EVFILT_WRITE find theirs through ``DescriptorTable``).
struct KnoteTable: ~Copyable {
    private(set) var slots = SlotBuffer<Knote>(capacity: 64)
    private var freeList: [Int32] = []
    /// Every slot from here to the end of the slab is free.
    private var trailingFreeStart = 0
    /// Slabs larger than this give memory back once their upper half is free (a million
    /// timers deleted must not leave their memory behind); smaller ones keep their room, so
    /// a steady add/delete cycle never allocates.
    static let releaseThreshold = 4096
    var others = IdentTable()

    @inline(__always)
    subscript(index: Int32) -> Knote {
        unsafeAddress { UnsafePointer(slots.pointer(Int(index))) }
        nonmutating unsafeMutableAddress { slots.pointer(Int(index)) }
    }

    mutating func allocate(_ knote: Knote) -> Int32 {
        var knote = knote
        knote.status.insert(.inUse)
        if let index = freeList.popLast() {
            slots[Int(index)] = knote
            trailingFreeStart = max(trailingFreeStart, Int(index) + 1)
            return index
        }
        slots.append(knote)
        trailingFreeStart = slots.count
        return Int32(slots.count - 1)
    }

    mutating func free(_ index: Int32) {
        slots[Int(index)] = Knote()
        freeList.append(index)
        guard Int(index) == trailingFreeStart - 1 else { return }
        // The free run at the end grew: extend it over slots freed earlier (each slot is
        // passed once per time it is freed, so this is amortized O(1)).
        trailingFreeStart -= 1
        while trailingFreeStart > 0 && !slots[trailingFreeStart - 1].status.contains(.inUse) { trailingFreeStart -= 1 }
        if slots.count > Self.releaseThreshold && trailingFreeStart * 2 <= slots.count { trim() }
    }

    /// Cuts the free run off the end of the slab (indices are never moved: other tables hold
    /// them) and gives the memory back. Rare: the slab halves each time.
    private mutating func trim() {
        let end = trailingFreeStart
        slots.truncate(to: end, capacity: max(end, 64))
        freeList = (0..<end).filter { !slots[$0].status.contains(.inUse) }.map { Int32($0) }
        Syscall.returnFreeMemory()
    }

    /// The live knotes, for teardown and counting.
    var liveIndices: [Int32] {
        (0..<slots.count).filter { slots[$0].status.contains(.inUse) }.map { Int32($0) }
    }
}

/// The kqueue's user-space active queue: an intrusive FIFO linked through the knotes'
/// `previous`/`next` indices, so queueing never allocates.
struct ActiveQueue {
    private(set) var head: Int32 = -1
    private(set) var tail: Int32 = -1
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    mutating func append(_ index: Int32, in table: inout KnoteTable) {
        table[index].previous = tail
        table[index].next = -1
        if tail >= 0 { table[tail].next = index } else { head = index }
        tail = index
        count += 1
        table[index].status.insert(.queued)
    }

    mutating func remove(_ index: Int32, in table: inout KnoteTable) {
        guard table[index].status.contains(.queued) else { return }
        let previous = table[index].previous
        let next = table[index].next
        if previous >= 0 { table[previous].next = next } else { head = next }
        if next >= 0 { table[next].previous = previous } else { tail = previous }
        table[index].previous = -1
        table[index].next = -1
        table[index].status.remove(.queued)
        count -= 1
    }

    mutating func popFirst(in table: inout KnoteTable) -> Int32? {
        guard head >= 0 else { return nil }
        let index = head
        remove(index, in: &table)
        return index
    }
}
