import CKQueue
import CKQueueShim
import Glibc
import SystemPackage

/// A kqueue's listener on the kernel's process connector (fork and exec of every process of
/// the system), for EVFILT_PROC's NOTE_FORK, NOTE_EXEC and NOTE_TRACK. Opened when the first
/// knote wants one of them, closed when the last one goes: while open, every fork and exec on
/// the machine wakes the kqueue once.
struct ProcessEventSource {
    /// EVFILT_PROC's payload in the connector's epoll tag (pidfds use knote indices).
    static let payload = UInt32.max
    private(set) var descriptor: Int32 = -1
    /// Knotes whose notes need the connector.
    private(set) var users = 0
    /// The child EVFILT_PROC is registering for NOTE_TRACK (0: none): it existed at its fork
    /// even if it is gone now.
    var following: pid_t = 0
    /// Its events are being read (a read that records an exit must not start another).
    var reading = false
    /// Open: fork and exec events may wait in it.
    var isOpen: Bool { descriptor >= 0 }

    /// One more knote needs the connector.
    mutating func retain(registrar: InternalRegistrar) throws(Errno) {
        if descriptor < 0 {
            let fd = try Syscall.processConnectorOpen()
            let tag = EpollTag.source(filter: FilterID.proc, payload: Self.payload)
            try registrar.register(fd, events: UInt32(EPOLLIN.rawValue), tag: tag)
            descriptor = fd
        }
        users += 1
    }

    /// A knote no longer needs the connector; the last one closes it.
    mutating func release(registrar: InternalRegistrar) {
        guard users > 0 else { return }
        users -= 1
        if users == 0 { close(registrar: registrar) }
    }

    /// Reads pending events into `buffer` (fewer than its capacity once the socket is drained).
    func read(into buffer: UnsafeMutableBufferPointer<kq_proc_event>) -> ProcessEventBatch {
        guard descriptor >= 0 else { return ProcessEventBatch(count: 0, overflowed: false) }
        return Syscall.processConnectorRead(descriptor, into: buffer)
    }

    mutating func close(registrar: InternalRegistrar) {
        registrar.close(descriptor)
        descriptor = -1
        users = 0
    }
}
