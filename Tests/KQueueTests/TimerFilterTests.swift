import Glibc
import KQueue
import Testing

// EVFILT_TIMER (SPEC.md section 2 and section 3, "EVFILT_TIMER").
//
// Timing rules (DESIGN.md, Tests): every wait is a bounded wait on the kqueue. Times are taken
// with clock_gettime(CLOCK_MONOTONIC) (CLOCK_REALTIME for NOTE_ABSTIME). Lower bounds ("never
// early") are asserted exactly; upper bounds ("not late", "no expiration lost") loosely, since
// the machine is shared. A deliberate busy period (usleep without calling kevent) is used
// where expirations must pile up; it always ends in the middle of a period, so the exact
// count does not depend on scheduling luck.

// MARK: - Helpers

private let nsPerMs: Int64 = 1_000_000
private let nsPerSecond: Int64 = 1_000_000_000
/// How long an event that should come is waited for, beyond its due time.
private let lateness: Duration = .seconds(5)

private func timerClockNow(_ clock: clockid_t) -> Int64 {
    var now = timespec()
    clock_gettime(clock, &now)
    return Int64(now.tv_sec) * nsPerSecond + Int64(now.tv_nsec)
}

/// CLOCK_MONOTONIC in nanoseconds.
private func monotonicNow() -> Int64 { timerClockNow(CLOCK_MONOTONIC) }
/// CLOCK_REALTIME in nanoseconds since the epoch.
private func realtimeNow() -> Int64 { timerClockNow(CLOCK_REALTIME) }

/// Sleeps `nanoseconds` without calling kevent (a deliberately busy loop, for piling up
/// expirations). Never used to wait for an event.
private func busy(_ nanoseconds: Int64) {
    var request = timespec(tv_sec: Int(nanoseconds / nsPerSecond), tv_nsec: Int(nanoseconds % nsPerSecond))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}

/// A timer change in C terms.
private func timer(
    _ ident: UInt, _ flags: Flags = .add, note: UInt32 = 0, data: Int64, udata: UInt = 0
) -> KEvent {
    KEvent(
        ident: ident, filter: .timer, flags: flags, fflags: note, data: data,
        udata: UnsafeMutableRawPointer(bitPattern: udata))
}

private let noteSeconds = TimerNote.seconds.rawValue
private let noteMilliseconds = TimerNote.milliseconds.rawValue
private let noteMicroseconds = TimerNote.microseconds.rawValue
private let noteNanoseconds = TimerNote.nanoseconds.rawValue
private let noteAbsolute = TimerNote.absoluteTime.rawValue

/// Monotonic times just before and just after something (a registration, a kevent call).
private struct Stamp {
    var before: Int64
    var after: Int64
}

/// Applies `changes` (which must succeed) and stamps the call.
@discardableResult
private func register(_ queue: KernelQueue, _ changes: [KEvent]) throws -> Stamp {
    let before = monotonicNow()
    try queue.apply(changes)
    return Stamp(before: before, after: monotonicNow())
}

/// The errno of one change applied with no event list (nil on success).
private func applyErrno(_ queue: KernelQueue, _ change: KEvent) -> Errno? {
    do {
        try queue.apply([change])
        return nil
    } catch {
        return error.errno
    }
}

/// The errno of a single change, both ways: thrown by a call with no event list, and as an
/// EV_ERROR entry when the event list has room. Records an issue if the two disagree.
private func changeErrno(
    _ queue: KernelQueue, _ change: KEvent, sourceLocation: SourceLocation = #_sourceLocation
) -> Errno? {
    var thrown: Errno?
    do { try queue.apply([change]) } catch { thrown = error.errno }
    if thrown == nil {
        // It succeeded: undo it so that the second form registers it afresh.
        try? queue.apply([timer(change.ident, .delete, data: 0)])
    }
    var listed: Errno?
    do {
        let result = try queue.kevent([change], eventCapacity: 1, timeout: .zero)
        if let entry = result.errors.first {
            listed = entry.changeError
            #expect(entry.ident == change.ident, sourceLocation: sourceLocation)
            #expect(entry.filter == .timer, sourceLocation: sourceLocation)
            #expect(
                entry.fflags == change.fflags, "EV_ERROR entry keeps the fields as given",
                sourceLocation: sourceLocation)
        }
    } catch {
        Issue.record("kevent with room for the error threw \(error) for \(change)", sourceLocation: sourceLocation)
    }
    if listed == nil { try? queue.apply([timer(change.ident, .delete, data: 0)]) }
    #expect(
        thrown == listed,
        "errno without an event list (\(String(describing: thrown))) differs from the EV_ERROR entry (\(String(describing: listed))) for \(change)",
        sourceLocation: sourceLocation)
    return thrown
}

/// An event and the monotonic times around the kevent call that returned it.
private struct Delivery {
    var event: KEvent
    var call: Stamp
}

