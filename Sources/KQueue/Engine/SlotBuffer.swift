/// A growable array of trivial values in manually managed memory, addressed in place.
///
/// The knote and descriptor tables are read and written for every event; a Swift `Array`
/// would add a uniqueness check (copy-on-write) to each write and forbid handing out two
/// `inout` elements of the same table at once. Indices are checked in debug builds only:
/// every index comes from the engine's own bookkeeping.
import Glibc

struct SlotBuffer<Element: BitwiseCopyable>: ~Copyable {
    private(set) var base: UnsafeMutablePointer<Element>
    private(set) var count = 0
    private var capacity: Int

    init(capacity: Int = 16) {
        self.capacity = max(capacity, 1)
        base = Self.resize(nil, to: self.capacity)
    }

    deinit { free(base) }

    /// malloc/realloc: elements are bitwise-copyable, and realloc moves a large table by
    /// remapping its pages instead of copying them.
    private static func resize(_ pointer: UnsafeMutablePointer<Element>?, to capacity: Int) -> UnsafeMutablePointer<
        Element
    > {
        guard let raw = realloc(pointer, capacity * MemoryLayout<Element>.stride) else {
            fatalError("out of memory growing a kqueue table to \(capacity) entries")
        }
        return raw.bindMemory(to: Element.self, capacity: capacity)
    }

    @inline(__always)
    subscript(index: Int) -> Element {
        unsafeAddress {
            assert(index >= 0 && index < count, "slot index out of range")
            return UnsafePointer(base + index)
        }
        nonmutating unsafeMutableAddress {
            assert(index >= 0 && index < count, "slot index out of range")
            return base + index
        }
    }

    /// The address of element `index`, for filters that update a knote and its descriptor
    /// entry together.
    @inline(__always)
    func pointer(_ index: Int) -> UnsafeMutablePointer<Element> {
        assert(index >= 0 && index < count, "slot index out of range")
        return base + index
    }

    mutating func append(_ element: Element) {
        reserve(count + 1)
        (base + count).initialize(to: element)
        count += 1
    }

    /// Grows to `newCount` elements, the new ones set to `fill`.
    mutating func grow(to newCount: Int, filling fill: Element) {
        guard newCount > count else { return }
        reserve(newCount)
        (base + count).initialize(repeating: fill, count: newCount - count)
        count = newCount
    }

    /// Drops the elements from `newCount` on and gives the memory past `capacity` back.
    mutating func truncate(to newCount: Int, capacity: Int) {
        precondition(newCount <= count && newCount <= capacity)
        count = newCount
        self.capacity = max(capacity, 1)
        base = Self.resize(base, to: self.capacity)
    }

    private mutating func reserve(_ needed: Int) {
        guard needed > capacity else { return }
        let newCapacity = max(needed, capacity * 2)
        base = Self.resize(base, to: newCapacity)
        capacity = newCapacity
    }
}
