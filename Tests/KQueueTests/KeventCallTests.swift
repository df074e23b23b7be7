import CKQueue
import CKQueueShim
import Glibc
@_spi(CABI) import KQueue
import Testing

/// SPEC.md section 2, rules 1-10: one kevent() call, changes then events. Also the Swift
/// API's bad input: every errno path is a thrown `Errno`, never a crash or a hang.
@Suite("SPEC 2.1-2.10: the kevent() call")
struct KeventCallTests {
    // MARK: Rule 1: argument errors

    @Test("2.1: nchanges < 0 is EINVAL")
    func negativeChangeCountIsInvalid() throws {
        let queue = try KernelQueue()
        var events = [CKQueue.kevent](repeating: CKQueue.kevent(), count: 1)
        var zero = timespec(tv_sec: 0, tv_nsec: 0)
        errno = 0
        let result = CABI.kevent(queue.descriptor.rawValue, nil, -1, &events, 1, &zero)
        #expect(result == -1)
        #expect(errno == EINVAL)
    }

    @Test("2.1: nevents < 0 is EINVAL")
    func negativeEventCountIsInvalid() throws {
        let queue = try KernelQueue()
        var zero = timespec(tv_sec: 0, tv_nsec: 0)
        errno = 0
        let result = CABI.kevent(queue.descriptor.rawValue, nil, 0, nil, -1, &zero)
        #expect(result == -1)
        #expect(errno == EINVAL)
    }

    @Test(
        "2.1: a timeout with tv_nsec outside [0, 1e9) or a negative tv_sec is EINVAL",
        arguments: [(0, -1), (0, 1_000_000_000), (0, Int.max), (-1, 0), (-1, 500_000_000)])
    func invalidTimespecIsInvalid(seconds: Int, nanoseconds: Int) throws {
        let queue = try KernelQueue()
        // Something pending, so a call that ignored the bad timeout would return 1, not hang.
        try queue.apply([.user(1, flags: .add, note: .trigger)])
        var events = [CKQueue.kevent](repeating: CKQueue.kevent(), count: 4)
        var timeout = timespec(tv_sec: seconds, tv_nsec: nanoseconds)
        errno = 0
        let result = CABI.kevent(queue.descriptor.rawValue, nil, 0, &events, 4, &timeout)
        #expect(result == -1)
        #expect(errno == EINVAL)
    }

