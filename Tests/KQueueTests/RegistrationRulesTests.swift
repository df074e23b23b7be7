import CKQueueShim
import Glibc
import KQueue
import Testing

/// SPEC.md section 2, "Registration rules".
@Suite("SPEC 2: registration rules")
struct RegistrationRulesTests {
    @Test("2.R: a knote is unique per (ident, filter) in one kqueue")
    func knoteIsUniquePerIdentAndFilter() throws {
        let queue = try KernelQueue()
        try queue.apply([.user(1, flags: [.add, .clear]), .user(1, flags: [.add, .clear])])
        try queue.apply([.user(1, note: .trigger)])
        #expect(try pendingEvents(queue).map(\.ident) == [1])
        try queue.apply([.user(1, flags: .delete)])
        #expect(changeError(queue, .user(1, flags: .delete)) == .noSuchFileOrDirectory, "two knotes were created")

        // The same fd with READ and WRITE: two knotes. The same number as a user ident: a third.
        let (socket, peer) = try makeSocketPair()
        defer { closeAll(socket, peer) }
        try send(peer, count: 1)
        let number = UInt(socket)
        try queue.apply([
            .read(socket, udata: tag(1)), .write(socket, udata: tag(2)),
            .user(number, flags: .add, note: .trigger, udata: tag(3)),
            .read(socket, udata: tag(4)),
        ])
        let events = try pendingEvents(queue)
        #expect(events.count == 3)
        #expect(Set(events.map(\.filter)) == [.read, .write, .user])
        #expect(events.allSatisfy { $0.ident == number })
        #expect(events.first { $0.filter == .read }?.udata == tag(4))
    }

    @Test("2.R: the same (ident, filter) in two kqueues are two independent knotes")
    func knotesInDifferentQueuesAreIndependent() throws {
        let first = try KernelQueue()
        let second = try KernelQueue()
        try first.apply([.user(1, flags: [.add, .clear])])
        try second.apply([.user(1, flags: [.add, .clear])])
        try first.apply([.user(1, note: .trigger)])
        #expect(try pendingEvents(first).map(\.ident) == [1])
        #expect(try pendingEvents(second).isEmpty)
        try second.apply([.user(1, flags: .delete)])
        #expect(changeError(first, .user(1, note: .trigger)) == nil)
    }

