// ChainRatio: the socketpair-chain workload through (a) the C ABI, (b) the Swift API and
// (c) raw epoll, interleaved in one process, with one table of medians and ratios.
//
//   cd Benchmarks && swift run -c release ChainRatio [--rounds N] [--block K] [--warmup W]
//
// A round runs a block of K timed iterations of every workload, back to back, the order
// rotated from round to round so that no interface always runs first or last; each iteration
// (1,000 events) is timed on its own with CLOCK_MONOTONIC. Short blocks keep the three
// interfaces' samples close together in time, so interference from other processes on a
// shared machine hits all three alike; the "paired" ratio is the median over rounds of
// (median of the workload's block) / (median of raw epoll's block in the same round).
//
// Mallocs are counted by CMallocCounter (every malloc-family call of the process) during the
// timed iterations only, and divided by the events handled.
import CMallocCounter
import ChainWorkloads
import Glibc

struct Options {
    var rounds = 200
    var block = 10
    var warmup = 100
    /// Run only these workloads (for profiling one interface, e.g. under perf or strace).
    var only: [String] = []

    init(_ arguments: [String]) {
        var i = 1
        func value() -> Int {
            i += 1
            guard i < arguments.count, let n = Int(arguments[i]), n > 0 else {
                fatalError("\(arguments[i - 1]) needs a positive number")
            }
            return n
        }
        while i < arguments.count {
            switch arguments[i] {
            case "--rounds": rounds = value()
            case "--block": block = value()
            case "--warmup": warmup = value()
            case "--only":
                i += 1
                guard i < arguments.count else { fatalError("--only needs CABI, SwiftAPI or RawEpoll") }
                only.append(arguments[i])
            case "-h", "--help":
                print(
                    """
                    usage: ChainRatio [--rounds N (200)] [--block K (10)] [--warmup W (100)] [--only CABI|SwiftAPI|RawEpoll]...
                      N rounds of K timed iterations per workload, after W untimed iterations each.
                    """)
                exit(0)
            default: fatalError("unknown argument \(arguments[i]); try --help")
            }
            i += 1
        }
    }
}

@inline(__always)
func nowNanoseconds() -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
}

/// The `p` quantile of sorted values, interpolated between neighbours.
func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    let rank = p * Double(sorted.count - 1)
    let low = Int(rank.rounded(.down))
    let high = min(low + 1, sorted.count - 1)
    let fraction = rank - Double(low)
    return sorted[low] * (1 - fraction) + sorted[high] * fraction
}

func fixed(_ value: Double, _ digits: Int) -> String {
    var buffer = [CChar](repeating: 0, count: 64)
    _ = withVaList([value]) { vsnprintf(&buffer, buffer.count, "%.\(digits)f", $0) }
    return cString(buffer)
}

func pad(_ s: String, _ width: Int, right: Bool = false) -> String {
    let fill = String(repeating: " ", count: max(0, width - s.count))
    return right ? fill + s : s + fill
}

func readFirstLine(_ path: String) -> String {
    guard let file = fopen(path, "r") else { return "?" }
    defer { fclose(file) }
    var buffer = [CChar](repeating: 0, count: 512)
    guard fgets(&buffer, Int32(buffer.count), file) != nil else { return "?" }
    var line = cString(buffer)
    while line.last == "\n" { line.removeLast() }
    return line
}

/// The NUL-terminated string in `buffer`.
func cString(_ buffer: [CChar]) -> String {
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}

let options = Options(CommandLine.arguments)
var system = utsname()
uname(&system)
let kernel = withUnsafeBytes(of: &system.release) { raw in
    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
}
let cores = sysconf(Int32(_SC_NPROCESSORS_ONLN))

print(
    "SocketPairChain ratio run: \(ChainParameters.pairs) AF_UNIX socketpairs, \(ChainParameters.activeChains) chains in flight,"
)
print(
    "\(ChainParameters.writesPerIteration) chained one-byte writes per iteration, \(ChainParameters.eventBufferCapacity)-entry event buffer, level-triggered reads"
)
print("machine: \(cores) cores, Linux \(kernel); load average at start: \(readFirstLine("/proc/loadavg"))")
print(
    "\(options.rounds) rounds x \(options.block) timed iterations per workload (\(options.rounds * options.block) each), interleaved, order rotated every round; warmup \(options.warmup) iterations each"
)
print("")

// The malloc counter must see allocations, or its zeros mean nothing.
chain_malloc_reset()
chain_malloc_counting(1)
let probe = UnsafeMutableRawPointer.allocate(byteCount: 24, alignment: 8)
probe.deallocate()
let probeArray = [Int](repeating: 7, count: Int(getpid() % 3) + 5)
chain_malloc_counting(0)
guard chain_malloc_count() >= 2, chain_free_count() >= 1, probeArray.count >= 5 else {
    print("malloc counter self-test failed: \(chain_malloc_count()) mallocs, \(chain_free_count()) frees seen")
    exit(1)
}

