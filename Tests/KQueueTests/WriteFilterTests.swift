import CKQueueShim
import Glibc
import KQueue
import Testing

/// F_GETPIPE_SZ (Linux; not imported without _GNU_SOURCE).
private let getPipeSize: Int32 = 1032

private func isConnected(_ fd: FileDescriptor) -> Bool {
    var address = sockaddr_storage()
    var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
    return withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd.rawValue, $0, &length) == 0 }
    }
}

/// SPEC.md section 3, EVFILT_WRITE.
@Suite("SPEC 3: EVFILT_WRITE")
struct WriteFilterTests {
    // MARK: Sockets

    @Test("3.WRITE: a connected TCP socket fires with data = free space in the send buffer")
    func tcpConnectedFires() throws {
        let queue = try KernelQueue()
        let (client, server) = try makeTCPConnection()
        defer { closeAll(client, server) }
        try queue.apply([.write(client)])
        let event = try expectEvent(queue, ident: UInt(client), filter: .write)
        let sendBuffer = Int64(try socketOption(client, SOL_SOCKET, SO_SNDBUF))
        #expect((event?.data ?? 0) > 0)
        #expect((event?.data ?? .max) <= sendBuffer)
        #expect(event?.flags == [])
    }

    @Test("3.WRITE: a TCP socket with a full send buffer does not fire, and fires again once there is room")
    func tcpFullSendBuffer() throws {
        let queue = try KernelQueue()
        let (client, server) = try makeTCPConnection { socket in
            try setSocketOption(socket, SOL_SOCKET, SO_SNDBUF, 4096)
            try setSocketOption(socket, SOL_SOCKET, SO_RCVBUF, 4096)
        }
        defer { closeAll(client, server) }
        // Fill until poll(2) itself says "not writable" for a while: loopback keeps moving
        // data to the peer's receive buffer (and small writes still fit after large ones
        // are refused) until both buffers are full.
        var total = 0
        var full = false
        let clock = ContinuousClock()
        let fillDeadline = clock.now + .seconds(5)
        while !full && clock.now < fillDeadline {
            total += try fill(client, chunk: 1024)
            total += try fill(client, chunk: 1)
            var poller = pollfd(fd: client.rawValue, events: Int16(POLLOUT), revents: 0)
            full = poll(&poller, 1, 300) == 0
        }
        #expect(total > 0)
        try #require(full, "premise: the send buffer never stayed full")
        try queue.apply([.write(client)])
        try expectNoEvents(queue, for: .milliseconds(100), "the send buffer is full")
        // Drain the peer until the sender has room again (bounded).
        let deadline = clock.now + eventDeadline
        var event: KEvent? = nil
        while event == nil && clock.now < deadline {
            try drain(server)
            event = try queue.events(timeout: .milliseconds(20)).first {
                $0.ident == UInt(client) && $0.filter == .write
            }
        }
        #expect(event != nil, "WRITE did not fire after the peer read everything")
        #expect((event?.data ?? 0) > 0)
    }

    @Test("3.WRITE: NOTE_LOWAT sets the send low-water mark")
    func writeLowWater() throws {
        let queue = try KernelQueue()
        let (socket, peer) = try makeSocketPair()
        defer { closeAll(socket, peer) }
        try queue.apply([.write(socket, note: .lowWater, data: 1 << 40)])
        try expectNoEvents(queue, "the send buffer can never hold 1 TiB")
        try queue.apply([.write(socket, note: .lowWater, data: 1)])
        #expect((try expectEvent(queue, ident: UInt(socket), filter: .write)?.data ?? 0) > 0)
    }

    @Test("3.WRITE: EV_EOF when the peer can no longer receive (UNIX stream)")
    func unixPeerClosedGivesEOF() throws {
        let queue = try KernelQueue()
        let (socket, peer) = try makeSocketPair()
        defer { closeAll(socket) }
        try queue.apply([.write(socket, flags: [.add, .clear])])
        #expect(try expectEvent(queue, ident: UInt(socket), filter: .write)?.flags.contains(.endOfFile) == false)
        closeAll(peer)
        let event = try expectEvent(
            queue, ident: UInt(socket), filter: .write, where: { $0.flags.contains(.endOfFile) })
        #expect(event?.fflags == 0)
    }

