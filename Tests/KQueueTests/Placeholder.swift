import KQueue
import Testing

@Test func smokeUserEventTriggersAndReturns() throws {
    let queue = try KernelQueue()
    try queue.apply([.user(1, flags: [.add, .clear])])
    let result = try queue.kevent([.user(1, note: UserNote.or(0x5).triggering, data: 7)], eventCapacity: 4, timeout: .seconds(1))
    #expect(result.errors.isEmpty)
    #expect(result.events.count == 1)
    #expect(result.events.first?.fflags == 5)
    #expect(result.events.first?.data == 7)
}
