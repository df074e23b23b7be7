import Foundation
import Glibc
import Testing

/// README.md's Swift examples are complete programs: each ```swift block is an
/// `Examples/NAME/main.swift` verbatim (its first line names the file), each file is an
/// executable target of Package.swift (so `swift build`, and with it `swift test`, fails when
/// one stops compiling), imports `KQueue` alone, and runs here to its expected output.
@Suite("README: the Swift examples are complete programs")
struct ReadmeExamplesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let binaries = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        .deletingLastPathComponent()

    /// The ```swift blocks of a Markdown file, without their fences.
    static func swiftBlocks(_ markdown: String) -> [String] {
        var blocks: [String] = []
        var current: [Substring]? = nil
        for line in markdown.split(separator: "\n", omittingEmptySubsequences: false) {
            if current == nil {
                if line.hasPrefix("```swift") { current = [] }
            } else if line.hasPrefix("```") {
                blocks.append(current!.joined(separator: "\n") + "\n")
                current = nil
            } else {
                current!.append(line)
            }
        }
        return blocks
    }

    @Test("README: every Swift block is an Examples/ program verbatim, and every example is in the README")
    func readmeBlocksAreExamples() throws {
        let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        let blocks = Self.swiftBlocks(readme)
        #expect(blocks.count >= 3)
        var shown: Set<String> = []
        for block in blocks {
            let first = String(block.prefix { $0 != "\n" })
            let match = try #require(
                first.firstMatch(of: /^\/\/ (Examples\/[A-Za-z]+\/main\.swift):/),
                "a README block that is no example: \(first)")
            let path = String(match.1)
            shown.insert(path)
            let file = try String(contentsOf: Self.root.appendingPathComponent(path), encoding: .utf8)
            #expect(file == block, "README.md's block differs from \(path)")
        }
        let examples = try FileManager.default.contentsOfDirectory(
            atPath: Self.root.appendingPathComponent("Examples").path
        ).filter {
            FileManager.default.fileExists(atPath: Self.root.appendingPathComponent("Examples/\($0)/main.swift").path)
        }
        #expect(Set(examples.map { "Examples/\($0)/main.swift" }) == shown, "every Swift example is in the README")
        let package = try String(contentsOf: Self.root.appendingPathComponent("Package.swift"), encoding: .utf8)
        for example in examples {
            #expect(
                package.contains("path: \"Examples/\(example)\""), "Examples/\(example) is a target of Package.swift")
        }
    }

    @Test("DocC: an article's block that names an Examples/ program is that program verbatim")
    func doccBlocksAreExamples() throws {
        let catalog = Self.root.appendingPathComponent("Sources/KQueue/KQueue.docc")
        var checked = 0
        for article in try FileManager.default.contentsOfDirectory(atPath: catalog.path) where article.hasSuffix(".md")
        {
            let text = try String(contentsOf: catalog.appendingPathComponent(article), encoding: .utf8)
            for block in Self.swiftBlocks(text) {
                let first = String(block.prefix { $0 != "\n" })
                guard let match = first.firstMatch(of: /^\/\/ (Examples\/[A-Za-z]+\/main\.swift):/) else { continue }
                let file = try String(contentsOf: Self.root.appendingPathComponent(String(match.1)), encoding: .utf8)
                #expect(file == block, "\(article)'s block differs from \(match.1)")
                checked += 1
            }
        }
        #expect(checked >= 1, "Getting Started shows an example")
    }

    @Test("README: the examples import KQueue alone (no Glibc, no Foundation)")
    func examplesImportKQueueAlone() throws {
        for name in ["GettingStarted", "Watch", "Contexts", "AsyncIO"] {
            let text = try String(
                contentsOf: Self.root.appendingPathComponent("Examples/\(name)/main.swift"), encoding: .utf8)
            let imports = text.split(separator: "\n").filter { $0.hasPrefix("import ") }
            #expect(imports == ["import KQueue"], "\(name): \(imports)")
            #expect(!text.contains("Int32(event.ident)") && !text.contains("UInt(bitPattern"), "\(name): raw casts")
        }
    }

    @Test("README: GettingStarted reads the pipe, sees the user event's value and at least three ticks")
    func gettingStartedRuns() throws {
        let result = try CABITests.run(
            [Self.binaries.appendingPathComponent("GettingStartedExample").path], timeout: 30)
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("read: hello"), "\(result.output)")
        #expect(result.output.contains("user event, value 7"), "\(result.output)")
        // At least three: under load one event can carry two expirations (data 2).
        let ticks = result.output.split(separator: "\n").first { $0.hasPrefix("ticks: ") }.flatMap {
            Int($0.dropFirst(7))
        }
        #expect((ticks ?? 0) >= 3, "\(result.output)")
        #expect(result.output.contains("KEvent(filter: .read, ident: "), "\(result.output)")
    }

    @Test("README: Watch reports the file change, the signal and the process exit by name")
    func watchRuns() throws {
        let child = try spawnShell("exit 3")
        defer { _ = try? reap(child, timeout: .seconds(5)) }
        let result = try CABITests.run(
            [Self.binaries.appendingPathComponent("WatchExample").path, String(child)], timeout: 30)
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("file changed: NOTE_WRITE"), "\(result.output)")
        #expect(result.output.contains("signal: SIGHUP delivered 1 time(s)"), "\(result.output)")
        #expect(result.output.contains("process \(child) exited with code 3"), "\(result.output)")
    }

    @Test("README: Contexts prints the named change error, each channel's data, and holds no context at the end")
    func contextsRuns() throws {
        let result = try CABITests.run([Self.binaries.appendingPathComponent("ContextsExample").path], timeout: 30)
        #expect(result.status == 0, "\(result.output)")
        #expect(
            result.output.contains(
                "change 0 (.user ident 42, flags [], fflags NOTE_TRIGGER, data 0) failed: ENOENT (No such file or directory)"
            ), "\(result.output)")
        #expect(result.output.contains("alpha: ping from alpha"), "\(result.output)")
        #expect(result.output.contains("beta: ping from beta"), "\(result.output)")
        #expect(result.output.contains("contexts held: 0"), "\(result.output)")
    }

    @Test("README: AsyncIO writes, then reads back from offset 7, each completion an EVFILT_AIO event")
    func asyncIORuns() throws {
        let result = try CABITests.run([Self.binaries.appendingPathComponent("AsyncIOExample").path], timeout: 30)
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("event: .aio result: success(14)"), "\(result.output)")
        #expect(result.output.contains("wrote 14 bytes"), "\(result.output)")
        #expect(result.output.contains("read: kqueue\n"), "\(result.output)")
    }
}
