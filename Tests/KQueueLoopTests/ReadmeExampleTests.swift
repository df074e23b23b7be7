import Testing

@testable import KQueueLoop

/// The README's KQueueLoop example, compiled and run here (its port is 0, its minute a few
/// milliseconds): if the README's code stops compiling, so does this file.
@Suite("README: KQueueLoop example")
struct ReadmeExampleTests {
    @Test("the README's echo server runs, echoes, and shuts down")
    func readmeEchoServer() async throws {
        let group = try EventLoopGroup(loopCount: 2)  // one thread and one kqueue per loop
        let address = try SocketAddress(host: "127.0.0.1", port: 0)
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
        let loop = group.next()
        let tick = loop.scheduleRepeating(every: .milliseconds(1)) { _ in }
        let client = try await TCPConnection.connect(to: server.localAddress, on: loop)
        try await client.write(Array("hello".utf8))
        #expect(try await readExactly(client, count: 5) == Array("hello".utf8))
        client.close()
        try await loop.sleep(for: .milliseconds(5))  // a loop timer, awaited
        tick.cancel()
        server.close()
        group.shutdown()  // runs what is queued, cancels what waits, closes what it owns
    }
}
