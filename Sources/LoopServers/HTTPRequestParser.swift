/// The request head of an HTTP/1.x request, as much as the hello server needs.
public struct HTTPRequestHead: Equatable, Sendable {
    public var method: String
    public var target: String
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    public var minorVersion: Int
    /// The connection stays open after the response (HTTP/1.1 unless `Connection: close`,
    /// HTTP/1.0 only with `Connection: keep-alive`).
    public var keepAlive: Bool
    public var contentLength: Int
}

/// What ``HTTPRequestParser/parse(_:)`` found at the start of a buffer.
public enum HTTPParseResult: Equatable, Sendable {
    /// Not a whole request yet: read more.
    case incomplete
    /// A request, head and body, taking the first `length` bytes.
    case request(HTTPRequestHead, length: Int)
    /// Not HTTP/1.x, or over the limits: answer 400 and close.
    case malformed
}

/// A strict HTTP/1.x request parser (RFC 9112): request line `METHOD SP TARGET SP
/// HTTP/1.x CRLF`, header lines `name: value CRLF` with a token name, an empty line; a body
/// only with Content-Length. Transfer-Encoding, obsolete line folding, a head over
/// ``maxHead`` bytes and a body over ``maxBody`` bytes are refused as malformed.
public enum HTTPRequestParser {
    public static let maxHead = 8 * 1024
    public static let maxBody = 64 * 1024

    public static func parse(_ bytes: UnsafeRawBufferPointer) -> HTTPParseResult {
        guard let headEnd = findHeadEnd(bytes) else {
            return bytes.count > maxHead ? .malformed : .incomplete
        }
        if headEnd > maxHead { return .malformed }
        var lines = LineCursor(bytes: bytes, end: headEnd)
        guard let requestLine = lines.next(), let head = parseRequestLine(bytes, requestLine) else { return .malformed }
        var result = head
        var sawLength = false
        while let line = lines.next() {
            guard let header = parseHeader(bytes, line) else { return .malformed }
            switch header.name {
            case .contentLength:
                let digits = bytes[header.value]
                guard !sawLength, !digits.isEmpty, digits.count <= 9, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 })
                else { return .malformed }
                let length = digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
                guard length <= maxBody else { return .malformed }
                sawLength = true
                result.contentLength = length
            case .transferEncoding:
                return .malformed
            case .connection:
                let value = String(decoding: bytes[header.value], as: UTF8.self).lowercased()
                if value.contains("close") { result.keepAlive = false }
                if value.contains("keep-alive") { result.keepAlive = true }
            case .other:
                break
            }
        }
        let total = headEnd + 4 + result.contentLength
        guard bytes.count >= total else { return .incomplete }
        return .request(result, length: total)
    }

    /// The offset of the CRLFCRLF that ends the head.
    private static func findHeadEnd(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard bytes.count >= 4 else { return nil }
        var index = 0
        let last = min(bytes.count, maxHead + 4) - 4
        while index <= last {
            if bytes[index + 3] == 0x0A && bytes[index + 2] == 0x0D && bytes[index + 1] == 0x0A
                && bytes[index] == 0x0D
            {
                return index
            }
            index += 1
        }
        return nil
    }

    private static func parseRequestLine(_ bytes: UnsafeRawBufferPointer, _ line: Range<Int>) -> HTTPRequestHead? {
        // METHOD SP TARGET SP HTTP/1.x: exactly two spaces, found without allocating.
        guard let firstSpace = bytes[line].firstIndex(of: 0x20),
            let secondSpace = bytes[(firstSpace + 1)..<line.upperBound].firstIndex(of: 0x20),
            !bytes[(secondSpace + 1)..<line.upperBound].contains(0x20)
        else { return nil }
        let method = line.lowerBound..<firstSpace
        let target = (firstSpace + 1)..<secondSpace
        let version = (secondSpace + 1)..<line.upperBound
        guard !method.isEmpty, bytes[method].allSatisfy(isToken), !target.isEmpty,
            bytes[target].allSatisfy({ $0 > 0x20 && $0 < 0x7F }),
            bytes[target.lowerBound] == UInt8(ascii: "/") || (target.count == 1 && bytes[target.lowerBound] == 0x2A),
            version.count == 8, matches(bytes, version.lowerBound, "HTTP/1."),
            bytes[version.lowerBound + 7] == 0x30 || bytes[version.lowerBound + 7] == 0x31
        else { return nil }
        let minor = Int(bytes[version.lowerBound + 7] - 0x30)
        return HTTPRequestHead(
            method: String(decoding: bytes[method], as: UTF8.self),
            target: String(decoding: bytes[target], as: UTF8.self),
            minorVersion: minor, keepAlive: minor == 1, contentLength: 0)
    }

    /// Whether `bytes` at `offset` spell `text` (ASCII), ignoring case when `caseless`.
    private static func matches(
        _ bytes: UnsafeRawBufferPointer, _ offset: Int, _ text: StaticString, caseless: Bool = false
    ) -> Bool {
        let count = text.utf8CodeUnitCount
        guard offset + count <= bytes.count else { return false }
        let start = text.utf8Start
        for index in 0..<count {
            var byte = bytes[offset + index]
            if caseless && byte >= 0x41 && byte <= 0x5A { byte |= 0x20 }
            if byte != start[index] { return false }
        }
        return true
    }

    private enum HeaderName {
        case contentLength, transferEncoding, connection, other
    }

    private struct Header {
        var name: HeaderName
        var value: Range<Int>
    }

    private static func parseHeader(_ bytes: UnsafeRawBufferPointer, _ line: Range<Int>) -> Header? {
        guard let colon = bytes[line].firstIndex(of: UInt8(ascii: ":")), colon > line.lowerBound,
            bytes[line.lowerBound..<colon].allSatisfy(isToken)
        else { return nil }
        var start = colon + 1
        var end = line.upperBound
        while start < end && (bytes[start] == 0x20 || bytes[start] == 0x09) { start += 1 }
        while end > start && (bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09) { end -= 1 }
        guard bytes[start..<end].allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else { return nil }
        let length = colon - line.lowerBound
        let name: HeaderName
        if length == 14 && matches(bytes, line.lowerBound, "content-length", caseless: true) {
            name = .contentLength
        } else if length == 17 && matches(bytes, line.lowerBound, "transfer-encoding", caseless: true) {
            name = .transferEncoding
        } else if length == 10 && matches(bytes, line.lowerBound, "connection", caseless: true) {
            name = .connection
        } else {
            name = .other
        }
        return Header(name: name, value: start..<end)
    }

    /// RFC 9110 token characters.
    private static func isToken(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"),
            UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"),
            UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// The CRLF-terminated lines of the head.
    private struct LineCursor {
        let bytes: UnsafeRawBufferPointer
        let end: Int
        var position = 0

        init(bytes: UnsafeRawBufferPointer, end: Int) {
            self.bytes = bytes
            self.end = end
        }

        mutating func next() -> Range<Int>? {
            guard position <= end else { return nil }
            var index = position
            while index < end && !(bytes[index] == 0x0D && bytes[index + 1] == 0x0A) { index += 1 }
            // A bare CR or LF inside a line is not allowed.
            if bytes[position..<index].contains(where: { $0 == 0x0A || $0 == 0x0D }) { return 0..<0 }
            defer { position = index + 2 }
            return position..<index
        }
    }
}
