import CKQueueShim
import Glibc
import KQueue
import Testing

/// SPEC.md section 2, "Delivery rules".
@Suite("SPEC 2: delivery rules")
struct DeliveryRulesTests {
    @Test("2.D: a level-triggered event is returned while the condition holds")
    func levelTriggeredRepeatsWhileReady() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(readEnd, writeEnd) }
        try queue.apply([.read(readEnd)])
        try send(writeEnd, count: 4)
        for _ in 0..<3 {
            let event = try expectEvent(queue, ident: UInt(readEnd), filter: .read)
            #expect(event?.data == 4)
        }
        try receive(readEnd, count: 3)
        #expect(try expectEvent(queue, ident: UInt(readEnd), filter: .read)?.data == 1)
        try receive(readEnd, count: 1)
        try expectNoEvents(queue)
        try send(writeEnd, count: 2)
        #expect(try expectEvent(queue, ident: UInt(readEnd), filter: .read)?.data == 2)
    }

    @Test("2.D: EV_CLEAR resets the state after return until the source changes again")
    func clearResetsUntilNextChange() throws {
        let queue = try KernelQueue()
        let (socket, peer) = try makeSocketPair()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(socket, peer, readEnd, writeEnd) }
        try queue.apply([.read(socket, flags: [.add, .clear]), .read(readEnd, flags: [.add, .clear])])
        try send(peer, count: 3)
        try send(writeEnd, count: 3)
        let first = try expectEvents(queue, [(UInt(socket), .read), (UInt(readEnd), .read)])
        #expect(first.map(\.data) == [3, 3])
        try expectNoEvents(queue, "data still buffered, but nothing new arrived")
        try send(peer, count: 2)
        try send(writeEnd, count: 2)
        let second = try expectEvents(queue, [(UInt(socket), .read), (UInt(readEnd), .read)])
        #expect(second.map(\.data) == [5, 5])
        #expect(second.allSatisfy { $0.flags == .clear })
        try expectNoEvents(queue)
    }

    @Test("2.D: EV_ONESHOT is returned once, then the knote is deleted")
    func oneShotReturnedOnceThenDeleted() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(readEnd, writeEnd) }
        try queue.apply([.read(readEnd, flags: [.add, .oneShot]), .user(1, flags: [.add, .oneShot])])
        try send(writeEnd, count: 2)
        try queue.apply([.user(1, note: .trigger)])
        let events = try expectEvents(queue, [(UInt(readEnd), .read), (1, .user)])
        #expect(events.allSatisfy { $0.flags == .oneShot })
        try send(writeEnd, count: 2)
        try expectNoEvents(queue, "a oneshot came back")
        #expect(changeError(queue, .read(readEnd, flags: .delete)) == .noSuchFileOrDirectory)
        #expect(changeError(queue, .user(1, note: .trigger)) == .noSuchFileOrDirectory)
        // It can be added again.
        try queue.apply([.read(readEnd, flags: [.add, .oneShot])])
        #expect(try expectEvent(queue, ident: UInt(readEnd), filter: .read)?.data == 4)
    }

    @Test("2.D: EV_DISPATCH is returned once, then disabled; EV_DELETE works; EV_ENABLE re-arms")
    func dispatchDisablesAfterReturn() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(readEnd, writeEnd) }
        try queue.apply([.read(readEnd, flags: [.add, .dispatch]), .user(1, flags: [.add, .dispatch])])
        try send(writeEnd, count: 2)
        try queue.apply([.user(1, note: .trigger)])
        let first = try expectEvents(queue, [(UInt(readEnd), .read), (1, .user)])
        #expect(first.allSatisfy { $0.flags == .dispatch })
        try send(writeEnd, count: 1)
        try queue.apply([.user(1, note: .trigger)])
        try expectNoEvents(queue, "a dispatched knote came back before EV_ENABLE")
        // Still registered: EV_ENABLE re-arms, and the condition still holds.
        try queue.apply([.read(readEnd, flags: .enable), .user(1, flags: .enable)])
        let second = try expectEvents(queue, [(UInt(readEnd), .read), (1, .user)])
        #expect(second.first { $0.filter == .read }?.data == 3)
        try expectNoEvents(queue)
        // Disabled again by the delivery; EV_DELETE works.
        try queue.apply([.read(readEnd, flags: .delete), .user(1, flags: .delete)])
        #expect(changeError(queue, .read(readEnd, flags: .enable)) == .noSuchFileOrDirectory)
    }

    @Test("2.D: several triggers between two retrievals merge into one event")
    func triggersMerge() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(readEnd, writeEnd) }
        try queue.apply([.read(readEnd, flags: [.add, .clear]), .user(1, flags: [.add, .clear])])
        for bit: UInt32 in [1, 2, 4] {
            try send(writeEnd, count: 10)
            try queue.apply([.user(1, note: UserNote.or(bit).triggering)])
        }
        let events = try keventRaw(queue, [], capacity: 16, timeout: .seconds(1))
        #expect(events.count == 2, "\(events)")
        #expect(events.first { $0.filter == .read }?.data == 30)
        #expect(events.first { $0.filter == .user }?.fflags == 7)
    }

    @Test("2.D: returned flags drop ADD, DELETE, ENABLE, DISABLE, FORCEONESHOT and keep ONESHOT, CLEAR, DISPATCH, EOF")
    func returnedFlags() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(readEnd) }
        try queue.apply([
            .user(1, flags: [.add, .enable, .clear, .dispatch], note: .trigger),
            .user(2, flags: [.add, .enable, .oneShot], note: .trigger),
            .user(3, flags: [.add]),
            .read(readEnd, flags: [.add, .enable, .clear]),
        ])
        try queue.apply([.user(3, flags: [.disable]), .user(3, flags: [.enable, .forceOneShot])])
        closeAll(writeEnd)  // EOF on the read end
        var byIdent: [UInt: Flags] = [:]
        for event in try expectEvents(queue, [(1, .user), (2, .user), (3, .user), (UInt(readEnd), .read)]) {
            byIdent[event.ident] = event.flags
        }
        #expect(byIdent[1] == [.clear, .dispatch])
        #expect(byIdent[2] == [.oneShot])
        #expect(byIdent[3] == [.oneShot])
        #expect(byIdent[UInt(readEnd)] == [.clear, .endOfFile])
    }

    @Test("1/2.D: system flag bits (EOF, ERROR, FLAG1, DROP) in a change are stripped")
    func systemFlagsAreStripped() throws {
        let queue = try KernelQueue()
        let written = try keventRaw(
            queue, [.user(1, flags: [.add, .endOfFile, .error, .flag1, Flags(rawValue: 0x1000)], note: .trigger)],
            capacity: 4)
        #expect(written.count == 1)
        #expect(written.first?.flags == [], "an EV_ERROR or EV_EOF set by the caller survived: \(written)")
        // With EV_ERROR in a change that fails: the error is still reported normally.
        let failed = try keventRaw(queue, [.user(2, flags: [.error, .endOfFile], note: .trigger)], capacity: 4)
        #expect(failed.first?.changeError == .noSuchFileOrDirectory)
    }

    @Test("2.D: TIMER adds EV_CLEAR itself")
    func timerAddsClear() throws {
        let queue = try KernelQueue()
        try queue.apply([KEvent(ident: 1, filter: .timer, flags: .add, fflags: 0, data: 1)])  // 1 ms period
        let event = try expectEvent(queue, ident: 1, filter: .timer)
        #expect(event?.flags.contains(.clear) == true)
    }

    @Test("2.D: a NOTE_ABSTIME timer does not get EV_CLEAR")
    func absoluteTimerDoesNotAddClear() throws {
        let queue = try KernelQueue()
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let past = Int64(now.tv_sec) - 1  // NOTE_SECONDS | NOTE_ABSTIME, in the past: fires at once
        try queue.apply([KEvent(ident: 2, filter: .timer, flags: .add, fflags: 0x1 | 0x10, data: past)])
        let event = try expectEvent(queue, ident: 2, filter: .timer)
        #expect(event?.flags.contains(.clear) == false)
    }
}

