import Glibc
import KQueue
import Synchronization
import SystemPackage
import Testing

/// The Swift API as a user meets it: names in descriptions, typed accessors per filter, a
/// failed change that names itself, typed user data (tokens and owned contexts).
@Suite("Swift API: names, typed accessors, change errors, user data")
struct SwiftAPITests {
    // MARK: Descriptions

    @Test("API: option sets print their Swift names, notes their C names, filters their Swift names")
    func optionSetDescriptions() {
        #expect("\(Flags([.add, .clear]))" == "[.add, .clear]")
        #expect("\(Flags())" == "[]")
        #expect("\(Flags([.error, .endOfFile, .oneShot]))" == "[.oneShot, .error, .endOfFile]")
        #expect("\(Flags(rawValue: 0x1001))" == "[.add, 0x1000]")
        #expect("\(VnodeNote([.write, .delete]))" == "NOTE_DELETE|NOTE_WRITE")
        #expect("\(VnodeNote())" == "0")
        #expect("\(VnodeNote(rawValue: 0x8002))" == "NOTE_WRITE|0x8000")
        #expect("\(ProcessNote([.exit, .fork]))" == "NOTE_EXIT|NOTE_FORK")
        #expect("\(ProcessNote([.exit, .exitStatusUnknown]))" == "NOTE_EXIT|NOTE_EXIT_UNKNOWN")
        #expect("\(TimerNote([.nanoseconds, .absoluteTime]))" == "NOTE_NSECONDS|NOTE_ABSTIME")
        #expect("\(DescriptorNote.lowWater)" == "NOTE_LOWAT")
        #expect("\(FileSystemNote([.mount, .unmount]))" == "VQ_MOUNT|VQ_UNMOUNT")
        #expect("\(UserNote.or(0x4).triggering)" == "NOTE_FFOR|NOTE_TRIGGER|0x4")
        #expect("\(UserNote.copy(0))" == "NOTE_FFCOPY")
        #expect("\(UserNote.noOperation)" == "NOTE_FFNOP")
        #expect("\(UserNote.trigger)" == "NOTE_TRIGGER")
        #expect("\(Filter.read)" == ".read")
        #expect("\(Filter.fileSystem)" == ".fileSystem")
        #expect("\(Filter(rawValue: -42))" == "Filter(-42)")
    }