    @Test("3.WRITE: a reset TCP connection gives EV_EOF with the socket error in fflags")
    func tcpResetGivesEOFWithError() throws {
        let queue = try KernelQueue()
        let (client, server) = try makeTCPConnection()
        defer { closeAll(server) }
        try queue.apply([.write(server, flags: [.add, .clear])])
        try expectEvent(queue, ident: UInt(server), filter: .write)
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        try sys(setsockopt(client.rawValue, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size)))
        closeAll(client)
        let event = try expectEvent(
            queue, ident: UInt(server), filter: .write, where: { $0.flags.contains(.endOfFile) })
        #expect(event?.fflags == UInt32(ECONNRESET))
    }

    @Test("3.WRITE: a connection-oriented socket that is not connected never fires")
    func unconnectedStreamSocketNeverFires() throws {
        let queue = try KernelQueue()
        let tcp = try makeTCPSocket(nonblocking: true)
        let unix = descriptor(try sys(socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)))
        defer { closeAll(tcp, unix) }
        try queue.apply([.write(tcp), .write(unix)])
        try expectNoEvents(queue, for: .milliseconds(100))
    }

    @Test("3.WRITE: a listening socket never fires")
    func listeningSocketNeverFires() throws {
        let queue = try KernelQueue()
        let (listener, port) = try makeTCPListener()
        defer { closeAll(listener) }
        try queue.apply([.write(listener)])
        try expectNoEvents(queue)
        let client = try connectTCP(port: port)
        defer { closeAll(client) }
        try expectNoEvents(queue, for: .milliseconds(100), "a pending connection does not make a listener writable")
    }

    @Test("3.WRITE: a connecting socket does not fire until the connection is established")
    func connectingSocketFiresOnceConnected() throws {
        let queue = try KernelQueue()
        // Backlog 0: one connection fills the accept queue and the next SYN is dropped, so
        // the second connect stays in progress until there is room (SYN retransmit, ~1 s).
        let (listener, port) = try makeTCPListener(backlog: 0)
        defer { closeAll(listener) }
        let first = try connectTCP(port: port)
        defer { closeAll(first) }
        let second = try connectTCP(port: port, nonblocking: true)
        defer { closeAll(second) }
        try queue.apply([.write(second)])
        if !isConnected(second) {
            try expectNoEvents(queue, for: .milliseconds(150), "connect still in progress")
            try #require(!isConnected(second), "premise: the connect was still in progress")
        }
        let accepted = descriptor(try sys(accept(listener.rawValue, nil, nil)))
        defer { closeAll(accepted) }
        let event = try expectEvent(queue, ident: UInt(second), filter: .write)
        #expect(event?.flags.contains(.endOfFile) == false)
        #expect(isConnected(second))
    }

    @Test("3.WRITE: a refused connect gives EV_EOF with the socket error in fflags")
    func refusedConnectGivesEOFWithError() throws {
        let queue = try KernelQueue()
        // A bound port nobody listens on: a connect is refused.
        let closedPort = try makeTCPSocket()
        defer { closeAll(closedPort) }
        _ = try withSocketAddress(loopbackAddress(port: 0)) { try sys(bind(closedPort.rawValue, $0, $1)) }
        let port = try localPort(closedPort)
        let socket = try connectTCP(port: port, nonblocking: true)
        defer { closeAll(socket) }
        try queue.apply([.write(socket)])
        let event = try expectEvent(queue, ident: UInt(socket), filter: .write)
        #expect(event?.flags.contains(.endOfFile) == true)
        #expect(event?.fflags == UInt32(ECONNREFUSED))
    }

    @Test("3.WRITE: datagram sockets fire (connected UNIX pair, unconnected UDP)")
    func datagramSocketsFire() throws {
        let queue = try KernelQueue()
        let (socket, peer) = try makeSocketPair(type: Int32(SOCK_DGRAM.rawValue))
        let udp = descriptor(try sys(Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)))
        defer { closeAll(socket, peer, udp) }
        try queue.apply([.write(socket), .write(udp)])
        let events = try expectEvents(queue, [(UInt(socket), .write), (UInt(udp), .write)])
        #expect(events.allSatisfy { $0.data > 0 && $0.flags == [] }, "\(events)")
    }

    // MARK: Pipes and FIFOs

    @Test("3.WRITE: pipe data is the free space in the buffer")
    func pipeDataIsFreeSpace() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(readEnd, writeEnd) }
        let capacity = Int64(try sys(kq_shim_fcntl(writeEnd.rawValue, getPipeSize)))
        try queue.apply([.write(writeEnd)])
        #expect(try expectEvent(queue, ident: UInt(writeEnd), filter: .write)?.data == capacity)
        try send(writeEnd, count: 100)
        #expect(try expectEvent(queue, ident: UInt(writeEnd), filter: .write)?.data == capacity - 100)
    }

    @Test("3.WRITE: a pipe fires only when at least PIPE_BUF bytes are free")
    func pipeFiresWithPipeBufFree() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(readEnd, writeEnd) }
        let pipeBuf = 4096  // PIPE_BUF on Linux
        try fill(writeEnd, chunk: pipeBuf)
        try queue.apply([.write(writeEnd)])
        try expectNoEvents(queue, "the pipe is full")
        try #require(try receive(readEnd, count: pipeBuf - 1) == pipeBuf - 1)
        try expectNoEvents(queue, "only PIPE_BUF - 1 bytes are free")
        try receive(readEnd, count: 1)
        let event = try expectEvent(queue, ident: UInt(writeEnd), filter: .write)
        #expect(event?.data == Int64(pipeBuf))
    }

    @Test("3.WRITE: a pipe reports EV_EOF when the reader is gone")
    func pipeReaderGoneGivesEOF() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(writeEnd) }
        try queue.apply([.write(writeEnd, flags: [.add, .clear])])
        #expect(try expectEvent(queue, ident: UInt(writeEnd), filter: .write)?.flags.contains(.endOfFile) == false)
        closeAll(readEnd)
        let event = try expectEvent(
            queue, ident: UInt(writeEnd), filter: .write, where: { $0.flags.contains(.endOfFile) })
        #expect(event != nil)
    }

    @Test("3.WRITE: EV_ADD on a pipe whose reader already closed is EPIPE")
    func addOnPipeWithoutReaderIsBrokenPipe() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(writeEnd) }
        closeAll(readEnd)
        #expect(changeError(queue, .write(writeEnd)) == .brokenPipe)
        #expect(
            changeError(queue, .write(writeEnd, flags: .delete)) == .noSuchFileOrDirectory, "no knote was left behind")
    }

    @Test("3.WRITE: a FIFO reports free space, and EV_EOF when the reader is gone")
    func fifoWrite() throws {
        let queue = try KernelQueue()
        let directory = try makeTemporaryDirectory()
        let path = directory + "/fifo"
        defer {
            unlink(path)
            rmdir(directory)
        }
        try sys(mkfifo(path, 0o600))
        let reader = descriptor(try sys(open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)))
        let writer = descriptor(try sys(open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC)))
        defer { closeAll(writer) }
        try queue.apply([.write(writer)])
        let event = try expectEvent(queue, ident: UInt(writer), filter: .write)
        #expect(event?.data == Int64(try sys(kq_shim_fcntl(writer.rawValue, getPipeSize))))
        closeAll(reader)
        #expect(
            try expectEvent(queue, ident: UInt(writer), filter: .write, where: { $0.flags.contains(.endOfFile) }) != nil
        )
        // Re-adding once the reader is gone is EPIPE, as for a pipe.
        try queue.apply([.write(writer, flags: .delete)])
        #expect(changeError(queue, .write(writer)) == .brokenPipe)
    }

    // MARK: Regular files

    @Test("3.WRITE: a regular file is always ready")
    func regularFileAlwaysReady() throws {
        let queue = try KernelQueue()
        let (path, reader) = try makeTemporaryFile(contents: [1, 2, 3])
        let file = descriptor(try sys(open(path, O_WRONLY | O_CLOEXEC)))
        defer {
            closeAll(reader, file)
            unlink(path)
        }
        try queue.apply([.write(file)])
        for _ in 0..<2 { try expectEvent(queue, ident: UInt(file), filter: .write) }
    }
}
