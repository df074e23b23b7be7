import CKQueueShim
import Glibc
import KQueue
import Testing

/// SPEC.md section 2, "Descriptor lifetime", last rule: several threads may call kevent()
/// on the same kqueue at once; an event is delivered to one of them, a oneshot exactly once.
@Suite("SPEC 2: several threads on one kqueue")
struct ThreadingTests {
    /// Starts `count` threads that collect events from `queue` until `done` says so or the
    /// deadline passes; returns them and what each received.
    private func startCollectors(
        _ count: Int, queue: KernelQueue, until done: @escaping @Sendable ([KEvent]) -> Bool,
        deadline: Duration = .seconds(10)
    ) throws -> (threads: [TestThread], received: Shared<[[KEvent]]>) {
        let received = Shared<[[KEvent]]>(Array(repeating: [], count: count))
        let clock = ContinuousClock()
        let end = clock.now + deadline
        var threads: [TestThread] = []
        for slot in 0..<count {
            threads.append(
                try TestThread {
                    while clock.now < end {
                        guard let events = try? queue.events(maxEvents: 16, timeout: .milliseconds(20)) else { return }
                        let all = received.update { lists -> [KEvent] in
                            lists[slot] += events
                            return lists.flatMap { $0 }
                        }
                        if done(all) { return }
                    }
                })
        }
        return (threads, received)
    }

    @Test("2.T: oneshot user events are each delivered exactly once to concurrent waiters")
    func oneShotUserEventsDeliveredExactlyOnce() throws {
        let queue = try KernelQueue()
        let total = 2_000
        try queue.apply((1...UInt(total)).map { .user($0, flags: [.add, .oneShot]) })
        let (threads, received) = try startCollectors(4, queue: queue, until: { $0.count >= total })
        for batch in stride(from: 1, through: total, by: 100) {
            try queue.apply((UInt(batch)..<UInt(batch + 100)).map { .user($0, note: .trigger) })
        }
        for thread in threads { #expect(thread.join(timeout: .seconds(15))) }
        let all = received.value.flatMap { $0 }
        #expect(all.count == total)
        #expect(Set(all.map(\.ident)) == Set(1...UInt(total)))
        // Every oneshot is gone.
        #expect(changeError(queue, .user(1, flags: .delete)) == .noSuchFileOrDirectory)
        #expect(changeError(queue, .user(UInt(total), flags: .delete)) == .noSuchFileOrDirectory)
        try expectNoEvents(queue, for: .milliseconds(20))
    }

    @Test("2.T: oneshot READ events on descriptors are each delivered exactly once to concurrent waiters")
    func oneShotReadEventsDeliveredExactlyOnce() throws {
        let queue = try KernelQueue()
        var pipes: [(read: FileDescriptor, write: FileDescriptor)] = []
        defer { for pipe in pipes { closeAll(pipe.read, pipe.write) } }
        for _ in 0..<64 { pipes.append(try makePipe()) }
        try queue.apply(pipes.map { .read($0.read, flags: [.add, .oneShot]) })
        let pipeCount = pipes.count
        let (threads, received) = try startCollectors(4, queue: queue, until: { $0.count >= pipeCount })
        for pipe in pipes { try send(pipe.write, count: 1) }
        for thread in threads { #expect(thread.join(timeout: .seconds(15))) }
        let all = received.value.flatMap { $0 }
        #expect(all.count == pipes.count, "\(all.count) deliveries for \(pipes.count) oneshots")
        #expect(Set(all.map(\.ident)) == Set(pipes.map { UInt($0.read) }))
        try expectNoEvents(queue, for: .milliseconds(20))
    }

    @Test("2.T: an EV_CLEAR event is delivered to one of several waiting threads")
    func clearEventDeliveredToOneWaiter() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(readEnd, writeEnd) }
        try queue.apply([.user(1, flags: [.add, .clear]), .read(readEnd, flags: [.add, .clear])])
        let received = Shared<[KEvent]>([])
        var waiters: [TestThread] = []
        for _ in 0..<3 {
            waiters.append(
                try TestThread {
                    if let events = try? queue.events(maxEvents: 8, timeout: .milliseconds(300)) {
                        received.update { $0 += events }
                    }
                })
        }
        try queue.apply([.user(1, note: .trigger)])
        try send(writeEnd, count: 1)
        for waiter in waiters { #expect(waiter.join(timeout: .seconds(10))) }
        let all = received.value
        #expect(all.filter { $0.filter == .user }.count == 1, "\(all)")
        #expect(all.filter { $0.filter == .read }.count == 1, "\(all)")
    }

    @Test("2.T: a change made by one thread is seen by a thread already waiting")
    func changeWakesWaitingThread() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(readEnd, writeEnd) }
        try send(writeEnd, count: 3)
        let received = Shared<[KEvent]>([])
        let waiter = try TestThread {
            if let events = try? queue.events(maxEvents: 8, timeout: .seconds(20)) { received.update { $0 = events } }
        }
        _ = waiter.wait(timeout: .milliseconds(50))
        try queue.apply([.read(readEnd)])  // already readable: must wake the waiter
        let returned = waiter.join(timeout: .seconds(5))
        #expect(returned, "the waiting thread did not see the new registration")
        if !returned { queue.close() }
        #expect(received.value.map(\.ident) == [UInt(readEnd)])
        #expect(received.value.first?.data == 3)
    }

    @Test("2.T: concurrent registrations, triggers and waits deliver every oneshot exactly once")
    func concurrentProducersAndConsumers() throws {
        let queue = try KernelQueue()
        let producers = 3
        let perProducer = 400
        let total = producers * perProducer
        let (consumers, received) = try startCollectors(2, queue: queue, until: { $0.count >= total })
        var producerThreads: [TestThread] = []
        for p in 0..<producers {
            producerThreads.append(
                try TestThread {
                    for i in 0..<perProducer {
                        let ident = UInt(p * perProducer + i + 1)
                        // Add, add a decoy and delete it, then trigger: in separate calls.
                        _ = try? queue.apply([.user(ident, flags: [.add, .oneShot])])
                        _ = try? queue.apply([
                            .user(ident + 1_000_000, flags: .add), .user(ident + 1_000_000, flags: .delete),
                        ])
                        _ = try? queue.apply([.user(ident, note: .trigger)])
                    }
                })
        }
        for thread in producerThreads { #expect(thread.join(timeout: .seconds(15))) }
        for thread in consumers { #expect(thread.join(timeout: .seconds(15))) }
        let all = received.value.flatMap { $0 }
        #expect(all.count == total)
        #expect(Set(all.map(\.ident)) == Set(1...UInt(total)))
    }
}