    @Test("API: a KEvent prints filter, ident, flags, fflags by the filter's names, data and udata")
    func keventDescription() {
        let vnode = KEvent.vnode(FileDescriptor(rawValue: 3), note: [.delete, .write])
        #expect(
            "\(vnode)"
                == "KEvent(filter: .vnode, ident: 3, flags: [.add, .clear], fflags: NOTE_DELETE|NOTE_WRITE, data: 0, udata: nil)"
        )
        let user = KEvent.user(7, flags: .add, note: UserNote.copy(0x42).triggering, data: 5)
            .withToken(UInt(0x2a))
        #expect(
            "\(user)"
                == "KEvent(filter: .user, ident: 7, flags: [.add], fflags: NOTE_FFCOPY|NOTE_TRIGGER|0x42, data: 5, udata: 0x2a)"
        )
        let timer = KEvent.timer(1, every: .milliseconds(250))
        #expect(
            "\(timer)"
                == "KEvent(filter: .timer, ident: 1, flags: [.add], fflags: NOTE_NSECONDS, data: 250000000, udata: nil)"
        )
        let entry = KEvent(ident: 9, filter: .read, flags: .error, data: Int64(ENOENT))
        #expect(
            "\(entry)"
                == "KEvent(filter: .read, ident: 9, flags: [.error], fflags: 0, data: 2 (ENOENT), udata: nil)"
        )
        let reset = KEvent(ident: 4, filter: .read, flags: .endOfFile, fflags: UInt32(ECONNRESET))
        #expect(
            "\(reset)"
                == "KEvent(filter: .read, ident: 4, flags: [.endOfFile], fflags: 104 (ECONNRESET), data: 0, udata: nil)"
        )
        let signal = KEvent.signal(.hangup)
        #expect("\(signal)" == "KEvent(filter: .signal, ident: 1, flags: [.add], fflags: 0, data: 0, udata: nil)")
        let extended = KEvent(ident: 1, filter: .user, ext: (0, 0, 7, 0))
        #expect(
            "\(extended)"
                == "KEvent(filter: .user, ident: 1, flags: [], fflags: NOTE_FFNOP, data: 0, udata: nil, ext: (0, 0, 7, 0))"
        )
    }

    @Test("API: signals print their C names and have Linux's numbers; process ids print their number")
    func signalNames() {
        let pairs: [(Signal, Int32, String)] = [
            (.hangup, SIGHUP, "SIGHUP"), (.interrupt, SIGINT, "SIGINT"), (.quit, SIGQUIT, "SIGQUIT"),
            (.illegalInstruction, SIGILL, "SIGILL"), (.trap, SIGTRAP, "SIGTRAP"), (.abort, SIGABRT, "SIGABRT"),
            (.busError, SIGBUS, "SIGBUS"), (.floatingPointException, SIGFPE, "SIGFPE"), (.kill, SIGKILL, "SIGKILL"),
            (.user1, SIGUSR1, "SIGUSR1"), (.segmentationFault, SIGSEGV, "SIGSEGV"), (.user2, SIGUSR2, "SIGUSR2"),
            (.brokenPipe, SIGPIPE, "SIGPIPE"), (.alarm, SIGALRM, "SIGALRM"), (.terminate, SIGTERM, "SIGTERM"),
            (.child, SIGCHLD, "SIGCHLD"), (.continue, SIGCONT, "SIGCONT"), (.stop, SIGSTOP, "SIGSTOP"),
            (.terminalStop, SIGTSTP, "SIGTSTP"), (.terminalInput, SIGTTIN, "SIGTTIN"),
            (.terminalOutput, SIGTTOU, "SIGTTOU"), (.urgent, SIGURG, "SIGURG"), (.cpuLimit, SIGXCPU, "SIGXCPU"),
            (.fileSizeLimit, SIGXFSZ, "SIGXFSZ"), (.virtualAlarm, SIGVTALRM, "SIGVTALRM"),
            (.profilingAlarm, SIGPROF, "SIGPROF"), (.windowChange, SIGWINCH, "SIGWINCH"), (.io, SIGIO, "SIGIO"),
            (.power, SIGPWR, "SIGPWR"), (.badSystemCall, SIGSYS, "SIGSYS"),
        ]
        for (signal, number, name) in pairs {
            #expect(signal.rawValue == number, "\(name)")
            #expect("\(signal)" == name)
        }
        #expect("\(Signal(rawValue: __libc_current_sigrtmin() + 2))" == "SIGRTMIN+2")
        #expect("\(Signal(rawValue: 200))" == "Signal(200)")
        #expect(
            Signal(name: "HUP") == .hangup && Signal(name: "sigusr1") == .user1
                && Signal(name: "SIGWINCH") == .windowChange)
        #expect(Signal(name: "NOPE") == nil)
        #expect("\(ProcessID(rawValue: 4242))" == "4242")
        #expect(ProcessID.current.rawValue == getpid())
        #expect(ProcessExitStatus.signaled(signal: SIGKILL, coreDumped: false).terminatingSignal == .kill)
        #expect(ProcessExitStatus.exited(code: 3).exitCode == 3)
        #expect(ProcessExitStatus.exited(code: 3).terminatingSignal == nil)
    }

    // MARK: Typed accessors

    @Test("API: a returned event's typed accessors give its descriptor, notes and counts, nil for other filters")
    func typedAccessorsOnReturnedEvents() throws {
        let queue = try KernelQueue()
        let pipe = try makePipe()
        defer { closeAll(pipe.read, pipe.write) }
        let file = try makeTemporaryFile(contents: [1, 2, 3])
        defer {
            closeAll(file.fd)
            unlink(file.path)
        }
        try queue.apply([
            .read(pipe.read), .write(pipe.write), .vnode(file.fd, note: [.write, .delete]),
            .user(5, flags: [.add, .clear]), .timer(6, after: .milliseconds(1)),
        ])
        _ = try send(pipe.write, [1])
        try queue.apply([.user(5, note: UserNote.copy(0x42).triggering)])
        let writer = try FileDescriptor.open(file.path, .writeOnly, options: .closeOnExec)
        defer { closeAll(writer) }
        _ = try writer.writeAll([4, 5])
        let events = try expectEvents(
            queue,
            [
                (UInt(pipe.read.rawValue), .read), (UInt(pipe.write.rawValue), .write),
                (UInt(file.fd.rawValue), .vnode), (5, .user), (6, .timer),
            ])
        #expect(events.count == 5)
        for event in events {
            switch event.filter {
            case .read:
                #expect(event.descriptor == pipe.read)
                #expect(event.socketError == nil)
            case .write: #expect(event.descriptor == pipe.write)
            case .vnode:
                #expect(event.descriptor == file.fd)
                #expect(event.vnodeNote?.contains(.write) == true)
            case .user:
                #expect(event.userValue == 0x42)
                #expect(event.descriptor == nil)
            case .timer:
                #expect(event.timerExpirations == 1)
                #expect(event.descriptor == nil)
            default: Issue.record("unexpected \(event)")
            }
            #expect(event.processID == nil && event.signal == nil && event.fileSystemNote == nil)
            #expect(event.filter == .vnode || event.vnodeNote == nil)
        }
    }

    @Test("API: a process exit event gives its ProcessID, ProcessNote and typed status")
    func typedProcessExit() throws {
        let queue = try KernelQueue()
        var gate: [Int32] = [-1, -1]
        try sys(pipe(&gate))
        let child = ProcessID(rawValue: try spawnShell("read -r line; exit 3", input: gate[0]))
        _ = close(gate[0])
        try queue.apply([.process(child, note: .exit)])
        var byte = UInt8(ascii: "\n")  // the line the shell waits for
        _ = write(gate[1], &byte, 1)
        _ = close(gate[1])
        let event = try expectEvent(queue, ident: UInt(child.rawValue), filter: .process)
        #expect(event?.processID == child)
        #expect(event?.processNote == .exit)
        #expect(event?.processExitStatus == .exited(code: 3))
        #expect(event?.descriptor == nil)
        #expect(try reap(child.rawValue, timeout: .seconds(5)) == 3)
    }

    @Test("API: accessors of filters that need a socket, a mount or a signal, on constructed events")
    func typedAccessorsOnConstructedEvents() {
        let empty = KEvent.empty(FileDescriptor(rawValue: 8))
        #expect(empty.descriptor == FileDescriptor(rawValue: 8))
        let mount = KEvent(ident: 0, filter: .fileSystem, fflags: FileSystemNote.mount.rawValue)
        #expect(mount.fileSystemNote == .mount)
        #expect(mount.descriptor == nil)
        let signal = KEvent(ident: UInt(SIGHUP), filter: .signal, data: 2)
        #expect(signal.signal == .hangup)
        let eof = KEvent(ident: 4, filter: .write, flags: .endOfFile, fflags: UInt32(EPIPE))
        #expect(eof.socketError == .brokenPipe)
        #expect(KEvent(ident: 4, filter: .write, flags: .endOfFile).socketError == nil)
        #expect(KEvent.process(ProcessID(rawValue: 12)) == KEvent.process(pid_t(12)))
        let child = KEvent(ident: 13, filter: .process, fflags: ProcessNote.child.rawValue, data: 12)
        #expect(child.parentProcessID == ProcessID(rawValue: 12) && child.processID == ProcessID(rawValue: 13))
        #expect(KEvent(ident: 13, filter: .process, fflags: ProcessNote.exit.rawValue).parentProcessID == nil)
        #expect(KEvent.signal(Signal.hangup) == KEvent.signal(SIGHUP))
    }

    // MARK: Change errors

    @Test("API: a failed apply() names the change (filter, ident, flags, index) and its errno")
    func changeErrorNamesTheChange() throws {
        let queue = try KernelQueue()
        let changes: [KEvent] = [
            .user(1, flags: .add), .user(99, flags: [.enable, .dispatch]), .user(2, flags: .add),
        ]
        do {
            try queue.apply(changes)
            Issue.record("apply succeeded")
        } catch {
            #expect(error.change == changes[1])
            #expect(error.index == 1)
            #expect(error.errno == .noSuchFileOrDirectory)
            #expect(
                "\(error)"
                    == "change 1 (.user ident 99, flags [.enable, .dispatch], fflags NOTE_FFNOP, data 0) failed: ENOENT "
                    + "(No such file or directory)")
        }
        // The errno still matches as an Errno in a catch clause.
        var matched = false
        do {
            try queue.apply([.user(98, note: .trigger)])
        } catch Errno.noSuchFileOrDirectory {
            matched = true
        } catch {
            Issue.record("unexpected \(error)")
        }
        #expect(matched)
        // Where error types meet (any Error), the struct is matched by type.
        do {
            try queue.apply([.user(97, note: .trigger)])
            _ = try queue.events(timeout: .zero)
        } catch let error as KQueueChangeError where error.errno == .noSuchFileOrDirectory {
            #expect(error.change.ident == 97)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test("API: kevent() lists each failed change with its own flags, even where the entry has EV_ERROR alone")
    func keventResultNamesFailures() throws {
        let queue = try KernelQueue()
        try queue.apply([.user(1, flags: .add)])
        // Two changes on ident 2 differ only in flags: the second fails.
        let changes: [KEvent] = [
            .user(2, flags: .add), .user(1, flags: .disable), .user(3, flags: .delete), .user(2, flags: .delete),
            .user(2, flags: .enable),
        ]
        let result = try queue.kevent(changes, eventCapacity: 4, timeout: .zero)
        #expect(result.errors.map(\.flags) == [.error, .error])
        #expect(result.failures.map(\.index) == [2, 4])
        #expect(result.failures.map(\.change) == [changes[2], changes[4]])
        #expect(result.failures.map(\.errno) == [.noSuchFileOrDirectory, .noSuchFileOrDirectory])
        // Receipts are entries, not failures.
        let receipt = try queue.kevent([.user(8, flags: [.add, .receipt])], eventCapacity: 1, timeout: .zero)
        #expect(receipt.errors.count == 1 && receipt.failures.isEmpty)
    }

    @Test("API: kevent() still throws Errno for errors of the call itself")
    func callErrorsStayErrno() throws {
        let queue = try KernelQueue()
        #expect(throws: Errno.invalidArgument) { _ = try queue.events(timeout: .seconds(-1)) }
        queue.close()
        expectChangeFailure(.badFileDescriptor) { try queue.apply([.user(1, flags: .add)]) }
        #expect(throws: Errno.badFileDescriptor) { _ = try queue.events(timeout: .zero) }
    }

    // MARK: Tokens

    enum Source: UInt8, KEventToken {
        case input = 1
        case tick = 2
    }

    struct Big: RawRepresentable, KEventToken, Equatable {
        var rawValue: Int32
    }

    @Test("API: a token travels in udata by value and comes back as its type")
    func tokenRoundTrip() throws {
        let queue = try KernelQueue()
        let pipe = try makePipe()
        defer { closeAll(pipe.read, pipe.write) }
        try queue.apply([
            .read(pipe.read).withToken(Source.input), .user(1, flags: [.add, .clear]).withToken(Big(rawValue: -5)),
            .user(2, flags: [.add, .clear]).withToken(pipe.write),
        ])
        _ = try send(pipe.write, [1])
        // Every change to a knote replaces its udata (FreeBSD), unless it keeps it.
        try queue.apply([
            .user(1, flags: .keepUserData, note: .trigger), .user(2, note: .trigger).withToken(pipe.write),
        ])
        let events = try expectEvents(queue, [(UInt(pipe.read.rawValue), .read), (1, .user), (2, .user)])
        let read = events.first { $0.filter == .read }
        let first = events.first { $0.filter == .user && $0.ident == 1 }
        let second = events.first { $0.filter == .user && $0.ident == 2 }
        #expect(read?.token(as: Source.self) == .input)
        #expect(first?.token(as: Big.self) == Big(rawValue: -5))
        #expect(first?.token(as: Source.self) == nil, "not a UInt8")
        #expect(second?.token(as: FileDescriptor.self) == pipe.write)
        #expect(KEvent.user(1).withToken(-1).token(as: Int.self) == -1)
        #expect(KEvent.user(1).withToken(Int32(-7)).token(as: Int32.self) == -7)
        #expect(KEvent.user(1).withToken(UInt64.max).token(as: UInt64.self) == .max)
        #expect(KEvent.user(1).withToken(Signal.hangup).token(as: Signal.self) == .hangup)
        #expect(KEvent.user(1).token(as: Source.self) == nil, "udata nil is 0, no Source")
    }

    // MARK: Contexts

    /// Counts live instances, to see that the table releases what it held.
    final class Connection: Sendable {
        static let live = Atomic<Int>(0)
        let name: String
        init(_ name: String) {
            self.name = name
            Connection.live.add(1, ordering: .relaxed)
        }
        deinit { Connection.live.subtract(1, ordering: .relaxed) }
    }
}

