import ArgumentParser
import Glibc
import KQueue

/// The seed's telnet-like client, on the KQueue API: standard input goes to the socket, the
/// socket goes to standard output; exits 0 when the peer closes the connection.
struct Telnet: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Connect to HOST PORT: stdin to the socket, the socket to stdout (exits 0 when the peer closes).")

    @Argument(help: "Host name or address.") var host: String
    @Argument(help: "Port number or service name.") var port: String

    func run() throws {
        let socket = try Socket.connect(host: host, port: port)
        try Socket.setNonBlocking(socket)
        try Socket.setNonBlocking(STDIN_FILENO)
        let queue = try KernelQueue()
        let input = FileDescriptor.standardInput
        let connection = FileDescriptor(rawValue: socket)
        try queue.apply([.read(input), .read(connection)])

        var buffer = [UInt8](repeating: 0, count: 65536)
        var events = [KEvent](repeating: KEvent(ident: 0, filter: .read), count: 2)
        var inputOpen = true
        while true {
            let count = try events.withUnsafeMutableBufferPointer { events throws(Errno) in
                try queue.kevent(changes: UnsafeBufferPointer(start: nil, count: 0), events: events)
            }
            for event in events.prefix(count) {
                if event.descriptor == input && inputOpen {
                    let n = buffer.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
                    if n > 0 {
                        try buffer.withUnsafeBytes {
                            try Socket.writeAll(socket, UnsafeRawBufferPointer(rebasing: $0[..<n]))
                        }
                    } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
                        // End of input: tell the peer, keep printing what it sends.
                        inputOpen = false
                        try queue.apply([.read(input, flags: .delete)])
                        shutdown(socket, Int32(SHUT_WR))
                    }
                } else if event.descriptor == connection {
                    while true {
                        let n = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
                        if n > 0 {
                            try buffer.withUnsafeBytes {
                                try Socket.writeAll(STDOUT_FILENO, UnsafeRawBufferPointer(rebasing: $0[..<n]))
                            }
                            continue
                        }
                        if n == 0 || event.flags.contains(.endOfFile) && errno == EAGAIN {
                            queue.close()
                            Glibc.close(socket)
                            return
                        }
                        if errno == EAGAIN || errno == EINTR { break }
                        throw Socket.Failure("recv")
                    }
                }
            }
        }
    }
}
