/// A registration's identity in one kqueue: (filter, ident), as a knote's.
struct ContextKey: Hashable {
    var filter: Int16
    var ident: UInt

    init(filter: Filter, ident: UInt) {
        self.filter = filter.rawValue
        self.ident = ident
    }

    init(_ change: KEvent) { self.init(filter: change.filter, ident: change.ident) }
}

/// ``ContextQueue``'s table: contexts in slots, found by key (changes) or by token (events).
/// A token is `generation << 32 | (slot + 1)`: never 0 (nil `udata`), never a pointer, and a
/// slot's generation changes each time it is freed, so a stale token finds nothing.
struct ContextTable<Context> {
    private struct Slot {
        var generation: UInt32 = 0
        var key: ContextKey? = nil
        var context: Context? = nil
        /// Bound: found by its key (a registration that succeeded).
        var bound = false
    }

    private var slots: [Slot] = []
    private var free: [Int] = []
    private var byKey: [ContextKey: Int] = [:]

    /// Contexts held (bound or being registered).
    private(set) var count = 0

    /// A slot for `context`, not yet found by its key.
    mutating func allocate(_ context: Context, for key: ContextKey) -> Int {
        let slot: Int
        if let reused = free.popLast() {
            slot = reused
        } else {
            slot = slots.count
            slots.append(Slot())
        }
        slots[slot].key = key
        slots[slot].context = context
        count += 1
        return slot
    }

    func token(of slot: Int) -> UInt {
        UInt(slots[slot].generation) << 32 | UInt(slot + 1)
    }

    /// Makes `slot` the one of its key; returns the context it replaces.
    mutating func bind(_ slot: Int) -> Context? {
        guard let key = slots[slot].key else { return nil }
        let replaced = byKey[key].map { free($0) } ?? nil
        byKey[key] = slot
        slots[slot].bound = true
        return replaced
    }

    /// Empties `slot`; returns its context.
    mutating func free(_ slot: Int) -> Context? {
        let context = slots[slot].context
        if slots[slot].bound, let key = slots[slot].key, byKey[key] == slot { byKey[key] = nil }
        slots[slot] = Slot(generation: slots[slot].generation &+ 1)
        free.append(slot)
        count -= 1
        return context
    }

    func slot(for key: ContextKey) -> Int? { byKey[key] }

    /// Removes `key`'s context and returns it.
    mutating func remove(_ key: ContextKey) -> Context? {
        guard let slot = byKey[key] else { return nil }
        return free(slot)
    }

    /// The context `event`'s token names, if it is still that registration's; `release`
    /// takes it out of the table.
    mutating func resolve(_ event: KEvent, release: Bool) -> Context? {
        let word = UInt(bitPattern: event.udata)
        let index = Int(word & 0xFFFF_FFFF) - 1
        guard slots.indices.contains(index), slots[index].bound, UInt(slots[index].generation) == word >> 32,
            slots[index].key == ContextKey(event)
        else { return nil }
        return release ? free(index) : slots[index].context
    }

    /// Empties the table; returns the contexts.
    mutating func removeAll() -> [Context] {
        let contexts = slots.compactMap(\.context)
        slots = []
        free = []
        byKey = [:]
        count = 0
        return contexts
    }
}
