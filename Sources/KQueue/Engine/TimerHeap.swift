/// An indexed binary min-heap of timer deadlines: each entry is a knote index and its
/// deadline in nanoseconds; `positions` maps a knote index to its slot, so removing or
/// rescheduling any timer is O(log n) and allocation-free once the arrays have grown.
struct TimerHeap {
    private var deadlines: [Int64] = []
    private var knotes: [Int32] = []
    /// Slot of each knote index in the heap, -1 when absent.
    private var positions: [Int32] = []

    var count: Int { knotes.count }
    var isEmpty: Bool { knotes.isEmpty }

    /// The earliest deadline and its knote.
    var first: (deadline: Int64, knote: Int32)? {
        knotes.isEmpty ? nil : (deadlines[0], knotes[0])
    }

    func contains(_ knote: Int32) -> Bool {
        Int(knote) < positions.count && positions[Int(knote)] >= 0
    }

    /// Inserts or reschedules `knote`.
    mutating func schedule(_ knote: Int32, at deadline: Int64) {
        if Int(knote) >= positions.count {
            positions.append(
                contentsOf: repeatElement(-1, count: max(Int(knote) + 1, positions.count * 2) - positions.count))
        }
        let existing = positions[Int(knote)]
        if existing >= 0 {
            let slot = Int(existing)
            let earlier = deadline < deadlines[slot]
            deadlines[slot] = deadline
            if earlier { siftUp(slot) } else { siftDown(slot) }
            return
        }
        deadlines.append(deadline)
        knotes.append(knote)
        positions[Int(knote)] = Int32(knotes.count - 1)
        siftUp(knotes.count - 1)
    }

    /// A heap that grew large and is now mostly empty gives its memory back (see
    /// ``KnoteTable/releaseThreshold``): its arrays are copied to their size, the positions
    /// of knote indices past the last scheduled one dropped. Amortized O(1) per removal.
    private mutating func compactIfSparse() {
        guard knotes.capacity > KnoteTable.releaseThreshold, knotes.count * 4 < knotes.capacity else { return }
        deadlines = Self.copy(deadlines[...])
        knotes = Self.copy(knotes[...])
        var end = positions.count
        while end > 0 && positions[end - 1] < 0 { end -= 1 }
        positions = Self.copy(positions[..<end])
    }

    /// A new array of just the elements' size (an Array made from a slice may share the old
    /// buffer, and removals never shrink one).
    private static func copy<T>(_ elements: ArraySlice<T>) -> [T] {
        var copy: [T] = []
        copy.reserveCapacity(elements.count)
        copy.append(contentsOf: elements)
        return copy
    }

    mutating func remove(_ knote: Int32) {
        guard contains(knote) else { return }
        let slot = Int(positions[Int(knote)])
        let last = knotes.count - 1
        positions[Int(knote)] = -1
        if slot != last {
            move(from: last, to: slot)
            deadlines.removeLast()
            knotes.removeLast()
            siftDown(slot)
            siftUp(slot)
        } else {
            deadlines.removeLast()
            knotes.removeLast()
        }
        compactIfSparse()
    }

    /// Removes and returns the earliest timer if it is due at `now`.
    mutating func popDue(now: Int64) -> Int32? {
        guard let first, first.deadline <= now else { return nil }
        remove(first.knote)
        return first.knote
    }

    private mutating func move(from source: Int, to target: Int) {
        deadlines[target] = deadlines[source]
        knotes[target] = knotes[source]
        positions[Int(knotes[target])] = Int32(target)
    }

    private mutating func swapAt(_ a: Int, _ b: Int) {
        deadlines.swapAt(a, b)
        knotes.swapAt(a, b)
        positions[Int(knotes[a])] = Int32(a)
        positions[Int(knotes[b])] = Int32(b)
    }

    private mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard deadlines[child] < deadlines[parent] else { return }
            swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        let n = knotes.count
        while true {
            let left = 2 * parent + 1
            guard left < n else { return }
            var smallest = left
            if left + 1 < n && deadlines[left + 1] < deadlines[left] { smallest = left + 1 }
            guard deadlines[smallest] < deadlines[parent] else { return }
            swapAt(parent, smallest)
            parent = smallest
        }
    }
}