/// SPEC.md 2 delivery rules for SIGNAL and PROC: sending a signal to the process and forking
/// touch process-wide state, so these run serialized.
@Suite("SPEC 2: delivery rules (signals, processes)", .serialized)
struct DeliveryProcessWideTests {
    @Test("2.D: PROC adds EV_CLEAR itself")
    func processAddsClear() throws {
        let queue = try KernelQueue()
        let pid = try spawnShell("exit 3")
        defer { _ = try? reap(pid, timeout: .seconds(5)) }
        // A zombie is accepted when NOTE_EXIT is wanted (its exit is reported at once).
        try queue.apply([KEvent(ident: UInt(pid), filter: .process, flags: .add, fflags: 0x8000_0000)])
        let event = try expectEvent(queue, ident: UInt(pid), filter: .process)
        #expect(event?.flags.contains(.clear) == true)
    }

    @Test("2.D: SIGNAL adds EV_CLEAR itself")
    func signalAddsClear() throws {
        let queue = try KernelQueue()
        // SIGWINCH: ignored by default, so a stray delivery harms nobody.
        try queue.apply([KEvent(ident: UInt(SIGWINCH), filter: .signal, flags: .add)])
        kill(getpid(), SIGWINCH)
        let event = try expectEvent(queue, ident: UInt(SIGWINCH), filter: .signal)
        #expect(event?.flags.contains(.clear) == true)
    }
}