let workloads: [any ChainWorkload]
do {
    workloads = options.only.isEmpty ? try ChainWorkloads.makeAll() : try options.only.map(ChainWorkloads.make)
} catch {
    print("setup failed: \(error)")
    exit(1)
}

// Warmup: page in, let the kernel's socket and epoll paths and the engine's buffers settle.
for workload in workloads {
    for _ in 0..<options.warmup { workload.runIteration() }
}

var samples = [[UInt64]](repeating: [], count: workloads.count)
var roundMedians = [[Double]](repeating: [], count: workloads.count)
var mallocs = [UInt64](repeating: 0, count: workloads.count)
var frees = [UInt64](repeating: 0, count: workloads.count)
var events = [Int](repeating: 0, count: workloads.count)
for w in workloads.indices {
    samples[w].reserveCapacity(options.rounds * options.block)
}
var blockTimes = [UInt64](repeating: 0, count: options.block)

for round in 0..<options.rounds {
    for offset in 0..<workloads.count {
        let w = (round + offset) % workloads.count
        let workload = workloads[w]
        let eventsBefore = workload.eventsHandled
        chain_malloc_reset()
        chain_malloc_counting(1)
        for i in 0..<options.block {
            let start = nowNanoseconds()
            workload.runIteration()
            blockTimes[i] = nowNanoseconds() - start
        }
        chain_malloc_counting(0)
        mallocs[w] += chain_malloc_count()
        frees[w] += chain_free_count()
        events[w] += workload.eventsHandled - eventsBefore
        samples[w].append(contentsOf: blockTimes)
        roundMedians[w].append(percentile(blockTimes.map { Double($0) }.sorted(), 0.5))
    }
}

for workload in workloads {
    let inFlight = workload.bytesInFlight()
    guard inFlight == ChainParameters.activeChains else {
        print("\(workload.name): \(inFlight) bytes in flight at the end, expected \(ChainParameters.activeChains)")
        exit(1)
    }
    workload.close()
}

let rawIndex = workloads.firstIndex { $0.name == "RawEpoll" } ?? 0
if workloads[rawIndex].name != "RawEpoll" { print("(no RawEpoll run: ratios are against \(workloads[rawIndex].name))") }
let sorted = samples.map { $0.map { Double($0) }.sorted() }
let medians = sorted.map { percentile($0, 0.5) }

let names = workloads.map(\.name)
var paired = [Double](repeating: 1, count: workloads.count)
print(
    pad("interface", 10) + pad("median/iter", 13, right: true) + pad("p10", 9, right: true) + pad("p90", 9, right: true)
        + pad("ns/event", 10, right: true) + pad("ratio", 8, right: true)
        + pad("paired ratio [p25-p75]", 25, right: true)
        + pad("mallocs/event", 15, right: true))
for w in workloads.indices {
    let perRound = zip(roundMedians[w], roundMedians[rawIndex]).map { $0 / $1 }.sorted()
    paired[w] = percentile(perRound, 0.5)
    let spread = "[\(fixed(percentile(perRound, 0.25), 3))-\(fixed(percentile(perRound, 0.75), 3))]"
    print(
        pad(names[w], 10) + pad("\(fixed(medians[w] / 1000, 1)) us", 13, right: true)
            + pad(fixed(percentile(sorted[w], 0.1) / 1000, 1), 9, right: true)
            + pad(fixed(percentile(sorted[w], 0.9) / 1000, 1), 9, right: true)
            + pad(fixed(medians[w] / Double(ChainParameters.writesPerIteration), 0), 10, right: true)
            + pad(fixed(medians[w] / medians[rawIndex], 3), 8, right: true)
            + pad("\(fixed(paired[w], 3)) \(spread)", 25, right: true)
            + pad(fixed(Double(mallocs[w]) / Double(events[w]), 4), 15, right: true))
}
print("(times in microseconds per iteration of 1,000 events; ratio = median / RawEpoll median;")
print(" paired ratio = median over rounds of the per-round ratio of block medians)")
print("")
for w in workloads.indices where w != rawIndex {
    print(
        "\(names[w])/\(names[rawIndex]) = \(fixed(medians[w] / medians[rawIndex], 3)) (ratio of medians), "
            + "\(fixed(paired[w], 3)) (paired)   target <= 1.150")
}
let totalMallocs = workloads.indices.map {
    "\(names[$0]) \(mallocs[$0]) mallocs / \(frees[$0]) frees over \(events[$0]) events"
}
print("malloc-family calls during the timed iterations: " + totalMallocs.joined(separator: "; "))
print("load average at end: \(readFirstLine("/proc/loadavg"))")
