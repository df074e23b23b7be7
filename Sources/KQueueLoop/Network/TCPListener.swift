import Glibc
import KQueue
import Synchronization

/// A listening TCP socket (IPv4 or IPv6) on an ``EventLoop``; ``accept()`` awaits the next
/// connection, which is registered with the same loop.
public final class TCPListener: Sendable {
    public let loop: EventLoop
    public let descriptor: FileDescriptor
    /// The address bound (with the port the kernel chose for port 0).
    public let localAddress: SocketAddress
    let token: SlotToken
    private let closed = Atomic<Bool>(false)

    private init(descriptor: Int32, token: SlotToken, loop: EventLoop, localAddress: SocketAddress) {
        self.descriptor = FileDescriptor(rawValue: descriptor)
        self.token = token
        self.loop = loop
        self.localAddress = localAddress
    }

    deinit { close() }

    /// Binds and listens on `address` (port 0: the kernel chooses; see ``localAddress``).
    ///
    /// - Parameters:
    ///   - reusePort: sets SO_REUSEPORT, so that listeners on several loops share the port
    ///     and the kernel spreads the connections among them (``EventLoopGroup``).
    ///   - backlog: the accept queue's length.
    /// - Throws: ``SocketError``, e.g. `Errno.addressInUse` for `.bind`.
    public static func bind(
        to address: SocketAddress, on loop: EventLoop, reusePort: Bool = false, backlog: Int32 = 1024
    ) throws(SocketError) -> TCPListener {
        let result: Result<TCPListener, SocketError> = Result { () throws(Errno) -> Result<TCPListener, SocketError> in
            try loop.runOnLoop { () throws(Errno) -> Result<TCPListener, SocketError> in
                makeListener(address, loop: loop, reusePort: reusePort, backlog: backlog)
            }
        }.mapError { SocketError($0, .bind, address: address) }.flatMap { $0 }
        return try result.get()
    }

    private static func makeListener(
        _ address: SocketAddress, loop: EventLoop, reusePort: Bool, backlog: Int32
    ) -> Result<TCPListener, SocketError> {
        let fd: Int32
        do throws(Errno) {
            fd = try LoopSyscall.socket(family: address.family, type: Int32(SOCK_STREAM.rawValue))
        } catch {
            return .failure(SocketError(error, .socket, address: address))
        }
        var step = SocketError.Operation.setOption
        do throws(Errno) {
            try LoopSyscall.setOption(fd, level: SOL_SOCKET, name: SO_REUSEADDR, value: 1)
            if reusePort { try LoopSyscall.setOption(fd, level: SOL_SOCKET, name: SO_REUSEPORT, value: 1) }
            if address.isIPv6 { try LoopSyscall.setOption(fd, level: Int32(IPPROTO_IPV6), name: IPV6_V6ONLY, value: 1) }
            step = .bind
            try LoopSyscall.bind(fd, address)
            step = .listen
            try LoopSyscall.listen(fd, backlog: backlog)
            let bound = try LoopSyscall.localAddress(fd)
            let token = try loop.registerIO(fd)
            return .success(TCPListener(descriptor: fd, token: token, loop: loop, localAddress: bound))
        } catch {
            LoopSyscall.close(fd)
            return .failure(SocketError(error, step, address: address))
        }
    }

    /// Waits for the next connection. Accepted sockets are non-blocking, close-on-exec and
    /// have TCP_NODELAY set.
    ///
    /// - Throws: ``SocketError`` (`.accept`): e.g. `Errno.tooManyOpenFiles` (the
    ///   connection stays queued: retry later), `Errno.badFileDescriptor` after ``close()``,
    ///   `Errno.canceled` at shutdown; `CancellationError`.
    public func accept() async throws -> TCPConnection {
        guard loop.inEventLoop else {
            guard !loop.isShuttingDown else { throw SocketError(.canceled, .accept, address: localAddress) }
            return try await withTaskExecutorPreference(loop) { try await accept() }
        }
        return try TCPConnection.adopt(try await acceptDescriptor(), on: loop)
    }

    /// Waits for the next connection and returns its socket, not yet registered with any
    /// loop (``TCPServer`` registers it with the loop it chooses). On the loop thread.
    func acceptDescriptor() async throws -> Int32 {
        loop.assertInLoop()
        while true {
            guard !closed.load(ordering: .relaxed), loop.ioState(token) != nil else {
                throw SocketError(.badFileDescriptor, .accept, address: localAddress)
            }
            if loop.ioMayRead(token) {
                let accepted: Int32?
                do throws(Errno) {
                    accepted = try LoopSyscall.accept(descriptor.rawValue)
                } catch {
                    throw SocketError(error, .accept, address: localAddress)
                }
                if let accepted {
                    try? LoopSyscall.setOption(accepted, level: Int32(IPPROTO_TCP), name: TCP_NODELAY, value: 1)
                    return accepted
                }
                loop.ioDrained(token)
            }
            do {
                try await loop.ioWaitReadable(token)
            } catch let error as Errno {
                throw SocketError(error, .accept, address: localAddress)
            }
        }
    }

    /// Stops listening and closes the socket; a waiting ``accept()`` throws. Idempotent.
    public func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let loop = self.loop
        let token = self.token
        if loop.inEventLoop {
            loop.closeIO(token)
        } else {
            loop.execute { loop.closeIO(token) }
        }
    }
}
