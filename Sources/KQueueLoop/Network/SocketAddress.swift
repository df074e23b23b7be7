import Glibc
import KQueue

/// An IPv4 or IPv6 address and port, for ``TCPListener`` and ``TCPConnection``.
public struct SocketAddress: Sendable, Hashable, CustomStringConvertible {
    enum Storage: Hashable {
        case v4(host: UInt32, port: UInt16)
        case v6(host: [UInt8], port: UInt16, scope: UInt32)
    }
    let storage: Storage

    /// An address from its numeric form: `"127.0.0.1"`, `"::1"`, `"0.0.0.0"`, `"::"`.
    /// Host names are not resolved. A string that is neither form: `Errno.invalidArgument`.
    public init(host: String, port: UInt16) throws(Errno) {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            storage = .v4(host: v4.s_addr, port: port)
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            let bytes = withUnsafeBytes(of: v6) { Array($0) }
            storage = .v6(host: bytes, port: port, scope: 0)
            return
        }
        throw Errno.invalidArgument
    }

    init(_ address: sockaddr_storage) {
        var address = address
        if Int32(address.ss_family) == AF_INET6 {
            let v6 = withUnsafeBytes(of: &address) { $0.load(as: sockaddr_in6.self) }
            storage = .v6(
                host: withUnsafeBytes(of: v6.sin6_addr) { Array($0) }, port: UInt16(bigEndian: v6.sin6_port),
                scope: v6.sin6_scope_id)
        } else {
            let v4 = withUnsafeBytes(of: &address) { $0.load(as: sockaddr_in.self) }
            storage = .v4(host: v4.sin_addr.s_addr, port: UInt16(bigEndian: v4.sin_port))
        }
    }

    /// The port.
    public var port: UInt16 {
        switch storage {
        case .v4(_, let port), .v6(_, let port, _): return port
        }
    }

    /// True for an IPv6 address.
    public var isIPv6: Bool {
        if case .v6 = storage { return true }
        return false
    }

    var family: Int32 { isIPv6 ? AF_INET6 : AF_INET }

    /// The numeric host, as `inet_ntop` writes it.
    public var host: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        switch storage {
        case .v4(let host, _):
            var address = in_addr(s_addr: host)
            _ = inet_ntop(AF_INET, &address, &text, socklen_t(text.count))
        case .v6(let host, _, _):
            var address = in6_addr()
            withUnsafeMutableBytes(of: &address) { $0.copyBytes(from: host) }
            _ = inet_ntop(AF_INET6, &address, &text, socklen_t(text.count))
        }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public var description: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Calls `body` with the C form of the address.
    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws(Errno) -> R) throws(Errno) -> R {
        switch storage {
        case .v4(let host, let port):
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = host
            return try withUnsafePointer(to: &address) { pointer throws(Errno) in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address throws(Errno) in
                    try body(address, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        case .v6(let host, let port, let scope):
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            address.sin6_scope_id = scope
            withUnsafeMutableBytes(of: &address.sin6_addr) { $0.copyBytes(from: host) }
            return try withUnsafePointer(to: &address) { pointer throws(Errno) in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address throws(Errno) in
                    try body(address, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        }
    }
}
