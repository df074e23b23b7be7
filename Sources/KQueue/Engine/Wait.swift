import CKQueue
import Glibc
import SystemPackage

/// The waiting half of one kevent() call: waits in the readiness backend (epoll, or the
/// io_uring ring), each followed by a scan under the lock, until events are returned, the
/// timeout passes or the wait fails (SPEC.md 2.7, 2.8). The lock is never held while waiting.
struct Wait {
    /// Extra zero-timeout looks in one call: reports that yield no event (internal wakeups,
    /// stale or filtered reports) take room in a batch and may hide ready knotes.
    static let extraLooks = 3

    let timeout: UnsafePointer<timespec>?
    let buffer: EpollBuffer
    var context: ScanContext
    /// The call's own changes activated knotes without writing a wakeup.
    var unsignaled: Bool
    var clock = WaitClock()
    /// The next collect starts the call's scan (else it continues it).
    var newScan = true
    /// The next look does not block: a filter had work for this thread (at the call's start,
    /// or done since the last look), whose results it reports.
    var lookWithoutBlocking: Bool
    var extraLooksLeft = Wait.extraLooks

    init(
        events: UnsafeMutablePointer<kevent>, capacity: Int, timeout: UnsafePointer<timespec>?,
        buffer: EpollBuffer, unsignaled: Bool, filtersHaveWork: Bool
    ) {
        self.timeout = timeout
        self.buffer = buffer
        self.unsignaled = unsignaled
        lookWithoutBlocking = filtersHaveWork
        context = ScanContext(events: events, capacity: capacity)
    }

    mutating func run(on core: KQueueCore) -> Result<Int, Errno> {
        if let timeout {
            guard timeout.pointee.isValidTimeout else {
                core.giveBack(buffer, signal: unsignaled)
                return .failure(.invalidArgument)
            }
            clock.start(timeout.pointee)
        }
        while true {
            let requested = Int32(
                min(KQueueCore.batchSize(for: context.capacity - context.written), buffer.events.count))
            let count: Int32
            switch look(on: core, requested: requested) {
            case .interruptedTransparently:
                clock.update()
                continue
            case .failed(let error):
                core.giveBack(buffer, signal: unsignaled)
                if context.written > 0 { return .success(context.written) }
                // SPEC.md 2.8: a signal ends the wait with EINTR; changes stay applied. EINVAL:
                // the kqueue descriptor no longer names an epoll instance.
                return .failure(error == .invalidArgument ? .badFileDescriptor : error)
            case .reported(let n):
                count = n
            case .interruptedAfterReports(let n):
                guard context.written == 0 else {
                    count = n
                    break
                }
                absorb(n, on: core)
                return .failure(.interrupted)  // SPEC.md 2.8
            }
            switch collect(count, requested: requested, on: core) {
            case .returned(let written): return .success(written)
            case .closed: return .failure(.badFileDescriptor)
            case .lookAgain: continue
            case .nothingYet:
                guard timeout != nil else { break }
                clock.update()
                if clock.remaining.isZero {
                    core.giveBack(buffer)
                    return .success(0)
                }
            }
            extraLooksLeft = Wait.extraLooks
        }
    }

    /// What one epoll wait gave.
    enum Look {
        case reported(Int32)
        /// Only EVFILT_SIGNAL's handler ran, for a signal the application ignores: on FreeBSD
        /// that signal is discarded and its knote wakes the wait. Wait on.
        case interruptedTransparently
        /// An application's signal handler ran as the wait returned these reports (a signal
        /// delivered at the end of the system call, after epoll collected them, e.g. the
        /// wake of the very signal it caught): the call ends with EINTR as on FreeBSD, once
        /// the reports are kept for the next call.
        case interruptedAfterReports(Int32)
        case failed(Errno)
    }

    /// One wait in the backend: without waiting once something is written or pending, else
    /// for the time left.
    @inline(__always)
    private mutating func look(on core: KQueueCore, requested: Int32) -> Look {
        var zero = timespec(tv_sec: 0, tv_nsec: 0)
        let ready = buffer.events.baseAddress!
        Syscall.resetSignalInterruptions()
        do throws(Errno) {
            let n: Int32
            if context.written > 0 || unsignaled || lookWithoutBlocking || (timeout != nil && clock.remaining.isZero) {
                lookWithoutBlocking = false
                n = try core.backend.look(into: ready, requested: requested, timeout: &zero)
            } else if timeout == nil {
                n = try core.backend.look(into: ready, requested: requested, timeout: nil)
            } else {
                n = try core.backend.look(into: ready, requested: requested, timeout: &clock.remaining)
            }
            return n > 0 && Syscall.applicationHandlerRan() ? .interruptedAfterReports(n) : .reported(n)
        } catch {
            var error = error
            if error == .timeout {
                // The ring's wait ended with no completion: its timeout, or a signal.
                clock.update()
                guard timeout == nil || !clock.remaining.isZero else { return .reported(0) }
                error = .interrupted
            }
            if error == .interrupted && Syscall.interruptionWasTransparent() { return .interruptedTransparently }
            return .failed(error)
        }
    }

