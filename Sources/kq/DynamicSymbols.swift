import Glibc

/// The defined global functions of an ELF64 shared library's dynamic symbol table (.dynsym),
/// read from the file: what `kq info` lists as the library's exports.
struct DynamicSymbols {
    let definedFunctions: [String]

    init(path: String) throws {
        let bytes = try Self.read(path)
        definedFunctions = try bytes.withUnsafeBytes { raw throws(BenchError) -> [String] in
            try Self.parse(raw)
        }
    }

    private static func read(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BenchError("\(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return bytes
    }

    private static func parse(_ file: UnsafeRawBufferPointer) throws(BenchError) -> [String] {
        guard file.count > 64, file[0] == 0x7F, file[1] == 0x45, file[4] == 2 else {
            throw BenchError("not an ELF64 file")
        }
        func load<T: FixedWidthInteger>(_ offset: Int, as: T.Type) -> T {
            file.loadUnaligned(fromByteOffset: offset, as: T.self)
        }
        let sectionTable = Int(load(0x28, as: UInt64.self))
        let entrySize = Int(load(0x3A, as: UInt16.self))
        let sections = Int(load(0x3C, as: UInt16.self))
        for index in 0..<sections {
            let header = sectionTable + index * entrySize
            guard header + 64 <= file.count, load(header + 4, as: UInt32.self) == 11 /* SHT_DYNSYM */ else { continue }
            let offset = Int(load(header + 0x18, as: UInt64.self))
            let size = Int(load(header + 0x20, as: UInt64.self))
            let link = Int(load(header + 0x28, as: UInt32.self))
            let stringHeader = sectionTable + link * entrySize
            let strings = Int(load(stringHeader + 0x18, as: UInt64.self))
            var names: [String] = []
            for symbol in stride(from: offset, to: offset + size, by: 24) {
                let info = file[symbol + 4]
                let sectionIndex = load(symbol + 6, as: UInt16.self)
                // STB_GLOBAL or STB_WEAK, STT_FUNC, defined here.
                guard info >> 4 != 0, info & 0xF == 2, sectionIndex != 0 else { continue }
                let nameOffset = strings + Int(load(symbol, as: UInt32.self))
                let end = file[nameOffset...].firstIndex(of: 0) ?? file.count
                names.append(String(decoding: file[nameOffset..<end], as: UTF8.self))
            }
            return names.sorted()
        }
        throw BenchError("no dynamic symbol table")
    }
}
