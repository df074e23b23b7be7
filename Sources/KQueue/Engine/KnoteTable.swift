/// Where a kqueue's knotes live: a slab of ``Knote`` values addressed by index, and a hash
/// table from (filter, ident) to index for filters that keep no table of their own
/// (EVFILT_READ and EVFILT_WRITE find theirs through ``DescriptorTable``).
struct KnoteTable: ~Copyable {
    private(set) var slots = SlotBuffer<Knote>(capacity: 64)
    private var freeList: [Int32] = []
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
            return index
        }
        slots.append(knote)
        return Int32(slots.count - 1)
    }

    mutating func free(_ index: Int32) {
        slots[Int(index)] = Knote()
        freeList.append(index)
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
