import Synchronization

/// A kqueue whose registrations each carry a Swift value, a *context* (a connection object, a
/// closure), held by a table the queue owns.
///
/// `udata` crosses the kqueue as a bare word: the kernel (here, the engine behind the C ABI)
/// copies it out any number of times and drops it without telling anyone when a knote goes
/// (a oneshot fires, the descriptor is closed, the queue is closed). A retained pointer in
/// `udata` would be released too early or never. So the context stays in Swift: the table
/// keeps it under the registration's (filter, ident) and puts a token in `udata` (a slot and a
/// generation, never a pointer), and a returned event finds its context through the token; a
/// stale token (its registration since deleted or replaced) finds none.
///
/// The table releases a context when its registration ends as far as the table can see:
/// - ``apply(_:)`` deletes it (`.delete`, or a delete that fails with ENOENT/EBADF: the knote
///   is gone), or ``register(_:context:)`` replaces it;
/// - ``events(maxEvents:timeout:)`` returns its oneshot event (`.oneShot` in the returned
///   flags, also a process's exit): the returned ``ContextEvent`` holds the last reference;
/// - ``close(_:)`` closes a descriptor: the contexts of its READ, WRITE, EMPTY and VNODE
///   registrations go first;
/// - ``close()`` or the queue's end releases all of them.
///
/// A descriptor closed behind the table's back (`FileDescriptor.close()` directly) removes its
/// knotes as on FreeBSD but leaves their contexts until that (filter, ident) is registered
/// again or deleted, or the queue closes: close registered descriptors with ``close(_:)``.
///
/// Changes and registrations are serialized by the table's lock (a `kevent` call that never
/// waits, made under it); ``events(maxEvents:timeout:)`` waits without it, from any number of
/// threads.
public final class ContextQueue<Context: Sendable>: Sendable {
    /// The kqueue itself, for raw calls. Its `udata` words belong to the table: a change made
    /// here for a registration that has a context makes that context unreachable (until it is
    /// released as above).
    public let queue: KernelQueue
    private let table = Mutex(ContextTable<Context>())

    /// Creates a kqueue (see ``KernelQueue/init()``).
    public init() throws(Errno) {
        queue = try KernelQueue()
    }

    /// Registers `change` (``Flags/add`` is added) with `context`. A registration of the same
    /// (filter, ident) is modified and its previous context released.
    public func register(_ change: KEvent, context: Context) throws(KQueueChangeError) {
        var change = change
        change.flags.insert(.add)
        change.flags.remove(.keepUserData)
        let released = try table.withLock { table throws(KQueueChangeError) -> Context? in
            let slot = table.allocate(context, for: ContextKey(change))
            change.udata = UnsafeMutableRawPointer(bitPattern: table.token(of: slot))
            do throws(KQueueChangeError) {
                try queue.apply([change])
            } catch {
                _ = table.free(slot)
                throw error
            }
            return table.bind(slot)
        }
        _ = released  // released here, outside the lock: its deinit may call back into the queue
    }

    /// Applies changes without contexts (see ``KernelQueue/apply(_:)``). A change to a
    /// registration that has a context keeps it (its `udata` is set to the context's token);
    /// a deleted registration's context is released.
    public func apply(_ changes: [KEvent]) throws(KQueueChangeError) {
        var released: [Context] = []
        try table.withLock { table throws(KQueueChangeError) in
            var changes = changes
            for index in changes.indices {
                if let slot = table.slot(for: ContextKey(changes[index])) {
                    changes[index].udata = UnsafeMutableRawPointer(bitPattern: table.token(of: slot))
                }
            }
            // What the kqueue processed: all of it, or up to the failure; a receipt, with no
            // event list, ends processing after its change.
            var processed = changes.count
            var failure: KQueueChangeError? = nil
            do throws(KQueueChangeError) { try queue.apply(changes) } catch {
                failure = error
                processed = error.index
            }
            if let receipt = changes.prefix(processed).firstIndex(where: { $0.flags.contains(.receipt) }) {
                processed = receipt + 1
            }
            for change in changes.prefix(processed) where change.flags.contains(.delete) && change.filter.rawValue != 0
            {
                if let context = table.remove(ContextKey(change)) { released.append(context) }
            }
            if let failure {
                let gone: Set<Errno> = [.noSuchFileOrDirectory, .badFileDescriptor]
                if failure.change.flags.contains(.delete) && gone.contains(failure.errno),
                    let context = table.remove(ContextKey(failure.change))
                {
                    released.append(context)
                }
                throw failure
            }
        }
    }

    /// Waits up to `timeout` (`nil`: forever) for at most `maxEvents` events, each with its
    /// context. A oneshot event's context is released from the table: the returned value
    /// holds it.
    public func events(maxEvents: Int = 64, timeout: Duration? = nil) throws(Errno) -> [ContextEvent<Context>] {
        let events = try queue.events(maxEvents: maxEvents, timeout: timeout)
        return table.withLock { table in
            events.map { event in
                ContextEvent(event: event, context: table.resolve(event, release: event.flags.contains(.oneShot)))
            }
        }
    }

    /// The context of `event`'s registration, if it still has one.
    public func context(for event: KEvent) -> Context? {
        table.withLock { $0.resolve(event, release: false) }
    }

    /// Releases the contexts of `descriptor`'s registrations (READ, WRITE, EMPTY, VNODE), then
    /// closes it, which removes its knotes as on FreeBSD.
    public func close(_ descriptor: FileDescriptor) throws(Errno) {
        let released = table.withLock { table in
            [Filter.read, .write, .empty, .vnode].compactMap { filter in
                table.remove(ContextKey(filter: filter, ident: UInt(descriptor.rawValue)))
            }
        }
        _ = released
        do { try descriptor.close() } catch { throw (error as? Errno) ?? .ioError }
    }

    /// Closes the kqueue and releases every context.
    public func close() {
        queue.close()
        let released = table.withLock { table in table.removeAll() }
        _ = released
    }

    /// How many contexts the table holds.
    public var contextCount: Int { table.withLock { $0.count } }
}

/// An event and the context of its registration (nil when it has none, or when the
/// registration was deleted or replaced since the event was collected).
public struct ContextEvent<Context> {
    public var event: KEvent
    public var context: Context?

    public init(event: KEvent, context: Context?) {
        self.event = event
        self.context = context
    }
}

extension ContextEvent: Sendable where Context: Sendable {}
