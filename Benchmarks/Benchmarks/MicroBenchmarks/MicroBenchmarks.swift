// Micro-benchmarks of single kevent() operations, each with its allocation count:
// empty wait, user trigger and receive, changelists of 1 and 64 changes, timer add and
// delete, and a read event with data. Through the Swift API (buffer-based call) and, where
// a C program would feel the difference, through the C ABI.
//
// Gates (Thresholds/MicroBenchmarks.*.p90.json): zero mallocs, exactly; and wall clock at
// p50 within 2x of the stored figure, so that a gross regression fails
// `swift package benchmark thresholds check` while the noise of a shared machine does not.
import Benchmark
import CKQueue
import Glibc
import KQueue

/// State made in a benchmark's setup and released in its teardown.
final class Fixture: @unchecked Sendable {
    var queue: KernelQueue?
    var kq: Int32 = -1
    var pair: [Int32] = [-1, -1]
    let events = UnsafeMutableBufferPointer<KEvent>.allocate(capacity: 64)
    let cEvents = UnsafeMutablePointer<kevent>.allocate(capacity: 64)
    let changes = UnsafeMutableBufferPointer<KEvent>.allocate(capacity: 64)

    func makeQueue() throws {
        queue = try KernelQueue()
    }

    func makeCQueue() {
        kq = kqueue()
        precondition(kq >= 0, "kqueue() failed")
    }

    /// A Swift-API kqueue with EVFILT_USER ident 1, EV_CLEAR, and `changes[0]` its trigger.
    func makeUserQueue() throws {
        try makeQueue()
        try queue!.apply([.user(1, flags: [.add, .clear])])
        changes[0] = .user(1, note: .trigger)
    }

    /// The same through the C ABI.
    func makeCUserQueue() {
        makeCQueue()
        var add = Self.cUser(flags: UInt16(EV_ADD | EV_CLEAR), fflags: 0)
        precondition(kevent(kq, &add, 1, nil, 0, nil) == 0)
    }

    /// A C change on EVFILT_USER ident 1.
    static func cUser(flags: UInt16, fflags: UInt32) -> kevent {
        kevent(
            ident: 1, filter: Int16(EVFILT_USER), flags: flags, fflags: fflags, data: 0, udata: nil, ext: (0, 0, 0, 0))
    }

    func tearDown() {
        queue?.close()
        queue = nil
        if kq >= 0 { Glibc.close(kq) }
        kq = -1
        for fd in pair where fd >= 0 { Glibc.close(fd) }
        pair = [-1, -1]
    }
}

nonisolated(unsafe) let noChanges = UnsafeBufferPointer<KEvent>(start: nil, count: 0)
nonisolated(unsafe) let noEvents = UnsafeMutableBufferPointer<KEvent>(start: nil, count: 0)

