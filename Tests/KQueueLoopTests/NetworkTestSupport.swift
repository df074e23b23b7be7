import Glibc
import Testing

@testable import KQueueLoop

/// Reads from `connection` until `count` bytes came (or end of stream).
func readExactly(_ connection: TCPConnection, count: Int) async throws -> [UInt8] {
    var result: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while result.count < count {
        let n = try await connection.read(into: &buffer)
        if n == 0 { break }
        result.append(contentsOf: buffer[..<n])
    }
    return result
}

/// Reads from `connection` until end of stream.
func readToEnd(_ connection: TCPConnection, limit: Int = 1 << 20) async throws -> [UInt8] {
    var result: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while result.count < limit {
        let n = try await connection.read(into: &buffer)
        if n == 0 { break }
        result.append(contentsOf: buffer[..<n])
    }
    return result
}

/// Sockets of this machine on local `port` in a TCP state (from /proc/net/tcp and tcp6):
/// "01" ESTABLISHED, "08" CLOSE_WAIT (the peer closed, we did not: a leaked server socket),
/// "0A" LISTEN.
func socketCount(port: UInt16, state: String) -> Int {
    var count = 0
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        guard let file = fopen(table, "r") else { continue }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 512)
        let wantedPort = String(port, radix: 16, uppercase: true)
        let padded = String(repeating: "0", count: 4 - wantedPort.count) + wantedPort
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let fields = text.split(separator: " ")
            guard fields.count > 3 else { continue }
            if fields[1].hasSuffix(":" + padded) && fields[3] == state { count += 1 }
        }
    }
    return count
}

/// A client that sends each of `lines` and reads its echo before sending the next.
func echoRoundTrips(_ address: SocketAddress, on loop: EventLoop, lines: [String]) async throws -> [String] {
    let connection = try await TCPConnection.connect(to: address, on: loop)
    defer { connection.close() }
    var echoed: [String] = []
    for line in lines {
        let bytes = Array((line + "\n").utf8)
        try await connection.write(bytes)
        echoed.append(String(decoding: try await readExactly(connection, count: bytes.count).dropLast(), as: UTF8.self))
    }
    return echoed
}

/// Server registrations left on `group`'s loops (the listeners count one each).
func liveRegistrations(_ group: EventLoopGroup) -> Int {
    group.loops.reduce(0) { $0 + liveRegistrations($1) }
}
