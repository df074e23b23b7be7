import Glibc
import KQueue
import Synchronization

/// A TCP connection on an ``EventLoop``: a non-blocking socket with async reads and writes.
///
/// Its calls run on the loop thread (a task elsewhere hops there for the call). One task may
/// read while another writes. ``write(_:)`` returns once the kernel took every byte, so a
/// peer that does not read holds the writer (backpressure): the memory a connection holds is
/// the caller's buffer plus the kernel's socket buffer, never an unbounded queue.
///
/// Errors are ``SocketError``s (the errno with the operation and address), or
/// `CancellationError` when the waiting task is cancelled.
public final class TCPConnection: Sendable {
    /// The loop the socket is registered with.
    public let loop: EventLoop
    /// The socket.
    public let descriptor: FileDescriptor
    /// The peer's address, for a connection made by ``connect(to:on:)``.
    public let remoteAddress: SocketAddress?
    let token: SlotToken
    private let closed = Atomic<Bool>(false)
    /// ``idleTimeout`` in nanoseconds, 0 for none (the loop keeps its own copy).
    private let idleNanoseconds = Atomic<Int64>(0)

    init(adopting descriptor: Int32, token: SlotToken, loop: EventLoop, remoteAddress: SocketAddress?) {
        self.descriptor = FileDescriptor(rawValue: descriptor)
        self.token = token
        self.loop = loop
        self.remoteAddress = remoteAddress
    }

    /// Wraps an accepted, non-blocking socket (on the loop thread).
    static func adopt(_ descriptor: Int32, on loop: EventLoop) throws(SocketError) -> TCPConnection {
        do throws(Errno) {
            let token = try loop.registerIO(descriptor)
            return TCPConnection(adopting: descriptor, token: token, loop: loop, remoteAddress: nil)
        } catch {
            LoopSyscall.close(descriptor)
            throw SocketError(error, .accept)
        }
    }

    deinit { Self.close(descriptor: descriptor.rawValue, token: token, loop: loop, closed: closed) }