    @Test("2.1: a kq that is not a kqueue is EBADF")
    func nonKqueueDescriptorIsBadFileDescriptor() throws {
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(readEnd, writeEnd) }
        var events = [CKQueue.kevent](repeating: CKQueue.kevent(), count: 1)
        var zero = timespec(tv_sec: 0, tv_nsec: 0)
        for kq in [readEnd.rawValue, -1, Int32.max] {
            errno = 0
            #expect(CABI.kevent(kq, nil, 0, &events, 1, &zero) == -1, "kq \(kq)")
            #expect(errno == EBADF, "kq \(kq)")
        }
    }

    @Test("2.1: a closed KernelQueue throws EBADF from every call (apply: its first change fails with it)")
    func closedQueueThrowsBadFileDescriptor() throws {
        let queue = try KernelQueue()
        try queue.apply([.user(1, flags: .add)])
        queue.close()
        queue.close()  // harmless
        expectChangeFailure(.badFileDescriptor) { try queue.apply([.user(2, flags: .add)]) }
        try queue.apply([])  // no change to fail: apply() does nothing with an empty list
        #expect(throws: Errno.badFileDescriptor) { _ = try queue.kevent([], eventCapacity: 4, timeout: .zero) }
        #expect(throws: Errno.badFileDescriptor) { _ = try queue.events(maxEvents: 4, timeout: .milliseconds(10)) }
        // A wait without timeout must fail at once too, not hang.
        let outcome = Shared<Errno?>(nil)
        let waiter = try TestThread {
            do throws(Errno) { _ = try queue.events(maxEvents: 4, timeout: nil) } catch {
                outcome.update { $0 = error }
            }
        }
        #expect(waiter.join(timeout: .seconds(5)), "kevent on a closed kqueue blocked")
        #expect(outcome.value == .badFileDescriptor)
    }

    @Test(
        "2.1: a negative timeout Duration throws EINVAL",
        arguments: [Duration.seconds(-1), .nanoseconds(-1), .milliseconds(-500), .seconds(-3) + .milliseconds(250)])
    func negativeDurationThrowsInvalidArgument(timeout: Duration) throws {
        let queue = try KernelQueue()
        try queue.apply([.user(1, flags: .add, note: .trigger)])
        #expect(throws: Errno.invalidArgument) { _ = try queue.events(maxEvents: 4, timeout: timeout) }
        #expect(throws: Errno.invalidArgument) { _ = try queue.kevent([], eventCapacity: 4, timeout: timeout) }
        #expect(throws: Errno.invalidArgument) { _ = try keventRaw(queue, [], capacity: 4, timeout: timeout) }
    }

    @Test("2.1/1: an unknown filter value is EINVAL", arguments: [Int16(1), 5, -14, -20, -100, Int16.min, Int16.max])
    func unknownFilterIsInvalid(filter: Int16) throws {
        let queue = try KernelQueue()
        let bad = KEvent(ident: 1, filter: Filter(rawValue: filter), flags: .add)
        expectChangeFailure(.invalidArgument) { try queue.apply([bad]) }
        let result = try queue.kevent([bad], eventCapacity: 4, timeout: .zero)
        #expect(result.errors.count == 1)
        #expect(result.errors.first?.changeError == .invalidArgument)
    }

    @Test(
        "2.1/registration: a descriptor filter on a number that is not an open descriptor throws EBADF",
        arguments: [UInt(15_999), UInt(1_000_000), UInt(Int32.max), UInt(Int32.max) + 1, UInt(UInt32.max), UInt.max])
    func badDescriptorThrowsBadFileDescriptor(ident: UInt) throws {
        let queue = try KernelQueue()
        for filter in [Filter.read, .write] {
            expectChangeFailure(.badFileDescriptor, "\(filter) add") { try queue.apply([change(ident, filter)]) }
            expectChangeFailure(.badFileDescriptor, "\(filter) enable") {
                try queue.apply([change(ident, filter, .enable)])
            }
            expectChangeFailure(.badFileDescriptor, "\(filter) delete") {
                try queue.apply([change(ident, filter, .delete)])
            }
        }
    }

    // MARK: Rule 2: changes in order, all before events; filter 0 skipped

    @Test("2.2: changes are applied in order")
    func changesAreAppliedInOrder() throws {
        let queue = try KernelQueue()
        // add, delete, add again with a trigger: one knote, triggered.
        try queue.apply([
            .user(1, flags: .add), .user(1, flags: .delete), .user(1, flags: [.add, .clear], note: .trigger, data: 3),
        ])
        let events = try pendingEvents(queue)
        #expect(events.count == 1)
        #expect(events.first?.ident == 1)
        #expect(events.first?.data == 3)
        // add then delete: nothing left, so a later trigger finds no knote.
        try queue.apply([.user(2, flags: .add), .user(2, flags: .delete)])
        #expect(changeError(queue, .user(2, note: .trigger)) == .noSuchFileOrDirectory)
        // A trigger before the add in the same list fails; the add after it still happens.
        let result = try queue.kevent(
            [.user(3, note: .trigger), .user(3, flags: .add)], eventCapacity: 4, timeout: .zero)
        #expect(result.errors.map(\.changeError) == [.noSuchFileOrDirectory])
        #expect(changeError(queue, .user(3, note: .trigger)) == nil)
    }

    @Test("2.2: every change is applied before any event is collected")
    func changesAllAppliedBeforeCollecting() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(readEnd, writeEnd) }
        try send(writeEnd, count: 5)
        // Each knote is ready when added but removed or disabled later in the same list.
        let events = try queue.events(maxEvents: 8, timeout: .zero)
        #expect(events.isEmpty)
        let result = try queue.kevent(
            [
                .user(1, flags: .add, note: .trigger), .read(readEnd), .user(2, flags: .add, note: .trigger),
                .user(1, flags: .delete), .read(readEnd, flags: .disable), .user(2, flags: .disable),
            ], eventCapacity: 8, timeout: .milliseconds(20))
        #expect(result.errors.isEmpty)
        #expect(result.events.isEmpty, "events of knotes deleted or disabled later in the list: \(result.events)")
    }

    @Test("2.2: a change whose filter is 0 is skipped, even with EV_RECEIPT")
    func zeroFilterChangeIsSkipped() throws {
        let queue = try KernelQueue()
        let skipped = KEvent(ident: 77, filter: Filter(rawValue: 0), flags: [.add, .receipt, .enable, .disable])
        let written = try keventRaw(queue, [skipped, .user(1, flags: [.add, .receipt]), skipped], capacity: 8)
        #expect(written.count == 1)
        #expect(written.first?.ident == 1)
        #expect(written.first?.flags == .error)
        #expect(written.first?.data == 0)
        try queue.apply([skipped])  // no error with no room either
    }

    // MARK: Rule 3: a failed change

    @Test(
        "2.3: a failed change with room is written as EV_ERROR with data = errno, other fields as given, and processing goes on"
    )
    func failedChangeWithRoomIsReported() throws {
        let queue = try KernelQueue()
        var failing = KEvent(
            ident: 4242, filter: .user, flags: [.enable, .clear], fflags: 0x0123, data: 99, udata: tag(0xfeed),
            ext: (1, 2, 3, 4))
        let written = try keventRaw(queue, [failing, .user(8, flags: [.add, .clear], note: .trigger)], capacity: 4)
        #expect(written.count == 1)
        failing.flags = .error
        failing.data = Int64(ENOENT)
        #expect(written.first == failing)
        // The change after the failed one was applied.
        let events = try pendingEvents(queue)
        #expect(events.map(\.ident) == [8])
    }

    @Test("2.3: a failed change with no room fails the call with its errno")
    func failedChangeWithoutRoomThrows() throws {
        let queue = try KernelQueue()
        expectChangeFailure(.noSuchFileOrDirectory) {
            try queue.apply([.user(1, flags: .add), .user(99, note: .trigger), .user(2, flags: .add)])
        }
        // Earlier changes stay applied, later ones are not processed.
        #expect(changeError(queue, .user(1, note: .trigger)) == nil)
        #expect(changeError(queue, .user(2, note: .trigger)) == .noSuchFileOrDirectory)
    }

    @Test("2.3: once the eventlist is full, the next failed change fails the call")
    func failedChangeAfterFullEventListThrows() throws {
        let queue = try KernelQueue()
        let changes: [KEvent] = [
            .user(100, note: .trigger),  // ENOENT: written to the only slot
            .user(1, flags: .add),
            .user(1, flags: [.enable, .disable]),  // EINVAL: no room left
            .user(2, flags: .add),
        ]
        var buffer = [KEvent](repeating: KEvent(ident: 0, filter: Filter(rawValue: 0)), count: 1)
        #expect(throws: Errno.invalidArgument) {
            try changes.withUnsafeBufferPointer { changes in
                try buffer.withUnsafeMutableBufferPointer { events in
                    _ = try queue.kevent(changes: changes, events: events, timeout: .zero)
                }
            }
        }
        #expect(buffer[0].ident == 100)
        #expect(buffer[0].flags == .error)
        #expect(buffer[0].data == Int64(ENOENT))
        #expect(changeError(queue, .user(1, note: .trigger)) == nil)
        #expect(changeError(queue, .user(2, note: .trigger)) == .noSuchFileOrDirectory)
    }

    // MARK: Rule 4: EV_RECEIPT

    @Test("2.4: every change with EV_RECEIPT produces an EV_ERROR entry, data 0 on success")
    func receiptReportsEveryChange() throws {
        let queue = try KernelQueue()
        let written = try keventRaw(
            queue,
            [
                .user(1, flags: [.add, .receipt], udata: tag(11)), .user(2, flags: .add),
                .user(3, flags: .receipt, note: .trigger, udata: tag(33)), .user(1, flags: [.delete, .receipt]),
            ], capacity: 8)
        #expect(written.map(\.ident) == [1, 3, 1])
        #expect(written.allSatisfy { $0.flags == .error && $0.filter == .user })
        #expect(written.map(\.data) == [0, Int64(ENOENT), 0])
        #expect(written.first?.udata == tag(11))
        #expect(written.dropFirst().first?.udata == tag(33))
        #expect(written.first?.changeError == nil)
    }

    @Test("2.4: a receipt that finds no room ends change processing without error")
    func receiptWithoutRoomStopsProcessing() throws {
        let queue = try KernelQueue()
        try queue.apply([.user(1, flags: [.add, .receipt]), .user(2, flags: .add)])
        #expect(changeError(queue, .user(1, note: .trigger)) == nil, "the change with the receipt was applied")
        #expect(changeError(queue, .user(2, note: .trigger)) == .noSuchFileOrDirectory, "the change after it was not")

        // With some room: the receipts fill it, the change whose receipt finds no room is
        // applied, the rest is not processed, and the call does not fail.
        let changes: [KEvent] = [
            .user(10, flags: [.add, .receipt]), .user(11, flags: [.add, .receipt]), .user(12, flags: .add),
        ]
        var buffer = [KEvent](repeating: KEvent(ident: 0, filter: Filter(rawValue: 0)), count: 1)
        try changes.withUnsafeBufferPointer { changes in
            try buffer.withUnsafeMutableBufferPointer { events in
                _ = try queue.kevent(changes: changes, events: events, timeout: .zero)
            }
        }
        #expect(buffer[0].ident == 10)
        #expect(buffer[0].flags == .error)
        #expect(buffer[0].data == 0)
        #expect(changeError(queue, .user(11, note: .trigger)) == nil)
        #expect(changeError(queue, .user(12, note: .trigger)) == .noSuchFileOrDirectory)
    }

    // MARK: Rule 5: error entries replace events

    @Test("2.5: when EV_ERROR entries are written, their count is returned and no events are collected")
    func errorEntriesSuppressEvents() throws {
        let queue = try KernelQueue()
        try queue.apply([.user(1, flags: .add, note: .trigger)])  // pending, level-triggered
        let receipt = try keventRaw(queue, [.user(2, flags: [.add, .receipt])], capacity: 8, timeout: .seconds(1))
        #expect(receipt.count == 1)
        #expect(receipt.first?.ident == 2)
        let failure = try keventRaw(queue, [.user(3, flags: .delete)], capacity: 8, timeout: .seconds(1))
        #expect(failure.count == 1)
        #expect(failure.first?.changeError == .noSuchFileOrDirectory)
        // A change without receipt that succeeds does not suppress events.
        let normal = try keventRaw(queue, [.user(4, flags: .add)], capacity: 8, timeout: .seconds(1))
        #expect(normal.map(\.ident) == [1])
    }

    // MARK: Rule 6: nevents == 0

    @Test("2.6: nevents == 0 returns right after the changes, whatever the timeout")
    func zeroEventsReturnsAfterChanges() throws {
        let queue = try KernelQueue()
        let clock = ContinuousClock()
        let start = clock.now
        let written = try keventRaw(queue, [.user(1, flags: .add)], capacity: 0, timeout: .seconds(30))
        #expect(written.isEmpty)
        #expect(clock.now - start < .seconds(2))
        #expect(changeError(queue, .user(1, note: .trigger)) == nil)

        // With no timeout (forever): must not block either. Bounded: run it on a thread.
        let done = Shared(false)
        let caller = try TestThread {
            _ = try? keventRaw(queue, [.user(2, flags: .add)], capacity: 0, timeout: nil)
            done.update { $0 = true }
        }
        let returned = caller.wait(timeout: .seconds(5))
        #expect(returned, "kevent with nevents 0 and no timeout blocked")
        if !returned { queue.close() }  // releases the stuck thread
        caller.join(timeout: .seconds(5))
        #expect(done.value)

        // Through the Swift array API as well.
        let other = try KernelQueue()
        let result = try other.kevent([.user(3, flags: .add, note: .trigger)], eventCapacity: 0, timeout: .seconds(30))
        #expect(result.events.isEmpty && result.errors.isEmpty)
        #expect(clock.now - start < .seconds(4))
    }

    // MARK: Rule 7: timeouts

    @Test("2.7: a zero timeout polls")
    func zeroTimeoutPolls() throws {
        let queue = try KernelQueue()
        try queue.apply([.user(1, flags: .add)])
        let clock = ContinuousClock()
        let start = clock.now
        for _ in 0..<10 { #expect(try queue.events(timeout: .zero).isEmpty) }
        #expect(clock.now - start < .seconds(1))
        try queue.apply([.user(1, note: .trigger)])
        #expect(try queue.events(timeout: .zero).map(\.ident) == [1])
    }

    @Test(
        "2.7: a wait never returns 0 before its timeout, with nanosecond precision",
        arguments: [Duration.microseconds(300), .nanoseconds(1_700_001), .nanoseconds(2_300_000), .milliseconds(25)])
    func timeoutIsNeverEarly(timeout: Duration) throws {
        let queue = try KernelQueue()
        try queue.apply([.user(1, flags: .add)])
        let clock = ContinuousClock()
        for _ in 0..<3 {
            let start = clock.now
            let written = try keventRaw(queue, [], capacity: 4, timeout: timeout)
            let elapsed = clock.now - start
            #expect(written.isEmpty)
            #expect(elapsed >= timeout, "returned after \(elapsed), timeout \(timeout)")
            #expect(elapsed < timeout + .seconds(2))
        }
    }

    @Test("2.7: a very long timeout is a valid wait (no overflow), ended by an event")
    func veryLongTimeoutIsValid() throws {
        let queue = try KernelQueue()
        try queue.apply([.user(1, flags: [.add, .clear], note: .trigger)])
        #expect(try queue.events(timeout: .seconds(Int64.max)).map(\.ident) == [1])
        var events = [CKQueue.kevent](repeating: CKQueue.kevent(), count: 4)
        var timeout = timespec(tv_sec: Int.max, tv_nsec: 999_999_999)
        try queue.apply([.user(1, note: .trigger)])
        #expect(CABI.kevent(queue.descriptor.rawValue, nil, 0, &events, 4, &timeout) == 1)
        // And a long wait that an event from another thread ends.
        let received = Shared<[KEvent]>([])
        let waiter = try TestThread {
            if let events = try? queue.events(maxEvents: 4, timeout: .seconds(Int64.max / 2)) {
                received.update { $0 = events }
            }
        }
        _ = waiter.wait(timeout: .milliseconds(30))
        try queue.apply([.user(1, note: .trigger)])
        let returned = waiter.join(timeout: .seconds(5))
        #expect(returned)
        if !returned { queue.close() }
        #expect(received.value.map(\.ident) == [1])
    }

    @Test("2.7: no timeout waits until an event arrives")
    func nilTimeoutWaitsForever() throws {
        let queue = try KernelQueue()
        try queue.apply([.user(1, flags: [.add, .clear])])
        let received = Shared<[KEvent]>([])
        let waiter = try TestThread {
            if let events = try? queue.events(maxEvents: 4, timeout: nil) { received.update { $0 = events } }
        }
        // Still waiting a while later.
        #expect(!waiter.wait(timeout: .milliseconds(150)), "a wait without timeout returned early")
        try queue.apply([.user(1, note: .trigger)])
        let woke = waiter.join(timeout: .seconds(5))
        #expect(woke)
        if !woke { queue.close() }
        #expect(received.value.map(\.ident) == [1])
    }

    @Test("2.7: wake-ups whose events are filtered out do not end the wait early")
    func filteredWakeupsDoNotEndTheWait() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(readEnd, writeEnd) }
        // A low-water mark the writes below never reach: each write wakes epoll, but the
        // filter says "not ready".
        try queue.apply([.read(readEnd, note: .lowWater, data: 1_000)])
        let writer = try TestThread {
            for _ in 0..<8 {
                _ = try? send(writeEnd, count: 10)
                usleep(15_000)
            }
        }
        defer { writer.join() }
        let timeout = Duration.milliseconds(200)
        let clock = ContinuousClock()
        let start = clock.now
        let written = try keventRaw(queue, [], capacity: 4, timeout: timeout)
        let elapsed = clock.now - start
        #expect(written.isEmpty)
        #expect(elapsed >= timeout, "returned 0 after \(elapsed), before the \(timeout) timeout")
    }

    @Test("2.7: a disabled knote triggered during the wait does not end the wait early")
    func disabledTriggerDoesNotEndTheWait() throws {
        let queue = try KernelQueue()
        try queue.apply([.user(1, flags: [.add, .disable])])
        let triggerer = try TestThread {
            for _ in 0..<5 {
                _ = try? queue.apply([.user(1, note: .trigger)])
                usleep(20_000)
            }
        }
        defer { triggerer.join() }
        let timeout = Duration.milliseconds(150)
        let clock = ContinuousClock()
        let start = clock.now
        let written = try keventRaw(queue, [], capacity: 4, timeout: timeout)
        let elapsed = clock.now - start
        #expect(written.isEmpty)
        #expect(elapsed >= timeout, "returned 0 after \(elapsed)")
    }

    @Test("2.7: a waiter that loses an event to another thread keeps waiting until its timeout")
    func losingWaiterKeepsWaiting() throws {
        let queue = try KernelQueue()
        try queue.apply([.user(1, flags: [.add, .clear])])
        let timeout = Duration.milliseconds(250)
        let outcomes = Shared<[(count: Int, elapsed: Duration)]>([])
        var waiters: [TestThread] = []
        for _ in 0..<3 {
            waiters.append(
                try TestThread {
                    let clock = ContinuousClock()
                    let start = clock.now
                    let count = (try? keventRaw(queue, [], capacity: 4, timeout: timeout).count) ?? -1
                    outcomes.update { $0.append((count, clock.now - start)) }
                })
        }
        _ = waiters[0].wait(timeout: .milliseconds(30))
        try queue.apply([.user(1, note: .trigger)])
        for waiter in waiters { #expect(waiter.join(timeout: .seconds(5))) }
        let results = outcomes.value
        #expect(results.filter { $0.count == 1 }.count == 1, "\(results)")
        for result in results where result.count == 0 {
            #expect(result.elapsed >= timeout, "a waiter returned 0 after \(result.elapsed)")
        }
    }

    @Test("2.2: events made ready by the call's own changes are returned by that call")
    func changesOfTheCallAreCollected() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(readEnd, writeEnd) }
        try send(writeEnd, count: 2)
        let result = try queue.kevent(
            [.read(readEnd), .user(1, flags: .add, note: .trigger)], eventCapacity: 4, timeout: .seconds(1))
        #expect(result.errors.isEmpty)
        #expect(Set(result.events.map(\.filter)) == [.read, .user])
    }

    // MARK: Rule 9: return value

    @Test("2.9: the return value is the number of events written, at most nevents")
    func returnsNumberWritten() throws {
        let queue = try KernelQueue()
        try queue.apply((1...5).map { .user($0, flags: [.add, .clear], note: .trigger) })
        let first = try keventRaw(queue, [], capacity: 3)
        #expect(first.count == 3)
        let second = try keventRaw(queue, [], capacity: 8)
        #expect(second.count == 2)
        #expect(Set(first.map(\.ident) + second.map(\.ident)) == Set(1...5))
        let third = try keventRaw(queue, [], capacity: 8, timeout: .milliseconds(10))
        #expect(third.isEmpty)
    }

    @Test("2.9: 0 is returned when the timeout passes")
    func returnsZeroOnTimeout() throws {
        let queue = try KernelQueue()
        var events = [CKQueue.kevent](repeating: CKQueue.kevent(), count: 4)
        var timeout = timespec(tv_sec: 0, tv_nsec: 5_000_000)
        #expect(CABI.kevent(queue.descriptor.rawValue, nil, 0, &events, 4, &timeout) == 0)
        #expect(try keventRaw(queue, [], capacity: 4, timeout: .milliseconds(5)).isEmpty)
    }

    // MARK: Rule 10: order

    @Test("2.10: first activated, first returned")
    func firstActivatedFirstReturned() throws {
        let queue = try KernelQueue()
        try queue.apply((1...4).map { .user($0, flags: [.add, .clear]) })
        for ident in [3, 1, 4, 2] as [UInt] { try queue.apply([.user(ident, note: .trigger)]) }
        #expect(try pendingEvents(queue).map(\.ident) == [3, 1, 4, 2])
    }

    @Test("2.10: first activated, first returned, across descriptor and user knotes")
    func activationOrderAcrossSources() throws {
        let queue = try KernelQueue()
        let a = try makePipe()
        let b = try makePipe()
        defer { closeAll(a.read, a.write, b.read, b.write) }
        try queue.apply([
            .read(a.read, flags: [.add, .clear]), .read(b.read, flags: [.add, .clear]),
            .user(7, flags: [.add, .clear]),
        ])
        try send(b.write, count: 1)
        try queue.apply([.user(7, note: .trigger)])
        try send(a.write, count: 1)
        let events = try expectEvents(queue, [(UInt(a.read), .read), (UInt(b.read), .read), (7, .user)])
        #expect(events.map(\.ident) == [UInt(b.read), 7, UInt(a.read)])
    }

    @Test("2.10: a returned level-triggered event goes back to the tail")
    func levelEventGoesBackToTail() throws {
        let queue = try KernelQueue()
        try queue.apply((1...3).map { .user($0, flags: .add, note: .trigger) })
        var order: [UInt] = []
        for _ in 0..<5 { order += try keventRaw(queue, [], capacity: 1).map(\.ident) }
        #expect(order == [1, 2, 3, 1, 2])
        let pair = try keventRaw(queue, [], capacity: 2).map(\.ident)
        #expect(pair == [3, 1])
    }

    @Test("2.10: level-triggered events rotate through the tail across descriptors and user events")
    func levelEventsRotateAcrossSources() throws {
        let queue = try KernelQueue()
        let a = try makePipe()
        let b = try makePipe()
        defer { closeAll(a.read, a.write, b.read, b.write) }
        try queue.apply([.read(a.read), .read(b.read), .user(5, flags: .add)])
        try send(a.write, count: 1)
        try queue.apply([.user(5, note: .trigger)])
        try send(b.write, count: 1)
        // One call returns all three (activation order) and puts each back at the tail, in
        // that order; then calls with room for one take them round-robin in the same order.
        let first = try keventRaw(queue, [], capacity: 64, timeout: .seconds(1)).map(\.ident)
        #expect(first == [UInt(a.read), 5, UInt(b.read)])
        var order: [UInt] = []
        for _ in 0..<6 { order += try keventRaw(queue, [], capacity: 1, timeout: .seconds(1)).map(\.ident) }
        #expect(order == first + first, "after \(first), one at a time: \(order)")
    }

    @Test("2.10: one call never returns the same knote twice")
    func oneCallNeverReturnsAKnoteTwice() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        let (socket, peer) = try makeSocketPair()
        defer { closeAll(readEnd, writeEnd, socket, peer) }
        try send(writeEnd, count: 3)
        try send(peer, count: 3)
        try queue.apply([.user(1, flags: .add, note: .trigger), .read(readEnd), .read(socket), .write(socket)])
        for _ in 0..<3 {
            let events = try keventRaw(queue, [], capacity: 64, timeout: .seconds(1))
            let keys = events.map { "\($0.ident)/\($0.filter)" }
            #expect(Set(keys).count == keys.count, "duplicates in \(events)")
            #expect(events.count == 4)
        }
    }
}

