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
            case "content-length":
                guard !sawLength, let length = Int(header.value), length >= 0, length <= maxBody,
                    header.value.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 })
                else { return .malformed }
                sawLength = true
                result.contentLength = length
            case "transfer-encoding":
                return .malformed
            case "connection":
                let value = header.value.lowercased()
                if value.contains("close") { result.keepAlive = false }
                if value.contains("keep-alive") { result.keepAlive = true }
            default:
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
        let parts = bytes[line].split(separator: 0x20, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[0].allSatisfy(isToken), !parts[1].isEmpty,
            parts[1].allSatisfy({ $0 > 0x20 && $0 < 0x7F }),
            parts[1].first == UInt8(ascii: "/") || parts[1].elementsEqual([UInt8(ascii: "*")])
        else { return nil }
        let version = Array(parts[2])
        guard version.count == 8, version.starts(with: Array("HTTP/1.".utf8)), version[7] == 0x30 || version[7] == 0x31
        else { return nil }
        let minor = Int(version[7] - 0x30)
        return HTTPRequestHead(
            method: String(decoding: parts[0], as: UTF8.self), target: String(decoding: parts[1], as: UTF8.self),
            minorVersion: minor, keepAlive: minor == 1, contentLength: 0)
    }

    private struct Header {
        var name: String
        var value: String
    }

    private static func parseHeader(_ bytes: UnsafeRawBufferPointer, _ line: Range<Int>) -> Header? {
        let field = bytes[line]
        guard let colon = field.firstIndex(of: UInt8(ascii: ":")), colon > line.lowerBound,
            field[line.lowerBound..<colon].allSatisfy(isToken)
        else { return nil }
        let value = field[(colon + 1)...].drop { $0 == 0x20 || $0 == 0x09 }
        guard value.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else { return nil }
        var trimmed = value[...]
        while let last = trimmed.last, last == 0x20 || last == 0x09 { trimmed = trimmed.dropLast() }
        return Header(
            name: String(decoding: field[line.lowerBound..<colon], as: UTF8.self).lowercased(),
            value: String(decoding: trimmed, as: UTF8.self))
    }

    /// RFC 9110 token characters.
    private static func isToken(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
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