/// ContextQueue's ownership rules. Serialized: the suite counts live `Connection`s.
@Suite("Swift API: ContextQueue owns what it holds", .serialized)
struct ContextQueueTests {
    typealias Connection = SwiftAPITests.Connection

    var live: Int { Connection.live.load(ordering: .relaxed) }

    @Test("API: a context comes back with its event, and is released on delete")
    func roundTripAndDelete() throws {
        let before = live
        let contexts = try ContextQueue<Connection>()
        let pipe = try makePipe()
        defer { closeAll(pipe.read, pipe.write) }
        try contexts.register(.read(pipe.read), context: Connection("input"))
        try contexts.register(.user(1, flags: [.add, .clear]), context: Connection("wake"))
        #expect(contexts.contextCount == 2 && live == before + 2)
        _ = try send(pipe.write, [1])
        try contexts.apply([.user(1, note: .trigger)])
        var events = try contexts.events(maxEvents: 4, timeout: .seconds(5))
        #expect(Set(events.compactMap { $0.context?.name }) == ["input", "wake"])
        #expect(events.first.map { contexts.context(for: $0.event)?.name != nil } == true)
        events.removeAll()
        // A modification keeps the context (its udata is the table's token).
        try contexts.apply([.read(pipe.read, flags: [.add, .dispatch])])
        #expect(contexts.events(timeoutOrEmpty: .seconds(5)).first?.context?.name == "input")
        try contexts.apply([.read(pipe.read, flags: .delete), .user(1, flags: .delete)])
        #expect(contexts.contextCount == 0 && live == before)
    }