    /// Ends an interrupted call: the look's reports go into the kqueue's queue (a scan with no
    /// room keeps what it finds queued and re-arms the wakeup), none is returned.
    private mutating func absorb(_ count: Int32, on core: KQueueCore) {
        let buffer = self.buffer
        let startScan = newScan
        let signal = unsignaled
        var noRoom = ScanContext(events: context.events, capacity: 0)
        core.state.withLock { state in
            if !state.isClosed {
                let ready = buffer.events.baseAddress!
                let taken = state.backend.take(into: ready, requested: Int32(buffer.events.count), looked: count)
                state.collect(ready, count: Int(taken), into: &noRoom, newScan: startScan)
                if signal { state.signalWakeup() }
                state.backend.prepareWait()
            }
            state.endWait(returning: buffer)
        }
    }

    /// What the scan of one look did.
    enum Collected {
        /// The call ends, returning this many events.
        case returned(Int)
        /// The kqueue was closed meanwhile.
        case closed
        /// Reports yielded no event and filled the batch: look again at once.
        case lookAgain
        /// Nothing usable (a spurious or filtered wake): never return 0 before the timeout has
        /// passed (SPEC.md 2.7).
        case nothingYet
    }

    /// Scans one look's reports under the lock. The lock that collects also ends the wait
    /// when this look is the last one, so a call takes the kqueue lock twice, not three times.
    @inline(__always)
    private mutating func collect(_ looked: Int32, requested: Int32, on core: KQueueCore) -> Collected {
        let before = context.written
        let extraLookLeft = extraLooksLeft > 0
        let polling = timeout != nil && clock.remaining.isZero
        context.drainUnsignaled = unsignaled
        unsignaled = false
        let buffer = self.buffer
        let startScan = newScan
        let scan = context
        let outcome = core.state.withLock { state -> ScanOutcome? in
            if state.isClosed {
                state.endWait(returning: buffer)
                return nil
            }
            var scan = scan
            let ready = buffer.events.baseAddress!
            let count = state.backend.take(into: ready, requested: requested, looked: looked)
            state.collect(ready, count: Int(count), into: &scan, newScan: startScan)
            let mayLookAgain = count == requested && extraLookLeft
            let looksAgain = scan.hasRoom && mayLookAgain && scan.absorbed > 0
            let ends = !looksAgain && (scan.written > 0 || polling)
            // The ring's arms (level registrations reported now, the scan's changes) go to the
            // kernel with the next wait: a level poll asked again then sees the file as the
            // wait finds it, as epoll's does (asked now, it could report data the caller is
            // about to read).
            // About to block with nothing to return: a filter's work may be done here first.
            let worked = !ends && !looksAgain && state.filtersWithWork != 0 && state.workBeforeWaiting()
            state.backend.prepareWait()
            if ends { state.endWait(returning: buffer) }
            return ScanOutcome(context: scan, ended: ends, mayLookAgain: mayLookAgain, worked: worked)
        }
        guard let outcome else { return .closed }
        context = outcome.context
        if outcome.ended { return .returned(context.written) }
        if outcome.worked {
            lookWithoutBlocking = true
            return .lookAgain
        }
        if context.written > before { newScan = false }
        if context.hasRoom && outcome.mayLookAgain && context.absorbed > 0 {
            extraLooksLeft -= 1
            return .lookAgain
        }
        return .nothingYet
    }
}

/// A scan's context after the lock, and whether it ended the wait.
struct ScanOutcome: Sendable {
    var context: ScanContext
    var ended: Bool
    /// The look filled its batch: more reports may be waiting.
    var mayLookAgain: Bool
    /// A filter did work in this thread instead of letting it wait (its results follow).
    var worked: Bool
}

/// A wait's timeout: the time left, and the monotonic deadline it counts down to.
struct WaitClock {
    var remaining = timespec()
    private var deadline = timespec()
    private var isFinite = false

    @inline(__always)
    mutating func start(_ timeout: timespec) {
        remaining = timeout
        isFinite = true
        if !remaining.isZero { deadline = Syscall.monotonicNow().adding(remaining) }
    }

    /// Recomputes the time left (a no-op without a timeout or once it is zero).
    mutating func update() {
        guard isFinite, !remaining.isZero else { return }
        remaining = deadline.remaining(after: Syscall.monotonicNow())
    }
}
