import KQueue

/// One entry of the loop's slot table: what an event carrying this slot's token wakes.
struct Slot {
    var generation: UInt32 = 1
    var handler: SlotHandler = .free
}

/// What a slot holds.
enum SlotHandler {
    case free
    /// A callback registration (readiness, signal, process, vnode, timer).
    case callback(CallbackEntry)
    /// One `await` of one event: the task's continuation, installed just after the slot.
    case waiter(WaiterEntry)
    /// An AsyncSequence of events.
    case stream(StreamEntry)
    /// A socket of the networking layer: one reader and one writer may wait.
    case io(IOEntry)

    /// The ident of the change the caller gave (an event of a timer, registered under the
    /// slot's index, gets it back: ``LoopCore/kernelChange(_:for:)``); nil for a socket.
    var callerIdent: UInt? {
        switch self {
        case .free, .io: return nil
        case .callback(let entry): return entry.change.ident
        case .waiter(let entry): return entry.change.ident
        case .stream(let entry): return entry.change.ident
        }
    }
}

struct CallbackEntry {
    /// The change as the caller gave it (ident, filter): for the EV_DELETE that cancels it,
    /// and a timer's ident (``SlotHandler/callerIdent``).
    var change: KEvent
    var body: @Sendable (KEvent) throws -> Void
    /// Freed after its first event (one-shot timers, process exit).
    var oneShot: Bool
}

struct WaiterEntry {
    var change: KEvent
    var continuation: UnsafeContinuation<KEvent, any Error>? = nil
    /// The change is in the pending change list (possibly already given to kevent: a
    /// cancel then looks for it there first, and deletes it otherwise).
    var pending = false
}

/// A class, not a struct: `AsyncThrowingStream.Continuation` comes from a resilient module,
/// and held inline it would make every `SlotHandler` copy and switch go through the runtime's
/// value witnesses (measured: `swift_getEnumCaseMultiPayload` on each event).
final class StreamEntry {
    let change: KEvent
    let continuation: AsyncThrowingStream<KEvent, any Error>.Continuation

    init(change: KEvent, continuation: AsyncThrowingStream<KEvent, any Error>.Continuation) {
        self.change = change
        self.continuation = continuation
    }
}

struct IOEntry {
    var descriptor: Int32
    var reader: UnsafeContinuation<Void, any Error>?
    var writer: UnsafeContinuation<Void, any Error>?
    /// The ticket of the wait `reader` (`writer`) belongs to: a cancellation handler names
    /// the wait it was installed for, and resumes nothing when a later wait took its place.
    var readerTicket: UInt64 = 0
    var writerTicket: UInt64 = 0
    /// A read event came since the last read found the socket empty: try reading first.
    var mayRead = true
    /// A read event had EV_EOF: the peer shut down its side (or the connection failed).
    var endOfStream = false
    /// A one-shot EVFILT_WRITE is registered for a waiting writer.
    var writeArmed = false
    /// The error a failed change reported, given to the next waiter.
    var failure: Errno?
    /// Ended by the idle timeout: the socket is shut down both ways (the descriptor stays
    /// open until the connection is closed); reads, writes and waits fail with ETIMEDOUT.
    var expired = false
}

/// A socket's idle timeout (``TCPConnection/idleTimeout``), beside its slot.
struct IdleState {
    /// Nanoseconds without read or write progress after which the connection is closed;
    /// 0: no timeout.
    var timeout: UInt64 = 0
    /// The loop's iteration time (``LoopCore/now``) of the last read or write that moved data.
    var lastProgress: UInt64 = 0
}
