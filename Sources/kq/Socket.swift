import Glibc
import KQueue

/// Small socket helpers for the command-line tools.
enum Socket {
    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ what: String, _ error: Int32 = errno) { description = "\(what): \(String(cString: strerror(error)))" }
    }

    static func setNonBlocking(_ fd: Int32) throws {
        let flags = fcntl(fd, F_GETFL)
        guard flags >= 0, fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 else { throw Failure("fcntl") }
    }

    /// Connects a TCP socket to `host`:`port`, trying each address getaddrinfo returns.
    static func connect(host: String, port: String) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>? = nil
        let status = getaddrinfo(host, port, &hints, &list)
        guard status == 0 else { throw Failure("getaddrinfo: \(String(cString: gai_strerror(status)))", 0) }
        defer { freeaddrinfo(list) }
        var failure = Failure("connect: no address")
        var entry = list
        while let info = entry {
            entry = info.pointee.ai_next
            let fd = socket(
                info.pointee.ai_family, info.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue),
                info.pointee.ai_protocol)
            guard fd >= 0 else {
                failure = Failure("socket")
                continue
            }
            if Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 { return fd }
            failure = Failure("connect")
            Glibc.close(fd)
        }
        throw failure
    }

    /// A listening TCP socket on 127.0.0.1 with an ephemeral port; returns it and the port.
    static func listenOnLoopback() throws -> (fd: Int32, port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure("socket") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound, listen(fd, 16) == 0 else { throw Failure("bind/listen") }
        return (fd, UInt16(bigEndian: address.sin_port))
    }

    /// Writes all of `bytes`, waiting for room on a nonblocking descriptor with `queue`.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n > 0 {
                offset += n
            } else if n < 0 && (errno == EAGAIN || errno == EINTR) {
                var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&poller, 1, -1)
            } else {
                throw Failure("write")
            }
        }
    }
}
