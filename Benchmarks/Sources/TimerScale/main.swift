// TimerScale: EVFILT_TIMER at scale, KQueue through the C ABI against one timerfd per timer
// registered in an epoll instance, in one run (docs/BENCHMARK-timers.md).
//
//   cd Benchmarks && swift run -c release TimerScale [--n N] [--baseline-n M] [--rounds R] ...
//
// Targets (issue): 1,000,000 periodic timers in one kqueue: descriptors grow by at most 8;
// add plus delete at most 1 µs per timer in batches of 1,024 changes; resident memory at
// most 256 bytes per timer; expiry lateness p99 at most 200 µs for 100 one-shot 500 µs
// timers on an idle machine.
//
// Order of a run: lateness first (rounds interleaved, order alternating, nothing else
// alive), then the scale runs, each in a fresh child process (this executable with
// `--child kqueue|baseline N`, so that one run's freed memory cannot hide in the next one's
// RSS): KQueue with N timers, KQueue with the baseline's N, the baseline. The baseline's N is
// capped by RLIMIT_NOFILE (soft limit raised to the hard limit first): no figure is
// extrapolated beyond what was run.
import CMallocCounter
import Glibc
import TimerWorkloads

struct Options {
    var n = 1_000_000
    /// nil: as many as RLIMIT_NOFILE allows.
    var baselineN: Int? = nil
    var rounds = 200
    var lateness = true
    var scale = true
    var kqueue = true
    var baseline = true
    /// Also run KQueue with the baseline's N, for a comparison at equal size.
    var kqueueAtBaselineN = true
    /// Print each phase's CLOCK_MONOTONIC start and end (to cut a `perf record -k mono` profile).
    var printPhases = false

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
            case "--n": n = value()
            case "--baseline-n": baselineN = value()
            case "--rounds": rounds = value()
            case "--skip-lateness": lateness = false
            case "--skip-scale": scale = false
            case "--skip-equal-n": kqueueAtBaselineN = false
            case "--phases": printPhases = true
            case "--only":
                i += 1
                guard i < arguments.count else { fatalError("--only needs kqueue or baseline") }
                switch arguments[i] {
                case "kqueue": baseline = false
                case "baseline": kqueue = false
                default: fatalError("--only needs kqueue or baseline")
                }
            case "-h", "--help":
                print(
                    """
                    usage: TimerScale [--n N (1000000)] [--baseline-n M (RLIMIT_NOFILE headroom)] [--rounds R (200)]
                                      [--skip-lateness] [--skip-scale] [--skip-equal-n] [--only kqueue|baseline] [--phases]
                      --n            periodic timers added to one kqueue
                      --baseline-n   timerfds for the baseline (at most what RLIMIT_NOFILE allows)
                      --rounds       lateness rounds of 100 one-shot 500 us timers, per implementation
                      --skip-equal-n do not also run KQueue with the baseline's N
                      --phases       print CLOCK_MONOTONIC start/end of each add and delete phase (for perf -k mono)
                    each scale measurement runs in a child process: TimerScale --child kqueue|baseline N
                    """)
                exit(0)
            default: fatalError("unknown argument \(arguments[i]); try --help")
            }
            i += 1
        }
    }
}

// MARK: - Process figures

/// Open descriptors of this process (entries of /proc/self/fd, less the directory's own).
func openDescriptorCount() -> Int {
    guard let directory = opendir("/proc/self/fd") else { return -1 }
    var count = 0
    while let entry = readdir(directory) {
        if entry.pointee.d_name.0 != 46 { count += 1 }  // skip "." and ".."
    }
    closedir(directory)
    return count - 1
}

func readFile(_ path: String) -> String {
    guard let file = fopen(path, "r") else { return "" }
    defer { fclose(file) }
    var result = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = fread(&buffer, 1, buffer.count, file)
        if n <= 0 { break }
        result.append(contentsOf: buffer[0..<n])
    }
    return String(decoding: result, as: UTF8.self)
}

let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

/// Resident set size in bytes (second field of /proc/self/statm, in pages).
func residentBytes() -> Int {
    let fields = readFile("/proc/self/statm").split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return -1 }
    return pages * pageSize
}

/// A /proc/meminfo figure in bytes (system-wide).
func meminfoBytes(_ key: String) -> Int {
    for line in readFile("/proc/meminfo").split(separator: "\n") where line.hasPrefix(key + ":") {
        let parts = line.split(separator: " ", omittingEmptySubsequences: true)
        if parts.count >= 2, let kb = Int(parts[1]) { return kb * 1024 }
    }
    return -1
}