/// SPEC.md 2.8: a signal interrupts a wait. Installs a signal handler (process-wide), so the
/// suite runs serialized; the handler is a no-op and stays installed.
@Suite("SPEC 2.8: signals during the wait", .serialized)
struct KeventSignalTests {
    static let interruptSignal = SIGUSR2

    static func installNoOpHandler() throws {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0  // no SA_RESTART: kevent is never restarted anyway
        try sys(sigaction(interruptSignal, &action, nil))
    }

    @Test("2.8: a signal during the wait returns EINTR, not restarted, changes stay applied")
    func signalInterruptsWait() throws {
        try Self.installNoOpHandler()
        let queue = try KernelQueue()
        let outcome = Shared<Result<Int, Errno>?>(nil)
        let clock = ContinuousClock()
        let waiter = try TestThread {
            // Threads started from the test runner's worker threads inherit a mask that
            // blocks most signals: let this one through.
            var unblock = sigset_t()
            sigemptyset(&unblock)
            sigaddset(&unblock, KeventSignalTests.interruptSignal)
            pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
            let result: Result<Int, Errno>
            do throws(Errno) {
                result = .success(
                    try keventRaw(queue, [.user(5, flags: .add)], capacity: 4, timeout: .seconds(20)).count)
            } catch {
                result = .failure(error)
            }
            outcome.update { $0 = result }
        }
        let start = clock.now
        // The thread may not be in the wait yet: keep signalling it until the call returns.
        while !waiter.hasFinished && clock.now - start < .seconds(10) {
            pthread_kill(waiter.id, Self.interruptSignal)
            _ = waiter.wait(timeout: .milliseconds(20))
        }
        let returned = waiter.join(timeout: .seconds(5))
        #expect(returned, "the signal did not end the wait")
        if !returned { queue.close() }
        #expect(clock.now - start < .seconds(10), "the wait was restarted instead of failing")
        #expect(outcome.value == .failure(.interrupted))
        // The change of the interrupted call stays applied.
        #expect(changeError(queue, .user(5, note: .trigger)) == nil)
    }
}
