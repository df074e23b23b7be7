import ArgumentParser
import Glibc
import KQueue

/// `kq info`: what this machine gives a kqueue: the kernel, whether io_uring can be used,
/// the backend a new kqueue gets and why, and what libkqueue.so interposes.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the kernel, io_uring's availability, the backend a new kqueue gets, and the library's symbols.")

    @Option(help: "The libkqueue.so to describe (default: next to kq, then .build/clib, then /usr/local/lib).")
    var library: String?

    func run() throws {
        var name = utsname()
        uname(&name)
        print("kernel: \(field(&name.sysname)) \(field(&name.release)) \(field(&name.machine))")
        let report = KernelQueue.backendReport
        let sysctl = firstLine(of: "/proc/sys/kernel/io_uring_disabled").map { " (kernel.io_uring_disabled = \($0))" }
        if let error = report.ioURingUnavailable {
            print("io_uring: unavailable: \(error)\(sysctl ?? "")")
        } else {
            print("io_uring: available\(sysctl ?? "")")
        }
        print("KQUEUE_BACKEND: \(report.environment ?? "unset") (request: \(report.request))")
        let queue = try KernelQueue()
        let fallback = queue.backendFallback.map { ", fell back from io_uring: \($0)" } ?? ""
        print("a new kqueue gets: \(queue.backend)\(fallback)")
        print("why: \(report.reason)")
        queue.close()
        guard let path = library ?? Self.defaultLibrary() else {
            print("libkqueue.so: not found (pass --library PATH)")
            return
        }
        let resolved = realPath(path) ?? path
        print("library: \(path)\(resolved == path ? "" : " -> \(resolved)")")
        print("version: \(Self.version(of: resolved))")
        do {
            let symbols = try DynamicSymbols(path: resolved).definedFunctions
            // A development build exports every Swift symbol too: the libc names are the plain
            // lower-case ones that are not the library's own.
            let own = ["kq", "kevent", "csystem_", "swift"]
            let plain = symbols.filter { name in name.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "_" } }
            let interposed = plain.filter { name in !own.contains { name.hasPrefix($0) } }
            let api = symbols.filter { $0 == "kqueue" || $0 == "kqueuex" || $0 == "kevent" }
            print("C ABI: \(api.joined(separator: " "))")
            print("interposed libc calls (\(interposed.count)): \(interposed.joined(separator: " "))")
            print(
                "kq_shim_* exports (the engine's calls into the front): \(symbols.filter { $0.hasPrefix("kq_shim_") }.count)"
            )
        } catch {
            print("symbols: \(error)")
        }
    }

    static func defaultLibrary() -> String? {
        var candidates: [String] = []
        if let exe = realPath("/proc/self/exe") {
            candidates.append(String(exe[..<(exe.lastIndex(of: "/") ?? exe.endIndex)]) + "/libkqueue.so")
        }
        candidates += [".build/clib/libkqueue.so.12", "/usr/local/lib/libkqueue.so.12"]
        return candidates.first { access($0, R_OK) == 0 }
    }

    /// The file's version from its name (libkqueue.so.12.0.0 → 12.0.0).
    static func version(of path: String) -> String {
        let file = path.split(separator: "/").last.map(String.init) ?? path
        let parts = file.split(separator: ".")
        guard let so = parts.firstIndex(of: "so"), so + 1 < parts.count else {
            return "unversioned (\(file): a development build)"
        }
        return parts[(so + 1)...].joined(separator: ".")
    }
}

private func field<T>(_ value: inout T) -> String {
    withUnsafeBytes(of: &value) { bytes in
        String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }
}

private func realPath(_ path: String) -> String? {
    guard let resolved = realpath(path, nil) else { return nil }
    defer { free(resolved) }
    return String(cString: resolved)
}

private func firstLine(of path: String) -> String? {
    guard let file = fopen(path, "re") else { return nil }
    defer { fclose(file) }
    var buffer = [CChar](repeating: 0, count: 64)
    guard fgets(&buffer, 64, file) != nil else { return nil }
    let line = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    return line.trimmingCharacters(in: "\n")
}

extension String {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        var text = self
        while text.last == set { text.removeLast() }
        return text
    }
}
