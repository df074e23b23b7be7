import Testing

@testable import KQueue

/// The open-addressing ident table against `Dictionary` as a model: random inserts,
/// overwrites and removals (with backward-shift deletion and growth) must agree exactly.
@Suite("Knote table: idents that are not descriptors")
struct IdentTableTests {
    @Test("random inserts and removals agree with Dictionary")
    func agreesWithDictionary() {
        var generator = SplitMix(seed: 0x5EED)
        var table = IdentTable(capacity: 4)
        var model: [Int64: Int32] = [:]
        func key(_ filter: Int16, _ ident: UInt) -> Int64 { Int64(filter) << 48 ^ Int64(ident & 0xFFFF_FFFF) }
        for step in 0..<200_000 {
            let filter: Int16 = [-7, -11, -5][Int(generator.next() % 3)]
            let ident = UInt(generator.next() % 5_000)  // dense collisions and long probe runs
            if generator.next() % 3 == 0 {
                table.remove(filter: filter, ident: ident)
                model[key(filter, ident)] = nil
            } else {
                let value = Int32(step % 1_000_000)
                table.insert(filter: filter, ident: ident, value: value)
                model[key(filter, ident)] = value
            }
            if step % 997 == 0 {
                #expect(table.count == model.count)
            }
        }
        #expect(table.count == model.count)
        for filter: Int16 in [-7, -11, -5] {
            for ident in 0..<UInt(5_000) {
                #expect(table.value(filter: filter, ident: ident) == model[key(filter, ident)])
            }
        }
    }
}

/// A small deterministic generator for reproducible random tests.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
