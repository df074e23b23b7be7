// BackendRatio: the chain workload on the two readiness backends (Swift API) against raw
// epoll, interleaved in one process, one table of paired ratios and mallocs per event.
//
//   cd Benchmarks && swift run -c release BackendRatio [--scenario persistent|dispatch]
//       [--pairs N (1000)] [--active A (100)] [--rounds R (60)] [--block K (5)]
//
// persistent: level-triggered registrations; baseline raw epoll + one ioctl(FIONREAD) per
//             event (what `data` costs an exact emulation on epoll).
// dispatch:   EV_DISPATCH, each event re-enabled by an EV_ENABLE in the next call's
//             changelist; baseline raw epoll with EPOLLONESHOT + EPOLL_CTL_MOD per event.
//             With one active chain every call carries exactly one change.
// --tcp:      loopback TCP connections instead of AF_UNIX socketpairs (io_uring then takes
//             READ's byte count through the ring, SIOCINQ, instead of FIONREAD).
// Method as ChainRatio's: rounds of K timed iterations (1,000 events each) per workload,
// order rotated each round; paired ratio = median over rounds of the ratio of block medians.
import CMallocCounter
import ChainWorkloads
import Glibc

var scenario = ChainRegistration.persistent
var shape = ChainShape(pairs: 1_000, active: 100)
var rounds = 60
var block = 5
var only: String? = nil
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    func number() -> Int {
        guard let text = arguments.next(), let n = Int(text), n > 0 else { fatalError("\(argument) needs a number") }
        return n
    }
    switch argument {
    case "--scenario":
        guard let text = arguments.next(), let value = ChainRegistration(rawValue: text) else {
            fatalError("--scenario persistent|dispatch")
        }
        scenario = value
    case "--pairs": shape.pairs = number()
    case "--active": shape.active = number()
    case "--rounds": rounds = number()
    case "--block": block = number()
    case "--tcp": shape.tcp = true  // loopback TCP: READ's data through the ring's SIOCINQ
    case "--only": only = arguments.next()  // one workload by name prefix, for strace or perf
    default: fatalError("unknown argument \(argument)")
    }
}
ChainWorkloads.raiseDescriptorLimit(to: shape.pairs * 10 + 256)

func now() -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return .nan }
    return sorted.count % 2 == 1
        ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

func fixed(_ value: Double, _ digits: Int) -> String {
    var buffer = [CChar](repeating: 0, count: 64)
    _ = withVaList([value]) { vsnprintf(&buffer, buffer.count, "%.\(digits)f", $0) }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

func loadAverage() -> String {
    guard let file = fopen("/proc/loadavg", "r") else { return "?" }
    defer { fclose(file) }
    var buffer = [CChar](repeating: 0, count: 128)
    _ = fgets(&buffer, 128, file)
    return String(decoding: buffer.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

var workloads: [any ChainWorkload]
let baseline: String
do {
    switch scenario {
    case .persistent:
        baseline = "raw epoll+FIONREAD"
        workloads = [
            try BackendChain(name: "epoll backend", backend: .epoll, registration: .persistent, shape: shape),
            try BackendChain(name: "io_uring backend", backend: .ioURing, registration: .persistent, shape: shape),
            try RawEpollShapedChain(name: "raw epoll", registration: .persistent, shape: shape),
            try RawEpollShapedChain(name: baseline, registration: .persistent, withByteCount: true, shape: shape),
        ]
    case .dispatch:
        baseline = "raw epoll oneshot"
        workloads = [
            try BackendChain(name: "epoll backend", backend: .epoll, registration: .dispatch, shape: shape),
            try BackendChain(name: "io_uring backend", backend: .ioURing, registration: .dispatch, shape: shape),
            try RawEpollShapedChain(name: baseline, registration: .dispatch, shape: shape),
        ]
    }
} catch {
    print("setup failed: \(error)")
    exit(1)
}

if let only {
    for workload in workloads where !workload.name.hasPrefix(only) { workload.close() }
    workloads = workloads.filter { $0.name.hasPrefix(only) }
    for workload in workloads {
        for _ in 0..<(rounds * block) { workload.runIteration() }
        print("\(workload.name): \(workload.eventsHandled) events")
        workload.close()
    }
    exit(0)
}

var machine = utsname()
uname(&machine)
let kernel = withUnsafeBytes(of: &machine.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
print(
    "BackendRatio \(scenario.rawValue): \(shape.pairs) \(shape.tcp ? "TCP connections" : "socketpairs"), \(shape.active) active, \(shape.writes) events per iteration; "
        + "\(rounds) rounds x \(block); Linux \(kernel), \(sysconf(Int32(_SC_NPROCESSORS_ONLN))) cores; load \(loadAverage())"
)

for workload in workloads {
    for _ in 0..<20 { workload.runIteration() }
}
var roundMedians = [[Double]](repeating: [], count: workloads.count)
var mallocs = [UInt64](repeating: 0, count: workloads.count)
var events = [Int](repeating: 0, count: workloads.count)
var times = [Double](repeating: 0, count: block)
for round in 0..<rounds {
    for offset in workloads.indices {
        let w = (round + offset) % workloads.count
        let before = workloads[w].eventsHandled
        chain_malloc_reset()
        chain_malloc_counting(1)
        for i in 0..<block {
            let start = now()
            workloads[w].runIteration()
            times[i] = Double(now() - start)
        }
        chain_malloc_counting(0)
        mallocs[w] += chain_malloc_count()
        events[w] += workloads[w].eventsHandled - before
        roundMedians[w].append(median(times))
    }
}
let base = workloads.firstIndex { $0.name == baseline }!
let epollBackend = workloads.firstIndex { $0.name == "epoll backend" }!
@MainActor func paired(_ w: Int, _ against: Int) -> Double {
    median(zip(roundMedians[w], roundMedians[against]).map { $0 / $1 })
}
print("workload              ns/event   vs \(baseline)   vs epoll backend   mallocs/event")
for w in workloads.indices {
    let name = workloads[w].name + String(repeating: " ", count: max(0, 20 - workloads[w].name.count))
    let perEvent = median(roundMedians[w]) / Double(shape.writes)
    print(
        "\(name)  \(fixed(perEvent, 0).leftPadded(8))   \(fixed(paired(w, base), 3).leftPadded(8))x"
            + "   \(fixed(paired(w, epollBackend), 3).leftPadded(12))x   \(fixed(Double(mallocs[w]) / Double(max(1, events[w])), 4).leftPadded(12))"
    )
}
for workload in workloads { workload.close() }
print("load at end: \(loadAverage())")

extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}
