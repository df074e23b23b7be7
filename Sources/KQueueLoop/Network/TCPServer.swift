import KQueue

/// A TCP server on an ``EventLoopGroup``: one listener per loop on the same port
/// (SO_REUSEPORT; the kernel spreads the connections), and one task per connection that runs
/// `handler` on the connection's loop. The connection is closed when `handler` returns.
public final class TCPServer: Sendable {
    /// The address the listeners share (with the chosen port when 0 was asked).
    public let localAddress: SocketAddress
    let listeners: [TCPListener]

    /// Starts listening on `address` on every loop of `group`.
    ///
    /// `handler` should catch its errors: a ``SocketError`` from a peer that reset is part of
    /// a server's normal life. The server outlives its handle until ``close()`` or the
    /// group's shutdown.
    public init(
        group: EventLoopGroup, address: SocketAddress, backlog: Int32 = 1024,
        handler: @escaping @Sendable (TCPConnection) async -> Void
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
        localAddress = address
        for listener in listeners {
            Task(executorPreference: listener.loop) { await Self.acceptLoop(listener, handler: handler) }
        }
    }

    private static func acceptLoop(
        _ listener: TCPListener, handler: @escaping @Sendable (TCPConnection) async -> Void
    ) async {
        let loop = listener.loop
        while true {
            let connection: TCPConnection
            do {
                connection = try await listener.accept()
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
            Task(executorPreference: loop) {
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