func firstLine(_ path: String) -> String {
    String(readFile(path).split(separator: "\n").first ?? "?")
}

// MARK: - Formatting

func fixed(_ value: Double, _ digits: Int) -> String {
    var buffer = [CChar](repeating: 0, count: 64)
    _ = withVaList([value]) { vsnprintf(&buffer, buffer.count, "%.\(digits)f", $0) }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

func grouped(_ value: Int) -> String {
    let digits = String(value.magnitude)
    var out = ""
    for (k, c) in digits.enumerated() {
        if k > 0 && (digits.count - k) % 3 == 0 { out.append(",") }
        out.append(c)
    }
    return (value < 0 ? "-" : "") + out
}

func pad(_ s: String, _ width: Int, right: Bool = false) -> String {
    let fill = String(repeating: " ", count: max(0, width - s.count))
    return right ? fill + s : s + fill
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

// MARK: - Scale

struct ScaleResult {
    var name: String
    var n: Int
    var fdsBefore = 0
    var fdsAfterCreate = 0
    var fdsAfterAdd = 0
    var fdsAfterDelete = 0
    var fdsAfterClose = 0
    /// Sums of the timed calls (ns).
    var addNs: Int64 = 0
    var deleteNs: Int64 = 0
    /// ns per timer of each full batch (child process only; the parent gets the summary).
    var addBatches: [Double] = []
    var deleteBatches: [Double] = []
    /// p50, p99 and max of the batches' ns per timer.
    var addSummary: [Double] = []
    var deleteSummary: [Double] = []
    var rssBefore = 0
    var rssAfterAdd = 0
    var rssAfterDelete = 0
    var slabBefore = 0
    var slabAfterAdd = 0
    var mallocsAdd: UInt64 = 0
    var mallocsDelete: UInt64 = 0
    /// CLOCK_MONOTONIC at the start and end of each phase (for matching a perf profile).
    var phases: [Int64] = [0, 0, 0, 0]

    init(name: String, n: Int) {
        self.name = name
        self.n = n
        addBatches.reserveCapacity(n / TimerParameters.batch + 1)
        deleteBatches.reserveCapacity(n / TimerParameters.batch + 1)
    }

    var descriptorGrowth: Int { fdsAfterAdd - fdsBefore }
    var addPerTimer: Double { Double(addNs) / Double(n) }
    var deletePerTimer: Double { Double(deleteNs) / Double(n) }
    var rssPerTimer: Double { Double(rssAfterAdd - rssBefore) / Double(n) }
    var slabPerTimer: Double { Double(slabAfterAdd - slabBefore) / Double(n) }

    static func summary(_ values: [Double]) -> [Double] {
        let s = values.sorted()
        return [percentile(s, 0.5), percentile(s, 0.99), s.last ?? .nan]
    }

    /// One line for the parent: `RESULT` and the numbers, space-separated.
    func serialized() -> String {
        let integers: [Int64] =
            [
                Int64(n), Int64(fdsBefore), Int64(fdsAfterCreate), Int64(fdsAfterAdd), Int64(fdsAfterDelete),
                Int64(fdsAfterClose), addNs, deleteNs, Int64(rssBefore), Int64(rssAfterAdd), Int64(rssAfterDelete),
                Int64(slabBefore), Int64(slabAfterAdd), Int64(mallocsAdd), Int64(mallocsDelete),
            ] + phases
        let doubles = Self.summary(addBatches) + Self.summary(deleteBatches)
        return "RESULT " + (integers.map { String($0) } + doubles.map { fixed($0, 3) }).joined(separator: " ")
    }

    init?(name: String, line: Substring) {
        let fields = line.split(separator: " ").dropFirst().map(String.init)
        guard fields.count == 25 else { return nil }
        let i = fields[0..<19].compactMap { Int64($0) }
        let d = fields[19..<25].compactMap { Double($0) }
        guard i.count == 19, d.count == 6 else { return nil }
        self.init(name: name, n: Int(i[0]))
        fdsBefore = Int(i[1])
        fdsAfterCreate = Int(i[2])
        fdsAfterAdd = Int(i[3])
        fdsAfterDelete = Int(i[4])
        fdsAfterClose = Int(i[5])
        addNs = i[6]
        deleteNs = i[7]
        rssBefore = Int(i[8])
        rssAfterAdd = Int(i[9])
        rssAfterDelete = Int(i[10])
        slabBefore = Int(i[11])
        slabAfterAdd = Int(i[12])
        mallocsAdd = UInt64(i[13])
        mallocsDelete = UInt64(i[14])
        phases = Array(i[15..<19])
        addSummary = Array(d[0..<3])
        deleteSummary = Array(d[3..<6])
    }
}

func fail(_ message: String) -> Never {
    print("FAILED: \(message)")
    exit(1)
}

func batches(_ n: Int, _ body: (_ first: Int, _ count: Int) -> Void) {
    var first = 0
    while first < n {
        let count = min(TimerParameters.batch, n - first)
        body(first, count)
        first += count
    }
}

/// One pass over N timers in batches (add or delete), with mallocs counted: its start and end
/// times, the time spent in `submit` (`prepare` is not timed), the per-timer time of each full
/// batch, and the number of mallocs. `submit` returns an error message, or nil.
func timedPass(
    _ n: Int, prepare: (_ first: Int, _ count: Int) -> Void = { _, _ in },
    submit: (_ first: Int, _ count: Int) -> String?
) -> (start: Int64, end: Int64, ns: Int64, batches: [Double], mallocs: UInt64) {
    var ns: Int64 = 0
    var perTimer: [Double] = []
    chain_malloc_reset()
    chain_malloc_counting(1)
    let passStart = monotonicNanoseconds()
    batches(n) { first, count in
        prepare(first, count)
        let start = monotonicNanoseconds()
        let error = submit(first, count)
        let elapsed = monotonicNanoseconds() - start
        if let error { fail(error) }
        ns += elapsed
        if count == TimerParameters.batch { perTimer.append(Double(elapsed) / Double(count)) }
    }
    let passEnd = monotonicNanoseconds()
    chain_malloc_counting(0)
    return (passStart, passEnd, ns, perTimer, chain_malloc_count())
}

func runKQueueScale(n: Int, label: String) -> ScaleResult {
    var r = ScaleResult(name: label, n: n)
    r.fdsBefore = openDescriptorCount()
    let timers: KQueueTimers
    do { timers = try KQueueTimers() } catch { fail("\(error)") }
    r.fdsAfterCreate = openDescriptorCount()
    r.rssBefore = residentBytes()
    r.slabBefore = meminfoBytes("Slab")
    let add = timedPass(n, prepare: timers.prepareAdd) { first, count in
        let rc = timers.submitAdd(count: count)
        return rc == 0 ? nil : "kevent(EV_ADD x \(count)) at timer \(first) returned \(rc), errno \(Glibc.errno)"
    }
    (r.phases[0], r.phases[1], r.addNs, r.addBatches, r.mallocsAdd) = add
    r.rssAfterAdd = residentBytes()
    r.slabAfterAdd = meminfoBytes("Slab")
    r.fdsAfterAdd = openDescriptorCount()
    // EV_DELETE of a timer that is not there fails the call (ENOENT): a full delete pass
    // also proves that all N timers were registered.
    let delete = timedPass(n, prepare: timers.prepareDelete) { first, count in
        let rc = timers.submitDelete(count: count)
        return rc == 0 ? nil : "kevent(EV_DELETE x \(count)) at timer \(first) returned \(rc), errno \(Glibc.errno)"
    }
    (r.phases[2], r.phases[3], r.deleteNs, r.deleteBatches, r.mallocsDelete) = delete
    r.rssAfterDelete = residentBytes()
    r.fdsAfterDelete = openDescriptorCount()
    timers.close()
    r.fdsAfterClose = openDescriptorCount()
    return r
}

func runBaselineScale(n: Int) -> ScaleResult {
    var r = ScaleResult(name: "timerfd+epoll", n: n)
    r.fdsBefore = openDescriptorCount()
    let timers: TimerfdTimers
    do { timers = try TimerfdTimers(capacity: n) } catch { fail("\(error)") }
    r.fdsAfterCreate = openDescriptorCount()
    r.rssBefore = residentBytes()
    r.slabBefore = meminfoBytes("Slab")
    let add = timedPass(n) { first, count in timers.add(first: first, count: count).map { "baseline add: \($0)" } }
    (r.phases[0], r.phases[1], r.addNs, r.addBatches, r.mallocsAdd) = add
    r.rssAfterAdd = residentBytes()
    r.slabAfterAdd = meminfoBytes("Slab")
    r.fdsAfterAdd = openDescriptorCount()
    let delete = timedPass(n) { first, count in
        timers.delete(first: first, count: count).map { "baseline delete: \($0)" }
    }
    (r.phases[2], r.phases[3], r.deleteNs, r.deleteBatches, r.mallocsDelete) = delete
    r.rssAfterDelete = residentBytes()
    r.fdsAfterDelete = openDescriptorCount()
    timers.close()
    r.fdsAfterClose = openDescriptorCount()
    return r
}

// MARK: - Child processes

/// Each scale measurement runs in a fresh process (this executable with `--child`), so its
/// RSS is not flattered or inflated by memory an earlier measurement left in the allocator.
func executablePath() -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard n > 0 else { fail("readlink(/proc/self/exe)") }
    return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

func runChild(kind: String, n: Int, name: String) -> ScaleResult {
    var fds: [Int32] = [-1, -1]
    guard pipe(&fds) == 0 else { fail("pipe") }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
    posix_spawn_file_actions_addclose(&actions, fds[0])
    posix_spawn_file_actions_addclose(&actions, fds[1])
    let path = executablePath()
    let arguments = [path, "--child", kind, String(n)]
    var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
    var pid = pid_t()
    let rc = posix_spawn(&pid, path, &actions, nil, &argv, environ)
    posix_spawn_file_actions_destroy(&actions)
    for p in argv { free(p) }
    _ = close(fds[1])
    guard rc == 0 else { fail("posix_spawn: \(rc)") }
    var output = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let got = read(fds[0], &buffer, buffer.count)
        if got < 0 && errno == EINTR { continue }
        if got <= 0 { break }
        output.append(contentsOf: buffer[0..<got])
    }
    _ = close(fds[0])
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let text = String(decoding: output, as: UTF8.self)
    guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("RESULT ") }),
        let result = ScaleResult(name: name, line: line)
    else { fail("child \(kind) \(n) (status \(status)) printed: \(text)") }
    return result
}

