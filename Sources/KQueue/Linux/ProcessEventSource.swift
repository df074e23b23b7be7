import CKQueueShim
import Glibc

/// A kqueue's listener on the kernel's process connector (fork and exec of every process of
/// the system), for EVFILT_PROC's NOTE_FORK, NOTE_EXEC and NOTE_TRACK. Opened when the first
/// knote wants one of them, closed when the last one goes: while open, every fork and exec on
/// the machine wakes the kqueue once.
struct ProcessEventSource {
    private(set) var descriptor: Int32 = -1
    /// Knotes whose notes need the connector.
    private(set) var users = 0
    /// Published so that a fork child can close the descriptor without the kqueue lock.
    var onChange: (@Sendable (Int32) -> Void)? = nil

    /// One more knote needs the connector. Returns an errno when it cannot be opened.
    mutating func retain(epollFD: Int32) -> Int32? {
        if descriptor < 0 {
            let fd = kq_shim_proc_connector_open()
            guard fd >= 0 else { return -fd }
            let level = UInt32(EPOLLIN.rawValue)
            if let error = Syscall.registerInternal(fd, in: epollFD, events: level, tag: InternalSource.processEvents) {
                return error
            }
            descriptor = fd
            onChange?(fd)
        }
        users += 1
        return nil
    }

    /// A knote no longer needs the connector; the last one closes it.
    mutating func release() {
        guard users > 0 else { return }
        users -= 1
        if users == 0 { close() }
    }

    /// Reads pending events into `buffer`: returns how many (fewer than its capacity once the
    /// socket is drained) and whether the socket lost events since the last read.
    func read(into buffer: UnsafeMutableBufferPointer<kq_proc_event>) -> (count: Int, overflowed: Bool) {
        guard descriptor >= 0 else { return (0, false) }
        var overflowed: Int32 = 0
        let n = kq_shim_proc_connector_read(descriptor, buffer.baseAddress, Int32(buffer.count), &overflowed)
        return (Int(n), overflowed != 0)
    }

    mutating func close() {
        Syscall.closeInternal(descriptor)
        if descriptor >= 0 { onChange?(-1) }
        descriptor = -1
        users = 0
    }
}
