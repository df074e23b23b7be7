import KQueueLoop

/// The line echo server of `kq echo-server`: each complete line a client sends comes back to
/// it. Memory per connection is bounded: a line longer than ``maxLine`` is echoed in pieces.
/// At end of stream (the client's half-close) the rest is echoed and the server closes.
public enum LineEcho {
    /// The longest partial line kept before it is echoed as it is.
    public static let maxLine = 64 * 1024

    /// Serves one connection until the client closes or fails.
    public static func serve(_ connection: TCPConnection) async {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        var partial: [UInt8] = []
        do {
            while true {
                let count = try await connection.read(into: &buffer)
                if count == 0 {
                    if !partial.isEmpty { try await connection.write(partial) }
                    return
                }
                guard let end = buffer[..<count].lastIndex(of: UInt8(ascii: "\n")) else {
                    partial.append(contentsOf: buffer[..<count])
                    if partial.count >= maxLine {
                        try await connection.write(partial)
                        partial.removeAll(keepingCapacity: true)
                    }
                    continue
                }
                if partial.isEmpty {
                    try await connection.write(buffer[...end])
                } else {
                    partial.append(contentsOf: buffer[...end])
                    try await connection.write(partial)
                    partial.removeAll(keepingCapacity: true)
                }
                partial.append(contentsOf: buffer[(end + 1)..<count])
            }
        } catch {
            // A reset or a closed peer ends the connection; nothing to report to anyone.
        }
    }
}
