import CKQueueShim
import Glibc
@_spi(CABI) import KQueue
import Testing

/// SPEC.md section 2, "Descriptor lifetime". Descriptor numbers that a test closes and
/// reuses are taken from a reserved range (`moveToReservedNumber`), so tests running in
/// parallel never race for them.
@Suite("SPEC 2: descriptor lifetime")
struct DescriptorLifetimeTests {
    /// Makes `number` name the read end of a new pipe; returns the pipe's write end.
    private func reuse(_ number: FileDescriptor) throws -> FileDescriptor {
        let (readEnd, writeEnd) = try makePipe()
        try sys(dup2(readEnd.rawValue, number.rawValue))
        closeAll(readEnd)
        return writeEnd
    }

    @Test("2.DL: close(fd) removes every knote on that number in every kqueue")
    func closeRemovesKnotesInEveryQueue() throws {
        let first = try KernelQueue()
        let second = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        let number = try moveToReservedNumber(readEnd)
        try first.apply([.read(number), .write(writeEnd)])
        try second.apply([.read(number, flags: [.add, .clear])])
        try send(writeEnd, count: 5)
        closeAll(number)
        // The number is not open now: every change on it is EBADF, and no event comes.
        #expect(changeError(first, .read(number, flags: .delete)) == .badFileDescriptor)
        try expectNoEvent(first, ident: UInt(number), filter: .read)
        try expectNoEvents(second)
        // A new file with the same number: no knote is left on it.
        let newWriter = try reuse(number)
        defer { closeAll(number, newWriter, writeEnd) }
        #expect(changeError(first, .read(number, flags: .delete)) == .noSuchFileOrDirectory)
        #expect(changeError(second, .read(number, flags: .delete)) == .noSuchFileOrDirectory)
        try send(newWriter, count: 1)
        try expectNoEvent(first, ident: UInt(number), filter: .read)
        try expectNoEvents(second)
        // The other descriptor's knote in the first kqueue is untouched.
        #expect(changeError(first, .write(writeEnd, flags: .delete)) == nil)
    }

