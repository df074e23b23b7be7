// EVFILT_TIMER add and delete through the C ABI (workload: Sources/TimerWorkloads;
// figures and method: docs/BENCHMARK-timers.md).
//
// One sample = one iteration = 1,024 timers: `kevent()` with 1,024 EV_ADD changes (periodic,
// NOTE_MSECONDS, periods 60-120 s so none fires) and/or `kevent()` with their 1,024
// EV_DELETE changes, no event list. The changelists are built once in setup. The scaling
// factor is .one (1,024 is not one of the framework's factors): figures are per 1,024 timers.
//
// - CABI.AddDelete1024: add then delete, both measured. The kqueue is empty between
//   iterations (a steady state: its tables and heap have their capacity after warmup).
// - CABI.Add1024 / CABI.Delete1024: only the add (or only the delete) is measured; the
//   other half runs outside startMeasurement/stopMeasurement.
// - CABI.AddDelete1024.Resident1M: as AddDelete1024, with 1,000,000 other periodic timers
//   registered in the same kqueue (heap depth 20), as in the scale target.
// - TimerfdEpoll.AddDelete1024: the baseline, 1,024 x (timerfd_create + timerfd_settime +
//   epoll_ctl ADD) then 1,024 x (epoll_ctl DEL + close). Time only; not gated.
//
// Gate: Thresholds/TimerBenchmarks.CABI.*.p90.json hold `"mallocCountTotal": 0` with zero
// tolerance: one malloc per 1,024 timers in steady state fails `thresholds check`.
import Benchmark
import Glibc
import TimerWorkloads

final class TimerSlot: @unchecked Sendable {
    var kqueue: KQueueTimers?
    var baseline: TimerfdTimers?
    /// Idents of the measured timers start here (past the resident ones).
    var first = 0

    func close() {
        kqueue?.close()
        kqueue = nil
        baseline?.close()
        baseline = nil
    }
}

enum Half { case both, add, delete }

let benchmarks: @Sendable () -> Void = {
    let exact = BenchmarkThresholds(relative: BenchmarkThresholds.Relative.none, absolute: [.p90: 0])
    let batch = TimerParameters.batch

    Benchmark.defaultConfiguration = .init(
        // .instructions: no hardware counters in this VM; .syscalls: not implemented on Linux
        // by the framework (see docs/BENCHMARK-socketpair.md).
        metrics: [.wallClock, .mallocCountTotal],
        timeUnits: .microseconds,
        warmupIterations: 20,
        scalingFactor: .one,
        maxDuration: .seconds(3),
        maxIterations: 2_000,
        thresholds: [.mallocCountTotal: exact]
    )

    func kqueueBenchmark(_ name: String, half: Half, resident: Int) {
        let slot = TimerSlot()
        Benchmark(
            name,
            closure: { benchmark in
                guard let timers = slot.kqueue else { fatalError("setup did not run") }
                if half == .delete { precondition(timers.submitAdd(count: batch) == 0) }
                benchmark.startMeasurement()
                if half != .delete { precondition(timers.submitAdd(count: batch) == 0) }
                if half == .both { precondition(timers.submitDelete(count: batch) == 0) }
                if half == .delete { precondition(timers.submitDelete(count: batch) == 0) }
                benchmark.stopMeasurement()
                if half == .add { precondition(timers.submitDelete(count: batch) == 0) }
            },
            setup: {
                let timers = try KQueueTimers()
                var first = 0
                while first < resident {
                    let count = min(batch, resident - first)
                    timers.prepareAdd(first: first, count: count)
                    guard timers.submitAdd(count: count) == 0 else {
                        throw TimerSetupError(call: "kevent(EV_ADD) resident \(first)", errno: errno)
                    }
                    first += count
                }
                timers.prepareAdd(first: resident, count: batch)
                timers.prepareDelete(first: resident, count: batch)
                slot.first = resident
                slot.kqueue = timers
            },
            teardown: { slot.close() }
        )
    }

    kqueueBenchmark("CABI.AddDelete1024", half: .both, resident: 0)
    kqueueBenchmark("CABI.Add1024", half: .add, resident: 0)
    kqueueBenchmark("CABI.Delete1024", half: .delete, resident: 0)
    kqueueBenchmark("CABI.AddDelete1024.Resident1M", half: .both, resident: 1_000_000)

    let baselineSlot = TimerSlot()
    Benchmark(
        "TimerfdEpoll.AddDelete1024",
        configuration: .init(thresholds: [:]),
        closure: { benchmark in
            guard let timers = baselineSlot.baseline else { fatalError("setup did not run") }
            benchmark.startMeasurement()
            if let error = timers.add(first: 0, count: batch) { fatalError("\(error)") }
            if let error = timers.delete(first: 0, count: batch) { fatalError("\(error)") }
            benchmark.stopMeasurement()
        },
        setup: { baselineSlot.baseline = try TimerfdTimers(capacity: batch) },
        teardown: { baselineSlot.close() }
    )
}
