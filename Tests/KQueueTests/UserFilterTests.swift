import CKQueueShim
import Glibc
import KQueue
import Testing

/// SPEC.md section 3, EVFILT_USER.
@Suite("SPEC 3: EVFILT_USER")
struct UserFilterTests {
    @Test("3.USER: a user event triggers and returns its fflags and data (smoke)")
    func smokeUserEventTriggersAndReturns() throws {
        let queue = try KernelQueue()
        try queue.apply([.user(1, flags: [.add, .clear])])
        let result = try queue.kevent(
            [.user(1, note: UserNote.or(0x5).triggering, data: 7)], eventCapacity: 4, timeout: .seconds(1))
        #expect(result.errors.isEmpty)
        #expect(result.events.count == 1)
        #expect(result.events.first?.fflags == 5)
        #expect(result.events.first?.data == 7)
    }

    @Test("3.USER: ident is any number", arguments: [UInt(0), 1, UInt(Int32.max) + 1, UInt.max])
    func identIsAnyNumber(ident: UInt) throws {
        let queue = try KernelQueue()
        try queue.apply([.user(ident, flags: [.add, .clear], note: .trigger, udata: tag(0x55))])
        let events = try pendingEvents(queue)
        #expect(events.map(\.ident) == [ident])
        #expect(events.first?.udata == tag(0x55))
    }

    @Test("3.USER: NOTE_TRIGGER fires it, with or without EV_ADD")
    func triggerWithOrWithoutAdd() throws {
        let queue = try KernelQueue()
        try queue.apply([.user(1, flags: [.add, .clear]), .user(2, flags: [.add, .clear])])
        try expectNoEvents(queue, "not triggered yet")
        try queue.apply([.user(1, note: .trigger), .user(2, flags: .add, note: .trigger)])
        #expect(Set(try pendingEvents(queue).map(\.ident)) == [1, 2])
        // On a new knote, with EV_ADD.
        try queue.apply([.user(3, flags: [.add, .clear], note: .trigger)])
        #expect(try pendingEvents(queue).map(\.ident) == [3])
    }

    @Test("3.USER: FFNOP keeps, FFAND ands, FFOR ors, FFCOPY replaces the stored value; data is stored too")
    func fflagsControlOperations() throws {
        let queue = try KernelQueue()
        try queue.apply([.user(1, flags: [.add, .clear])])
        func fire(_ note: UserNote, data: Int64) throws -> KEvent? {
            try queue.apply([.user(1, note: note.triggering, data: data)])
            let events = try pendingEvents(queue)
            #expect(events.count == 1)
            return events.first
        }
        let copied = try fire(.copy(0xF0F0), data: 1)
        #expect(copied?.fflags == 0xF0F0)
        #expect(copied?.data == 1)
        let anded = try fire(.and(0xFF00), data: 2)
        #expect(anded?.fflags == 0xF000)
        #expect(anded?.data == 2)
        let ored = try fire(.or(0x000F), data: 3)
        #expect(ored?.fflags == 0xF00F)
        let kept = try fire(.noOperation, data: 4)
        #expect(kept?.fflags == 0xF00F)
        #expect(kept?.data == 4)
        let replaced = try fire(.copy(0x00AB_CDEF), data: -5)
        #expect(replaced?.fflags == 0x00AB_CDEF)
        #expect(replaced?.data == -5)
        // Control operations without a trigger update the value without firing.
        try queue.apply([.user(1, note: .or(0x0010_0000), data: 6)])
        try expectNoEvents(queue)
        let later = try fire(.noOperation, data: 6)
        #expect(later?.fflags == 0x00BB_CDEF)
    }

    @Test("3.USER: returned fflags are the stored low 24 bits, without the control bits or NOTE_TRIGGER")
    func returnedFflagsAreLow24Bits() throws {
        let queue = try KernelQueue()
        try queue.apply([.user(1, flags: [.add, .clear])])
        try queue.apply([.user(1, note: UserNote(rawValue: 0xC000_0000 | 0x0100_0000 | 0x00FF_FFFF))])
        let events = try pendingEvents(queue)
        #expect(events.first?.fflags == 0x00FF_FFFF)
    }

    @Test("3.USER: without EV_CLEAR the triggered state stays set and the event keeps being returned")
    func levelTriggeredUserEventRepeats() throws {
        let queue = try KernelQueue()
        try queue.apply([.user(1, flags: .add), .user(1, note: UserNote.copy(3).triggering, data: 9)])
        for _ in 0..<3 {
            let events = try pendingEvents(queue)
            #expect(events.count == 1)
            #expect(events.first?.fflags == 3)
            #expect(events.first?.data == 9)
        }
    }