    @Test("2.DL: a reused number starts clean: a pending event of the old file is never returned")
    func reusedNumberStartsClean() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        let number = try moveToReservedNumber(readEnd)
        try queue.apply([.read(number, udata: tag(1))])
        try send(writeEnd, count: 9)  // readiness pending, not collected
        closeAll(number, writeEnd)
        let newWriter = try reuse(number)
        defer { closeAll(number, newWriter) }
        try queue.apply([.read(number, udata: tag(2))])
        try expectNoEvents(queue, "the new pipe is empty")
        try send(newWriter, count: 2)
        let event = try expectEvent(queue, ident: UInt(number), filter: .read)
        #expect(event?.data == 2)
        #expect(event?.udata == tag(2))
    }

    @Test("2.DL: closing one of several dup'd descriptors leaves no stale event for the reused number")
    func dupKeepsOpenFileButNoStaleEvents() throws {
        let queue = try KernelQueue()
        let (readEnd, oldWriter) = try makePipe()
        let number = try moveToReservedNumber(readEnd)
        let keep = descriptor(try sys(dup(number.rawValue)))  // keeps the old open file alive
        defer { closeAll(keep, oldWriter) }
        try queue.apply([.read(number)])
        try send(oldWriter, count: 3)
        closeAll(number)
        let newWriter = try reuse(number)
        defer { closeAll(number, newWriter) }
        try expectNoEvents(queue, "the knote went with close()")
        try queue.apply([.read(number)])
        try expectNoEvents(queue, "the old file is readable, the new one is not")
        try send(oldWriter, count: 1)
        try expectNoEvents(queue, "more data on the old file")
        try send(newWriter, count: 2)
        let event = try expectEvent(queue, ident: UInt(number), filter: .read)
        #expect(event?.data == 2)
        // The old file, through its other descriptor, was never watched.
        try expectNoEvent(queue, ident: UInt(keep), filter: .read)
    }

    @Test("2.DL: a regular file's queued event does not survive close and reuse of its number")
    func regularFileEventDoesNotSurviveReuse() throws {
        let queue = try KernelQueue()
        let (path, file) = try makeTemporaryFile(contents: [UInt8](repeating: 1, count: 50))
        defer { unlink(path) }
        let number = try moveToReservedNumber(file)
        try queue.apply([.read(number)])  // ready at once: data 50
        closeAll(number)
        let newWriter = try reuse(number)
        defer { closeAll(number, newWriter) }
        try expectNoEvents(queue)
        try queue.apply([.read(number)])
        try expectNoEvents(queue, "the number is an empty pipe now")
        try send(newWriter, count: 4)
        #expect(try expectEvent(queue, ident: UInt(number), filter: .read)?.data == 4)
    }

    @Test("2.DL: a reused number is a new kind of file: a pipe number reused by a regular file")
    func reusedNumberIsClassifiedAnew() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        let number = try moveToReservedNumber(readEnd)
        try queue.apply([.read(number)])
        closeAll(number, writeEnd)
        let (path, file) = try makeTemporaryFile(contents: [UInt8](repeating: 1, count: 30))
        defer { unlink(path) }
        try sys(dup2(file.rawValue, number.rawValue))
        closeAll(file)
        defer { closeAll(number) }
        try queue.apply([.read(number)])
        #expect(try expectEvent(queue, ident: UInt(number), filter: .read)?.data == 30)
    }

    @Test("2.DL: dup2 onto a watched number closes it: its knotes are removed")
    func dup2OntoWatchedNumberRemovesKnotes() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        let number = try moveToReservedNumber(readEnd)
        defer { closeAll(writeEnd) }
        try queue.apply([.read(number)])
        try send(writeEnd, count: 1)
        let newWriter = try reuse(number)  // dup2 over the watched number
        defer { closeAll(number, newWriter) }
        try expectNoEvents(queue)
        #expect(changeError(queue, .read(number, flags: .delete)) == .noSuchFileOrDirectory)
    }

    @Test("2.DL: a kqueue descriptor is readable for poll(2) and epoll while events are pending")
    func kqueueDescriptorIsPollable() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(readEnd, writeEnd) }
        let kq = queue.descriptor.rawValue
        /// What the kqueue's own epoll instance has ready (evaluated only when an expectation
        /// fails: peeking consumes edge-triggered reports).
        func innerReady() -> String {
            var inner = [epoll_event](repeating: epoll_event(), count: 8)
            let n = epoll_wait(kq, &inner, 8, 0)
            return inner.prefix(max(0, Int(n))).map { "tag 0x\(String($0.data.u64, radix: 16))" }.joined(
                separator: ", ")
        }
        func readable(_ milliseconds: Int32) -> Bool { isReadable(kq, within: milliseconds) }
        try queue.apply([.user(1, flags: [.add, .clear]), .read(readEnd, flags: [.add, .clear])])
        #expect(!readable(0), "nothing pending yet")
        try queue.apply([.user(1, note: .trigger)])
        #expect(readable(2_000), "a user event is pending")
        #expect(try pendingEvents(queue).count == 1)
        #expect(!readable(20), "nothing pending after the event was collected; ready inside: \(innerReady())")
        try send(writeEnd, count: 1)
        #expect(readable(2_000), "a pipe became readable")

        let epoll = try sys(epoll_create1(Int32(EPOLL_CLOEXEC)))
        defer { _ = Glibc.close(epoll) }
        var interest = epoll_event()
        interest.events = UInt32(EPOLLIN.rawValue)
        try sys(epoll_ctl(epoll, EPOLL_CTL_ADD, kq, &interest))
        func wait(_ milliseconds: Int32) -> Int32 { epollWaitForOne(epoll, within: milliseconds) }
        #expect(wait(2_000) == 1)
        #expect(try pendingEvents(queue).count == 1)
        #expect(wait(20) == 0, "nothing pending; ready inside: \(innerReady())")
    }

    @Test("2.DL: a kqueue holding only user events is readable while one is pending, and not after")
    func userOnlyKqueueReadability() throws {
        let queue = try KernelQueue()
        let kq = queue.descriptor.rawValue
        func readable(_ milliseconds: Int32) -> Bool { isReadable(kq, within: milliseconds) }
        try queue.apply([.user(1, flags: [.add, .clear])])
        #expect(!readable(0), "nothing pending yet")
        for round in 0..<2 {
            try queue.apply([.user(1, note: .trigger)])
            #expect(readable(2_000), "round \(round): a user event is pending")
            #expect(try pendingEvents(queue).count == 1)
            #expect(!readable(20), "round \(round): readable with nothing pending")
            #expect(try pendingEvents(queue).isEmpty)
        }
        // The same through epoll.
        let epoll = try sys(epoll_create1(Int32(EPOLL_CLOEXEC)))
        defer { _ = Glibc.close(epoll) }
        var interest = epoll_event()
        interest.events = UInt32(EPOLLIN.rawValue)
        try sys(epoll_ctl(epoll, EPOLL_CTL_ADD, kq, &interest))
        func wait(_ milliseconds: Int32) -> Int32 { epollWaitForOne(epoll, within: milliseconds) }
        #expect(wait(0) == 0, "nothing pending")
        try queue.apply([.user(1, note: .trigger)])
        #expect(wait(2_000) == 1)
        #expect(try pendingEvents(queue).count == 1)
        #expect(wait(20) == 0, "epoll sees the kqueue readable with nothing pending")
    }

    @Test("2.DL: another kqueue's EVFILT_READ sees a kqueue readable with data = events pending")
    func kqueueWatchableByAnotherKqueue() throws {
        let outer = try KernelQueue()
        let inner = try KernelQueue()
        try inner.apply([.user(1, flags: [.add, .clear]), .user(2, flags: [.add, .clear])])
        try outer.apply([.read(inner.descriptor, flags: [.add, .clear], udata: tag(7))])
        try expectNoEvents(outer)
        try inner.apply([.user(1, note: .trigger), .user(2, note: .trigger)])
        let event = try expectEvent(outer, ident: UInt(inner.descriptor), filter: .read)
        #expect(event?.data == 2)
        #expect(event?.udata == tag(7))
        _ = try pendingEvents(inner)
        try expectNoEvents(outer)
        try inner.apply([.user(2, note: .trigger)])
        #expect(try expectEvent(outer, ident: UInt(inner.descriptor), filter: .read)?.data == 1)
    }

    @Test("2.DL: a kqueue watching an idle kqueue sleeps through its wait (the idle one is not readable)")
    func watchingIdleKqueueDoesNotSpin() throws {
        let outer = try KernelQueue()
        let inner = try KernelQueue()
        // The inner kqueue had an event, which was collected: nothing is pending in it now.
        try inner.apply([.user(1, flags: [.add, .clear], note: .trigger)])
        #expect(try pendingEvents(inner).count == 1)
        try outer.apply([.read(inner.descriptor)])
        func threadCPU() -> Duration {
            var now = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
            return .seconds(now.tv_sec) + .nanoseconds(now.tv_nsec)
        }
        let wait = Duration.milliseconds(200)
        let before = threadCPU()
        let events = try outer.events(timeout: wait)
        let used = threadCPU() - before
        #expect(events.isEmpty)
        #expect(used < wait / 4, "the wait burned \(used) of CPU in \(wait): the idle kqueue kept waking it")
    }

    @Test("2.DL: registering a kqueue in itself is EINVAL")
    func selfRegistrationIsInvalid() throws {
        let queue = try KernelQueue()
        #expect(changeError(queue, .read(queue.descriptor)) == .invalidArgument)
        #expect(changeError(queue, .read(queue.descriptor, flags: .delete)) == .noSuchFileOrDirectory)
        // The kqueue still works.
        try queue.apply([.user(1, flags: .add, note: .trigger)])
        #expect(try pendingEvents(queue).map(\.ident) == [1])
    }

    @Test("2.DL: close(2) on a kqueue descriptor closes the kqueue: later calls throw EBADF")
    func closingKqueueDescriptorClosesQueue() throws {
        let queue = try KernelQueue()
        try queue.apply([.user(1, flags: .add, note: .trigger)])
        let number = queue.descriptor.rawValue
        try sys(Glibc.close(number))
        expectChangeFailure(.badFileDescriptor) { try queue.apply([.user(2, flags: .add)]) }
        #expect(throws: Errno.badFileDescriptor) { _ = try queue.events(timeout: .zero) }
        var zero = timespec(tv_sec: 0, tv_nsec: 0)
        errno = 0
        if CABI.kevent(number, nil, 0, nil, 0, &zero) == -1 { #expect(errno == EBADF) }
    }
}