/// Waits up to `timeout` for the next event of timer `ident`; nil (after recording an issue,
/// unless `quiet`) if none came.
@discardableResult
private func nextTimerEvent(
    _ queue: KernelQueue, _ ident: UInt, within timeout: Duration = lateness, quiet: Bool = false,
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> Delivery? {
    let deadline = monotonicNow() + timeout.nanosecondCount
    while true {
        let before = monotonicNow()
        let remaining = max(0, deadline - before)
        let events = try queue.events(maxEvents: 64, timeout: .nanoseconds(remaining))
        let after = monotonicNow()
        if let event = events.first(where: { $0.ident == ident && $0.filter == .timer }) {
            return Delivery(event: event, call: Stamp(before: before, after: after))
        }
        if after >= deadline {
            if !quiet {
                Issue.record("no event for timer \(ident) within \(timeout)", sourceLocation: sourceLocation)
            }
            return nil
        }
    }
}

/// Polls once ({0, 0}); returns the timer events and the call's stamp.
private func poll(_ queue: KernelQueue) throws -> (events: [KEvent], call: Stamp) {
    let before = monotonicNow()
    let events = try queue.events(maxEvents: 64, timeout: .zero)
    return (events.filter { $0.filter == .timer }, Stamp(before: before, after: monotonicNow()))
}

/// Waits `period` and expects no event for timer `ident` (bounded).
private func expectSilence(
    _ queue: KernelQueue, _ ident: UInt, for period: Duration, _ comment: String = "",
    sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let deadline = monotonicNow() + period.nanosecondCount
    while true {
        let remaining = deadline - monotonicNow()
        if remaining <= 0 { return }
        let events = try queue.events(maxEvents: 64, timeout: .nanoseconds(remaining))
        if let event = events.first(where: { $0.ident == ident && $0.filter == .timer }) {
            Issue.record(
                "expected no event for timer \(ident), got \(event) \(comment)", sourceLocation: sourceLocation)
            return
        }
    }
}

/// Checks the number of expirations of a periodic timer started during `start` as seen by a
/// retrieval during `seen`. Never early (exact): at most floor((seen.after - start.before) /
/// period). None lost (loose, a quarter period of timer latency allowed): at least
/// floor((seen.before - start.after - period / 4) / period).
private func expectExpirations(
    _ total: Int64, start: Stamp, seen: Stamp, period: Int64, _ what: String = "",
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let most = (seen.after - start.before) / period
    let least = max(0, (seen.before - start.after - period / 4) / period)
    #expect(
        total <= most,
        "early: \(total) expirations counted but only \(most) periods of \(period) ns had passed \(what)",
        sourceLocation: sourceLocation)
    #expect(
        total >= least,
        "lost: \(total) expirations counted but at least \(least) periods of \(period) ns had passed \(what)",
        sourceLocation: sourceLocation)
}

/// Number of open descriptors of this process.
private func processDescriptorCount() -> Int {
    guard let directory = opendir("/proc/self/fd") else { return -1 }
    var count = 0
    while let entry = readdir(directory) {
        if entry.pointee.d_name.0 != CChar(bitPattern: UInt8(ascii: ".")) { count += 1 }
    }
    closedir(directory)
    return count - 1  // the directory stream's own descriptor
}

extension Duration {
    fileprivate var nanosecondCount: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

/// Registers a oneshot timer with `note` and `data` and checks that it fires once, not
/// before `delay` nanoseconds (exactly) and not hugely later (loosely).
private func expectOneShotDelay(
    note: UInt32, data: Int64, delay: Int64, sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let queue = try KernelQueue()
    let start = try register(queue, [timer(7, [.add, .oneShot], note: note, data: data, udata: 0x77)])
    guard let got = try nextTimerEvent(queue, 7, within: .nanoseconds(delay) + lateness, sourceLocation: sourceLocation)
    else { return }
    let elapsed = got.call.after - start.before
    #expect(
        elapsed >= delay, "fired \(elapsed) ns after registration, before its \(delay) ns",
        sourceLocation: sourceLocation)
    #expect(got.event.data == 1, sourceLocation: sourceLocation)
    #expect(got.event.fflags == 0, sourceLocation: sourceLocation)
    #expect(got.event.udata == UnsafeMutableRawPointer(bitPattern: 0x77), sourceLocation: sourceLocation)
    #expect(
        applyErrno(queue, timer(7, .delete, data: 0)) == .noSuchFileOrDirectory, "a fired oneshot is deleted",
        sourceLocation: sourceLocation)
}

// MARK: - Tests

@Suite("EVFILT_TIMER (SPEC.md 3)")
struct TimerFilterTests {
    // MARK: Units

    @Test("TIMER: NOTE_SECONDS: data is in seconds")
    func unitSeconds() throws {
        try expectOneShotDelay(note: noteSeconds, data: 1, delay: nsPerSecond)
    }

    @Test("TIMER: NOTE_MSECONDS: data is in milliseconds")
    func unitMilliseconds() throws {
        try expectOneShotDelay(note: noteMilliseconds, data: 60, delay: 60 * nsPerMs)
    }

    @Test("TIMER: NOTE_USECONDS: data is in microseconds")
    func unitMicroseconds() throws {
        try expectOneShotDelay(note: noteMicroseconds, data: 60_000, delay: 60 * nsPerMs)
        try expectOneShotDelay(note: noteMicroseconds, data: 12_345, delay: 12_345_000)
    }

    @Test("TIMER: NOTE_NSECONDS: data is in nanoseconds, with nanosecond resolution")
    func unitNanoseconds() throws {
        try expectOneShotDelay(note: noteNanoseconds, data: 60_000_000, delay: 60_000_000)
        try expectOneShotDelay(note: noteNanoseconds, data: 12_345_678, delay: 12_345_678)
    }

    @Test("TIMER: no unit bit means milliseconds")
    func noUnitIsMilliseconds() throws {
        try expectOneShotDelay(note: 0, data: 60, delay: 60 * nsPerMs)
        // Periodic too: the period is 25 ms, not 25 s or 25 µs.
        let queue = try KernelQueue()
        let start = try register(queue, [timer(1, data: 25)])
        busy(25 * 4 * nsPerMs + 25 * nsPerMs / 2)
        let (events, call) = try poll(queue)
        #expect(events.count == 1)
        if let event = events.first { expectExpirations(event.data, start: start, seen: call, period: 25 * nsPerMs) }
    }

    // MARK: Bad input