    /// Connects to `address` (IPv4 or IPv6) from `loop`.
    public static func connect(to address: SocketAddress, on loop: EventLoop) async throws -> TCPConnection {
        guard loop.inEventLoop else {
            guard !loop.isShuttingDown else { throw SocketError(.canceled, .connect, address: address) }
            return try await withTaskExecutorPreference(loop) { try await connect(to: address, on: loop) }
        }
        let fd: Int32
        do throws(Errno) {
            fd = try LoopSyscall.socket(family: address.family, type: Int32(SOCK_STREAM.rawValue))
        } catch {
            throw SocketError(error, .socket, address: address)
        }
        let connection: TCPConnection
        do throws(Errno) {
            try? LoopSyscall.setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_NODELAY, value: 1)
            let done = try LoopSyscall.connect(fd, address)
            let token = try loop.registerIO(fd)
            connection = TCPConnection(adopting: fd, token: token, loop: loop, remoteAddress: address)
            if done { return connection }
        } catch {
            LoopSyscall.close(fd)
            throw SocketError(error, .connect, address: address)
        }
        do {
            try await loop.ioWaitWritable(connection.token)
        } catch let error as Errno {
            connection.close()
            throw SocketError(error, .connect, address: address)
        } catch {
            connection.close()
            throw error
        }
        if let error = LoopSyscall.pendingError(fd) {
            connection.close()
            throw SocketError(error, .connect, address: address)
        }
        return connection
    }

    /// Reads what is there, up to `buffer.count` bytes, into the start of `buffer`, waiting
    /// until something is. Returns the count; 0 at end of stream (the peer shut down its
    /// side or closed).
    public func read(into buffer: inout [UInt8]) async throws -> Int {
        precondition(!buffer.isEmpty, "read(into:) needs room for at least one byte")
        guard loop.inEventLoop else {
            guard !loop.isShuttingDown else { throw SocketError(.canceled, .read) }
            return try await withTaskExecutorPreference(loop) { try await read(into: &buffer) }
        }
        while true {
            // The slot goes when the socket was closed: by close() or by shutdown. Its number may belong to another file by now.
            guard !closed.load(ordering: .relaxed), let state = loop.ioState(token), !state.expired else {
                throw SocketError(loop.ioFailure(token), .read, address: remoteAddress)
            }
            if loop.ioMayRead(token) {
                let count = buffer.count
                let result = try buffer.withUnsafeMutableBytes { bytes throws(SocketError) in
                    do throws(Errno) {
                        return try LoopSyscall.receive(descriptor.rawValue, bytes.baseAddress!, count)
                    } catch {
                        throw SocketError(error, .read, address: remoteAddress)
                    }
                }
                if let result {
                    loop.ioProgress(token)
                    // Less than asked: the socket is drained (a later arrival brings an event).
                    if result > 0 && result < count { loop.ioDrained(token) }
                    return result
                }
                loop.ioDrained(token)
            }
            do {
                try await loop.ioWaitReadable(token)
            } catch let error as Errno {
                throw SocketError(error, .read, address: remoteAddress)
            }
        }
    }

    /// Reads what is there, up to `maxBytes`; empty at end of stream.
    public func read(maxBytes: Int = 16384) async throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: maxBytes)
        let count = try await read(into: &buffer)
        buffer.removeSubrange(count...)
        return buffer
    }

    /// Writes all of `bytes`, waiting for room as the peer reads.
    public func write(_ bytes: [UInt8]) async throws {
        try await write(bytes[...])
    }

    /// Writes all of `bytes`, waiting for room as the peer reads.
    public func write(_ bytes: ArraySlice<UInt8>) async throws {
        guard loop.inEventLoop else {
            guard !loop.isShuttingDown else { throw SocketError(.canceled, .write) }
            return try await withTaskExecutorPreference(loop) { try await write(bytes) }
        }
        var written = 0
        while written < bytes.count {
            guard !closed.load(ordering: .relaxed), let state = loop.ioState(token), !state.expired else {
                throw SocketError(loop.ioFailure(token), .write, address: remoteAddress)
            }
            let sent = try bytes.withUnsafeBytes { bytes throws(SocketError) in
                do throws(Errno) {
                    return try LoopSyscall.send(
                        descriptor.rawValue, bytes.baseAddress! + written, bytes.count - written)
                } catch {
                    throw SocketError(error, .write, address: remoteAddress)
                }
            }
            if let sent {
                written += sent
                loop.ioProgress(token)
                continue
            }
            do {
                try await loop.ioWaitWritable(token)
            } catch let error as Errno {
                throw SocketError(error, .write, address: remoteAddress)
            }
        }
    }

    /// How long the connection may go without a read or a write that moves data before the
    /// loop ends it (nil or zero: never): the socket is shut down both ways, so the peer sees
    /// the connection closed, and the waiting read or write, and every later one, throws
    /// ``SocketError`` with `Errno.timedOut`. The descriptor is released by ``close()`` (a
    /// ``TCPServer`` closes it when its handler returns). Connections of a ``TCPServer`` get
    /// the server's (60 s by default).
    ///
    /// Checked by one coarse timer per loop, every eighth of the smallest timeout (10 ms to
    /// 1 s): a connection is not closed before its timeout, and at most about a quarter of it
    /// later. Setting it starts the idle time anew. Settable from any thread (from another
    /// thread it takes effect when the loop runs the next jobs).
    public var idleTimeout: Duration? {
        get {
            let nanoseconds = idleNanoseconds.load(ordering: .relaxed)
            return nanoseconds == 0 ? nil : .nanoseconds(nanoseconds)
        }
        set {
            let nanoseconds = EventLoop.nanoseconds(newValue)
            idleNanoseconds.store(nanoseconds, ordering: .relaxed)
            let loop = self.loop
            let token = self.token
            if loop.inEventLoop {
                loop.ioSetIdleTimeout(token, nanoseconds: UInt64(nanoseconds))
            } else {
                loop.execute { loop.ioSetIdleTimeout(token, nanoseconds: UInt64(nanoseconds)) }
            }
        }
    }

    /// Shuts down the sending side (half-close): the peer reads end of stream, and this side
    /// can still read what the peer sends.
    public func shutdownWrite() throws(SocketError) {
        do throws(Errno) {
            try LoopSyscall.shutdown(descriptor.rawValue, how: Int32(SHUT_WR))
        } catch {
            throw SocketError(error, .shutdown, address: remoteAddress)
        }
    }

    /// Closes the socket; a task waiting on it gets ``SocketError`` with
    /// `Errno.badFileDescriptor`. Callable from any thread; idempotent.
    public func close() {
        Self.close(descriptor: descriptor.rawValue, token: token, loop: loop, closed: closed)
    }

    private static func close(descriptor: Int32, token: SlotToken, loop: EventLoop, closed: borrowing Atomic<Bool>) {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        if loop.inEventLoop {
            loop.closeIO(token)
        } else {
            // After shutdown the job is dropped: shutdown closed the socket already.
            loop.execute { loop.closeIO(token) }
        }
    }
}
