import CKQueue
import CKQueueShim
import Glibc
import SystemPackage

/// EVFILT_SIGNAL (SPEC.md 3): how many times a signal was generated since the last retrieval.
///
/// The process-wide half is in C (`CKQueueShim/signals.c`): a handler, installed while some
/// knote watches the signal, counts each delivery, writes one process-wide eventfd, and then
/// does what the application asked for (its handler, SIG_IGN or the default action);
/// sigaction() and signal() are interposed so the application keeps its own view. A signal
/// blocked in every thread is counted at generation and left pending: a process-wide signalfd
/// (never read) wakes the kqueues, which ask the shim to count what is pending; the shim's
/// sigwait/sigtimedwait/signalfd-read interposers and the handler make sure each instance is
/// counted once. Each kqueue with signal knotes registers both descriptors (edge-triggered);
/// at a report it compares each knote's baseline (`filterState`) with the process-wide count.
/// No descriptor per signal, none per kqueue.
enum SignalFilter: FilterOperations {
    static var filter: Int16 { FilterID.signal }
    /// Valid idents: 1 to NSIG − 1 (64 on Linux).
    static let signalLimit: UInt = 65

    static func attach(_ knote: Int32, in state: inout QueueState) throws(Errno) {
        let ident = state.table[knote].ident
        guard ident > 0, ident < signalLimit else { throw .invalidArgument }
        let signal = Int32(ident)
        try Syscall.signalWatch(signal)
        if state.sources.signalKnotes.isEmpty {
            do throws(Errno) {
                try registerWakeDescriptor(in: &state)
            } catch {
                Syscall.signalUnwatch(signal)
                throw error
            }
        }
        state.sources.signalKnotes.append(knote)
        // What is pending now was generated before this knote: counted into the baseline.
        Syscall.observePendingSignals()
        state.table[knote].filterState = Int64(bitPattern: Syscall.signalCount(signal))
        state.table[knote].flags |= EV.clear  // SPEC.md 2: SIGNAL adds EV_CLEAR
    }

    /// The two process-wide descriptors, as this kqueue's epoll payloads.
    private enum Source: UInt32 {
        /// The eventfd the handler and the dequeue interposers write: a count changed.
        case counted = 0
        /// The signalfd: a watched signal was queued, maybe blocked everywhere.
        case pending = 1

        var descriptor: Int32 {
            self == .counted ? Syscall.signalWakeDescriptor() : Syscall.signalPendingDescriptor()
        }
    }

    /// The process-wide descriptors go into this kqueue's epoll instance (they are not the
    /// kqueue's own: registered, never published or closed here).
    private static func registerWakeDescriptor(in state: inout QueueState) throws(Errno) {
        let edge = UInt32(EPOLLIN.rawValue) | UInt32(EPOLLET.rawValue)
        for source in [Source.counted, .pending] {
            do throws(Errno) {
                try state.backend.add(
                    source.descriptor, events: edge, tag: EpollTag.source(filter: filter, payload: source.rawValue))
            } catch {
                guard error == .fileExists else {  // EEXIST: already registered
                    if source == .pending { state.backend.remove(Source.counted.descriptor) }
                    throw error
                }
            }
        }
    }

    static func detach(_ knote: Int32, in state: inout QueueState) {
        Syscall.signalUnwatch(Int32(state.table[knote].ident))
        state.sources.signalKnotes.removeAll { $0 == knote }
        if state.sources.signalKnotes.isEmpty {
            state.backend.remove(Source.counted.descriptor)
            state.backend.remove(Source.pending.descriptor)
        }
    }

    /// Deliveries since the knote's baseline.
    private static func pending(_ knote: Int32, in state: borrowing QueueState) -> Int64 {
        let now = Syscall.signalCount(Int32(state.table[knote].ident))
        return Int64(bitPattern: now &- UInt64(bitPattern: state.table[knote].filterState))
    }

    /// f_event: ready once the signal was delivered since the last retrieval; `data` counts.
    static func event(_ knote: Int32, in state: inout QueueState) -> Bool {
        let count = pending(knote, in: state)
        state.table[knote].data = count
        state.table[knote].fflags = 0
        return count > 0
    }

    /// The event takes the count it returns: the baseline moves past it.
    static func deliver(_ knote: Int32, into event: inout kevent, in state: inout QueueState) -> Bool {
        state.table[knote].filterState = Int64(
            bitPattern: UInt64(bitPattern: state.table[knote].filterState) &+ UInt64(bitPattern: event.data))
        state.table[knote].data = 0
        return true
    }

    /// A process-wide descriptor reported: a watched signal was delivered, dequeued, or queued.
    static func sourceReported(_ payload: UInt32, in state: inout QueueState) {
        if payload == Source.pending.rawValue { Syscall.observePendingSignals() }
        for index in state.sources.signalKnotes where pending(index, in: state) > 0 {
            state.recheck(index)
        }
    }
}
