import Glibc

/// The socketpair-chain workload (issue: "1,000 socketpairs, 100 active, 1,000 chained
/// one-byte writes per iteration"), shared by every interface under test.
///
/// - 1,000 AF_UNIX SOCK_STREAM socketpairs, nonblocking. End 0 of each pair is the read end
///   and is registered for readability (EVFILT_READ / EPOLLIN), level-triggered.
/// - 100 chains in flight: at setup one byte is written into every tenth pair.
/// - Event on pair i: read exactly one byte from its read end, then write one byte to pair
///   (i + 1) % 1,000's write end. So 100 bytes are always in flight and a wait never blocks.
/// - An iteration ends after 1,000 writes. Events of the last batch left unprocessed keep
///   their byte and, being level-triggered, are reported again by the next wait: the state
///   carries over from one iteration to the next, which is the steady state.
/// - Each interface waits through its own call with one reusable 64-entry event buffer.
public enum ChainParameters {
    public static let pairs = 1_000
    public static let activeChains = 100
    public static let writesPerIteration = 1_000
    public static let eventBufferCapacity = 64
}

/// One way of driving the workload. `runIteration()` is the measured unit: it must not
/// allocate, and it crashes if the workload's invariants break (a read or write that does
/// not move exactly one byte), so a broken engine cannot produce a fast, wrong figure.
public protocol ChainWorkload: AnyObject {
    /// "CABI", "SwiftAPI" or "RawEpoll".
    var name: String { get }
    /// Performs `ChainParameters.writesPerIteration` chained writes.
    func runIteration()
    /// Events handled so far (one per write).
    var eventsHandled: Int { get }
    /// Bytes waiting in the workload's socketpairs: always `ChainParameters.activeChains`.
    func bytesInFlight() -> Int
    /// Releases the poller and the socketpairs. Idempotent.
    func close()
}

/// The three workloads, in the order the tables print them.
public enum ChainWorkloads {
    public static func makeAll() throws -> [any ChainWorkload] {
        [try CABIChain(), try SwiftAPIChain(), try RawEpollChain()]
    }

    public static func make(_ name: String) throws -> any ChainWorkload {
        switch name {
        case "CABI": return try CABIChain()
        case "SwiftAPI": return try SwiftAPIChain()
        case "RawEpoll": return try RawEpollChain()
        default: throw ChainSetupError(call: "unknown workload \(name)", errno: EINVAL)
        }
    }

    /// Makes sure the process may hold the descriptors of all three workloads at once
    /// (3 x 2,000 sockets plus the pollers).
    public static func raiseDescriptorLimit(to wanted: Int = 8_192) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        guard limit.rlim_cur < rlim_t(wanted) else { return }
        limit.rlim_cur = min(rlim_t(wanted), limit.rlim_max)
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}

public struct ChainSetupError: Error, CustomStringConvertible {
    public let call: String
    public let errno: Int32
    public var description: String { "\(call) failed: \(String(cString: strerror(errno)))" }
}

/// The socketpairs of one workload: plain descriptor tables, allocated once, so the hot
/// loop does no reference counting or bounds-checked array access that the other
/// interfaces would not also do.
public struct SocketPairs {
    /// End 0 of pair i: registered with the poller, read from.
    public let readEnds: UnsafeMutableBufferPointer<Int32>
    /// End 1 of pair i: written to by the chain.
    public let writeEnds: UnsafeMutableBufferPointer<Int32>

    /// `tcp`: loopback TCP connections (TCP_NODELAY) instead of AF_UNIX socketpairs.
    public init(count: Int = ChainParameters.pairs, tcp: Bool = false) throws {
        ChainWorkloads.raiseDescriptorLimit()
        readEnds = .allocate(capacity: count)
        writeEnds = .allocate(capacity: count)
        let listener = tcp ? TCPLoopback.listen() : -1
        defer { if listener >= 0 { _ = Glibc.close(listener) } }
        for i in 0..<count {
            var fds: (Int32, Int32) = (-1, -1)
            let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
            let rc = withUnsafeMutableBytes(of: &fds) { raw in
                tcp
                    ? TCPLoopback.pair(listener, raw.baseAddress!.assumingMemoryBound(to: Int32.self))
                    : socketpair(AF_UNIX, type, 0, raw.baseAddress!.assumingMemoryBound(to: Int32.self))
            }
            guard rc == 0 else {
                let error = Glibc.errno
                for j in 0..<i {
                    _ = Glibc.close(readEnds[j])
                    _ = Glibc.close(writeEnds[j])
                }
                readEnds.deallocate()
                writeEnds.deallocate()
                throw ChainSetupError(call: "socketpair #\(i)", errno: error)
            }
            readEnds[i] = fds.0
            writeEnds[i] = fds.1
        }
    }

    /// Puts one byte into every (pairs / activeChains)-th pair: the chains in flight.
    public func prime(chains: Int = ChainParameters.activeChains) {
        let stride = readEnds.count / chains
        for c in 0..<chains { Self.writeOneByte(writeEnds[c * stride]) }
    }

    /// Bytes waiting in all pairs (peeked, not consumed). The chains conserve bytes, so this
    /// stays `ChainParameters.activeChains` for the whole run.
    public func bytesInFlight() -> Int {
        var total = 0
        var scratch = [UInt8](repeating: 0, count: 4_096)
        for i in 0..<readEnds.count {
            let n = recv(readEnds[i], &scratch, scratch.count, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT))
            if n > 0 { total += n }
        }
        return total
    }

    public func closeAll() {
        for i in 0..<readEnds.count {
            _ = Glibc.close(readEnds[i])
            _ = Glibc.close(writeEnds[i])
        }
        readEnds.deallocate()
        writeEnds.deallocate()
    }

    /// The per-event work, identical for every interface: take the byte from pair `i`,
    /// pass it on to pair `i + 1`.
    @inline(__always)
    public func forward(from i: Int) {
        Self.readOneByte(readEnds[i])
        let next = i + 1 == readEnds.count ? 0 : i + 1
        Self.writeOneByte(writeEnds[next])
    }

    @inline(__always)
    static func readOneByte(_ fd: Int32) {
        var byte: UInt8 = 0
        let n = Glibc.read(fd, &byte, 1)
        precondition(n == 1, "chain broken: read() on a reported descriptor returned \(n), errno \(Glibc.errno)")
    }

    @inline(__always)
    static func writeOneByte(_ fd: Int32) {
        var byte: UInt8 = 0x2A
        let n = Glibc.write(fd, &byte, 1)
        precondition(n == 1, "chain broken: write() returned \(n), errno \(Glibc.errno)")
    }
}

/// Loopback TCP connections for ``SocketPairs``.
enum TCPLoopback {
    static func listen() -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        _ = Glibc.listen(fd, 128)
        return fd
    }

    /// A connected pair (read end, write end), both nonblocking, Nagle off; 0 or -1.
    static func pair(_ listener: Int32, _ ends: UnsafeMutablePointer<Int32>) -> Int32 {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard client >= 0 else { return -1 }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, length) }
        }
        let server = connected == 0 ? accept(listener, nil, nil) : -1
        guard server >= 0 else {
            _ = Glibc.close(client)
            return -1
        }
        var one: Int32 = 1
        for fd in [client, server] {
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        ends[0] = server
        ends[1] = client
        return 0
    }
}
