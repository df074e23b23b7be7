import Glibc

/// Reads an inotify descriptor to the end through one reusable buffer (allocated on first use),
/// so a scan that reads file changes does not allocate.
struct InotifyReader {
    private var buffer: UnsafeMutableRawPointer? = nil
    private static let size = 4096

    /// Calls `body` with each pending event, until the (nonblocking) descriptor is drained
    /// (EAGAIN) or fails.
    mutating func drain(_ descriptor: Int32, _ body: (inotify_event) -> Void) {
        guard descriptor >= 0 else { return }
        let bytes: UnsafeMutableRawPointer
        if let buffer {
            bytes = buffer
        } else {
            bytes = .allocate(byteCount: Self.size, alignment: 8)
            buffer = bytes
        }
        while let n = try? Syscall.readInternal(descriptor, into: bytes, count: Self.size), n > 0 {
            var offset = 0
            while offset < n {
                let event = bytes.load(fromByteOffset: offset, as: inotify_event.self)
                offset += MemoryLayout<inotify_event>.size + Int(event.len)
                body(event)
            }
        }
    }

    mutating func release() {
        buffer?.deallocate()
        buffer = nil
    }
}
