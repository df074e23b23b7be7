import CKQueue
import CKQueueShim
import Glibc
@_exported import SystemPackage

/// A kqueue: FreeBSD's event notification interface, on Linux.
///
/// One ``kevent(changes:events:timeout:)`` call applies a list of changes (register,
/// modify, enable, disable, delete) and then collects pending events, with FreeBSD's exact
/// semantics (see SPEC.md). The queue owns its descriptor, which is pollable: it reads as
/// readable while events are pending, so it can be watched by `poll(2)`, epoll or another
/// kqueue.
///
/// Several threads may call ``kevent(changes:events:timeout:)`` at once; each event is
/// returned to one of them, a oneshot exactly once.
///
/// ```swift
/// let queue = try KernelQueue()
/// try queue.apply([.read(socket), .user(1, flags: [.add, .clear])])
/// let result = try queue.kevent(eventCapacity: 16, timeout: .seconds(1))
/// ```
public final class KernelQueue: Sendable {
    let core: KQueueCore

    /// Creates a kqueue. Its descriptor is close-on-exec and is not inherited by a fork
    /// child (it is closed there).
    public init() throws(Errno) {
        core = try KQueueRegistry.create()
    }

    deinit {
        if !core.isForkedAway.load(ordering: .relaxed) { close() }
    }

    /// The kqueue descriptor.
    public var descriptor: FileDescriptor { FileDescriptor(rawValue: core.descriptor) }

    /// Closes the kqueue and everything it owns. Later calls fail with `Errno.badFileDescriptor`.
    /// Calling it twice is harmless.
    public func close() {
        let open = core.state.withLock { !$0.isClosed }
        guard open else { return }
        KQueueRegistry.remove(core)
        Syscall.closeInternal(core.descriptor)
    }

    /// The kevent() call on caller-provided buffers: applies `changes` in order, then waits
    /// up to `timeout` (`nil`: forever; `.zero`: poll) and fills `events`.
    ///
    /// A change that fails is written to `events` as an entry with ``Flags/error`` and its
    /// errno in `data` (a change with ``Flags/receipt`` always is, with `data` 0 on success);
    /// if such entries were written, their count is returned and no events are collected.
    /// A failing change with no room left in `events` throws its errno.
    ///
    /// - Returns: the number of entries written to `events`; 0 when the timeout passed.
    /// - Throws: `Errno`: `.interrupted` when a signal arrived during the wait (changes
    ///   stay applied), `.invalidArgument` for a negative timeout, `.badFileDescriptor` after
    ///   ``close()``, or the errno of a change that found no room.
    @discardableResult
    public func kevent(
        changes: UnsafeBufferPointer<KEvent>, events: UnsafeMutableBufferPointer<KEvent>, timeout: Duration? = nil
    ) throws(Errno) -> Int {
        try call(changes: changes, events: events, timeout: timeout, failedChanges: nil)
    }

    /// ``kevent(changes:events:timeout:)`` that also records which changes failed (see
    /// ``KQueueCore/kevent(changes:changeCount:events:eventCapacity:timeout:failedChanges:)``).
    @inline(__always)
    private func call(
        changes: UnsafeBufferPointer<KEvent>, events: UnsafeMutableBufferPointer<KEvent>, timeout: Duration?,
        failedChanges: UnsafeMutablePointer<Int>?
    ) throws(Errno) -> Int {
        var spec = Glibc.timespec()
        if let timeout { spec = try Self.makeTimespec(timeout) }
        let result = changes.withMemoryRebound(to: CKQueue.kevent.self) { changes in
            events.withMemoryRebound(to: CKQueue.kevent.self) { events in
                withUnsafePointer(to: &spec) { spec in
                    core.kevent(
                        changes: changes.baseAddress, changeCount: changes.count, events: events.baseAddress,
                        eventCapacity: events.count, timeout: timeout == nil ? nil : spec, failedChanges: failedChanges)
                }
            }
        }
        return try result.get()
    }

    /// Applies `changes`, then collects up to `eventCapacity` events.
    ///
    /// Every failed change is reported in ``KEventResult/errors`` (room is made for them);
    /// as in C, when any change failed or asked for a receipt, no events are collected by
    /// this call.
    public func kevent(_ changes: [KEvent] = [], eventCapacity: Int = 64, timeout: Duration? = nil) throws(Errno)
        -> KEventResult
    {
        let capacity = eventCapacity > 0 ? eventCapacity + changes.count : 0
        var buffer = [KEvent](repeating: KEvent(ident: 0, filter: Filter(rawValue: 0)), count: capacity)
        // Which change each EV_ERROR entry is, to name it in `failures`.
        var failed = [Int](repeating: -1, count: capacity + 1)
        let count = try changes.withUnsafeBufferPointer { changes throws(Errno) in
            try buffer.withUnsafeMutableBufferPointer { events throws(Errno) in
                try failed.withUnsafeMutableBufferPointer { failed throws(Errno) in
                    try call(changes: changes, events: events, timeout: timeout, failedChanges: failed.baseAddress)
                }
            }
        }
        var result = KEventResult()
        for (position, event) in buffer.prefix(count).enumerated() {
            guard event.flags.contains(.error) else {
                result.events.append(event)
                continue
            }
            result.errors.append(event)
            if let errno = event.changeError, changes.indices.contains(failed[position]) {
                let index = failed[position]
                result.failures.append(KQueueChangeError(change: changes[index], index: index, errno: errno))
            }
        }
        return result
    }

    /// Applies `changes` without collecting events. The first change that fails throws
    /// ``KQueueChangeError``, which names it and its errno; the changes before it stay
    /// applied, the ones after it are not processed. A closed queue fails the first change
    /// with `Errno.badFileDescriptor`; an empty list does nothing.
    public func apply(_ changes: [KEvent]) throws(KQueueChangeError) {
        var failed = -1
        do throws(Errno) {
            try changes.withUnsafeBufferPointer { changes throws(Errno) in
                _ = try call(
                    changes: changes, events: UnsafeMutableBufferPointer(start: nil, count: 0), timeout: .zero,
                    failedChanges: &failed)
            }
        } catch {
            // -1: the call failed before any change (a closed queue): name the first.
            let index = changes.indices.contains(failed) ? failed : 0
            guard changes.indices.contains(index) else { return }
            throw KQueueChangeError(change: changes[index], index: index, errno: error)
        }
    }

    /// Waits up to `timeout` (`nil`: forever) for at most `maxEvents` events.
    public func events(maxEvents: Int = 64, timeout: Duration? = nil) throws(Errno) -> [KEvent] {
        try kevent([], eventCapacity: maxEvents, timeout: timeout).events
    }

    static func makeTimespec(_ duration: Duration) throws(Errno) -> Glibc.timespec {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0, attoseconds >= 0 else { throw Errno.invalidArgument }
        return Glibc.timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
    }
}

/// What ``KernelQueue/kevent(_:eventCapacity:timeout:)`` returns.
public struct KEventResult: Sendable {
    /// The events collected, in the order the kqueue returned them.
    public var events: [KEvent] = []
    /// One ``Flags/error`` entry per failed change (its errno in `data`, also as
    /// ``KEvent/changeError``) or per change with ``Flags/receipt`` (`data` 0). As on
    /// FreeBSD, an entry's `flags` are `EV_ERROR` alone: ``failures`` has the change's own.
    public var errors: [KEvent] = []
    /// One per failed change, in changelist order: the change as given, its index and errno.
    public var failures: [KQueueChangeError] = []
}
