import CKQueue
import CKQueueShim
import Glibc

/// EVFILT_SIGNAL (SPEC.md 3): how many times a signal was delivered since the last retrieval.
///
/// The process-wide half is in C (`CKQueueShim/signals.c`): a handler, installed while some
/// knote watches the signal, counts each delivery, writes one process-wide eventfd, and then
/// does what the application asked for (its handler, SIG_IGN or the default action);
/// sigaction() and signal() are interposed so the application keeps its own view. Each kqueue
/// with signal knotes registers that eventfd (edge-triggered); at its report the kqueue
/// compares each knote's baseline (`filterState`) with the process-wide count. No descriptor
/// per signal, none per kqueue.
enum SignalFilter {
    /// Valid idents: 1 to NSIG − 1 (64 on Linux).
    static let signalLimit: UInt = 65

    static func attach(_ index: Int32, in state: inout QueueState) -> Int32? {
        let ident = state.table[index].ident
        guard ident > 0, ident < signalLimit else { return EINVAL }
        let signal = Int32(ident)
        let error = kq_shim_signal_watch(signal)
        guard error == 0 else { return error }
        if state.signalKnotes.isEmpty {
            let edge = UInt32(EPOLLIN.rawValue) | UInt32(EPOLLET.rawValue)
            let fd = kq_shim_signal_wake_fd()
            if Syscall.epollCtl(state.epollFD, EPOLL_CTL_ADD, fd, events: edge, data: InternalSource.signals) != 0
                && Syscall.errno != EEXIST
            {
                let failure = Syscall.errno
                kq_shim_signal_unwatch(signal)
                return failure
            }
        }
        state.signalKnotes.append(index)
        state.table[index].filterState = Int64(bitPattern: kq_shim_signal_count(signal))
        state.table[index].flags |= EV.clear  // SPEC.md 2: SIGNAL adds EV_CLEAR
        return nil
    }

    static func detach(_ index: Int32, in state: inout QueueState) {
        kq_shim_signal_unwatch(Int32(state.table[index].ident))
        state.signalKnotes.removeAll { $0 == index }
        if state.signalKnotes.isEmpty {
            _ = Syscall.epollCtl(state.epollFD, EPOLL_CTL_DEL, kq_shim_signal_wake_fd(), events: 0, data: 0)
        }
    }

    /// Deliveries since the knote's baseline.
    private static func pending(_ index: Int32, in state: borrowing QueueState) -> Int64 {
        let now = kq_shim_signal_count(Int32(state.table[index].ident))
        return Int64(bitPattern: now &- UInt64(bitPattern: state.table[index].filterState))
    }

    /// f_event: ready once the signal was delivered since the last retrieval; `data` counts.
    static func isReady(_ index: Int32, in state: inout QueueState) -> Bool {
        let count = pending(index, in: state)
        state.table[index].data = count
        state.table[index].fflags = 0
        return count > 0
    }

    /// The event takes the count it returns: the baseline moves past it.
    static func process(_ index: Int32, into event: inout kevent, in state: inout QueueState) {
        state.table[index].filterState = Int64(
            bitPattern: UInt64(bitPattern: state.table[index].filterState) &+ UInt64(bitPattern: event.data))
        state.table[index].data = 0
    }

    /// The process-wide eventfd reported: some watched signal was delivered.
    static func delivered(in state: inout QueueState) {
        for index in state.signalKnotes where pending(index, in: state) > 0 {
            state.recheckUserSpaceKnote(index)
        }
    }
}
