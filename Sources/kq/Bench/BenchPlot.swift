import Glibc

/// The SVG of `kq bench`: left, the cost of one wait against registered descriptors (log-log;
/// solid lines 1 active chain, dashed 100 active); right, each kqueue series as a ratio to raw
/// epoll at the same point. Lower is better in both. The title names the machine and the date.
struct BenchPlot {
    var results: [BenchResult]

    /// A colour per series: the two kqueue interfaces and the two backends apart at a glance.
    static let colors = [
        "kqueue-swift": "#1f77b4", "kqueue-c": "#9467bd", "kqueue-swift-io_uring": "#8c564b",
        "kqueue-c-io_uring": "#e377c2", "epoll": "#2ca02c", "poll": "#d62728", "select": "#ff7f0e",
    ]
    static let order = [
        "kqueue-swift", "kqueue-c", "kqueue-swift-io_uring", "kqueue-c-io_uring", "epoll", "poll", "select",
    ]

    /// A panel's frame: where it sits and what its axes span (x is log10 N).
    private struct Frame {
        var left, top, width, height: Double
        var xMin, xMax, yMin, yMax: Double
        func x(_ value: Double) -> Double { left + (value - xMin) / (xMax - xMin) * width }
        func y(_ value: Double) -> Double { top + height - (value - yMin) / (yMax - yMin) * height }
    }

    func render() -> String {
        let width = 1_000.0
        let height = 470.0
        guard !results.isEmpty else {
            return
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"720\" height=\"80\"><text x=\"10\" y=\"40\">no data</text></svg>"
        }
        let xs = results.map { log10(Double($0.registered)) }
        let (xMin, xMax) = (floor(xs.min()!), ceil(max(xs.max()!, xs.min()! + 1)))
        let ys = results.map { log10(max($0.microsecondsPerWait, 0.001)) }
        let cost = Frame(
            left: 70, top: 60, width: 360, height: 340, xMin: xMin, xMax: xMax, yMin: floor(ys.min()!),
            yMax: ceil(max(ys.max()!, ys.min()! + 1)))
        let ratios = ratioPoints()
        let ratioMax = max(1.5, (ratios.map(\.ratio).max() ?? 1) * 1.1)
        let ratio = Frame(left: 510, top: 60, width: 300, height: 340, xMin: xMin, xMax: xMax, yMin: 0, yMax: ratioMax)

        var svg =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        svg +=
            "<text x=\"20\" y=\"22\" font-size=\"15\">kq bench: the cost of one wait (lower is better)</text>\n"
        svg += "<text x=\"20\" y=\"40\" fill=\"#555\">\(escaped(Self.machineAndDate()))</text>\n"
        svg += axes(cost, title: "microseconds per wait (log)", logY: true)
        svg += axes(ratio, title: "ratio to raw epoll (1 = epoll)", logY: false)
        svg +=
            "<line x1=\"\(ratio.left)\" y1=\"\(ratio.y(1))\" x2=\"\(ratio.left + ratio.width)\" y2=\"\(ratio.y(1))\" stroke=\"#2ca02c\" stroke-dasharray=\"2 3\"/>\n"
        var legend = 0
        for series in Self.order {
            let color = Self.colors[series] ?? "black"
            var drawn = false
            for active in [1, 100] {
                let line = results.filter { $0.backend == series && $0.active == active }.sorted {
                    $0.registered < $1.registered
                }
                guard !line.isEmpty else { continue }
                drawn = true
                svg += polyline(
                    line.map { (log10(Double($0.registered)), log10(max($0.microsecondsPerWait, 0.001))) }, in: cost,
                    color: color, dashed: active != 1)
                let ratioLine = ratios.filter { $0.series == series && $0.active == active }
                if !ratioLine.isEmpty {
                    svg += polyline(
                        ratioLine.map { (log10(Double($0.registered)), $0.ratio) }, in: ratio, color: color,
                        dashed: active != 1)
                }
            }
            guard drawn else { continue }
            let ly = 80 + Double(legend) * 20
            svg +=
                "<line x1=\"835\" y1=\"\(ly)\" x2=\"860\" y2=\"\(ly)\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
            svg += "<text x=\"866\" y=\"\(ly + 4)\">\(series)</text>\n"
            legend += 1
        }
        let ly = 80 + Double(legend) * 20 + 10
        svg += "<line x1=\"835\" y1=\"\(ly)\" x2=\"860\" y2=\"\(ly)\" stroke=\"#333\" stroke-width=\"2\"/>\n"
        svg += "<text x=\"866\" y=\"\(ly + 4)\">1 active</text>\n"
        svg +=
            "<line x1=\"835\" y1=\"\(ly + 20)\" x2=\"860\" y2=\"\(ly + 20)\" stroke=\"#333\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>\n"
        svg += "<text x=\"866\" y=\"\(ly + 24)\">100 active</text>\n"
        return svg + "</svg>\n"
    }

