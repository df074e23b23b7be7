// Examples/EchoServer/main.swift: an echo server on two event loops, async/await per connection.
// Usage: EchoServerExample [PORT] [SECONDS] (defaults 7000 and 60; port 0 picks a free one).
import KQueueLoop

let arguments = CommandLine.arguments.dropFirst()
let port = arguments.first.flatMap { UInt16($0) } ?? 7000
let seconds = arguments.dropFirst().first.flatMap { Double($0) } ?? 60

let group = try EventLoopGroup(loopCount: 2)  // one thread and one kqueue per loop
let address = try SocketAddress(host: "127.0.0.1", port: port)
let server = try TCPServer(group: group, address: address) { connection in
    var buffer = [UInt8](repeating: 0, count: 4096)
    do {
        while true {
            let count = try await connection.read(into: &buffer)  // 0: the client closed
            if count == 0 { return }
            try await connection.write(buffer[..<count])  // waits while the client does not read
        }
    } catch {
        print("connection ended:", error)  // e.g. read: Errno.connectionReset
    }
}
print("echo server on", server.localAddress)

let loop = group.next()
let tick = loop.scheduleRepeating(every: .seconds(10)) { _ in print("still serving") }
try await loop.sleep(for: .seconds(seconds))  // a loop timer, awaited
tick.cancel()
server.close()
group.shutdown()  // runs what is queued, cancels what waits, closes what it owns
print("shut down")
