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
    private var buffer: UnsafeMutablePointer<kq_proc_event>? = nil
    private static let capacity = 64
    /// Published so that a fork child can close the descriptor without the kqueue lock.
    var onChange: (@Sendable (Int32) -> Void)? = nil

    /// One more knote needs the connector. Returns an errno when it cannot be opened.
    mutating func retain(epollFD: Int32) -> Int32? {
        if descriptor < 0 {
            let fd = kq_shim_proc_connector_open()
            guard fd >= 0 else { return -fd }
            let level = UInt32(EPOLLIN.rawValue)
            guard Syscall.epollCtl(epollFD, EPOLL_CTL_ADD, fd, events: level, data: InternalSource.processEvents) == 0
            else {
                let error = Syscall.errno
                Syscall.closeInternal(fd)
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

    /// Reads the pending events: calls `body` for each, in order. Returns true when the
    /// socket overflowed and events were lost.
    mutating func read(_ body: (kq_proc_event) -> Void) -> Bool {
        guard descriptor >= 0 else { return false }
        let events: UnsafeMutablePointer<kq_proc_event>
        if let buffer {
            events = buffer
        } else {
            events = .allocate(capacity: Self.capacity)
            buffer = events
        }
        var overflowed: Int32 = 0
        while true {
            let n = Int(kq_shim_proc_connector_read(descriptor, events, Int32(Self.capacity), &overflowed))
            for i in 0..<n { body(events[i]) }
            if n < Self.capacity { break }
        }
        return overflowed != 0
    }

    mutating func close() {
        Syscall.closeInternal(descriptor)
        if descriptor >= 0 { onChange?(-1) }
        descriptor = -1
        users = 0
        buffer?.deallocate()
        buffer = nil
    }
}