    @Test("2.R: EV_ADD of a source that is already ready queues the event at once")
    func addOfReadySourceQueuesAtOnce() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(readEnd, writeEnd) }
        try send(writeEnd, count: 3)
        try queue.apply([.read(readEnd), .write(writeEnd), .user(9, flags: .add, note: .trigger)])
        let events = try pendingEvents(queue)
        #expect(events.count == 3)
        #expect(events.first { $0.filter == .read }?.data == 3)
    }

    @Test("2.R: EV_ADD on an existing knote replaces udata")
    func addReplacesUdata() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(readEnd, writeEnd) }
        try send(writeEnd, count: 1)
        try queue.apply([.read(readEnd, udata: tag(0xa)), .user(1, flags: .add, udata: tag(0xa))])
        try queue.apply([.read(readEnd, udata: tag(0xb)), .user(1, flags: .add, note: .trigger, udata: tag(0xb))])
        let events = try pendingEvents(queue)
        #expect(events.count == 2)
        #expect(events.allSatisfy { $0.udata == tag(0xb) })
    }

    @Test("2.R: EV_KEEPUDATA keeps udata on a modification")
    func keepUdataKeepsUdata() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(readEnd, writeEnd) }
        try send(writeEnd, count: 1)
        try queue.apply([.read(readEnd, udata: tag(0xa)), .user(1, flags: .add, udata: tag(0xa))])
        try queue.apply([
            .read(readEnd, flags: [.add, .keepUserData], udata: tag(0xb)),
            .user(1, flags: [.add, .keepUserData], note: .trigger, udata: tag(0xb)),
        ])
        try queue.apply([.user(1, flags: .keepUserData, note: .trigger, udata: tag(0xc))])
        let events = try pendingEvents(queue)
        #expect(events.count == 2)
        #expect(events.allSatisfy { $0.udata == tag(0xa) }, "\(events.map(\.udata))")
    }

    @Test("2.R: a change without EV_ADD on an existing knote is a modification (udata replaced)")
    func changeWithoutAddModifies() throws {
        let queue = try KernelQueue()
        try queue.apply([.user(1, flags: [.add, .clear], udata: tag(1))])
        try queue.apply([.user(1, note: .trigger, udata: tag(2))])  // NOTE_TRIGGER alone
        let first = try pendingEvents(queue)
        #expect(first.map(\.ident) == [1])
        #expect(first.first?.udata == tag(2))
        try queue.apply([.user(1, flags: .disable, udata: tag(3)), .user(1, note: .trigger, udata: tag(3))])
        #expect(try pendingEvents(queue).isEmpty)
        try queue.apply([.user(1, flags: .enable, udata: tag(4))])  // EV_ENABLE alone
        let second = try pendingEvents(queue)
        #expect(second.map(\.ident) == [1])
        #expect(second.first?.udata == tag(4))
    }

    @Test("2.R: a modification updates the stored fflags/data and re-checks the filter")
    func modificationUpdatesAndRechecks() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(readEnd, writeEnd) }
        try queue.apply([.read(readEnd, note: .lowWater, data: 10)])
        try send(writeEnd, count: 5)
        try expectNoEvents(queue)
        // Lowering the low-water mark makes the 5 bytes enough: the re-check queues it.
        try queue.apply([.read(readEnd, note: .lowWater, data: 5)])
        let events = try pendingEvents(queue)
        #expect(events.map(\.ident) == [UInt(readEnd)])
        #expect(events.first?.data == 5)
        // Raising it again stops the event.
        try queue.apply([.read(readEnd, note: .lowWater, data: 6)])
        try expectNoEvents(queue)
    }

    @Test("2.R: EV_ADD with EV_DISABLE on an existing knote disables it; EV_ENABLE re-enables")
    func addWithDisableOnExistingDisables() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(readEnd, writeEnd) }
        try send(writeEnd, count: 2)
        try queue.apply([.read(readEnd)])
        try queue.apply([.read(readEnd, flags: [.add, .disable])])
        try expectNoEvents(queue)
        try queue.apply([.read(readEnd, flags: [.add, .enable])])
        #expect(try pendingEvents(queue).map(\.data) == [2])
    }

    @Test("2.R: a modification does not change the knote's ONESHOT/CLEAR/DISPATCH bits")
    func modificationKeepsBehaviourFlags() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(readEnd, writeEnd) }
        // Level-triggered READ; a modification asking for ONESHOT is ignored for that bit.
        try queue.apply([.read(readEnd)])
        try queue.apply([.read(readEnd, flags: [.add, .oneShot]), .read(readEnd, flags: [.add, .dispatch])])
        try send(writeEnd, count: 1)
        for _ in 0..<2 {
            let events = try pendingEvents(queue)
            #expect(events.count == 1)
            #expect(events.first.map { $0.flags.isDisjoint(with: [.oneShot, .dispatch]) } == true, "\(events)")
        }
        #expect(changeError(queue, .read(readEnd, flags: .delete)) == nil, "the knote was made a oneshot")

        // EV_CLEAR user knote; a modification with EV_ONESHOT neither deletes it after
        // retrieval nor drops CLEAR.
        try queue.apply([.user(1, flags: [.add, .clear])])
        try queue.apply([.user(1, flags: [.add, .oneShot], note: .trigger)])
        let user = try pendingEvents(queue)
        #expect(user.count == 1)
        #expect(user.first?.flags == .clear)
        #expect(try pendingEvents(queue).isEmpty, "CLEAR was lost")
        #expect(changeError(queue, .user(1, note: .trigger)) == nil, "the knote was deleted as a oneshot")

        // A DISPATCH knote modified without DISPATCH still disables itself after delivery.
        try queue.apply([.user(2, flags: [.add, .dispatch])])
        try queue.apply([.user(2, flags: .add, note: .trigger)])
        #expect(try pendingEvents(queue).filter { $0.ident == 2 }.count == 1)
        #expect(try pendingEvents(queue).filter { $0.ident == 2 }.isEmpty, "DISPATCH was lost")
    }

    @Test("2.R: a change without EV_ADD on a missing knote is ENOENT")
    func changeOnMissingKnoteIsNotFound() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(readEnd, writeEnd) }
        #expect(changeError(queue, .user(1, note: .trigger)) == .noSuchFileOrDirectory)
        #expect(changeError(queue, .user(1, flags: .enable)) == .noSuchFileOrDirectory)
        #expect(changeError(queue, .user(1, flags: .disable)) == .noSuchFileOrDirectory)
        #expect(changeError(queue, .read(readEnd, flags: .enable)) == .noSuchFileOrDirectory)
        #expect(changeError(queue, .write(writeEnd, flags: [])) == .noSuchFileOrDirectory)
        // A READ knote does not make a WRITE knote on the same descriptor exist.
        try queue.apply([.read(readEnd)])
        #expect(changeError(queue, .write(readEnd, flags: .enable)) == .noSuchFileOrDirectory)
    }

    @Test("2.R: EV_DELETE of a missing knote is ENOENT, also after an EV_ONESHOT event fired")
    func deleteOfMissingKnoteIsNotFound() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(readEnd, writeEnd) }
        #expect(changeError(queue, .user(5, flags: .delete)) == .noSuchFileOrDirectory)
        #expect(changeError(queue, .read(readEnd, flags: .delete)) == .noSuchFileOrDirectory)
        try queue.apply([.user(5, flags: .add), .user(5, flags: .delete)])
        #expect(changeError(queue, .user(5, flags: .delete)) == .noSuchFileOrDirectory)

        try send(writeEnd, count: 1)
        try queue.apply([.read(readEnd, flags: [.add, .oneShot]), .user(6, flags: [.add, .oneShot], note: .trigger)])
        #expect(try pendingEvents(queue).count == 2)
        #expect(changeError(queue, .read(readEnd, flags: .delete)) == .noSuchFileOrDirectory)
        #expect(changeError(queue, .user(6, flags: .delete)) == .noSuchFileOrDirectory)
    }

    @Test("2.R: EV_ENABLE with EV_DISABLE is EINVAL")
    func enableWithDisableIsInvalid() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(readEnd, writeEnd) }
        #expect(changeError(queue, .user(1, flags: [.add, .enable, .disable])) == .invalidArgument)
        #expect(changeError(queue, .read(readEnd, flags: [.add, .enable, .disable])) == .invalidArgument)
        try queue.apply([.user(2, flags: .add), .read(readEnd)])
        #expect(changeError(queue, .user(2, flags: [.enable, .disable])) == .invalidArgument)
        #expect(changeError(queue, .read(readEnd, flags: [.enable, .disable])) == .invalidArgument)
    }

    @Test("2.R: EV_ADD with EV_KEEPUDATA on a new knote is EINVAL")
    func keepUdataOnNewKnoteIsInvalid() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(readEnd, writeEnd) }
        #expect(changeError(queue, .user(1, flags: [.add, .keepUserData])) == .invalidArgument)
        #expect(changeError(queue, .read(readEnd, flags: [.add, .keepUserData])) == .invalidArgument)
        #expect(changeError(queue, .user(1, note: .trigger)) == .noSuchFileOrDirectory, "nothing was created")
    }

    @Test("2.R: a descriptor filter on a closed descriptor number is EBADF")
    func closedDescriptorIsBadFileDescriptor() throws {
        let queue = try KernelQueue()
        // A reserved number nobody else allocates, so it stays closed for the whole test.
        let (readEnd, writeEnd) = try makePipe()
        closeAll(writeEnd)
        let moved = try moveToReservedNumber(readEnd)
        closeAll(moved)
        for filter in [Filter.read, .write] {
            #expect(changeError(queue, change(UInt(moved), filter)) == .badFileDescriptor)
            #expect(changeError(queue, change(UInt(moved), filter, [.add, .oneShot])) == .badFileDescriptor)
            #expect(changeError(queue, change(UInt(moved), filter, .delete)) == .badFileDescriptor)
        }
        let result = try queue.kevent([change(UInt(moved), .read)], eventCapacity: 2, timeout: .zero)
        #expect(result.errors.map(\.changeError) == [.badFileDescriptor])
    }

    @Test("2.R: EV_DISABLE stops delivery; the filter keeps recording; EV_ENABLE re-checks at once")
    func disableStopsDeliveryEnableRechecks() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(readEnd, writeEnd) }
        try queue.apply([.read(readEnd, flags: [.add, .clear]), .user(1, flags: [.add, .clear])])
        try queue.apply([.read(readEnd, flags: .disable), .user(1, flags: .disable)])
        try send(writeEnd, count: 4)
        try queue.apply([.user(1, note: UserNote.or(0x10).triggering)])
        try send(writeEnd, count: 3)
        try queue.apply([.user(1, note: UserNote.or(0x01).triggering)])
        try expectNoEvents(queue)
        // Enabling returns what was recorded meanwhile, at once (a poll).
        try queue.apply([.read(readEnd, flags: .enable), .user(1, flags: .enable)])
        let events = try pendingEvents(queue)
        #expect(events.count == 2)
        #expect(events.first { $0.filter == .read }?.data == 7)
        #expect(events.first { $0.filter == .user }?.fflags == 0x11)
    }

    @Test("2.R: a knote added disabled reports nothing until enabled")
    func addDisabledThenEnable() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(readEnd, writeEnd) }
        try send(writeEnd, count: 1)
        try queue.apply([.read(readEnd, flags: [.add, .disable]), .write(writeEnd, flags: [.add, .disable])])
        try expectNoEvents(queue)
        try queue.apply([.write(writeEnd, flags: .enable)])
        #expect(try pendingEvents(queue).map(\.filter) == [.write])
        try queue.apply([.read(readEnd, flags: .enable)])
        #expect(Set(try pendingEvents(queue).map(\.filter)) == [.read, .write])
    }

    @Test("2.R: EV_FORCEONESHOT turns an existing knote into a oneshot and fires it")
    func forceOneShotFires() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(readEnd, writeEnd) }
        // Neither source is ready: the event is forced.
        try queue.apply([.user(1, flags: [.add, .clear], udata: tag(1)), .read(readEnd, udata: tag(2))])
        try queue.apply([
            .user(1, flags: .forceOneShot, udata: tag(1)), .read(readEnd, flags: .forceOneShot, udata: tag(2)),
        ])
        let events = try pendingEvents(queue)
        #expect(events.count == 2)
        #expect(events.allSatisfy { $0.flags.contains(.oneShot) && !$0.flags.contains(.forceOneShot) }, "\(events)")
        #expect(Set(events.map(\.filter)) == [.user, .read])
        // Returned once, then deleted.
        try expectNoEvents(queue)
        #expect(changeError(queue, .user(1, flags: .delete)) == .noSuchFileOrDirectory)
        #expect(changeError(queue, .read(readEnd, flags: .delete)) == .noSuchFileOrDirectory)
    }

    @Test("2.R: EV_FORCEONESHOT on a missing knote is ENOENT")
    func forceOneShotOnMissingKnote() throws {
        let queue = try KernelQueue()
        #expect(changeError(queue, .user(1, flags: .forceOneShot)) == .noSuchFileOrDirectory)
    }
}
