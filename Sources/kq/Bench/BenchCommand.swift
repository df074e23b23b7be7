import ArgumentParser
import Glibc
import KQueue

/// `kq bench`: the cost of one wait as the number of registered descriptors grows, for
/// KQueue (Swift API and C ABI), raw epoll, poll and select, interleaved in one run.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Measure the cost of one wait against the number of registered descriptors (KQueue, epoll, poll, select).")

    @Flag(help: "A short run (for CI): fewer points and rounds.") var quick = false
    @Flag(help: "A longer run with more points.") var full = false
    @Option(help: "Where to write the SVG plot.") var output = "kq-bench.svg"
    @Option(help: "Events handled per measurement.") var events: Int?
    @Option(help: "Rounds per point (the median is reported).") var rounds: Int?
    @Option(
        help: "The kqueue backends to measure: epoll, io_uring or both (default: both where io_uring is available).")
    var backend: String?

    func run() throws {
        let sizes = quick ? [100, 1_000] : full ? [100, 300, 1_000, 3_000, 10_000] : [100, 1_000, 10_000]
        let activeCounts = [1, 100]
        let rounds = self.rounds ?? (quick ? 3 : full ? 9 : 5)
        let eventsPerRun = self.events ?? (quick ? 400 : 2_000)
        let limit = DescriptorLimit.raise(toAtLeast: (sizes.max() ?? 0) + 64)
        print(limit.message)
        let usableSizes = sizes.filter { $0 + 64 <= limit.available }
        if usableSizes.count < sizes.count {
            print(
                "note: skipping N = \(sizes.filter { !usableSizes.contains($0) }) (descriptor limit \(limit.available))"
            )
        }
        let ringAvailable = KernelQueue.backendReport.ioURingUnavailable == nil
        let chosen = backend ?? (ringAvailable ? "both" : "epoll")
        var backends: [any WaitBackend.Type] = []
        switch chosen {
        case "epoll": backends = [SwiftAPIBackend.self, CABIBackend.self]
        case "io_uring", "both":
            guard ringAvailable else {
                throw BenchError(
                    "io_uring is unavailable here (\(KernelQueue.backendReport.ioURingUnavailable!)): use --backend epoll"
                )
            }
            backends = chosen == "both" ? [SwiftAPIBackend.self, CABIBackend.self] : []
            backends += [SwiftAPIRingBackend.self, CABIRingBackend.self]
        default: throw BenchError("--backend must be epoll, io_uring or both, not \(chosen)")
        }
        backends += [EpollBackend.self, PollBackend.self, SelectBackend.self]
        var results: [BenchResult] = []
        let total = usableSizes.reduce(0) { sum, size in sum + activeCounts.filter { $0 <= size / 2 }.count }
        var done = 0
        for size in usableSizes {
            let workload = try ChainWorkload(registered: size)
            for active in activeCounts where active <= size / 2 {
                done += 1
                progress("[\(done)/\(total)] N = \(size), \(active) active: ")
                var samples: [String: [Double]] = [:]
                for round in 0..<rounds {
                    // Interleave: every backend once per round, in a rotating order.
                    for offset in 0..<backends.count {
                        let backend = backends[(offset + round) % backends.count]
                        guard workload.descriptors.allSatisfy({ $0 <= backend.maximumDescriptor }) else { continue }
                        let instance = try backend.init(watching: workload.descriptors)
                        _ = workload.run(instance, active: active, events: min(eventsPerRun, 200))  // warm up
                        let (waits, nanoseconds) = workload.run(instance, active: active, events: eventsPerRun)
                        instance.close()
                        samples[backend.name, default: []].append(Double(nanoseconds) / Double(max(1, waits)) / 1_000)
                    }
                    progress(".")
                }
                progress("\n")
                for backend in backends {
                    guard let values = samples[backend.name], !values.isEmpty else { continue }
                    results.append(
                        BenchResult(
                            backend: backend.name, registered: size, active: active, microsecondsPerWait: median(values)
                        ))
                }
            }
        }
        let report = BenchReport(results: results, eventsPerRun: eventsPerRun, rounds: rounds)
        print(report.table())
        print(report.checks())
        try BenchPlot(results: results).write(to: output)
        print("plot: \(output)")
    }

    private func progress(_ text: String) {
        var text = text
        text.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1
        ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

/// RLIMIT_NOFILE, raised to the hard limit when the soft one is lower than needed.
struct DescriptorLimit {
    var available: Int
    var message: String

    static func raise(toAtLeast needed: Int) -> DescriptorLimit {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let soft = Int(limit.rlim_cur)
        if soft >= needed { return DescriptorLimit(available: soft, message: "descriptor limit: \(soft)") }
        var raised = limit
        raised.rlim_cur = min(limit.rlim_max, rlim_t(needed))
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 {
            let now = Int(raised.rlim_cur)
            let note = now < needed ? " (hard limit \(limit.rlim_max): cannot raise it further)" : ""
            return DescriptorLimit(available: now, message: "descriptor limit raised from \(soft) to \(now)\(note)")
        }
        return DescriptorLimit(
            available: soft,
            message: "descriptor limit \(soft); could not raise it: \(String(cString: strerror(errno)))")
    }
}
