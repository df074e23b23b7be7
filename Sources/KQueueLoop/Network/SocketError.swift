import KQueue

/// A socket call that failed: its errno, with what was being done and to which address.
public struct SocketError: Error, Equatable, CustomStringConvertible {
    /// The failed step.
    public enum Operation: String, Sendable {
        case socket, setOption = "setsockopt", bind, listen, accept, connect, read, write, shutdown
    }
    /// The errno.
    public var errno: Errno
    public var operation: Operation
    /// The address bound or connected to, where there is one.
    public var address: SocketAddress?

    public init(_ errno: Errno, _ operation: Operation, address: SocketAddress? = nil) {
        self.errno = errno
        self.operation = operation
        self.address = address
    }

    public var description: String {
        let target = address.map { " \($0)" } ?? ""
        return "\(operation.rawValue)\(target): \(errno) (errno \(errno.rawValue))"
    }
}
