import Foundation
import Testing

/// No link in the README, docs/ or the DocC catalog points outside the repository: a fresh
/// clone has no `../shared`, no machine paths, and no private hosts. A relative link must name
/// a file of the repository; a web link must go to a public reference host listed here.
@Suite("Docs: every link stays inside the repository or goes to a public reference")
struct DocumentationLinksTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// Public references the docs may cite (man pages, upstream sources, Swift docs).
    static let publicHosts: Set<String> = [
        "man.freebsd.org", "www.freebsd.org", "docs.freebsd.org", "cgit.freebsd.org", "github.com", "www.swift.org",
        "swift.org", "docs.swift.org", "man7.org", "www.kernel.org", "docs.kernel.org", "lwn.net",
        "pubs.opengroup.org",
    ]

    /// README.md, every Markdown file under docs/ and the DocC catalog, by repository path.
    static func documents() throws -> [String] {
        var paths = ["README.md"]
        for folder in ["docs", "Sources/KQueue/KQueue.docc"] {
            let base = root.appendingPathComponent(folder)
            guard let files = FileManager.default.enumerator(atPath: base.path) else { continue }
            for case let file as String in files where file.hasSuffix(".md") { paths.append("\(folder)/\(file)") }
        }
        return paths
    }

    /// The problems of one document's links (empty: none).
    static func problems(in path: String, text: String) -> [String] {
        var problems: [String] = []
        let directory = (path as NSString).deletingLastPathComponent
        var inCode = false
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let place = "\(path):\(number + 1)"
            if line.trimmingCharacters(in: .whitespaces).hasPrefix("```") {
                inCode.toggle()
                continue
            }
            for marker in ["../shared", "/work/", "shared/SPEC", "shared/DESIGN"] where line.contains(marker) {
                problems.append("\(place): names \(marker), outside the repository")
            }
            for match in line.matches(of: /https?:\/\/([^\/\s)>`"]+)/) where !publicHosts.contains(String(match.1)) {
                problems.append("\(place): \(match.0) is not a listed public reference host")
            }
            if inCode { continue }
            for match in line.matches(of: /\]\(([^)\s]+)\)/) {
                let target = String(match.1)
                if target.hasPrefix("http://") || target.hasPrefix("https://") || target.hasPrefix("#")
                    || target.hasPrefix("doc:") || target.hasPrefix("mailto:")
                {
                    continue
                }
                let file = String(target.prefix { $0 != "#" })
                let resolved = ((directory as NSString).appendingPathComponent(file) as NSString).standardizingPath
                if resolved.hasPrefix("..") || resolved.hasPrefix("/") {
                    problems.append("\(place): \(target) leaves the repository")
                } else if !FileManager.default.fileExists(atPath: root.appendingPathComponent(resolved).path) {
                    problems.append("\(place): \(target) names no file of the repository")
                }
            }
        }
        return problems
    }

    @Test("Docs: README, docs/ and the DocC catalog link only inside the repository or to public references")
    func linksStayInside() throws {
        let paths = try Self.documents()
        #expect(paths.contains("docs/SPEC.md"), "the semantics are in docs/")
        for path in paths {
            let text = try String(contentsOf: Self.root.appendingPathComponent(path), encoding: .utf8)
            let problems = Self.problems(in: path, text: text)
            #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
        }
    }

    @Test("Docs: the link check finds a ../shared link, a missing file and a private host")
    func checkerCatchesBadLinks() {
        let text = """
            See [the spec](../shared/SPEC.md), [gone](docs/NOPE.md), [ok](docs/SPEC.md),
            [kqueue(2)](https://man.freebsd.org/cgi/man.cgi?kqueue) and http://intranet.example/x.
            """
        let problems = Self.problems(in: "README.md", text: text)
        #expect(problems.contains { $0.contains("../shared") })
        #expect(problems.contains { $0.contains("docs/NOPE.md names no file") })
        #expect(problems.contains { $0.contains("intranet.example") })
    }
}
