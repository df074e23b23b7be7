import ArgumentParser
import Glibc
import KQueue
import KQueueLoop
import LoopServers

/// `kq echo-server`: the line echo server on KQueueLoop.
struct EchoServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo-server",
        abstract: "Line echo server on KQueueLoop (each line a client sends comes back); stops on SIGINT or SIGTERM.")

    @OptionGroup var options: ServerOptions

    func run() throws {
        try options.serve(name: "echo-server", handler: LineEcho.serve)
    }
}

/// `kq http-hello`: the HTTP/1.1 hello server on KQueueLoop.
struct HTTPHelloCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "http-hello",
        abstract:
            "HTTP/1.1 keep-alive server on KQueueLoop: GET / answers \"Hello, world!\", a malformed request 400; stops on SIGINT or SIGTERM."
    )

    @OptionGroup var options: ServerOptions

    func run() throws {
        try options.serve(name: "http-hello", handler: HTTPHello.serve)
    }
}

/// The options both servers take, and their common run.
struct ServerOptions: ParsableArguments {
    @Option(help: "Address to listen on (numeric IPv4 or IPv6).") var host = "127.0.0.1"
    @Option(help: "Port (0: any free port; the one chosen is printed).") var port: UInt16 = 8080
    @Option(help: "Event loops (threads), sharing the port through SO_REUSEPORT.")
    var loops = EventLoopGroup.processorCount
    @Option(
        help: ArgumentHelp(
            "Close a connection after this many seconds without reading or writing (0: never).",
            valueName: "SECONDS"))
    var idleTimeout: Double = 60

    func validate() throws {
        guard loops > 0 && loops <= 1024 else { throw ValidationError("--loops must be between 1 and 1024") }
        guard idleTimeout >= 0 && idleTimeout <= 86_400 * 365 else {
            throw ValidationError("--idle-timeout must be between 0 (never) and a year of seconds")
        }
    }

    /// Serves until SIGINT or SIGTERM, then stops accepting, shuts the loops down and exits 0.
    func serve(name: String, handler: @escaping @Sendable (TCPConnection) async -> Void) throws {
        // The signals end the server through a kqueue, not through their default action:
        // EVFILT_SIGNAL counts ignored signals too.
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let signals = try KernelQueue()
        try signals.apply([.signal(SIGINT), .signal(SIGTERM)])

        let address = try SocketAddress(host: host, port: port)
        let group = try EventLoopGroup(loopCount: loops, name: name)
        let server: TCPServer
        do {
            let idle: Duration? = idleTimeout > 0 ? .nanoseconds(Int64(idleTimeout * 1e9)) : nil
            server = try TCPServer(group: group, address: address, idleTimeout: idle, handler: handler)
        } catch {
            group.shutdown()
            throw error
        }
        print("\(name): listening on \(server.localAddress) with \(loops) loop\(loops == 1 ? "" : "s")")
        fflush(nil)  // all streams: the line above reaches a pipe at once
        while true {
            do {
                if let event = try signals.events(maxEvents: 1).first {
                    print("\(name): signal \(event.ident), shutting down")
                    break
                }
            } catch Errno.interrupted {
            } catch {
                throw error
            }
        }
        server.close()
        group.shutdown()
        signals.close()
    }
}