/// SPEC.md 2: a kqueue is not inherited by a fork child. Forks, so the suite is serialized;
/// the child only makes plain system calls and `_exit`s.
@Suite("SPEC 2: descriptor lifetime (fork)", .serialized)
struct DescriptorLifetimeForkTests {
    @Test("2.DL: a kqueue descriptor is closed in a fork child (EBADF)")
    func forkChildSeesBadDescriptor() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(readEnd, writeEnd) }
        try queue.apply([.user(1, flags: [.add, .clear]), .read(readEnd)])
        let kq = queue.descriptor.rawValue
        let status = try runInForkedChild {
            if kq_shim_fcntl(kq, F_GETFD) != -1 { return 1 }  // still open in the child
            if errno != EBADF { return 2 }
            var zero = timespec(tv_sec: 0, tv_nsec: 0)
            if CABI.kevent(kq, nil, 0, nil, 0, &zero) != -1 { return 3 }
            if errno != EBADF { return 4 }
            return 0
        }
        #expect(status == 0, "child exit status \(String(describing: status)): 1 = still open, 3 = kevent worked")
        // The parent's kqueue is untouched.
        try queue.apply([.user(1, note: .trigger)])
        try send(writeEnd, count: 1)
        #expect(Set(try expectEvents(queue, [(1, .user), (UInt(readEnd), .read)]).map(\.filter)) == [.user, .read])
    }
}

// EINTR is no answer in the two helpers below: on io_uring, the ring's task work for a poll
// this thread armed can interrupt its poll and epoll_wait (docs/GUARANTEES.md, the io_uring
// backend's limits).

/// poll(2) says `fd` is readable within `milliseconds`.
private func isReadable(_ fd: Int32, within milliseconds: Int32) -> Bool {
    var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    while true {
        let n = poll(&poller, 1, milliseconds)
        if n >= 0 || errno != EINTR { return n == 1 && poller.revents & Int16(POLLIN) != 0 }
    }
}

/// epoll_wait(2) for at most one report from `epoll` within `milliseconds`: its count.
private func epollWaitForOne(_ epoll: Int32, within milliseconds: Int32) -> Int32 {
    var ready = epoll_event()
    while true {
        let n = epoll_wait(epoll, &ready, 1, milliseconds)
        if n >= 0 || errno != EINTR { return n }
    }
}