    /// A kqueue series' cost over raw epoll's at the same N and active count.
    private struct RatioPoint {
        var series: String
        var registered: Int
        var active: Int
        var ratio: Double
    }

    private func ratioPoints() -> [RatioPoint] {
        results.filter { $0.backend.hasPrefix("kqueue") }.compactMap { result in
            guard
                let base = results.first(where: {
                    $0.backend == "epoll" && $0.registered == result.registered && $0.active == result.active
                })
            else { return nil }
            return RatioPoint(
                series: result.backend, registered: result.registered, active: result.active,
                ratio: result.microsecondsPerWait / base.microsecondsPerWait)
        }.sorted { $0.registered < $1.registered }
    }

    private func axes(_ frame: Frame, title: String, logY: Bool) -> String {
        var svg = ""
        for decade in stride(from: frame.xMin, through: frame.xMax, by: 1) {
            svg +=
                "<line x1=\"\(frame.x(decade))\" y1=\"\(frame.top)\" x2=\"\(frame.x(decade))\" y2=\"\(frame.top + frame.height)\" stroke=\"#ddd\"/>\n"
            svg +=
                "<text x=\"\(frame.x(decade))\" y=\"\(frame.top + frame.height + 18)\" text-anchor=\"middle\">\(Int(pow(10, decade)))</text>\n"
        }
        let step = logY ? 1.0 : (frame.yMax > 3 ? 1.0 : 0.25)
        for value in stride(from: frame.yMin, through: frame.yMax, by: step) {
            svg +=
                "<line x1=\"\(frame.left)\" y1=\"\(frame.y(value))\" x2=\"\(frame.left + frame.width)\" y2=\"\(frame.y(value))\" stroke=\"#ddd\"/>\n"
            let label = logY ? format2(pow(10, value)) : format2(value)
            svg += "<text x=\"\(frame.left - 8)\" y=\"\(frame.y(value) + 4)\" text-anchor=\"end\">\(label)</text>\n"
        }
        svg +=
            "<text x=\"\(frame.left + frame.width / 2)\" y=\"\(frame.top + frame.height + 38)\" text-anchor=\"middle\">registered descriptors N (log)</text>\n"
        svg += "<text x=\"\(frame.left)\" y=\"\(frame.top - 8)\">\(title)</text>\n"
        return svg
    }

    private func polyline(_ points: [(Double, Double)], in frame: Frame, color: String, dashed: Bool) -> String {
        let coordinates = points.map { "\(frame.x($0.0)),\(frame.y($0.1))" }
        var svg =
            "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"\(dashed ? " stroke-dasharray=\"6 4\"" : "") points=\"\(coordinates.joined(separator: " "))\"/>\n"
        for point in points {
            svg += "<circle cx=\"\(frame.x(point.0))\" cy=\"\(frame.y(point.1))\" r=\"3\" fill=\"\(color)\"/>\n"
        }
        return svg
    }

    private func escaped(_ text: String) -> String {
        text.replacing("&", with: "&amp;").replacing("<", with: "&lt;").replacing(">", with: "&gt;")
    }

    /// "Linux 6.18 x86_64, 2 cores, load 1.2; 2026-12-06 03:10 UTC".
    static func machineAndDate() -> String {
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let machine = withUnsafeBytes(of: &name.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        var load = [Double](repeating: 0, count: 3)
        _ = getloadavg(&load, 3)
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        _ = strftime(&buffer, 64, "%Y-%m-%d %H:%M UTC", &parts)
        let date = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let cores = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        return "Linux \(release) \(machine), \(cores) cores, load \(format2(load[0])); \(date)"
    }

    func write(to path: String) throws {
        let text = render()
        guard let file = fopen(path, "w") else {
            throw BenchError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        fputs(text, file)
    }
}