    @Test("TIMER: negative data is EINVAL, in every unit, periodic, oneshot and absolute")
    func negativeDataIsInvalid() throws {
        let queue = try KernelQueue()
        for note in [0, noteSeconds, noteMilliseconds, noteMicroseconds, noteNanoseconds] {
            for extra in [0, noteAbsolute] {
                for flags: Flags in [.add, [.add, .oneShot], [.add, .clear], [.add, .dispatch]] {
                    for data: Int64 in [-1, -1000, Int64.min] {
                        let change = timer(3, flags, note: note | extra, data: data)
                        #expect(changeErrno(queue, change) == .invalidArgument, "\(change)")
                    }
                }
            }
        }
        #expect(
            applyErrno(queue, timer(3, .delete, data: 0)) == .noSuchFileOrDirectory,
            "a rejected timer is not registered")
        #expect(try poll(queue).events.isEmpty)
    }

    @Test("TIMER: an unknown fflags bit is EINVAL")
    func unknownFflagsBitIsInvalid() throws {
        let queue = try KernelQueue()
        for bit in 5..<32 {
            for unit in [0, noteMilliseconds, noteNanoseconds] {
                let change = timer(4, note: unit | (UInt32(1) << bit), data: 10)
                #expect(changeErrno(queue, change) == .invalidArgument, "fflags 0x\(String(change.fflags, radix: 16))")
                let absolute = timer(4, note: unit | noteAbsolute | (UInt32(1) << bit), data: 10)
                #expect(
                    changeErrno(queue, absolute) == .invalidArgument, "fflags 0x\(String(absolute.fflags, radix: 16))")
            }
        }
        #expect(
            applyErrno(queue, timer(4, .delete, data: 0)) == .noSuchFileOrDirectory,
            "a rejected timer is not registered")
    }

    @Test("TIMER: more than one unit bit is EINVAL")
    func severalUnitBitsAreInvalid() throws {
        let queue = try KernelQueue()
        for units in UInt32(0)...0xF where units.nonzeroBitCount > 1 {
            for extra in [0, noteAbsolute] {
                for flags: Flags in [.add, [.add, .oneShot]] {
                    let change = timer(5, flags, note: units | extra, data: 10)
                    #expect(
                        changeErrno(queue, change) == .invalidArgument, "fflags 0x\(String(change.fflags, radix: 16))")
                }
            }
        }
        #expect(applyErrno(queue, timer(5, .delete, data: 0)) == .noSuchFileOrDirectory)
    }

    @Test("TIMER: overflow converting the unit to nanoseconds is EINVAL")
    func unitOverflowIsInvalid() throws {
        let queue = try KernelQueue()
        let cases: [(UInt32, Int64)] = [
            (noteSeconds, Int64.max), (noteSeconds, Int64.max / 1_000_000_000 + 1),
            (noteMilliseconds, Int64.max), (noteMilliseconds, Int64.max / 1_000_000 + 1),
            (0, Int64.max), (0, Int64.max / 1_000_000 + 1),
            (noteMicroseconds, Int64.max), (noteMicroseconds, Int64.max / 1_000 + 1),
        ]
        for (unit, data) in cases {
            for extra in [0, noteAbsolute] {
                for flags: Flags in [.add, [.add, .oneShot]] {
                    let change = timer(6, flags, note: unit | extra, data: data)
                    #expect(changeErrno(queue, change) == .invalidArgument, "\(change)")
                }
            }
        }
        // The Swift API reaches the same checks.
        #expect(changeErrno(queue, .timer(6, every: .seconds(Int64.max))) == .invalidArgument)
        #expect(changeErrno(queue, .timer(6, after: .seconds(Int64.max / 2))) == .invalidArgument)
        #expect(changeErrno(queue, .timer(6, atWallClockTimeSinceEpoch: .seconds(Int64.max))) == .invalidArgument)
        #expect(changeErrno(queue, .timer(6, every: .seconds(-1))) == .invalidArgument)
        #expect(changeErrno(queue, .timer(6, after: .nanoseconds(-1))) == .invalidArgument)
        #expect(applyErrno(queue, timer(6, .delete, data: 0)) == .noSuchFileOrDirectory)
        // Large but representable: accepted, and of course not fired.
        try register(queue, [timer(7, note: noteSeconds, data: Int64.max / 1_000_000_000 / 4)])
        try register(queue, [timer(8, note: noteMicroseconds, data: Int64.max / 1_000 / 4)])
        try expectSilence(queue, 7, for: .milliseconds(20))
        #expect(try poll(queue).events.isEmpty)
    }

    @Test("TIMER: bad input gives a clear errno, never a crash")
    func badInputNeverCrashes() throws {
        let queue = try KernelQueue()
        let datas: [Int64] = [Int64.min, -1, 0, 1, 1_000_000_000, Int64.max / 1_000, Int64.max - 1, Int64.max]
        var fflagsValues: [UInt32] = Array(0...0x1F)
        fflagsValues += [0x20, 0x3F, 0x100, 0x8000_0000, 0xFFFF_FFFF, 0x1_0000 | 0x2]
        for fflags in fflagsValues {
            for data in datas {
                for flags: Flags in [.add, [.add, .oneShot], [.add, .dispatch], [.add, .disable]] {
                    let change = timer(9, flags, note: fflags, data: data)
                    let error: Errno?
                    do {
                        try queue.apply([change])
                        error = nil
                    } catch let e {
                        error = e.errno
                    }
                    if let error {
                        #expect(error == .invalidArgument, "\(change): \(error)")
                    } else {
                        // Accepted: modifying it with the same bad-or-good input must not crash
                        // either, then it goes away.
                        let again = changeErrno(queue, change)
                        #expect(
                            again == nil || again == .invalidArgument, "\(change) again: \(String(describing: again))")
                        try? queue.apply([timer(9, .delete, data: 0)])
                    }
                }
            }
        }
        // An existing timer modified with bad input: EINVAL as well.
        try register(queue, [timer(10, note: noteSeconds, data: 100)])
        #expect(changeErrno(queue, timer(10, note: noteSeconds, data: -1)) == .invalidArgument)
        #expect(changeErrno(queue, timer(10, note: 0x40, data: 1)) == .invalidArgument)
        #expect(changeErrno(queue, timer(10, note: noteSeconds | noteNanoseconds, data: 1)) == .invalidArgument)
        #expect(changeErrno(queue, timer(10, note: noteSeconds, data: Int64.max)) == .invalidArgument)
        // The kqueue still works.
        try register(queue, [timer(11, [.add, .oneShot], note: noteNanoseconds, data: 0)])
        try nextTimerEvent(queue, 11, within: .seconds(2))
    }

    // MARK: Periodic, oneshot, data, fflags, EV_CLEAR

    @Test("TIMER: periodic unless EV_ONESHOT")
    func periodicUnlessOneShot() throws {
        let period = 20 * nsPerMs
        let queue = try KernelQueue()
        let start = try register(queue, [timer(1, data: 20), timer(2, [.add, .oneShot], data: 20)])
        var total: Int64 = 0
        var oneShots = 0
        var periodicEvents = 0
        let deadline = monotonicNow() + 5 * nsPerSecond
        while periodicEvents < 5 && monotonicNow() < deadline {
            let before = monotonicNow()
            let events = try queue.events(maxEvents: 8, timeout: .seconds(1))
            let call = Stamp(before: before, after: monotonicNow())
            for event in events {
                if event.ident == 1 {
                    periodicEvents += 1
                    total += event.data
                    expectExpirations(total, start: start, seen: call, period: period, "(periodic timer)")
                } else if event.ident == 2 {
                    oneShots += 1
                    #expect(event.data == 1)
                    #expect(event.flags.contains(.oneShot))
                    #expect(call.after - start.before >= period, "oneshot early")
                }
            }
        }
        #expect(periodicEvents == 5, "the periodic timer fired again and again")
        #expect(oneShots == 1, "the EV_ONESHOT timer fired exactly once")
        #expect(
            applyErrno(queue, timer(2, .delete, data: 0)) == .noSuchFileOrDirectory,
            "EV_ONESHOT: deleted after it fired")
        #expect(applyErrno(queue, timer(1, .delete, data: 0)) == nil, "the periodic timer is still registered")
    }

    @Test("TIMER: returned data counts the expirations since the last retrieval")
    func dataCountsExpirationsSinceLastRetrieval() throws {
        let period = 20 * nsPerMs
        let queue = try KernelQueue()
        let start = try register(queue, [timer(1, note: noteMilliseconds, data: 20)])
        var total: Int64 = 0
        // Retrieve at varying gaps: each event carries only what is new since the last one.
        for gapInPeriods: Int64 in [0, 2, 0, 5, 1, 3] {
            busy(gapInPeriods * period + period / 2)
            guard let got = try nextTimerEvent(queue, 1) else { return }
            #expect(got.event.data >= 1)
            total += got.event.data
            expectExpirations(
                total, start: start, seen: got.call, period: period, "(after a gap of \(gapInPeriods) periods)")
            // Right after a retrieval nothing new is pending.
            let (events, _) = try poll(queue)
            let extra = events.reduce(0) { $0 + $1.data }
            #expect(extra <= 1, "expirations already returned were returned again: \(events)")
            total += extra
        }
    }

    @Test("TIMER: missed periods are counted in data")
    func missedPeriodsAreCounted() throws {
        let period = 10 * nsPerMs
        let queue = try KernelQueue()
        let start = try register(queue, [timer(1, note: noteMicroseconds, data: 10_000)])
        busy(10 * period + period / 2)  // busy for 10 periods: no kevent call at all
        let (events, call) = try poll(queue)
        #expect(events.count == 1)
        guard let event = events.first else { return }
        #expect(event.data >= 10, "a loop busy for 10 periods sees data >= 10, got \(event.data)")
        expectExpirations(event.data, start: start, seen: call, period: period)
        // Still periodic after the catch-up, on the original schedule.
        busy(3 * period)
        let (later, laterCall) = try poll(queue)
        #expect(later.count == 1)
        expectExpirations(
            event.data + (later.first?.data ?? 0), start: start, seen: laterCall, period: period, "(second retrieval)")
    }

    @Test("TIMER: returned fflags are 0, whatever the unit")
    func returnedFflagsAreZero() throws {
        let queue = try KernelQueue()
        let wallNow = realtimeNow()
        try register(
            queue,
            [
                timer(1, note: noteSeconds, data: 0),
                timer(2, note: noteMilliseconds, data: 1),
                timer(3, note: noteMicroseconds, data: 100),
                timer(4, note: noteNanoseconds, data: 100_000),
                timer(5, [.add, .oneShot], note: noteMicroseconds, data: 1),
                timer(6, .add, note: noteNanoseconds | noteAbsolute, data: wallNow),
                timer(7, .add, note: noteMilliseconds | noteAbsolute, data: wallNow / nsPerMs),
            ])
        var seen = Set<UInt>()
        let deadline = monotonicNow() + 5 * nsPerSecond
        while seen.count < 7 && monotonicNow() < deadline {
            for event in try queue.events(maxEvents: 16, timeout: .seconds(1)) {
                seen.insert(event.ident)
                #expect(event.fflags == 0, "\(event)")
            }
        }
        #expect(seen == Set(1...7))
    }

    @Test("TIMER: EV_CLEAR is added by the filter")
    func clearIsAdded() throws {
        let queue = try KernelQueue()
        try register(
            queue,
            [
                timer(1, data: 150), timer(2, [.add, .oneShot], data: 10),
                timer(3, .add, note: noteNanoseconds, data: 0),
            ])
        var periodic: KEvent?
        var oneShot: KEvent?
        let deadline = monotonicNow() + 5 * nsPerSecond
        while (periodic == nil || oneShot == nil) && monotonicNow() < deadline {
            for event in try queue.events(maxEvents: 8, timeout: .seconds(1)) {
                #expect(event.flags.contains(.clear), "\(event)")
                if event.ident == 1 { periodic = event } else if event.ident == 2 { oneShot = event }
            }
        }
        #expect(periodic?.flags.contains(.clear) == true)
        #expect(oneShot?.flags.contains(.clear) == true)
        #expect(oneShot?.flags.contains(.oneShot) == true)
        // Edge-triggered: right after the periodic event, its state is reset (it is not
        // returned again until the next expiry, 150 ms later).
        try queue.apply([timer(3, .delete, data: 0)])
        guard let got = try nextTimerEvent(queue, 1) else { return }
        #expect(got.event.flags.contains(.clear))
        let (events, call) = try poll(queue)
        if call.after - got.call.before < 100 * nsPerMs {
            #expect(events.isEmpty, "returned again without a new expiry: \(events)")
        }
    }

    @Test("TIMER: a periodic timer with data 0 runs with the smallest period (1 µs here)")
    func periodicZeroIsSmallestPeriod() throws {
        let queue = try KernelQueue()
        let start = try register(queue, [timer(1, note: noteNanoseconds, data: 0)])
        var total: Int64 = 0
        for _ in 0..<3 {
            guard let got = try nextTimerEvent(queue, 1, within: .seconds(2)) else { return }
            #expect(got.event.data >= 1)
            total += got.event.data
            expectExpirations(total, start: start, seen: got.call, period: 1_000, "(1 µs period)")
            busy(2 * nsPerMs)
        }
        for unit in [0, noteSeconds, noteMilliseconds, noteMicroseconds] {
            try register(queue, [timer(2, note: unit, data: 0)])
            try nextTimerEvent(queue, 2, within: .seconds(2))
            try register(queue, [timer(2, .delete, data: 0)])
        }
    }

    @Test("TIMER: a oneshot with data 0 fires at once")
    func oneShotZeroFiresAtOnce() throws {
        let queue = try KernelQueue()
        for unit in [0, noteSeconds, noteMilliseconds, noteMicroseconds, noteNanoseconds] {
            let start = try register(queue, [timer(1, [.add, .oneShot], note: unit, data: 0)])
            guard let got = try nextTimerEvent(queue, 1, within: .seconds(5)) else { return }
            #expect(got.event.data == 1)
            #expect(got.call.after - start.after < 1 * nsPerSecond, "not at once (loose bound: 1 s)")
        }
    }

    @Test("TIMER: ident is any number, one timer per ident")
    func identIsAnyNumber() throws {
        let queue = try KernelQueue()
        let idents: [UInt] = [0, 1, UInt(Int32.max) + 1, UInt.max]
        try register(queue, idents.map { timer($0, [.add, .oneShot], note: noteMilliseconds, data: 5, udata: $0 | 1) })
        var seen: [UInt] = []
        let deadline = monotonicNow() + 5 * nsPerSecond
        while seen.count < idents.count && monotonicNow() < deadline {
            for event in try queue.events(maxEvents: 8, timeout: .seconds(1)) {
                seen.append(event.ident)
                #expect(event.udata == UnsafeMutableRawPointer(bitPattern: event.ident | 1))
            }
        }
        #expect(seen.sorted() == idents.sorted())
    }

    // MARK: NOTE_ABSTIME

    @Test(
        "TIMER: NOTE_ABSTIME: data is an absolute wall-clock time in the given unit",
        arguments: [
            (0, nsPerMs), (noteSeconds, nsPerSecond), (noteMilliseconds, nsPerMs), (noteMicroseconds, 1_000),
            (noteNanoseconds, 1),
        ] as [(UInt32, Int64)])
    func absoluteTimeInUnit(unit: UInt32, scale: Int64) throws {
        let queue = try KernelQueue()
        // 150 ms from now, rounded up to the unit (for seconds: the next second but one).
        let wanted = realtimeNow() + 150 * nsPerMs
        let data = (wanted + scale - 1) / scale + (scale == nsPerSecond ? 1 : 0)
        let target = data * scale
        let start = try register(queue, [timer(1, note: unit | noteAbsolute, data: data)])
        guard let got = try nextTimerEvent(queue, 1, within: .nanoseconds(target - realtimeNow()) + lateness) else {
            return
        }
        let wallAfter = realtimeNow()
        #expect(wallAfter >= target, "fired \(target - wallAfter) ns before its wall-clock time")
        #expect(
            got.call.after - start.before >= 100 * nsPerMs, "fired too soon for a time 150 ms ahead (unit misread?)")
        #expect(got.event.data == 1)
        #expect(got.event.fflags == 0)
    }

    @Test("TIMER: NOTE_ABSTIME: a time in the past fires at once")
    func absoluteTimeInThePastFiresAtOnce() throws {
        let queue = try KernelQueue()
        let now = realtimeNow()
        let cases: [(UInt32, Int64)] = [
            (noteNanoseconds, now - nsPerSecond), (noteMilliseconds, now / nsPerMs - 1), (noteSeconds, 1),
            (noteSeconds, 0), (0, 0), (noteMicroseconds, now / 1_000), (noteNanoseconds, now),
        ]
        for (index, (unit, data)) in cases.enumerated() {
            let start = try register(
                queue, [timer(UInt(index), [.add, .oneShot], note: unit | noteAbsolute, data: data)])
            guard let got = try nextTimerEvent(queue, UInt(index), within: .seconds(5)) else { continue }
            #expect(got.event.data == 1, "\(got.event)")
            #expect(got.call.after - start.after < nsPerSecond, "not at once (loose bound: 1 s)")
        }
    }

    @Test("TIMER: NOTE_ABSTIME: EV_CLEAR is not added")
    func absoluteTimeIsNotGivenClear() throws {
        let queue = try KernelQueue()
        try register(queue, [timer(1, note: noteNanoseconds | noteAbsolute, data: realtimeNow() + 20 * nsPerMs)])
        guard let got = try nextTimerEvent(queue, 1) else { return }
        #expect(!got.event.flags.contains(.clear), "\(got.event)")
        #expect(got.event.data == 1)
        // Level-triggered (SPEC.md 2, delivery rules): it stays ready and is returned again,
        // still with data 1.
        let (events, _) = try poll(queue)
        #expect(events.count == 1, "without EV_CLEAR the expired absolute timer is returned again: \(events)")
        #expect(events.first?.data == 1)
        #expect(events.first.map { !$0.flags.contains(.clear) } == true)
    }

    @Test("TIMER: NOTE_ABSTIME: the timer does not repeat")
    func absoluteTimeDoesNotRepeat() throws {
        let queue = try KernelQueue()
        let at = realtimeNow() + 20 * nsPerMs
        try register(
            queue,
            [
                timer(1, [.add, .clear], note: noteNanoseconds | noteAbsolute, data: at),
                timer(2, .add, note: noteNanoseconds | noteAbsolute, data: at),
            ])
        guard let got = try nextTimerEvent(queue, 1) else { return }
        #expect(got.event.data == 1)
        // With EV_CLEAR: nothing more, ever (watched for many would-be periods).
        try expectSilence(queue, 1, for: .milliseconds(200), "(NOTE_ABSTIME timers fire once)")
        // Without EV_CLEAR: still reported (level), but never a second expiration.
        for _ in 0..<5 {
            let (events, _) = try poll(queue)
            for event in events where event.ident == 2 { #expect(event.data == 1, "\(event)") }
            busy(20 * nsPerMs)
        }
        // EV_ONESHOT | NOTE_ABSTIME: fires once and is deleted.
        try register(
            queue,
            [timer(3, [.add, .oneShot], note: noteMilliseconds | noteAbsolute, data: realtimeNow() / nsPerMs + 10)])
        try nextTimerEvent(queue, 3)
        #expect(applyErrno(queue, timer(3, .delete, data: 0)) == .noSuchFileOrDirectory)
    }

    @Test(
        "TIMER: a wall-clock jump does not leave a NOTE_ABSTIME timer firing at the old time",
        .enabled(
            if: getenv("KQ_ALLOW_CLOCK_CHANGE").map { String(cString: $0) == "1" } ?? false,
            "changes the machine's CLOCK_REALTIME: runs only with KQ_ALLOW_CLOCK_CHANGE=1"))
    func wallClockJumpMovesAbsoluteTimers() throws {
        let queue = try KernelQueue()
        let target = realtimeNow() + 2 * nsPerSecond
        let start = try register(
            queue, [timer(1, [.add, .oneShot], note: noteNanoseconds | noteAbsolute, data: target)])
        #expect(try poll(queue).events.isEmpty)
        // Move the wall clock forward 3 s: the timer's time has now passed.
        func shiftRealtime(by nanoseconds: Int64) -> Int32 {
            let shifted = realtimeNow() + nanoseconds
            var spec = timespec(tv_sec: Int(shifted / nsPerSecond), tv_nsec: Int(shifted % nsPerSecond))
            return clock_settime(CLOCK_REALTIME, &spec) == 0 ? 0 : errno
        }
        let error = shiftRealtime(by: 3 * nsPerSecond)
        if error == EPERM {
            try Test.cancel(
                "clock_settime(CLOCK_REALTIME) is not permitted here (EPERM): cannot test a wall-clock jump")
        }
        try #require(error == 0, "clock_settime failed: errno \(error)")
        let jumped = monotonicNow()
        var restored = false
        defer { if !restored { _ = shiftRealtime(by: -3 * nsPerSecond) } }
        let got = try nextTimerEvent(queue, 1, within: .seconds(3))
        let gotAt = monotonicNow()
        restored = shiftRealtime(by: -3 * nsPerSecond) == 0
        #expect(restored, "restoring the clock failed")
        guard let got else { return }
        #expect(got.event.data == 1)
        // Promptly: long before the 2 s the old wall-clock time was away.
        #expect(gotAt - jumped < 1_500 * nsPerMs, "fired \(Double(gotAt - jumped) / 1e9) s after the jump")
        #expect(gotAt - start.before < 1_900 * nsPerMs, "fired at the old time")
    }

    // MARK: Modification

    @Test("TIMER: EV_ADD on an existing timer restarts it with the new period")
    func addRestartsWithNewPeriod() throws {
        let queue = try KernelQueue()
        // A oneshot due in 100 ms, re-added 50 ms later with 100 ms: now due 100 ms after that.
        try register(queue, [timer(1, [.add, .oneShot], data: 100)])
        busy(50 * nsPerMs)
        let restart = try register(queue, [timer(1, [.add, .oneShot], data: 100)])
        guard let got = try nextTimerEvent(queue, 1) else { return }
        #expect(got.call.after - restart.before >= 100 * nsPerMs, "fired at the old deadline, not restarted")
        // A periodic timer re-added with another period (and another unit) runs on the new one.
        try register(queue, [timer(2, data: 10)])
        busy(25 * nsPerMs)
        let slow = try register(queue, [timer(2, note: noteMicroseconds, data: 120_000)])
        var total: Int64 = 0
        for _ in 0..<3 {
            guard let event = try nextTimerEvent(queue, 2) else { return }
            total += event.event.data
            expectExpirations(total, start: slow, seen: event.call, period: 120 * nsPerMs, "(new period 120 ms)")
        }
    }

    @Test("TIMER: EV_ADD on an existing timer discards uncollected expirations")
    func addDiscardsUncollectedExpirations() throws {
        let queue = try KernelQueue()
        try register(queue, [timer(1, data: 10)])
        busy(35 * nsPerMs)  // three expirations pending, uncollected
        let restart = try register(queue, [timer(1, data: 200)])
        let (events, _) = try poll(queue)
        #expect(events.isEmpty, "expirations from before the EV_ADD were returned: \(events)")
        guard let got = try nextTimerEvent(queue, 1) else { return }
        expectExpirations(got.event.data, start: restart, seen: got.call, period: 200 * nsPerMs)
        #expect(got.call.after - restart.before >= 200 * nsPerMs)
        // Also expirations the kqueue has already recorded but not returned: a disabled timer
        // (kevent calls process its expiries meanwhile) and one disabled by EV_DISPATCH.
        try register(queue, [timer(1, .delete, data: 0)])
        try register(queue, [timer(2, [.add, .disable], data: 10), timer(3, [.add, .dispatch], data: 10)])
        try nextTimerEvent(queue, 3)
        for _ in 0..<4 { try expectSilence(queue, 2, for: .milliseconds(10), "(disabled)") }
        try register(queue, [timer(2, .add, data: 1_000), timer(3, .add, data: 1_000)])
        try register(queue, [timer(2, .enable, data: 0), timer(3, .enable, data: 0)])
        let (afterEnable, _) = try poll(queue)
        #expect(afterEnable.isEmpty, "expirations from before the EV_ADD were returned: \(afterEnable)")
    }

    @Test("TIMER: EV_ENABLE and EV_DISABLE do not restart the timer")
    func enableDisableDoNotRestart() throws {
        let period = 300 * nsPerMs
        let queue = try KernelQueue()
        let start = try register(queue, [timer(1, data: 300)])
        busy(2 * period + period / 2)
        try register(queue, [timer(1, .disable, data: 0)])
        try register(queue, [timer(1, .enable, data: 0)])
        try register(queue, [timer(1, .enable, data: 0)])  // EV_ENABLE on an enabled timer, too
        // Nothing was discarded: the two expirations are returned at once.
        let (events, call) = try poll(queue)
        #expect(events.count == 1, "expirations before EV_DISABLE/EV_ENABLE were lost (restarted?)")
        var total = events.first?.data ?? 0
        expectExpirations(total, start: start, seen: call, period: period)
        // The schedule is unchanged: the third expiry is due at start + 3 periods, not a
        // period after the EV_ENABLE (start + 3.5 periods).
        let third = start.after + 3 * period + period / 4
        busy(max(0, third - monotonicNow()))
        let (later, laterCall) = try poll(queue)
        total += later.first?.data ?? 0
        #expect(total >= 3, "the third expiry (start + 3 periods) had not come at start + 3.25 periods")
        expectExpirations(total, start: start, seen: laterCall, period: period)
    }

    @Test("TIMER: expirations keep counting while disabled")
    func expirationsCountWhileDisabled() throws {
        let period = 20 * nsPerMs
        let queue = try KernelQueue()
        // Registered disabled, and disabled after registration.
        let start1 = try register(queue, [timer(1, [.add, .disable], data: 20)])
        let start2 = try register(queue, [timer(2, .add, data: 20)])
        try register(queue, [timer(2, .disable, data: 0)])
        busy(5 * period + period / 2)
        try expectSilence(queue, 1, for: .milliseconds(30), "(disabled)")
        #expect(try poll(queue).events.isEmpty, "a disabled timer was returned")
        try register(queue, [timer(1, .enable, data: 0), timer(2, .enable, data: 0)])
        let (events, call) = try poll(queue)
        #expect(events.count == 2)
        for event in events {
            #expect(event.data >= 5, "\(event): expirations while disabled were not counted")
            expectExpirations(
                event.data, start: event.ident == 1 ? start1 : start2, seen: call, period: period,
                "(ident \(event.ident))")
        }
    }

    @Test("TIMER: EV_DISPATCH returns once, then disables; EV_ENABLE re-arms with the count kept")
    func dispatchDisablesAfterDelivery() throws {
        let period = 20 * nsPerMs
        let queue = try KernelQueue()
        let start = try register(queue, [timer(1, [.add, .dispatch], data: 20)])
        guard let first = try nextTimerEvent(queue, 1) else { return }
        #expect(first.event.flags.contains(.dispatch))
        #expect(first.event.flags.contains(.clear))
        var total = first.event.data
        expectExpirations(total, start: start, seen: first.call, period: period)
        try expectSilence(queue, 1, for: .milliseconds(110), "(EV_DISPATCH: disabled after delivery)")
        try register(queue, [timer(1, .enable, data: 0)])
        let (events, call) = try poll(queue)
        #expect(events.count == 1, "EV_ENABLE after EV_DISPATCH: the pending expirations are returned at once")
        total += events.first?.data ?? 0
        #expect((events.first?.data ?? 0) >= 4, "expirations while dispatched-disabled were not counted")
        expectExpirations(total, start: start, seen: call, period: period)
        // And it is disabled again after that delivery; still registered.
        try expectSilence(queue, 1, for: .milliseconds(50))
        #expect(applyErrno(queue, timer(1, .delete, data: 0)) == nil)
    }

    @Test("TIMER: EV_ONESHOT returns once, then the knote is deleted")
    func oneShotIsDeletedAfterDelivery() throws {
        let queue = try KernelQueue()
        let start = try register(queue, [timer(1, [.add, .oneShot], note: noteMilliseconds, data: 20)])
        guard let got = try nextTimerEvent(queue, 1) else { return }
        #expect(got.event.data == 1)
        #expect(got.event.flags.contains(.oneShot))
        #expect(got.call.after - start.before >= 20 * nsPerMs)
        try expectSilence(queue, 1, for: .milliseconds(100))
        #expect(applyErrno(queue, timer(1, .delete, data: 0)) == .noSuchFileOrDirectory)
        #expect(applyErrno(queue, timer(1, .enable, data: 0)) == .noSuchFileOrDirectory)
        // A oneshot that expired while disabled is returned (once) on EV_ENABLE.
        try register(queue, [timer(2, [.add, .oneShot, .disable], note: noteMilliseconds, data: 5)])
        busy(20 * nsPerMs)
        #expect(try poll(queue).events.isEmpty)
        try register(queue, [timer(2, .enable, data: 0)])
        let (events, _) = try poll(queue)
        #expect(events.count == 1)
        #expect(events.first?.data == 1)
        #expect(applyErrno(queue, timer(2, .delete, data: 0)) == .noSuchFileOrDirectory)
    }

    // MARK: Timing

    @Test("TIMER: never early, measured against CLOCK_MONOTONIC")
    func neverEarly() throws {
        let queue = try KernelQueue()
        let count = 100
        var due: [Int64] = []
        for i in 0..<count {
            // Odd nanosecond delays from 1 ms to ~38 ms, registered one by one.
            let delay = 1_000_000 + Int64(i) * 370_123
            let stamp = try register(queue, [timer(UInt(i), [.add, .oneShot], note: noteNanoseconds, data: delay)])
            due.append(stamp.before + delay)
        }
        var fired = Set<Int>()
        let deadline = monotonicNow() + 10 * nsPerSecond
        while fired.count < count && monotonicNow() < deadline {
            let events = try queue.events(maxEvents: 64, timeout: .seconds(1))
            let after = monotonicNow()
            for event in events {
                let i = Int(event.ident)
                #expect(!fired.contains(i), "timer \(i) fired twice")
                fired.insert(i)
                #expect(after >= due[i], "timer \(i) fired \(due[i] - after) ns early")
            }
        }
        #expect(fired.count == count)
        // Periodic timers too, in every unit (the count never runs ahead of elapsed time).
        let starts = try register(
            queue,
            [
                timer(1000, note: noteNanoseconds, data: 3_333_333),
                timer(1001, note: noteMicroseconds, data: 3_334),
                timer(1002, note: noteMilliseconds, data: 4),
            ])
        let periods: [UInt: Int64] = [1000: 3_333_333, 1001: 3_334_000, 1002: 4_000_000]
        var totals: [UInt: Int64] = [:]
        let end = monotonicNow() + 200 * nsPerMs
        while monotonicNow() < end {
            let before = monotonicNow()
            let events = try queue.events(maxEvents: 8, timeout: .milliseconds(10))
            let call = Stamp(before: before, after: monotonicNow())
            for event in events {
                guard let period = periods[event.ident] else { continue }
                totals[event.ident, default: 0] += event.data
                let most = (call.after - starts.before) / period
                #expect(
                    totals[event.ident]! <= most,
                    "timer \(event.ident) counted \(totals[event.ident]!) expirations, only \(most) due")
            }
        }
    }

    @Test("TIMER: periodic timers do not drift (the n-th expiry is due at start + n x period)")
    func periodicTimersDoNotDrift() throws {
        let period = 5 * nsPerMs
        let queue = try KernelQueue()
        let start = try register(queue, [timer(1, note: noteNanoseconds, data: period)])
        var total: Int64 = 0
        var last: Delivery?
        for _ in 0..<150 {
            guard let got = try nextTimerEvent(queue, 1, within: .seconds(2)) else { return }
            total += got.event.data
            #expect(total <= (got.call.after - start.before) / period, "early")
            last = got
            // Work after each event, longer than a period: the next expiry is retrieved late,
            // which must not shift the schedule.
            busy(period + period / 3)
        }
        guard let last else { return }
        // On schedule (start + n x period), the count is the elapsed time over the period; a
        // timer rescheduled a period after each late retrieval would be ~50 expirations behind.
        expectExpirations(total, start: start, seen: last.call, period: period, "after 150 events")
    }

    // MARK: Descriptors

    @Test("TIMER: a constant number of descriptors per kqueue, however many timers")
    func constantDescriptors() throws {
        // Other tests open descriptors in parallel: compare before/after within a tolerance of
        // 8 and retry. One descriptor per timer would add 10,000.
        var deltas: [Int] = []
        for _ in 0..<5 {
            let before = processDescriptorCount()
            let queue = try KernelQueue()
            let wall = realtimeNow() / nsPerSecond
            var changes: [KEvent] = []
            for i in 0..<5_000 { changes.append(timer(UInt(i), note: noteSeconds, data: 3_600 + Int64(i))) }
            for i in 5_000..<10_000 {
                changes.append(timer(UInt(i), note: noteSeconds | noteAbsolute, data: wall + 3_600 + Int64(i)))
            }
            try queue.apply(changes)
            let after = processDescriptorCount()
            queue.close()
            deltas.append(after - before)
            if after - before <= 8 { break }
        }
        #expect(deltas.contains { $0 <= 8 }, "10,000 timers added descriptors: deltas \(deltas)")
    }

    // MARK: Swift API

    @Test("TIMER (Swift API): .timer(_:every:) is periodic with nanosecond periods")
    func swiftEvery() throws {
        let queue = try KernelQueue()
        let start = try register(queue, [.timer(1, every: .microseconds(15_500))])
        var total: Int64 = 0
        for _ in 0..<4 {
            guard let got = try nextTimerEvent(queue, 1) else { return }
            #expect(got.event.flags.contains(.clear))
            #expect(!got.event.flags.contains(.oneShot))
            total += got.event.data
            expectExpirations(total, start: start, seen: got.call, period: 15_500_000)
        }
    }

    @Test("TIMER (Swift API): .timer(_:after:) fires once, never early")
    func swiftAfter() throws {
        let queue = try KernelQueue()
        let start = try register(queue, [.timer(1, after: .milliseconds(30))])
        guard let got = try nextTimerEvent(queue, 1) else { return }
        #expect(got.call.after - start.before >= 30 * nsPerMs)
        #expect(got.event.flags.contains(.oneShot))
        #expect(applyErrno(queue, timer(1, .delete, data: 0)) == .noSuchFileOrDirectory)
    }

    @Test("TIMER (Swift API): .timer(_:at:) fires at a ContinuousClock instant, at once if past")
    func swiftAtInstant() throws {
        let queue = try KernelQueue()
        let before = monotonicNow()
        let instant = ContinuousClock.now + .milliseconds(40)
        try queue.apply([.timer(1, at: instant)])
        guard let got = try nextTimerEvent(queue, 1) else { return }
        #expect(ContinuousClock.now >= instant, "fired before its instant")
        #expect(got.call.after - before >= 40 * nsPerMs)
        let past = try register(queue, [.timer(2, at: ContinuousClock.now - .seconds(1))])
        guard let now = try nextTimerEvent(queue, 2) else { return }
        #expect(now.call.after - past.after < nsPerSecond)
        #expect(now.event.data == 1)
    }

    @Test("TIMER (Swift API): .timer(_:atWallClockTimeSinceEpoch:) and KEvent.wallClockNow")
    func swiftWallClock() throws {
        let wall = KEvent.wallClockNow
        let real = realtimeNow()
        #expect(abs(wall.nanosecondCount - real) < 100 * nsPerMs, "wallClockNow is CLOCK_REALTIME")
        let queue = try KernelQueue()
        let target = KEvent.wallClockNow + .milliseconds(40)
        let change = KEvent.timer(1, atWallClockTimeSinceEpoch: target)
        #expect(change.fflags & noteAbsolute != 0)
        try queue.apply([change])
        guard let got = try nextTimerEvent(queue, 1) else { return }
        #expect(realtimeNow() >= target.nanosecondCount, "fired before its wall-clock time")
        #expect(!got.event.flags.contains(.clear))
        try queue.apply([timer(1, .delete, data: 0)])
        let past = try register(queue, [.timer(2, atWallClockTimeSinceEpoch: .seconds(1))])
        guard let now = try nextTimerEvent(queue, 2) else { return }
        #expect(now.call.after - past.after < nsPerSecond)
    }
}