let benchmarks: @Sendable () -> Void = {
    let exactZero = BenchmarkThresholds(relative: BenchmarkThresholds.Relative.none, absolute: [.p90: 0])
    let twice = BenchmarkThresholds(relative: [.p50: 100.0], absolute: [:])
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal],
        timeUnits: .nanoseconds,
        warmupIterations: 1_000,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 10_000,
        thresholds: [.mallocCountTotal: exactZero, .wallClock: twice]
    )

    // An empty kqueue polled with a zero timeout: the fixed cost of one call.
    let emptySwift = Fixture()
    Benchmark(
        "EmptyWait.SwiftAPI",
        closure: { benchmark in
            let queue = emptySwift.queue!
            for _ in benchmark.scaledIterations {
                blackHole(try? queue.kevent(changes: noChanges, events: emptySwift.events, timeout: .zero))
            }
        }, setup: { try emptySwift.makeQueue() }, teardown: { emptySwift.tearDown() })

    let emptyC = Fixture()
    Benchmark(
        "EmptyWait.CABI",
        closure: { benchmark in
            var zero = timespec(tv_sec: 0, tv_nsec: 0)
            for _ in benchmark.scaledIterations {
                blackHole(kevent(emptyC.kq, nil, 0, emptyC.cEvents, 64, &zero))
            }
        }, setup: { emptyC.makeCQueue() }, teardown: { emptyC.tearDown() })

    // NOTE_TRIGGER on an EV_CLEAR user event, then the wait that returns it, same thread.
    let userSwift = Fixture()
    Benchmark(
        "UserTriggerReceive.SwiftAPI",
        closure: { benchmark in
            let queue = userSwift.queue!
            let trigger = UnsafeBufferPointer(rebasing: userSwift.changes[0..<1])
            for _ in benchmark.scaledIterations {
                _ = try? queue.kevent(changes: trigger, events: noEvents, timeout: .zero)
                let n = (try? queue.kevent(changes: noChanges, events: userSwift.events, timeout: .zero)) ?? 0
                precondition(n == 1)
            }
        },
        setup: { try userSwift.makeUserQueue() }, teardown: { userSwift.tearDown() })

    let userC = Fixture()
    Benchmark(
        "UserTriggerReceive.CABI",
        closure: { benchmark in
            var zero = timespec(tv_sec: 0, tv_nsec: 0)
            var trigger = Fixture.cUser(flags: 0, fflags: UInt32(NOTE_TRIGGER))
            for _ in benchmark.scaledIterations {
                _ = kevent(userC.kq, &trigger, 1, nil, 0, nil)
                let n = kevent(userC.kq, nil, 0, userC.cEvents, 64, &zero)
                precondition(n == 1)
            }
        },
        setup: { userC.makeCUserQueue() }, teardown: { userC.tearDown() })

    // The same in one call (changelist with the trigger, eventlist for the event), as
    // `kevent(kq, &trigger, 1, &event, 1, &zero)`: the call returns the knote it triggered
    // without writing the wakeup eventfd, so it costs one system call, not two.
    let userOneCallSwift = Fixture()
    Benchmark(
        "UserTriggerReceiveOneCall.SwiftAPI",
        closure: { benchmark in
            let queue = userOneCallSwift.queue!
            let trigger = UnsafeBufferPointer(rebasing: userOneCallSwift.changes[0..<1])
            for _ in benchmark.scaledIterations {
                let n = (try? queue.kevent(changes: trigger, events: userOneCallSwift.events, timeout: .zero)) ?? 0
                precondition(n == 1)
            }
        },
        setup: { try userOneCallSwift.makeUserQueue() }, teardown: { userOneCallSwift.tearDown() })

    let userOneCallC = Fixture()
    Benchmark(
        "UserTriggerReceiveOneCall.CABI",
        closure: { benchmark in
            var zero = timespec(tv_sec: 0, tv_nsec: 0)
            var trigger = Fixture.cUser(flags: 0, fflags: UInt32(NOTE_TRIGGER))
            for _ in benchmark.scaledIterations {
                let n = kevent(userOneCallC.kq, &trigger, 1, userOneCallC.cEvents, 64, &zero)
                precondition(n == 1)
            }
        },
        setup: { userOneCallC.makeCUserQueue() }, teardown: { userOneCallC.tearDown() })

    // Changelists of 1 and 64 modifications (EV_DISABLE / EV_ENABLE of user events), no wait.
    for size in [1, 64] {
        let fixture = Fixture()
        Benchmark(
            "Changelist\(size).SwiftAPI",
            closure: { benchmark in
                let queue = fixture.queue!
                let list = UnsafeBufferPointer(rebasing: fixture.changes[0..<size])
                for iteration in benchmark.scaledIterations {
                    let flags: Flags = iteration & 1 == 0 ? .disable : .enable
                    for i in 0..<size { fixture.changes[i] = .user(UInt(i), flags: flags) }
                    blackHole(try? queue.kevent(changes: list, events: noEvents, timeout: .zero))
                }
            },
            setup: {
                try fixture.makeQueue()
                try fixture.queue!.apply((0..<size).map { .user(UInt($0), flags: .add) })
            }, teardown: { fixture.tearDown() })
    }

    // EV_ADD then EV_DELETE of one periodic timer, as one changelist each.
    let timer = Fixture()
    Benchmark(
        "TimerAddDelete.SwiftAPI",
        closure: { benchmark in
            let queue = timer.queue!
            let add = UnsafeBufferPointer(rebasing: timer.changes[0..<1])
            let delete = UnsafeBufferPointer(rebasing: timer.changes[1..<2])
            for _ in benchmark.scaledIterations {
                blackHole(try? queue.kevent(changes: add, events: noEvents, timeout: .zero))
                blackHole(try? queue.kevent(changes: delete, events: noEvents, timeout: .zero))
            }
        },
        setup: {
            try timer.makeQueue()
            timer.changes[0] = KEvent(ident: 7, filter: .timer, flags: .add, data: 60_000)
            timer.changes[1] = KEvent(ident: 7, filter: .timer, flags: .delete)
            // Keep one other timer so the timerfd stays and the heap is not empty.
            try timer.queue!.apply([KEvent(ident: 1, filter: .timer, flags: .add, data: 120_000)])
        }, teardown: { timer.tearDown() })

    // A level-triggered READ with one byte pending: every wait returns it with data 1.
    let readSwift = Fixture()
    Benchmark(
        "ReadEventWithData.SwiftAPI",
        closure: { benchmark in
            let queue = readSwift.queue!
            for _ in benchmark.scaledIterations {
                let n = (try? queue.kevent(changes: noChanges, events: readSwift.events, timeout: .zero)) ?? 0
                precondition(n == 1 && readSwift.events[0].data == 1)
            }
        },
        setup: {
            try readSwift.makeQueue()
            socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &readSwift.pair)
            var byte: UInt8 = 1
            _ = write(readSwift.pair[1], &byte, 1)
            try readSwift.queue!.apply([.read(FileDescriptor(rawValue: readSwift.pair[0]))])
        }, teardown: { readSwift.tearDown() })

    let readC = Fixture()
    Benchmark(
        "ReadEventWithData.CABI",
        closure: { benchmark in
            var zero = timespec(tv_sec: 0, tv_nsec: 0)
            for _ in benchmark.scaledIterations {
                let n = kevent(readC.kq, nil, 0, readC.cEvents, 64, &zero)
                precondition(n == 1 && readC.cEvents[0].data == 1)
            }
        },
        setup: {
            readC.makeCQueue()
            socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &readC.pair)
            var byte: UInt8 = 1
            _ = write(readC.pair[1], &byte, 1)
            var add = kevent(
                ident: UInt(readC.pair[0]), filter: Int16(EVFILT_READ), flags: UInt16(EV_ADD), fflags: 0, data: 0,
                udata: nil, ext: (0, 0, 0, 0))
            precondition(kevent(readC.kq, &add, 1, nil, 0, nil) == 0)
        }, teardown: { readC.tearDown() })
}
