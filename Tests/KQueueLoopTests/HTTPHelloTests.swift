import Glibc
import Testing

@testable import KQueueLoop
@testable import LoopServers

/// The HTTP/1.1 hello server of `kq http-hello`, and its request parser.
@Suite("HTTP hello server")
struct HTTPHelloTests {
    static let ok = "HTTP/1.1 200 OK\r\nContent-Length: 14\r\nContent-Type: text/plain\r\n\r\nHello, world!\n"

    func parse(_ text: String) -> HTTPParseResult {
        Array(text.utf8).withUnsafeBytes { HTTPRequestParser.parse($0) }
    }

    @Test("the parser takes a request head, its Content-Length body, and keep-alive by version")
    func parserAccepts() {
        #expect(
            parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                == .request(
                    HTTPRequestHead(method: "GET", target: "/", minorVersion: 1, keepAlive: true, contentLength: 0),
                    length: 27))
        #expect(
            parse("POST /x HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc")
                == .request(
                    HTTPRequestHead(method: "POST", target: "/x", minorVersion: 0, keepAlive: false, contentLength: 3),
                    length: 42))
        #expect(parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n") != .malformed)
        #expect(parse("GET / HTTP/1.1\r\nHost: a\r\n") == .incomplete)
        #expect(parse("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab") == .incomplete)
    }

    @Test(
        "the parser refuses malformed requests",
        arguments: [
            "GARBAGE\r\n\r\n", "GET /\r\n\r\n", "GET / HTTP/2.0\r\n\r\n", "GET  / HTTP/1.1\r\n\r\n",
            "G(T / HTTP/1.1\r\n\r\n", "GET nopath HTTP/1.1\r\n\r\n", "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
            "GET / HTTP/1.1\r\n: empty name\r\n\r\n", "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
            "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", "GET / HTTP/1.1\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
        ])
    func parserRefuses(_ request: String) {
        #expect(parse(request) == .malformed)
    }

    @Test("a head that never ends is refused once over the limit (bounded memory)")
    func parserBoundsHead() {
        #expect(parse("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 9000)) == .malformed)
    }

    /// Sends `request` on a new connection and reads until the server closes it.
    func exchange(_ request: String, _ address: SocketAddress, on loop: EventLoop) async throws -> String {
        let connection = try await TCPConnection.connect(to: address, on: loop)
        defer { connection.close() }
        try await connection.write(Array(request.utf8))
        return String(decoding: try await readToEnd(connection), as: UTF8.self)
    }

    @Test("GET / answers 200 \"Hello, world!\" with Content-Length; a malformed request gets 400 and the close")
    func serverAnswers() async throws {
        let group = try EventLoopGroup(loopCount: 2)
        defer { group.shutdown() }
        let server = try TCPServer(
            group: group, address: try SocketAddress(host: "127.0.0.1", port: 0), handler: HTTPHello.serve)
        let loop = group.loops[0]
        let closing = try await exchange("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", server.localAddress, on: loop)
        #expect(closing == Self.ok.replacingOccurrences("\r\n\r\n", "\r\nConnection: close\r\n\r\n"))
        let bad = try await exchange("BROKEN\r\n\r\nGET / HTTP/1.1\r\n\r\n", server.localAddress, on: loop)
        #expect(bad.hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        #expect(bad.contains("Connection: close\r\n"))
        #expect(!bad.contains("200 OK"))  // nothing after the malformed request is answered
        let pipelined = try await exchange(
            "GET / HTTP/1.1\r\n\r\nGET /missing HTTP/1.1\r\n\r\nHEAD / HTTP/1.0\r\n\r\n", server.localAddress, on: loop)
        #expect(pipelined.hasPrefix(Self.ok + "HTTP/1.1 404 Not Found\r\n"))
        #expect(
            pipelined.hasSuffix(
                "HTTP/1.1 200 OK\r\nContent-Length: 14\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"))
        #expect(await eventually { liveRegistrations(group) == 2 })
    }

    @Test("keep-alive: 50 concurrent clients, 20 requests each on one connection")
    func keepAliveManyClients() async throws {
        let group = try EventLoopGroup(loopCount: 2)
        defer { group.shutdown() }
        let server = try TCPServer(
            group: group, address: try SocketAddress(host: "127.0.0.1", port: 0), handler: HTTPHello.serve)
        let clients = try EventLoop(name: "clients")
        defer { clients.shutdown() }
        let request = Array("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8)
        let answers = try await withThrowingTaskGroup(of: Int.self) { tasks in
            for _ in 0..<50 {
                tasks.addTask {
                    let connection = try await TCPConnection.connect(to: server.localAddress, on: clients)
                    defer { connection.close() }
                    var good = 0
                    for _ in 0..<20 {
                        try await connection.write(request)
                        let response = try await readExactly(connection, count: Self.ok.utf8.count)
                        if response.elementsEqual(Self.ok.utf8) { good += 1 }
                    }
                    return good
                }
            }
            return try await tasks.reduce(0, +)
        }
        #expect(answers == 1000)
        #expect(await eventually { liveRegistrations(group) == 2 })
        #expect(socketCount(port: server.localAddress.port, state: "08") == 0)
    }
}

extension String {
    fileprivate func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        var result = ""
        var rest = self[...]
        while let range = rest.firstRange(of: target) {
            result += rest[..<range.lowerBound] + replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}
