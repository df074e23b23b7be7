import CKQueueShim
import Glibc
import Synchronization
import SystemPackage

/// The descriptors a kqueue created for itself (eventfds, timerfds, inotify instances, the
/// process connector), readable without the kqueue lock: a fork child closes them all while
/// another thread of the parent may have held that lock (SPEC.md 2: no kqueue survives fork).
///
/// A fixed set of atomic slots, written under the kqueue lock, read by the fork child.
final class InternalDescriptors: @unchecked Sendable {
    /// More than a kqueue ever opens: 3 extra wakeups, 2 timerfds, 2 inotify instances, 1
    /// process connector.
    static let capacity = 16
    // SAFETY: allocated and initialized once, deinitialized in deinit; every access is atomic.
    private let slots: UnsafeMutablePointer<Atomic<Int32>>

    init() {
        slots = .allocate(capacity: Self.capacity)
        for i in 0..<Self.capacity { (slots + i).initialize(to: Atomic(-1)) }
    }

    deinit {
        slots.deinitialize(count: Self.capacity)
        slots.deallocate()
    }

    /// Publishes `fd` (called with the kqueue lock held).
    func insert(_ fd: Int32) {
        for i in 0..<Self.capacity where slots[i].load(ordering: .relaxed) == -1 {
            slots[i].store(fd, ordering: .releasing)
            return
        }
        preconditionFailure("a kqueue opened more than \(Self.capacity) internal descriptors")
    }

    /// Stops publishing `fd` (called with the kqueue lock held, before it is closed).
    func remove(_ fd: Int32) {
        for i in 0..<Self.capacity where slots[i].load(ordering: .relaxed) == fd {
            slots[i].store(-1, ordering: .releasing)
            return
        }
    }

    /// Closes them all (fork child, where the kqueue lock may be held by a lost thread).
    func closeAll() {
        for i in 0..<Self.capacity {
            Syscall.closeInternal(slots[i].exchange(-1, ordering: .acquiring))
        }
    }
}

/// How a filter's source opens and closes a descriptor of the kqueue's own: registered in
/// the kqueue's readiness backend with the source's tag, and published for the fork child.
struct InternalRegistrar {
    let backend: ReadinessBackend
    let published: InternalDescriptors

    /// Registers a new descriptor. On failure it is closed and the errno thrown.
    func register(_ fd: Int32, events: UInt32, tag: UInt64) throws(Errno) {
        do throws(Errno) {
            try backend.add(fd, events: events, tag: tag)
        } catch {
            Syscall.closeInternal(fd)
            throw error
        }
        published.insert(fd)
    }

    /// Closes a descriptor ``register(_:events:tag:)`` registered (epoll forgets it with it).
    func close(_ fd: Int32) {
        guard fd >= 0 else { return }
        if case .ioURing = backend { backend.remove(fd) }  // a ring's poll would hold it open
        published.remove(fd)
        Syscall.closeInternal(fd)
    }
}

/// An epoll_wait result buffer. Owned by one waiter at a time: taken from the kqueue's pool
/// under the lock and given back under the lock.
struct EpollBuffer: @unchecked Sendable {
    let events: UnsafeMutableBufferPointer<epoll_event>
}

/// Reusable epoll_wait buffers, one per concurrent waiter: the first in `spare` (an optional,
/// so the single-waiter case touches no array), the others in `pool`.
struct EpollBufferPool {
    private var spare: EpollBuffer?
    private var pool: [EpollBuffer] = []

    /// A buffer of at least `capacity` entries, from the pool when possible.
    mutating func take(capacity: Int) -> EpollBuffer {
        if let buffer = spare {
            spare = nil
            if buffer.events.count >= capacity { return buffer }
            buffer.events.deallocate()
        } else if let buffer = pool.popLast() {
            if buffer.events.count >= capacity { return buffer }
            buffer.events.deallocate()
        }
        return EpollBuffer(events: .allocate(capacity: max(capacity, 64)))
    }

    /// Puts a buffer back for the next waiter.
    mutating func give(_ buffer: EpollBuffer) {
        if spare == nil {
            spare = buffer
        } else {
            pool.append(buffer)
        }
    }

    mutating func releaseAll() {
        spare?.events.deallocate()
        spare = nil
        for buffer in pool { buffer.events.deallocate() }
        pool.removeAll()
    }
}
