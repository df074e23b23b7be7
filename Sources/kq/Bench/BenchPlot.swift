import Glibc

/// An SVG line plot of cost per wait against registered descriptors, both axes log scale,
/// one line per backend (1 active chain).
struct BenchPlot {
    var results: [BenchResult]

    static let colors = [
        "kqueue-swift": "#1f77b4", "kqueue-c": "#17becf", "epoll": "#2ca02c", "poll": "#d62728", "select": "#ff7f0e",
    ]

    func render() -> String {
        let width = 720.0
        let height = 440.0
        let left = 70.0
        let right = 150.0
        let top = 30.0
        let bottom = 50.0
        let points = results.filter { $0.active == 1 }
        guard !points.isEmpty else {
            return
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"720\" height=\"80\"><text x=\"10\" y=\"40\">no data</text></svg>"
        }
        let xs = points.map { log10(Double($0.registered)) }
        let ys = points.map { log10(max($0.microsecondsPerWait, 0.001)) }
        let (xMin, xMax) = (floor(xs.min()!), ceil(max(xs.max()!, xs.min()! + 1)))
        let (yMin, yMax) = (floor(ys.min()!), ceil(max(ys.max()!, ys.min()! + 1)))
        func x(_ value: Double) -> Double { left + (value - xMin) / (xMax - xMin) * (width - left - right) }
        func y(_ value: Double) -> Double { height - bottom - (value - yMin) / (yMax - yMin) * (height - top - bottom) }

        var svg =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        svg +=
            "<text x=\"\(left)\" y=\"18\" font-size=\"14\">Cost of one wait vs registered descriptors (1 active, log-log)</text>\n"
        for decade in stride(from: xMin, through: xMax, by: 1) {
            svg +=
                "<line x1=\"\(x(decade))\" y1=\"\(top)\" x2=\"\(x(decade))\" y2=\"\(height - bottom)\" stroke=\"#ddd\"/>\n"
            svg +=
                "<text x=\"\(x(decade))\" y=\"\(height - bottom + 18)\" text-anchor=\"middle\">\(Int(pow(10, decade)))</text>\n"
        }
        for decade in stride(from: yMin, through: yMax, by: 1) {
            svg +=
                "<line x1=\"\(left)\" y1=\"\(y(decade))\" x2=\"\(width - right)\" y2=\"\(y(decade))\" stroke=\"#ddd\"/>\n"
            svg +=
                "<text x=\"\(left - 8)\" y=\"\(y(decade) + 4)\" text-anchor=\"end\">\(format2(pow(10, decade)))</text>\n"
        }
        svg +=
            "<text x=\"\((left + width - right) / 2)\" y=\"\(height - 12)\" text-anchor=\"middle\">registered descriptors N</text>\n"
        svg +=
            "<text x=\"16\" y=\"\((top + height - bottom) / 2)\" transform=\"rotate(-90 16 \((top + height - bottom) / 2))\" text-anchor=\"middle\">microseconds per wait</text>\n"
        var legend = 0
        for backend in ["kqueue-swift", "kqueue-c", "epoll", "poll", "select"] {
            let line = points.filter { $0.backend == backend }.sorted { $0.registered < $1.registered }
            guard !line.isEmpty else { continue }
            let color = Self.colors[backend] ?? "black"
            let coordinates = line.map {
                "\(x(log10(Double($0.registered)))),\(y(log10(max($0.microsecondsPerWait, 0.001))))"
            }
            svg +=
                "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(coordinates.joined(separator: " "))\"/>\n"
            for point in coordinates {
                let parts = point.split(separator: ",")
                svg += "<circle cx=\"\(parts[0])\" cy=\"\(parts[1])\" r=\"3\" fill=\"\(color)\"/>\n"
            }
            let ly = top + 20 + Double(legend) * 20
            svg +=
                "<line x1=\"\(width - right + 15)\" y1=\"\(ly)\" x2=\"\(width - right + 40)\" y2=\"\(ly)\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
            svg += "<text x=\"\(width - right + 45)\" y=\"\(ly + 4)\">\(backend)</text>\n"
            legend += 1
        }
        return svg + "</svg>\n"
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