// MARK: - Run

if CommandLine.arguments.count == 4 && CommandLine.arguments[1] == "--child" {
    guard let n = Int(CommandLine.arguments[3]), n > 0 else { fail("--child needs a count") }
    // The malloc counter must see allocations, or its zeros mean nothing.
    chain_malloc_reset()
    chain_malloc_counting(1)
    let probe = UnsafeMutableRawPointer.allocate(byteCount: 24, alignment: 8)
    probe.deallocate()
    chain_malloc_counting(0)
    guard chain_malloc_count() >= 1, chain_free_count() >= 1 else { fail("malloc counter self-test") }
    switch CommandLine.arguments[2] {
    case "kqueue": print(runKQueueScale(n: n, label: "KQueue").serialized())
    case "baseline": print(runBaselineScale(n: n).serialized())
    default: fail("--child kqueue|baseline N")
    }
    exit(0)
}

let options = Options(CommandLine.arguments)

// Descriptor limit: soft raised to hard (children inherit it).
var limit = rlimit()
getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
let softBefore = limit.rlim_cur
limit.rlim_cur = limit.rlim_max
if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) != 0 { print("setrlimit failed: errno \(errno)") }
getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
let descriptorLimit = Int(limit.rlim_cur)

var system = utsname()
uname(&system)
let kernel = withUnsafeBytes(of: &system.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
let model =
    readFile("/proc/cpuinfo").split(separator: "\n").first { $0.hasPrefix("model name") }.map {
        String($0.split(separator: ":", maxSplits: 1).last ?? "?").trimmingPrefix(" ")
    } ?? "?"
print("TimerScale: EVFILT_TIMER through the C ABI (libkqueue.so) vs one timerfd per timer in epoll")
print("machine: \(sysconf(Int32(_SC_NPROCESSORS_ONLN))) cores (\(model)), Linux \(kernel), page \(pageSize) B")
print("RLIMIT_NOFILE: soft \(softBefore) raised to hard \(limit.rlim_max); now \(descriptorLimit)")
print("load average at start: \(firstLine("/proc/loadavg"))")
print("")

// Lateness.
var latenessSamples: [String: [Double]] = [:]
var registrationSamples: [String: [Double]] = [:]
/// The latest delivery of each round (ns), sorted.
var roundMaxima: [String: [Double]] = [:]
var latenessNames: [String] = []
if options.lateness {
    var probes: [any LatenessProbe] = []
    do {
        if options.kqueue { probes.append(try KQueueLatenessProbe()) }
        if options.baseline { probes.append(try TimerfdLatenessProbe()) }
    } catch { fail("\(error)") }
    latenessNames = probes.map(\.name)
    var samples = [[Int64]](repeating: [], count: probes.count)
    var registrations = [[Int64]](repeating: [], count: probes.count)
    var maxima = [[Int64]](repeating: [], count: probes.count)
    for p in probes.indices { samples[p].reserveCapacity(options.rounds * LatenessParameters.timers) }
    // Two untimed rounds each: page in, create the timerfd, grow the tables.
    var scratch: [Int64] = []
    for p in probes { for _ in 0..<2 { _ = p.runRound(into: &scratch); scratch.removeAll(keepingCapacity: true) } }
    for round in 0..<options.rounds {
        for offset in probes.indices {
            let p = (round + offset) % probes.count
            usleep(2_000)  // let the previous round's wakeups settle
            let before = samples[p].count
            registrations[p].append(probes[p].runRound(into: &samples[p]))
            maxima[p].append(samples[p][before...].max()!)
        }
    }
    for p in probes.indices {
        latenessSamples[probes[p].name] = samples[p].map { Double($0) }.sorted()
        registrationSamples[probes[p].name] = registrations[p].map { Double($0) }.sorted()
        roundMaxima[probes[p].name] = maxima[p].map { Double($0) }.sorted()
        probes[p].close()
    }
}

// Scale, each in a child process.
var scaleResults: [ScaleResult] = []
// What a child may use: the limit less its stdio, the epoll descriptor, /proc/self/fd's
// directory and a margin.
let baselineCap = descriptorLimit - 16
let baselineN = min(options.baselineN ?? baselineCap, baselineCap)
if options.scale {
    if options.kqueue {
        scaleResults.append(runChild(kind: "kqueue", n: options.n, name: "KQueue"))
        if options.baseline && options.kqueueAtBaselineN && baselineN != options.n {
            scaleResults.append(runChild(kind: "kqueue", n: baselineN, name: "KQueue, N as baseline"))
        }
    }
    if options.baseline { scaleResults.append(runChild(kind: "baseline", n: baselineN, name: "timerfd+epoll")) }
}

// MARK: - Report

func verdict(_ ok: Bool) -> String { ok ? "PASS" : "FAIL" }

if !scaleResults.isEmpty {
    let width = 26
    var header = pad("", 44)
    for r in scaleResults { header += pad(r.name, width, right: true) }
    print(header)
    func row(_ title: String, _ cell: (ScaleResult) -> String) {
        var line = pad(title, 44)
        for r in scaleResults { line += pad(cell(r), width, right: true) }
        print(line)
    }
    row("timers (N)") { grouped($0.n) }
    row("descriptors before kqueue()/epoll_create1") { "\($0.fdsBefore)" }
    row("descriptors after creating it") { "\($0.fdsAfterCreate)" }
    row("descriptors after adding N") { grouped($0.fdsAfterAdd) }
    row("descriptor growth (target <= 8)") { "+\(grouped($0.descriptorGrowth)) \(verdict($0.descriptorGrowth <= 8))" }
    row("descriptors after delete / after close") { "\(grouped($0.fdsAfterDelete)) / \($0.fdsAfterClose)" }
    row("add: ns per timer (sum of calls / N)") { fixed($0.addPerTimer, 1) }
    row("add: ns/timer per batch p50 / p99 / max") {
        "\(fixed($0.addSummary[0], 0)) / \(fixed($0.addSummary[1], 0)) / \(fixed($0.addSummary[2], 0))"
    }
    row("add: longest batch of 1,024 (ms)") { fixed($0.addSummary[2] * Double(TimerParameters.batch) / 1e6, 1) }
    row("delete: ns per timer") { fixed($0.deletePerTimer, 1) }
    row("delete: ns/timer per batch p50 / p99 / max") {
        "\(fixed($0.deleteSummary[0], 0)) / \(fixed($0.deleteSummary[1], 0)) / \(fixed($0.deleteSummary[2], 0))"
    }
    row("add + delete: ns per timer (target <= 1000)") {
        let total = $0.addPerTimer + $0.deletePerTimer
        return "\(fixed(total, 1)) \(verdict(total <= 1000))"
    }
    row("RSS before adding (MiB)") { fixed(Double($0.rssBefore) / 1_048_576, 1) }
    row("RSS after adding (MiB)") { fixed(Double($0.rssAfterAdd) / 1_048_576, 1) }
    row("RSS after deleting (MiB)") { fixed(Double($0.rssAfterDelete) / 1_048_576, 1) }
    row("RSS growth: bytes per timer (target <= 256)") {
        "\(fixed($0.rssPerTimer, 1)) \(verdict($0.rssPerTimer <= 256))"
    }
    row("kernel Slab growth, system-wide: B/timer") { fixed($0.slabPerTimer, 0) }
    if options.printPhases {
        row("add phase, CLOCK_MONOTONIC ns") { "\($0.phases[0])-\($0.phases[1])" }
        row("delete phase, CLOCK_MONOTONIC ns") { "\($0.phases[2])-\($0.phases[3])" }
    }
    row("mallocs: add phase / delete phase") { "\(grouped(Int($0.mallocsAdd))) / \(grouped(Int($0.mallocsDelete)))" }
    print("(add/delete times are the sums of the timed calls: for KQueue one kevent() per batch of")
    print(" \(TimerParameters.batch) changes, no event list; for the baseline timerfd_create + timerfd_settime +")
    print(" epoll_ctl(ADD) per timer, and epoll_ctl(DEL) + close per timer, timed per \(TimerParameters.batch) timers.")
    print(" RSS is user memory only: the baseline's per-timer memory is kernel memory, seen in the Slab row,")
    print(" which is system-wide and so also moves with other processes.)")
    if options.baseline {
        let b = scaleResults.last!
        print(
            "baseline N = \(grouped(b.n)): capped by RLIMIT_NOFILE (hard limit \(descriptorLimit), less 16 for the process's own descriptors); not extrapolated."
        )
    }
    print(
        "periods: \(TimerParameters.shortestPeriodMilliseconds / 1000)-\((TimerParameters.shortestPeriodMilliseconds + Int64(TimerParameters.periodSpreadMilliseconds)) / 1000) s, spread pseudo-randomly (no timer fires during the scale runs)"
    )
    print("")
}

if !latenessNames.isEmpty {
    print(
        "expiry lateness: \(LatenessParameters.timers) one-shot \(LatenessParameters.delayMicroseconds) us timers registered at once, \(options.rounds) rounds each (\(options.rounds * LatenessParameters.timers) samples), interleaved"
    )
    print(
        "lateness = CLOCK_MONOTONIC after the wait call returns - (CLOCK_MONOTONIC before the registering call(s) + 500 us)"
    )
    print(
        pad("", 16) + pad("p50 us", 10, right: true) + pad("p90 us", 10, right: true) + pad("p99 us", 10, right: true)
            + pad("max us", 10, right: true) + pad("min us", 10, right: true)
            + pad("register p50/max us", 22, right: true)
            + pad("p99 <= 200 us", 16, right: true))
    for name in latenessNames {
        let s = latenessSamples[name]!
        let reg = registrationSamples[name]!
        let p99 = percentile(s, 0.99) / 1000
        print(
            pad(name, 16) + pad(fixed(percentile(s, 0.5) / 1000, 1), 10, right: true)
                + pad(fixed(percentile(s, 0.9) / 1000, 1), 10, right: true) + pad(fixed(p99, 1), 10, right: true)
                + pad(fixed(s.last! / 1000, 1), 10, right: true) + pad(fixed(s.first! / 1000, 1), 10, right: true)
                + pad("\(fixed(percentile(reg, 0.5) / 1000, 1)) / \(fixed(reg.last! / 1000, 1))", 22, right: true)
                + pad(verdict(p99 <= 200), 16, right: true))
    }
    for name in latenessNames {
        let m = roundMaxima[name]!
        let over = m.filter { $0 > 200_000 }.count
        let worst = m.suffix(3).reversed().map { fixed($0 / 1000, 1) }.joined(separator: ", ")
        print(
            "\(name): \(over) of \(m.count) rounds had a delivery later than 200 us; latest deliveries of the 3 worst rounds: \(worst) us"
        )
    }
    print(
        "(the \(LatenessParameters.timers) timers of a round are delivered together: one disturbed round moves \(fixed(100 / Double(options.rounds), 1))% of the samples)"
    )
    print("")
}
print("load average at end: \(firstLine("/proc/loadavg"))")