    @Test("API: a oneshot event hands over its context; the table keeps none")
    func oneShotReleases() throws {
        let before = live
        let contexts = try ContextQueue<Connection>()
        try contexts.register(.timer(1, after: .milliseconds(1)), context: Connection("once"))
        var events = try contexts.events(maxEvents: 4, timeout: .seconds(5))
        #expect(events.first?.context?.name == "once")
        #expect(events.first?.event.flags.contains(.oneShot) == true)
        #expect(contexts.contextCount == 0 && live == before + 1, "the returned event holds the last reference")
        events.removeAll()
        #expect(live == before)
    }

    @Test("API: replacing, a failed registration, close(fd) and close() release contexts")
    func otherReleases() throws {
        let before = live
        do {
            let contexts = try ContextQueue<Connection>()
            let pipe = try makePipe()
            defer { closeAll(pipe.write) }
            try contexts.register(.read(pipe.read), context: Connection("first"))
            try contexts.register(.read(pipe.read), context: Connection("second"))
            #expect(contexts.contextCount == 1 && live == before + 1)
            // A registration that fails keeps nothing.
            #expect(throws: KQueueChangeError.self) {
                try contexts.register(.signal(Signal(rawValue: 0)), context: Connection("never"))
            }
            #expect(throws: KQueueChangeError.self) {
                try contexts.register(
                    .read(FileDescriptor(rawValue: reservedDescriptorNumber())), context: Connection("bad"))
            }
            #expect(contexts.contextCount == 1 && live == before + 1)
            // Closing the descriptor through the queue releases its contexts.
            try contexts.close(pipe.read)
            #expect(contexts.contextCount == 0 && live == before)
            // A delete of a knote already gone (ENOENT) releases too.
            try contexts.register(.user(3, flags: .add), context: Connection("gone"))
            try contexts.queue.apply([.user(3, flags: .delete)])
            #expect(live == before + 1)
            expectChangeFailure(.noSuchFileOrDirectory) { try contexts.apply([.user(3, flags: .delete)]) }
            #expect(live == before)
            // close() releases what is left.
            try contexts.register(.user(4, flags: .add), context: Connection("left"))
            contexts.close()
            #expect(contexts.contextCount == 0 && live == before)
            // So does the queue's end.
            let other = try ContextQueue<Connection>()
            try other.register(.user(5, flags: .add), context: Connection("end"))
            #expect(live == before + 1)
        }
        #expect(live == before)
    }

    @Test("API: an event whose registration was replaced since finds no context (stale token)")
    func staleTokenFindsNothing() throws {
        let contexts = try ContextQueue<Connection>()
        try contexts.register(.user(1, flags: [.add, .clear]), context: Connection("old"))
        try contexts.apply([.user(1, note: .trigger)])
        let stale = try #require(contexts.events(maxEvents: 1, timeout: .seconds(5)).first?.event)
        try contexts.register(.user(1, flags: [.add, .clear]), context: Connection("new"))
        #expect(contexts.context(for: stale) == nil)
        try contexts.apply([.user(1, note: .trigger)])
        let fresh = try #require(contexts.events(maxEvents: 1, timeout: .seconds(5)).first)
        #expect(fresh.context?.name == "new")
    }
}

