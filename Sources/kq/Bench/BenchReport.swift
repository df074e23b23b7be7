/// One measured point: the median cost of one wait.
struct BenchResult {
    var backend: String
    var registered: Int
    var active: Int
    var microsecondsPerWait: Double
}

/// The table `kq bench` prints, with ratios to raw epoll, and the target checks.
struct BenchReport {
    var results: [BenchResult]
    var eventsPerRun: Int
    var rounds: Int

    func table() -> String {
        var lines = [
            "", "cost of one wait (median of \(rounds) rounds, \(eventsPerRun) chained one-byte events each)", "",
        ]
        lines.append(pad("N", 8) + pad("active", 8) + pad("backend", 24) + pad("us/wait", 12) + "x epoll")
        for result in results {
            let base = results.first {
                $0.backend == "epoll" && $0.registered == result.registered && $0.active == result.active
            }
            let ratio = base.map { String(format2(result.microsecondsPerWait / $0.microsecondsPerWait)) } ?? "-"
            lines.append(
                pad(String(result.registered), 8) + pad(String(result.active), 8) + pad(result.backend, 24)
                    + pad(format2(result.microsecondsPerWait), 12) + ratio)
        }
        return lines.joined(separator: "\n")
    }

    /// The targets of the headline claim, stated with what was measured.
    func checks() -> String {
        var lines = [""]
        for backend in ["kqueue-swift", "kqueue-c", "kqueue-swift-io_uring", "kqueue-c-io_uring", "epoll", "poll"] {
            let points = results.filter { $0.backend == backend && $0.active == 1 }.sorted {
                $0.registered < $1.registered
            }
            if let small = points.first, let large = points.last, large.registered > small.registered {
                let growth = large.microsecondsPerWait / small.microsecondsPerWait
                lines.append(
                    "\(backend): one wait at N = \(large.registered) costs \(format2(growth))x its cost at N = \(small.registered) (1 active)"
                )
            }
        }
        for backend in ["kqueue-swift", "kqueue-c", "kqueue-swift-io_uring", "kqueue-c-io_uring"] {
            let ratios = results.filter { $0.backend == backend }.compactMap { result -> Double? in
                guard
                    let base = results.first(where: {
                        $0.backend == "epoll" && $0.registered == result.registered && $0.active == result.active
                    })
                else { return nil }
                return result.microsecondsPerWait / base.microsecondsPerWait
            }
            if let worst = ratios.max() {
                lines.append("\(backend): at most \(format2(worst))x raw epoll over all points")
            }
        }
        return lines.joined(separator: "\n")
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }
}

func format2(_ value: Double) -> String {
    let scaled = (value * 100).rounded() / 100
    var text = String(scaled)
    if let dot = text.firstIndex(of: ".") {
        let decimals = text.distance(from: dot, to: text.endIndex) - 1
        if decimals < 2 { text += String(repeating: "0", count: 2 - decimals) }
    }
    return text
}
