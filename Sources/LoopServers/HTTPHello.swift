import KQueueLoop

/// The HTTP/1.1 server of `kq http-hello`: `GET /` (or `HEAD /`) answers 200 with the body
/// "Hello, world!\n" and its Content-Length; connections are kept alive (HTTP/1.1, or
/// HTTP/1.0 with `Connection: keep-alive`) and pipelined requests are answered in order; a
/// malformed request gets 400 and the connection closes. Other targets: 404; other methods:
/// 405.
public enum HTTPHello {
    public static let body = "Hello, world!\n"

    static func response(status: String, body: String, keepAlive: Bool, head: Bool = false) -> [UInt8] {
        var text = "HTTP/1.1 \(status)\r\nContent-Length: \(body.utf8.count)\r\nContent-Type: text/plain\r\n"
        if !keepAlive { text += "Connection: close\r\n" }
        text += "\r\n"
        if !head { text += body }
        return Array(text.utf8)
    }

    static let ok = response(status: "200 OK", body: body, keepAlive: true)
    static let okClose = response(status: "200 OK", body: body, keepAlive: false)
    static let okHead = response(status: "200 OK", body: body, keepAlive: true, head: true)
    static let badRequest = response(status: "400 Bad Request", body: "Bad Request\n", keepAlive: false)

    static func answer(_ request: HTTPRequestHead) -> [UInt8] {
        let isRoot = request.target == "/"
        switch request.method {
        case "GET" where isRoot:
            return request.keepAlive ? ok : okClose
        case "HEAD" where isRoot:
            return request.keepAlive ? okHead : response(status: "200 OK", body: body, keepAlive: false, head: true)
        case "GET", "HEAD":
            return response(
                status: "404 Not Found", body: "Not Found\n", keepAlive: request.keepAlive,
                head: request.method == "HEAD")
        default:
            return response(
                status: "405 Method Not Allowed", body: "Method Not Allowed\n", keepAlive: request.keepAlive)
        }
    }

    /// Serves one connection until the client closes, fails, or sends a malformed request.
    public static func serve(_ connection: TCPConnection) async {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        var pending: [UInt8] = []
        var output: [UInt8] = []
        do {
            while true {
                let count = try await connection.read(into: &buffer)
                if count == 0 { return }
                // The common case, a whole request in one read, parses the read buffer itself.
                var close = false
                var consumed = 0
                if pending.isEmpty {
                    buffer.withUnsafeBytes { bytes in
                        (consumed, close) = answerAll(UnsafeRawBufferPointer(rebasing: bytes[..<count]), into: &output)
                    }
                    if consumed < count { pending.append(contentsOf: buffer[consumed..<count]) }
                } else {
                    pending.append(contentsOf: buffer[..<count])
                    pending.withUnsafeBytes { bytes in (consumed, close) = answerAll(bytes, into: &output) }
                    pending.removeFirst(consumed)
                }
                if !output.isEmpty {
                    try await connection.write(output)
                    output.removeAll(keepingCapacity: true)
                }
                if close { return }
            }
        } catch {
            // A reset or a closed peer ends the connection.
        }
    }

    /// Answers each whole request at the start of `bytes`; returns the bytes used and whether
    /// the connection must close after the answers (a malformed request or no keep-alive).
    static func answerAll(_ bytes: UnsafeRawBufferPointer, into output: inout [UInt8]) -> (Int, Bool) {
        var offset = 0
        while offset < bytes.count {
            switch HTTPRequestParser.parse(UnsafeRawBufferPointer(rebasing: bytes[offset...])) {
            case .incomplete:
                return (offset, false)
            case .malformed:
                output.append(contentsOf: badRequest)
                return (bytes.count, true)
            case .request(let head, let length):
                output.append(contentsOf: answer(head))
                offset += length
                if !head.keepAlive { return (bytes.count, true) }
            }
        }
        return (offset, false)
    }
}