    @Test("3.USER: with EV_CLEAR the triggered state resets on retrieval; the stored value stays")
    func clearUserEventResets() throws {
        let queue = try KernelQueue()
        try queue.apply([.user(1, flags: [.add, .clear])])
        try queue.apply([.user(1, note: UserNote.copy(0x42).triggering, data: 1)])
        #expect(try pendingEvents(queue).count == 1)
        try expectNoEvents(queue)
        try queue.apply([.user(1, note: .trigger, data: 2)])
        let again = try pendingEvents(queue)
        #expect(again.count == 1)
        #expect(again.first?.fflags == 0x42)
        #expect(again.first?.data == 2)
    }

    @Test("3.USER: a trigger while disabled is kept; a later EV_ENABLE returns the event")
    func triggerWhileDisabledIsKept() throws {
        let queue = try KernelQueue()
        try queue.apply([.user(1, flags: [.add, .clear, .disable]), .user(2, flags: [.add, .dispatch])])
        try queue.apply([.user(1, note: UserNote.or(0x8).triggering, data: 8)])
        try expectNoEvents(queue)
        try queue.apply([.user(1, flags: .enable)])
        let events = try pendingEvents(queue)
        #expect(events.map(\.ident) == [1])
        #expect(events.first?.fflags == 0x8)
        // Same for a knote that EV_DISPATCH disabled.
        try queue.apply([.user(2, note: .trigger)])
        #expect(try pendingEvents(queue).map(\.ident) == [2])
        try queue.apply([.user(2, flags: .add, note: .trigger)])
        try expectNoEvents(queue)
        try queue.apply([.user(2, flags: .enable)])
        #expect(try pendingEvents(queue).map(\.ident) == [2])
    }

    @Test("3.USER: EV_DELETE removes a triggered knote and its pending event")
    func deleteRemovesPendingEvent() throws {
        let queue = try KernelQueue()
        try queue.apply([.user(1, flags: .add, note: .trigger)])
        try queue.apply([.user(1, flags: .delete)])
        try expectNoEvents(queue)
        #expect(changeError(queue, .user(1, note: .trigger)) == .noSuchFileOrDirectory)
    }

    @Test("1/3.USER: udata and the ext words pass through")
    func udataAndExtPassThrough() throws {
        let queue = try KernelQueue()
        let change = KEvent(
            ident: 1, filter: .user, flags: [.add, .clear], fflags: UserNote.trigger.rawValue, udata: tag(0xabcd),
            ext: (11, 22, 33, 44))
        try queue.apply([change])
        let event = try pendingEvents(queue).first
        #expect(event?.udata == tag(0xabcd))
        #expect(event?.ext.0 == 11)
        #expect(event?.ext.1 == 22)
        #expect(event?.ext.2 == 33)
        #expect(event?.ext.3 == 44)
    }

    @Test("3.USER: a trigger from another thread wakes a blocked wait promptly")
    func crossThreadTriggerWakesWaiter() throws {
        let queue = try KernelQueue()
        try queue.apply([.user(1, flags: [.add, .clear])])
        let clock = ContinuousClock()
        let woke = Shared<(events: [KEvent], at: ContinuousClock.Instant)?>(nil)
        let waiter = try TestThread {
            let events = (try? queue.events(maxEvents: 4, timeout: .seconds(20))) ?? []
            woke.update { $0 = (events, clock.now) }
        }
        // Give the waiter a moment to block (if it is not blocked yet, the test still holds).
        _ = waiter.wait(timeout: .milliseconds(50))
        let triggered = clock.now
        try queue.apply([.user(1, note: .trigger)])
        let returned = waiter.join(timeout: .seconds(10))
        #expect(returned)
        if !returned { queue.close() }
        let result = woke.value
        #expect(result?.events.map(\.ident) == [1])
        if let at = result?.at { #expect(at - triggered < .seconds(1), "woke \(at - triggered) after the trigger") }
    }
}

/// Counts this process's open descriptors, so it runs serialized; the count tolerates the
/// descriptors other suites open meanwhile (a per-knote descriptor would add thousands).
@Suite("SPEC 3: EVFILT_USER descriptor use", .serialized)
struct UserFilterDescriptorTests {
    @Test("3.USER: user knotes use no descriptors")
    func userKnotesUseNoDescriptors() throws {
        let queue = try KernelQueue()
        try queue.apply([.user(0, flags: [.add, .clear], note: .trigger)])
        _ = try pendingEvents(queue)
        // Exact, whatever other suites open meanwhile: the descriptors registered in this
        // kqueue's epoll instance (its own eventfds, any source) are listed in its fdinfo.
        let before = registeredDescriptorCount(queue)
        let count = 2_000
        try queue.apply((1...UInt(count)).map { .user($0, flags: [.add, .clear]) })
        try queue.apply((1...UInt(count)).map { .user($0, note: .trigger) })
        var received = 0
        while true {
            let events = try queue.events(maxEvents: 512, timeout: .zero)
            if events.isEmpty { break }
            received += events.filter { $0.ident != 0 }.count
        }
        #expect(received == count)
        let after = registeredDescriptorCount(queue)
        #expect(before > 0 && after == before, "\(count) user knotes: \(before) -> \(after) descriptors in the kqueue")
    }
}
