import CKQueue
import CKQueueCalls
import CKQueueShim
import Glibc
import KQueue

/// One way of waiting for readable descriptors, as measured by `kq bench`: it registers a
/// set of descriptors once, then each `wait` blocks until some are readable and reports them.
protocol WaitBackend: AnyObject {
    static var name: String { get }
    /// The largest descriptor number it can watch (select: FD_SETSIZE - 1).
    static var maximumDescriptor: Int32 { get }
    init(watching descriptors: [Int32]) throws
    /// Blocks until at least one watched descriptor is readable; writes them to `ready`.
    func wait(into ready: UnsafeMutableBufferPointer<Int32>) -> Int
    func close()
}

extension WaitBackend {
    static var maximumDescriptor: Int32 { Int32.max }
}

/// KQueue through its Swift API (`KernelQueue.kevent(changes:events:timeout:)` on buffers),
/// on the epoll backend (``SwiftAPIRingBackend``: io_uring).
class SwiftAPIBackend: WaitBackend {
    class var name: String { "kqueue-swift" }
    class var kernelBackend: KernelQueue.Backend { .epoll }
    let queue: KernelQueue
    let events = UnsafeMutableBufferPointer<KEvent>.allocate(capacity: 256)

    required init(watching descriptors: [Int32]) throws {
        queue = try KernelQueue(backend: .backend(Self.kernelBackend))
        guard queue.backend == Self.kernelBackend else { throw BenchError("\(Self.kernelBackend) is unavailable here") }
        try queue.apply(descriptors.map { .read(FileDescriptor(rawValue: $0)) })
    }

    func wait(into ready: UnsafeMutableBufferPointer<Int32>) -> Int {
        let count = (try? queue.kevent(changes: UnsafeBufferPointer(start: nil, count: 0), events: events)) ?? 0
        for i in 0..<min(count, ready.count) { ready[i] = Int32(truncatingIfNeeded: events[i].ident) }
        return count
    }

    func close() {
        queue.close()
        events.deallocate()
    }
}

final class SwiftAPIRingBackend: SwiftAPIBackend {
    override class var name: String { "kqueue-swift-io_uring" }
    override class var kernelBackend: KernelQueue.Backend { .ioURing }
}

/// KQueue through the C ABI (`kevent()` from `<sys/event.h>`, as a C program calls it), on
/// the epoll backend (``CABIRingBackend``: io_uring), chosen as a C program does: with
/// KQUEUE_BACKEND in the environment when kqueue() is called.
class CABIBackend: WaitBackend {
    class var name: String { "kqueue-c" }
    class var kernelBackend: KernelQueue.Backend { .epoll }
    let kq: Int32
    let events = UnsafeMutablePointer<kevent>.allocate(capacity: 256)

    required init(watching descriptors: [Int32]) throws {
        let saved = getenv("KQUEUE_BACKEND").map { String(cString: $0) }
        setenv("KQUEUE_BACKEND", Self.kernelBackend.rawValue, 1)
        kq = kq_call_kqueue()
        let error = errno
        if let saved { setenv("KQUEUE_BACKEND", saved, 1) } else { unsetenv("KQUEUE_BACKEND") }
        guard kq >= 0 else { throw Errno(rawValue: error) }
        var change = kevent()
        for fd in descriptors {
            change = kevent(ident: UInt(fd), filter: -1, flags: 0x1, fflags: 0, data: 0, udata: nil, ext: (0, 0, 0, 0))
            guard kq_call_kevent(kq, &change, 1, nil, 0, nil) == 0 else { throw Errno(rawValue: errno) }
        }
    }

    func wait(into ready: UnsafeMutableBufferPointer<Int32>) -> Int {
        let count = Int(max(0, kq_call_kevent(kq, nil, 0, events, 256, nil)))
        for i in 0..<min(count, ready.count) { ready[i] = Int32(truncatingIfNeeded: events[i].ident) }
        return count
    }

    func close() {
        Glibc.close(kq)
        events.deallocate()
    }
}

final class CABIRingBackend: CABIBackend {
    override class var name: String { "kqueue-c-io_uring" }
    override class var kernelBackend: KernelQueue.Backend { .ioURing }
}

/// Raw epoll, level-triggered: the baseline every ratio is taken against.
final class EpollBackend: WaitBackend {
    static let name = "epoll"
    let epfd: Int32
    let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: 256)

    init(watching descriptors: [Int32]) throws {
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epfd >= 0 else { throw Errno(rawValue: errno) }
        for fd in descriptors {
            var event = epoll_event()
            event.events = UInt32(EPOLLIN.rawValue)
            event.data.fd = fd
            guard epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event) == 0 else { throw Errno(rawValue: errno) }
        }
    }

    func wait(into ready: UnsafeMutableBufferPointer<Int32>) -> Int {
        let count = Int(max(0, epoll_wait(epfd, events, 256, -1)))
        for i in 0..<min(count, ready.count) { ready[i] = events[i].data.fd }
        return count
    }

    func close() {
        Glibc.close(epfd)
        events.deallocate()
    }
}

/// poll(2) over the whole set each wait, scanning every entry for results: O(N) per wait.
final class PollBackend: WaitBackend {
    static let name = "poll"
    var descriptors: [pollfd]

    init(watching descriptors: [Int32]) throws {
        self.descriptors = descriptors.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
    }

    func wait(into ready: UnsafeMutableBufferPointer<Int32>) -> Int {
        var found = 0
        descriptors.withUnsafeMutableBufferPointer { set in
            guard poll(set.baseAddress, nfds_t(set.count), -1) > 0 else { return }
            for entry in set where entry.revents != 0 && found < ready.count {
                ready[found] = entry.fd
                found += 1
            }
        }
        return found
    }

    func close() {}
}

/// select(2): rebuilds the set each wait and tests every bit: O(N), and only below
/// FD_SETSIZE (1024).
final class SelectBackend: WaitBackend {
    static let name = "select"
    static let maximumDescriptor: Int32 = 1023
    let descriptors: [Int32]
    let highest: Int32
    var set = fd_set()

    init(watching descriptors: [Int32]) throws {
        guard let highest = descriptors.max(), highest <= Self.maximumDescriptor else { throw Errno.invalidArgument }
        self.descriptors = descriptors
        self.highest = highest
    }

    func wait(into ready: UnsafeMutableBufferPointer<Int32>) -> Int {
        var found = 0
        withUnsafeMutableBytes(of: &set) { bits in
            let words = bits.bindMemory(to: UInt.self)
            for i in words.indices { words[i] = 0 }
            for fd in descriptors { words[Int(fd) / UInt.bitWidth] |= 1 << (UInt(fd) % UInt(UInt.bitWidth)) }
        }
        guard select(highest + 1, &set, nil, nil, nil) > 0 else { return 0 }
        withUnsafeBytes(of: &set) { bits in
            let words = bits.bindMemory(to: UInt.self)
            for fd in descriptors where found < ready.count {
                if words[Int(fd) / UInt.bitWidth] & (1 << (UInt(fd) % UInt(UInt.bitWidth))) != 0 {
                    ready[found] = fd
                    found += 1
                }
            }
        }
        return found
    }

    func close() {}
}
