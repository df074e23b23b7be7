import KQueue
import Synchronization

/// A TCP server on an ``EventLoopGroup``: one listener per loop on the same port
/// (SO_REUSEPORT: the kernel spreads the accepting among the loops), and one task per
/// connection that runs `handler` on the connection's loop. The connection is closed when
/// `handler` returns.
///
/// The kernel spreads connections by a hash of their addresses, which with a few hundred
/// clients leaves one loop with noticeably more than another (61 against 39 of 100 was
/// measured here), and those connections wait longer. So each accepted connection goes to the
/// loop that has the fewest open (the accepting loop when tied): SO_REUSEPORT spreads the
/// accepts, the count keeps the loops even.
public final class TCPServer: Sendable {
    /// The address the listeners share (with the chosen port when 0 was asked).
    public let localAddress: SocketAddress
    let listeners: [TCPListener]
    let loops: [EventLoop]
    /// Open connections per loop (same order as `loops`).
    let openConnections: Mutex<[Int]>
    let keepAliveSeconds: Int32?
    /// The accepted connections' ``TCPConnection/idleTimeout``.
    public let idleTimeout: Duration?

    /// Starts listening on `address` on every loop of `group`.
    ///
    /// `handler` should catch its errors: a ``SocketError`` from a peer that reset is part of
    /// a server's normal life. The server outlives its handle until ``close()`` or the
    /// group's shutdown.
    ///
    /// - Parameter keepAlive: TCP keepalive for the accepted connections: after this long
    ///   without traffic the kernel probes the client (every 10 s, 3 times) and fails a
    ///   half-open connection, whose peer vanished without a word, with `Errno.timedOut` in
    ///   the waiting read. nil: off.
    /// - Parameter idleTimeout: each accepted connection's ``TCPConnection/idleTimeout``: a
    ///   client that neither sends nor receives for this long (a silent client that keeps
    ///   the connection open, which keepalive does not end) is closed, and its handler's
    ///   read or write throws `Errno.timedOut`. nil or zero: off.
    public init(
        group: EventLoopGroup, address: SocketAddress, backlog: Int32 = 1024, keepAlive: Duration? = .seconds(60),
        idleTimeout: Duration? = .seconds(60), handler: @escaping @Sendable (TCPConnection) async -> Void
    ) throws(SocketError) {
        var listeners: [TCPListener] = []
        var address = address
        do throws(SocketError) {
            for loop in group.loops {
                let listener = try TCPListener.bind(to: address, on: loop, reusePort: true, backlog: backlog)
                if address.port == 0 { address = listener.localAddress }
                listeners.append(listener)
            }
        } catch {
            for listener in listeners { listener.close() }
            throw error
        }
        self.listeners = listeners
        loops = group.loops
        openConnections = Mutex([Int](repeating: 0, count: group.loops.count))
        localAddress = address
        keepAliveSeconds = keepAlive.map { Int32(clamping: max(1, $0.components.seconds)) }
        self.idleTimeout = EventLoop.nanoseconds(idleTimeout) == 0 ? nil : idleTimeout
        for (index, listener) in listeners.enumerated() {
            Task(executorPreference: listener.loop) { [self] in await acceptLoop(listener, index, handler: handler) }
        }
    }

    /// The loop with the fewest open connections (`preferred` when tied), counted as taken.
    private func chooseLoop(preferred: Int) -> Int {
        openConnections.withLock { counts in
            var best = preferred
            for index in counts.indices where counts[index] < counts[best] { best = index }
            counts[best] += 1
            return best
        }
    }

    private func acceptLoop(
        _ listener: TCPListener, _ index: Int, handler: @escaping @Sendable (TCPConnection) async -> Void
    ) async {
        let loop = listener.loop
        while true {
            let descriptor: Int32
            do {
                descriptor = try await listener.acceptDescriptor()
            } catch let error as SocketError {
                switch error.errno {
                case .badFileDescriptor, .canceled: return  // closed, or shut down
                default:
                    // EMFILE and the like: the connection stays queued; retry a little later
                    // instead of spinning.
                    do { try await loop.sleep(for: .milliseconds(10)) } catch { return }
                }
                continue
            } catch {
                return
            }
            if let keepAliveSeconds {
                // Best effort: a socket that refuses is served all the same.
                try? LoopSyscall.setKeepAlive(descriptor, idle: keepAliveSeconds, interval: 10, count: 3)
            }
            let chosen = chooseLoop(preferred: index)
            let target = loops[chosen]
            Task(executorPreference: target) { [self] in
                defer { openConnections.withLock { $0[chosen] -= 1 } }
                // The loop may have stopped meanwhile: the task then runs elsewhere.
                guard target.inEventLoop, let connection = try? TCPConnection.adopt(descriptor, on: target) else {
                    if !target.inEventLoop { LoopSyscall.close(descriptor) }
                    return
                }
                if let idleTimeout { connection.idleTimeout = idleTimeout }
                await handler(connection)
                connection.close()
            }
        }
    }

    /// Stops accepting (the connections open go on).
    public func close() {
        for listener in listeners { listener.close() }
    }
}
