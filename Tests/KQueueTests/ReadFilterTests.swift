import CKQueueShim
import Glibc
import KQueue
import Testing

/// SPEC.md section 3, EVFILT_READ.
@Suite("SPEC 3: EVFILT_READ")
struct ReadFilterTests {
    // MARK: Sockets

    @Test("3.READ: TCP socket data is the bytes readable")
    func tcpDataIsBytesReadable() throws {
        let queue = try KernelQueue()
        let (client, server) = try makeTCPConnection()
        defer { closeAll(client, server) }
        try queue.apply([.read(server)])
        try expectNoEvents(queue)
        try send(client, count: 10)
        let event = try expectEvent(queue, ident: UInt(server), filter: .read, where: { $0.data >= 10 })
        #expect(event?.data == 10)
        #expect(event?.flags == [])
        #expect(try drain(server) == 10)
        try expectNoEvents(queue)
    }

    @Test("3.READ: TCP socket fires only when data reaches SO_RCVLOWAT")
    func tcpHonoursReceiveLowWater() throws {
        let queue = try KernelQueue()
        let (client, server) = try makeTCPConnection()
        defer { closeAll(client, server) }
        try setSocketOption(server, SOL_SOCKET, SO_RCVLOWAT, 20)
        try queue.apply([.read(server)])
        try send(client, count: 10)
        try expectNoEvents(queue, for: .milliseconds(100))
        try send(client, count: 15)
        let event = try expectEvent(queue, ident: UInt(server), filter: .read)
        #expect(event?.data == 25)
    }

