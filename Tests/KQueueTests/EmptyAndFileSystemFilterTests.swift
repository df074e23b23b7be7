import CKQueueShim
import Glibc
import KQueue
import SystemPackage
import Testing

/// SPEC.md 3, EVFILT_EMPTY and EVFILT_FS through the Swift API (the full matrices are
/// Tests/C/empty.c and Tests/C/fs.c; mounts need a private mount namespace, which only a
/// forked child can make: Tests/C/fs.c).
@Suite("SPEC 3: EVFILT_EMPTY and EVFILT_FS")
struct EmptyAndFileSystemFilterTests {
    /// A connected loopback TCP pair whose server's receive window is small (set on the
    /// listener), both ends nonblocking.
    static func tcpPair() throws -> (client: FileDescriptor, server: FileDescriptor) {
        let listener = try sys(socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0))
        defer { _ = close(listener) }
        try setSocketOption(descriptor(listener), SOL_SOCKET, SO_RCVBUF, 4096)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafeMutablePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                try sys(bind(listener, raw, length))
                try sys(listen(listener, 1))
                try sys(getsockname(listener, raw, &length))
            }
        }
        let client = try sys(socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0))
        try withUnsafePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                _ = try sys(connect(client, raw, length))
            }
        }
        let server = try sys(accept(listener, nil, nil))
        try sys(kq_shim_fcntl_int(server, F_SETFD, FD_CLOEXEC))
        try setSocketOption(descriptor(client), SOL_SOCKET, SO_SNDBUF, 16384)
        try setNonblocking(descriptor(client))
        try setNonblocking(descriptor(server))
        return (descriptor(client), descriptor(server))
    }

    @Test("3.EMPTY: an idle TCP socket is ready at once with data 0; a full queue fires once read")
    func tcpDrain() throws {
        let (client, server) = try Self.tcpPair()
        defer { closeAll(client, server) }
        let queue = try KernelQueue()
        try queue.apply([.empty(client, flags: [.add, .clear])])
        let first = try expectEvent(queue, ident: UInt(client.rawValue), filter: .empty)
        #expect(first?.data == 0)
        #expect(first?.flags == .clear)
        let chunk = [UInt8](repeating: 7, count: 4096)
        while chunk.withUnsafeBytes({ write(client.rawValue, $0.baseAddress, $0.count) }) > 0 {}
        #expect(try queue.events(maxEvents: 4, timeout: .milliseconds(30)).isEmpty)
        var sink = [UInt8](repeating: 0, count: 65536)
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(5)
        var fired: KEvent?
        while fired == nil && clock.now < deadline {
            while sink.withUnsafeMutableBytes({ read(server.rawValue, $0.baseAddress, $0.count) }) > 0 {}
            fired = try queue.events(maxEvents: 4, timeout: .milliseconds(1)).first { $0.filter == .empty }
        }
        #expect(fired?.ident == UInt(client.rawValue))
        #expect(fired?.data == 0)
    }

    @Test("3.EMPTY: a UNIX stream socket is ready at once (FreeBSD 12); a pipe is EINVAL")
    func unixAndErrors() throws {
        let (a, b) = try makeSocketPair()
        defer { closeAll(a, b) }
        _ = write(a.rawValue, "unread", 6)
        let queue = try KernelQueue()
        try queue.apply([.empty(a)])
        let event = try expectEvent(queue, ident: UInt(a.rawValue), filter: .empty)
        #expect(event?.data == 0)
        let pipe = try makePipe()
        defer { closeAll(pipe.read, pipe.write) }
        expectChangeFailure(.invalidArgument) { try queue.apply([.empty(pipe.write)]) }
    }

    @Test("3.FS: any ident is accepted (FreeBSD checks none), EV_CLEAR is added, nothing fires unprompted")
    func fileSystemRegistration() throws {
        let queue = try KernelQueue()
        try queue.apply([.fileSystem(), .fileSystem(42, flags: [.add, .oneShot])])
        #expect(try queue.events(maxEvents: 4, timeout: .milliseconds(10)).isEmpty)
        try queue.apply([.fileSystem(42, flags: .delete), .fileSystem(flags: .delete)])
        expectChangeFailure(.noSuchFileOrDirectory) { try queue.apply([.fileSystem(flags: .delete)]) }
        #expect(FileSystemNote([.mount, .unmount]).rawValue == 0x18)
    }
}