extension ContextQueueTests {
    @Test("API: contexts stay consistent while one thread registers, triggers and deletes and another collects")
    func concurrentRegistrationAndCollection() throws {
        let before = live
        do {
            let contexts = try ContextQueue<Connection>()
            let stop = Shared(false)
            let collected = Shared(0)
            let collector = try TestThread {
                while !stop.value {
                    let events = (try? contexts.events(maxEvents: 16, timeout: .milliseconds(5))) ?? []
                    collected.update { $0 += events.filter { $0.context != nil }.count }
                }
            }
            for i in 0..<2000 {
                let ident = UInt(i % 8)
                try contexts.register(.user(ident, flags: [.add, .oneShot]), context: Connection("c\(i)"))
                // ENOENT when the collector just took this ident's earlier activation: that
                // oneshot delivery ended the knote (and released the new context with it).
                try? contexts.apply([.user(ident, note: .trigger)])
                if i % 3 == 0 { try? contexts.apply([.user(ident, flags: .delete)]) }
            }
            stop.update { $0 = true }
            #expect(collector.join(timeout: .seconds(10)), "the collector ended")
            _ = try contexts.events(maxEvents: 64, timeout: .zero)
            #expect(collected.value > 0)
            // What is left: registrations whose oneshot was replaced before it fired.
            #expect(contexts.contextCount <= 8)
            contexts.close()
            #expect(contexts.contextCount == 0)
        }
        #expect(live == before, "every context was released")
    }
}

extension ContextQueue {
    /// The next events, or none on error (for `#expect`).
    fileprivate func events(timeoutOrEmpty timeout: Duration) -> [ContextEvent<Context>] {
        (try? events(maxEvents: 4, timeout: timeout)) ?? []
    }
}

/// Signals are process-wide: SIGUSR2 is used by this suite alone.
@Suite("Swift API: signals by name", .serialized)
struct SignalByNameTests {
    @Test("API: an ignored signal is still counted; the event gives its Signal")
    func ignoredSignalIsCounted() throws {
        let queue = try KernelQueue()
        try Signal.user2.ignore()
        defer { try? Signal.user2.restoreDefaultAction() }
        try queue.apply([.signal(.user2)])
        try ProcessID.current.send(.user2)
        let event = try expectEvent(queue, ident: UInt(SIGUSR2), filter: .signal)
        #expect(event?.signal == .user2)
        #expect(event?.data ?? 0 >= 1)
        try queue.apply([.signal(.user2, flags: .delete)])
    }
}