    @Test("3.READ: NOTE_LOWAT sets the low-water mark (TCP, UNIX stream, pipe)")
    func noteLowWater() throws {
        let queue = try KernelQueue()
        let (client, server) = try makeTCPConnection()
        let (socket, peer) = try makeSocketPair()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(client, server, socket, peer, readEnd, writeEnd) }
        try queue.apply([
            .read(server, note: .lowWater, data: 20), .read(socket, note: .lowWater, data: 20),
            .read(readEnd, note: .lowWater, data: 20),
        ])
        for writer in [client, peer, writeEnd] { try send(writer, count: 10) }
        try expectNoEvents(queue, for: .milliseconds(100))
        for writer in [client, peer, writeEnd] { try send(writer, count: 10) }
        let events = try expectEvents(queue, [(UInt(server), .read), (UInt(socket), .read), (UInt(readEnd), .read)])
        #expect(events.map(\.data) == [20, 20, 20])
    }

    @Test(
        "3.READ: peer shutdown gives EV_EOF with fflags 0, even with data still buffered and under the low-water mark")
    func eofWithDataBuffered() throws {
        let queue = try KernelQueue()
        let (client, server) = try makeTCPConnection()
        let (socket, peer) = try makeSocketPair()
        defer { closeAll(client, server, socket, peer) }
        try queue.apply([.read(server, note: .lowWater, data: 100), .read(socket, note: .lowWater, data: 100)])
        try send(client, count: 5)
        try send(peer, count: 5)
        try sys(shutdown(client.rawValue, Int32(SHUT_WR)))
        try sys(shutdown(peer.rawValue, Int32(SHUT_WR)))
        for fd in [server, socket] {
            let event = try expectEvent(queue, ident: UInt(fd), filter: .read, where: { $0.flags.contains(.endOfFile) })
            #expect(event?.data == 5)
            #expect(event?.fflags == 0)
        }
    }

    @Test("3.READ: level-triggered EOF keeps being returned, and data shrinks as it is read")
    func eofIsLevelTriggered() throws {
        let queue = try KernelQueue()
        let (socket, peer) = try makeSocketPair()
        defer { closeAll(socket) }
        try queue.apply([.read(socket)])
        try send(peer, count: 4)
        closeAll(peer)
        let first = try expectEvent(queue, ident: UInt(socket), filter: .read, where: { $0.flags.contains(.endOfFile) })
        #expect(first?.data == 4)
        try receive(socket, count: 4)
        let second = try expectEvent(queue, ident: UInt(socket), filter: .read)
        #expect(second?.flags.contains(.endOfFile) == true)
        #expect(second?.data == 0)
    }

    @Test("3.READ: a reset connection gives EV_EOF with the socket error in fflags")
    func eofCarriesSocketError() throws {
        let queue = try KernelQueue()
        let (client, server) = try makeTCPConnection()
        defer { closeAll(server) }
        try queue.apply([.read(server)])
        // SO_LINGER with a zero timeout: close() sends a reset.
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        try sys(setsockopt(client.rawValue, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size)))
        closeAll(client)
        let event = try expectEvent(queue, ident: UInt(server), filter: .read, where: { $0.flags.contains(.endOfFile) })
        #expect(event?.fflags == UInt32(ECONNRESET))
    }

    @Test("3.READ: UNIX stream socket data is the bytes readable")
    func unixStreamDataIsBytesReadable() throws {
        let queue = try KernelQueue()
        let (socket, peer) = try makeSocketPair()
        defer { closeAll(socket, peer) }
        try queue.apply([.read(socket)])
        try expectNoEvents(queue)
        try send(peer, count: 7)
        try send(peer, count: 5)
        #expect(try expectEvent(queue, ident: UInt(socket), filter: .read)?.data == 12)
        try receive(socket, count: 12)
        try expectNoEvents(queue)
    }

    @Test("3.READ: UNIX datagram socket fires with the datagram's bytes")
    func unixDatagram() throws {
        let queue = try KernelQueue()
        let (socket, peer) = try makeSocketPair(type: Int32(SOCK_DGRAM.rawValue))
        defer { closeAll(socket, peer) }
        try queue.apply([.read(socket)])
        try expectNoEvents(queue)
        try send(peer, count: 10)
        let event = try expectEvent(queue, ident: UInt(socket), filter: .read)
        #expect(event?.data == 10)
        #expect(event?.flags == [])
        try receive(socket, count: 64)
        try expectNoEvents(queue)
    }

    @Test("3.READ: UDP socket fires with the datagram's bytes")
    func udpDatagram() throws {
        let queue = try KernelQueue()
        let receiver = descriptor(
            try sys(socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)))
        let sender = descriptor(try sys(socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)))
        defer { closeAll(receiver, sender) }
        _ = try withSocketAddress(loopbackAddress(port: 0)) { try sys(bind(receiver.rawValue, $0, $1)) }
        let port = try localPort(receiver)
        try queue.apply([.read(receiver)])
        try expectNoEvents(queue)
        let payload = [UInt8](repeating: 1, count: 33)
        _ = try withSocketAddress(loopbackAddress(port: port)) { address, length in
            try payload.withUnsafeBytes {
                try sys(sendto(sender.rawValue, $0.baseAddress, $0.count, 0, address, length))
            }
        }
        #expect(try expectEvent(queue, ident: UInt(receiver), filter: .read)?.data == 33)
    }

    @Test("3.READ: an unconnected stream socket does not fire")
    func unconnectedStreamSocketDoesNotFire() throws {
        let queue = try KernelQueue()
        let tcp = try makeTCPSocket(nonblocking: true)
        let unix = descriptor(try sys(socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)))
        defer { closeAll(tcp, unix) }
        try queue.apply([.read(tcp), .read(unix)])
        try expectNoEvents(queue, "no peer ever shut down, and there is no data")
    }

    // MARK: Listening sockets

    @Test("3.READ: a listening TCP socket's data is the number of connections waiting to be accepted")
    func tcpListenerDataIsAcceptQueueLength() throws {
        let queue = try KernelQueue()
        let (listener, port) = try makeTCPListener()
        try setNonblocking(listener)
        defer { closeAll(listener) }
        try queue.apply([.read(listener)])
        try expectNoEvents(queue)
        let first = try connectTCP(port: port)
        let second = try connectTCP(port: port)
        defer { closeAll(first, second) }
        let event = try expectEvent(queue, ident: UInt(listener), filter: .read, where: { $0.data >= 2 })
        #expect(event?.data == 2)
        let accepted = descriptor(try sys(accept(listener.rawValue, nil, nil)))
        defer { closeAll(accepted) }
        #expect(try expectEvent(queue, ident: UInt(listener), filter: .read)?.data == 1)
        let again = descriptor(try sys(accept(listener.rawValue, nil, nil)))
        defer { closeAll(again) }
        try expectNoEvents(queue)
    }

    @Test("3.READ: a listening UNIX socket's data is the number of connections waiting to be accepted")
    func unixListenerDataIsAcceptQueueLength() throws {
        let queue = try KernelQueue()
        let directory = try makeTemporaryDirectory()
        let path = directory + "/listener.sock"
        defer {
            unlink(path)
            rmdir(directory)
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
        }
        let length = socklen_t(MemoryLayout<sockaddr_un>.size)
        func withAddress<R>(_ body: (UnsafePointer<sockaddr>) throws -> R) rethrows -> R {
            try withUnsafePointer(to: &address) { try $0.withMemoryRebound(to: sockaddr.self, capacity: 1, body) }
        }
        let listener = descriptor(
            try sys(socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)))
        defer { closeAll(listener) }
        _ = try withAddress { try sys(bind(listener.rawValue, $0, length)) }
        try sys(listen(listener.rawValue, 8))
        try queue.apply([.read(listener)])
        try expectNoEvents(queue)
        var clients: [FileDescriptor] = []
        defer { for client in clients { closeAll(client) } }
        for _ in 0..<3 {
            let client = descriptor(try sys(socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)))
            clients.append(client)
            _ = try withAddress { try sys(connect(client.rawValue, $0, length)) }
        }
        let event = try expectEvent(queue, ident: UInt(listener), filter: .read)
        #expect(event?.data == 3)
    }

    // MARK: Pipes and FIFOs

    @Test("3.READ: pipe data is the bytes in the buffer; EV_EOF when the last writer is gone")
    func pipeDataAndEOF() throws {
        let queue = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        let extraWriter = descriptor(try sys(dup(writeEnd.rawValue)))
        defer { closeAll(readEnd) }
        try queue.apply([.read(readEnd)])
        try expectNoEvents(queue)
        try send(writeEnd, count: 100)
        let event = try expectEvent(queue, ident: UInt(readEnd), filter: .read)
        #expect(event?.data == 100)
        #expect(event?.flags == [])
        closeAll(writeEnd)
        let stillOpen = try expectEvent(queue, ident: UInt(readEnd), filter: .read)
        #expect(stillOpen?.flags.contains(.endOfFile) == false, "one writer is left")
        closeAll(extraWriter)
        let eof = try expectEvent(queue, ident: UInt(readEnd), filter: .read, where: { $0.flags.contains(.endOfFile) })
        #expect(eof?.data == 100)
        try receive(readEnd, count: 100)
        let drained = try expectEvent(queue, ident: UInt(readEnd), filter: .read)
        #expect(drained?.flags.contains(.endOfFile) == true)
        #expect(drained?.data == 0)
    }

    @Test("3.READ: a FIFO reports EV_EOF when the last writer is gone and clears it when a new writer connects")
    func fifoEOFClearsOnNewWriter() throws {
        let queue = try KernelQueue()
        let directory = try makeTemporaryDirectory()
        let path = directory + "/fifo"
        defer {
            unlink(path)
            rmdir(directory)
        }
        try sys(mkfifo(path, 0o600))
        let reader = descriptor(try sys(open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)))
        defer { closeAll(reader) }
        let writer = descriptor(try sys(open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC)))
        try queue.apply([.read(reader)])
        try send(writer, count: 3)
        let data = try expectEvent(queue, ident: UInt(reader), filter: .read)
        #expect(data?.data == 3)
        #expect(data?.flags == [])
        try receive(reader, count: 3)
        closeAll(writer)
        let eof = try expectEvent(queue, ident: UInt(reader), filter: .read, where: { $0.flags.contains(.endOfFile) })
        #expect(eof?.data == 0)
        // A new writer: EOF clears, nothing to report until it writes.
        let newWriter = descriptor(try sys(open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC)))
        defer { closeAll(newWriter) }
        try expectNoEvents(queue, "EV_EOF should have cleared when a new writer connected")
        try send(newWriter, count: 4)
        let again = try expectEvent(queue, ident: UInt(reader), filter: .read)
        #expect(again?.data == 4)
        #expect(again?.flags.contains(.endOfFile) == false)
    }

    // MARK: Regular files

    @Test("3.READ: regular file data is the size minus the offset, negative past the end; fires when not 0")
    func regularFileDataIsSizeMinusOffset() throws {
        let queue = try KernelQueue()
        let (path, file) = try makeTemporaryFile(contents: [UInt8](repeating: 7, count: 100))
        defer {
            closeAll(file)
            unlink(path)
        }
        try queue.apply([.read(file)])
        #expect(try expectEvent(queue, ident: UInt(file), filter: .read)?.data == 100)
        try sys(lseek(file.rawValue, 40, SEEK_SET))
        #expect(try expectEvent(queue, ident: UInt(file), filter: .read)?.data == 60)
        try sys(lseek(file.rawValue, 150, SEEK_SET))
        #expect(try expectEvent(queue, ident: UInt(file), filter: .read)?.data == -50)
        try sys(lseek(file.rawValue, 0, SEEK_END))
        try expectNoEvents(queue, "data 0 at the end of the file")
    }

    @Test("3.READ: a regular file knote that reached data 0 fires again when the file grows")
    func regularFileGrowthRearms() throws {
        let queue = try KernelQueue()
        let (path, file) = try makeTemporaryFile(contents: [UInt8](repeating: 7, count: 10))
        let appender = descriptor(try sys(open(path, O_WRONLY | O_APPEND | O_CLOEXEC)))
        let second = descriptor(try sys(open(path, O_RDONLY | O_CLOEXEC)))
        defer {
            closeAll(file, appender, second)
            unlink(path)
        }
        try sys(lseek(file.rawValue, 0, SEEK_END))
        try sys(lseek(second.rawValue, 0, SEEK_END))
        // One level-triggered, one EV_CLEAR knote, both at data 0.
        try queue.apply([.read(file), .read(second, flags: [.add, .clear])])
        try expectNoEvents(queue)
        try send(appender, count: 5)
        let events = try expectEvents(queue, [(UInt(file), .read), (UInt(second), .read)])
        #expect(events.map(\.data) == [5, 5])
        try receive(second, count: 5)
        try expectNoEvent(queue, ident: UInt(second), filter: .read)
        try send(appender, count: 3)
        #expect(try expectEvent(queue, ident: UInt(second), filter: .read)?.data == 3)
    }

    @Test("3.READ: NOTE_FILE_POLL makes a regular file always ready")
    func regularFilePollAlwaysFires() throws {
        let queue = try KernelQueue()
        let (path, file) = try makeTemporaryFile(contents: [1, 2, 3])
        defer {
            closeAll(file)
            unlink(path)
        }
        try sys(lseek(file.rawValue, 0, SEEK_END))
        try queue.apply([.read(file, note: .filePoll)])
        for _ in 0..<2 {
            let event = try expectEvent(queue, ident: UInt(file), filter: .read)
            #expect(event?.data == 0)
        }
    }

    // MARK: Terminals

    @Test("3.READ: a terminal's data is the bytes readable (both sides of a pty)")
    func terminalDataIsBytesReadable() throws {
        let queue = try KernelQueue()
        let (controller, terminal) = try makePseudoTerminal()
        defer { closeAll(controller, terminal) }
        try queue.apply([.read(terminal), .read(controller)])
        try expectNoEvents(queue)
        try send(controller, count: 5)
        let input = try expectEvent(queue, ident: UInt(terminal), filter: .read, where: { $0.data >= 5 })
        #expect(input?.data == 5)
        try drain(terminal)
        try send(terminal, count: 3)
        let output = try expectEvent(queue, ident: UInt(controller), filter: .read, where: { $0.data >= 3 })
        #expect(output?.data == 3)
        try drain(controller)
        try expectNoEvents(queue)
    }

    // MARK: kqueue descriptors

    @Test("3.READ: a kqueue descriptor's data is the number of events pending")
    func kqueueDataIsEventsPending() throws {
        let outer = try KernelQueue()
        let inner = try KernelQueue()
        let (readEnd, writeEnd) = try makePipe()
        defer { closeAll(readEnd, writeEnd) }
        try inner.apply([
            .user(1, flags: [.add, .clear]), .user(2, flags: [.add, .clear]), .read(readEnd, flags: [.add, .clear]),
        ])
        try outer.apply([.read(inner.descriptor)])
        try expectNoEvents(outer)
        try inner.apply([.user(1, note: .trigger), .user(2, note: .trigger)])
        try send(writeEnd, count: 1)
        let event = try expectEvent(outer, ident: UInt(inner.descriptor), filter: .read, where: { $0.data >= 3 })
        #expect(event?.data == 3)
        #expect(try inner.events(timeout: .zero).count == 3)
        try expectNoEvents(outer, "nothing pending in the inner kqueue any more")
    }

    // MARK: READ and WRITE on one descriptor

    @Test("3.READ/WRITE: READ and WRITE knotes on one descriptor work independently")
    func readAndWriteOnOneDescriptor() throws {
        let queue = try KernelQueue()
        let (socket, peer) = try makeSocketPair()
        defer { closeAll(socket, peer) }
        try queue.apply([.read(socket, udata: tag(1)), .write(socket, flags: [.add, .clear], udata: tag(2))])
        let writable = try expectEvent(queue, ident: UInt(socket), filter: .write)
        #expect(writable?.udata == tag(2))
        #expect((writable?.data ?? 0) > 0)
        try expectNoEvents(queue, "READ without data, WRITE is EV_CLEAR")
        try send(peer, count: 6)
        let readable = try expectEvent(queue, ident: UInt(socket), filter: .read)
        #expect(readable?.udata == tag(1))
        #expect(readable?.data == 6)
        // Deleting WRITE leaves READ alone, and the other way around.
        try queue.apply([.write(socket, flags: .delete)])
        #expect(try expectEvent(queue, ident: UInt(socket), filter: .read)?.data == 6)
        try queue.apply([.write(socket), .read(socket, flags: .delete)])
        try receive(socket, count: 6)
        let events = try queue.events(timeout: .milliseconds(50))
        #expect(events.map(\.filter) == [.write])
        // Disabling one leaves the other.
        try queue.apply([.read(socket), .write(socket, flags: .disable)])
        try send(peer, count: 2)
        let onlyRead = try expectEvent(queue, ident: UInt(socket), filter: .read)
        #expect(onlyRead?.data == 2)
        #expect(try queue.events(timeout: .milliseconds(20)).map(\.filter) == [.read])
    }

    @Test("3.READ/WRITE: an EV_CLEAR READ next to a level WRITE on one descriptor")
    func clearReadNextToLevelWrite() throws {
        let queue = try KernelQueue()
        let (socket, peer) = try makeSocketPair()
        defer { closeAll(socket, peer) }
        try queue.apply([.read(socket, flags: [.add, .clear]), .write(socket)])
        try send(peer, count: 3)
        let first = try expectEvents(queue, [(UInt(socket), .read), (UInt(socket), .write)])
        #expect(first.first { $0.filter == .read }?.data == 3)
        // WRITE keeps coming (level), READ does not until new data arrives.
        for _ in 0..<3 {
            let events = try keventRaw(queue, [], capacity: 8, timeout: .seconds(1))
            #expect(events.map(\.filter) == [.write], "\(events)")
        }
        try send(peer, count: 1)
        #expect(try expectEvent(queue, ident: UInt(socket), filter: .read)?.data == 4)
    }

    @Test("3.READ/WRITE: a oneshot READ fires and goes, the WRITE on the same descriptor stays")
    func oneShotReadNextToWrite() throws {
        let queue = try KernelQueue()
        let (socket, peer) = try makeSocketPair()
        defer { closeAll(socket, peer) }
        try queue.apply([.read(socket, flags: [.add, .oneShot]), .write(socket, flags: [.add, .dispatch])])
        try send(peer, count: 2)
        let events = try expectEvents(queue, [(UInt(socket), .read), (UInt(socket), .write)])
        #expect(events.count == 2)
        #expect(changeError(queue, .read(socket, flags: .delete)) == .noSuchFileOrDirectory)
        try expectNoEvents(queue, "READ was a oneshot, WRITE is dispatched (disabled)")
        try queue.apply([.write(socket, flags: .enable)])
        #expect(try expectEvent(queue, ident: UInt(socket), filter: .write) != nil)
        try send(peer, count: 1)
        try expectNoEvent(queue, ident: UInt(socket), filter: .read)
    }
}
