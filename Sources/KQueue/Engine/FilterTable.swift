import CKQueue
import Glibc
import SystemPackage

/// FreeBSD's `sysfilt_ops[]`: the one place a filter number meets its operations. Adding a
/// filter is one new file (its ``FilterOperations`` type) plus its row below, and a field in
/// ``FilterSources`` if it keeps per-kqueue state.
///
/// Dispatch is static: ``visit(_:_:in:)`` switches once and calls the visitor with the
/// filter's type, so each operation is a direct, inlinable call (no existential, no allocation).
enum FilterTable {
    @inline(__always)
    static func visit<V: FilterVisitor>(_ filter: Int16, _ visitor: V, in state: inout QueueState) throws(V.Failure)
        -> V.Result
    {
        switch filter {
        case FilterID.read: try visitor.visit(ReadFilter.self, in: &state)
        case FilterID.write: try visitor.visit(WriteFilter.self, in: &state)
        case FilterID.aio: try visitor.visit(AIOFilter.self, in: &state)
        case FilterID.vnode: try visitor.visit(VnodeFilter.self, in: &state)
        case FilterID.proc: try visitor.visit(ProcFilter.self, in: &state)
        case FilterID.signal: try visitor.visit(SignalFilter.self, in: &state)
        case FilterID.timer: try visitor.visit(TimerFilter.self, in: &state)
        case FilterID.user: try visitor.visit(UserFilter.self, in: &state)
        case FilterID.fs: try visitor.visit(FSFilter.self, in: &state)
        case FilterID.empty: try visitor.visit(EmptyFilter.self, in: &state)
        case FilterID.lio: try visitor.visit(LIOFilter.self, in: &state)
        case FilterID.procdesc: try visitor.visit(ProcessDescriptorFilter.self, in: &state)
        default: try visitor.visit(UnimplementedFilter.self, in: &state)  // SENDFILE
        }
    }

    /// Every filter number, for operations that concern all of them (close(2), teardown).
    static let allFilters: ClosedRange<Int16> = -FilterID.systemCount ... -1
}

/// One operation applied to whichever filter ``FilterTable`` picks.
protocol FilterVisitor {
    associatedtype Result
    associatedtype Failure: Error = Never
    func visit<F: FilterOperations>(_ filter: F.Type, in state: inout QueueState) throws(Failure) -> Result
}

/// The per-kqueue state the filters keep (FreeBSD keeps it in the knotes and the objects they
/// watch; here the kqueue owns it so that no filter allocates per event).
struct FilterSources: ~Copyable {
    /// EVFILT_READ and EVFILT_WRITE: the descriptors' shared epoll registrations.
    var descriptors = DescriptorTable()
    /// EVFILT_READ on regular files: growth reported by inotify.
    var regularFiles = RegularFileWatcher()
    /// EVFILT_VNODE.
    var vnodes = VnodeWatcher()
    /// EVFILT_PROC's NOTE_FORK, NOTE_EXEC and NOTE_TRACK.
    var processEvents = ProcessEventSource()
    /// EVFILT_SIGNAL's knotes, checked when the signal handler's eventfd reports.
    var signalKnotes: [Int32] = []
    /// EVFILT_TIMER: relative timers (CLOCK_MONOTONIC) and NOTE_ABSTIME ones (CLOCK_REALTIME).
    var monotonicTimers = TimerClock(clock: CLOCK_MONOTONIC, payload: 0)
    var realtimeTimers = TimerClock(clock: CLOCK_REALTIME, payload: 1)
    /// EVFILT_EMPTY: when to look again at TCP send queues.
    var emptySockets = EmptySocketWatcher()
    /// EVFILT_FS: the mount table.
    var mounts = MountWatcher()
    /// EVFILT_AIO and EVFILT_LIO: the I/O backend and the requests.
    var aio = AIORequests()
}

// MARK: The operations, as visitors

extension FilterTable {
    static func registrationError(_ filter: Int16, in state: inout QueueState) -> Errno? {
        struct Op: FilterVisitor {
            func visit<F: FilterOperations>(_: F.Type, in state: inout QueueState) -> Errno? { F.registrationError }
        }
        return visit(filter, Op(), in: &state)
    }

    static func identIsDescriptor(_ filter: Int16, in state: inout QueueState) -> Bool {
        struct Op: FilterVisitor {
            func visit<F: FilterOperations>(_: F.Type, in state: inout QueueState) -> Bool { F.identIsDescriptor }
        }
        return visit(filter, Op(), in: &state)
    }

    static func find(_ filter: Int16, ident: UInt, in state: inout QueueState) -> Int32? {
        struct Op: FilterVisitor {
            let ident: UInt
            func visit<F: FilterOperations>(_: F.Type, in state: inout QueueState) -> Int32? {
                F.find(ident, in: &state)
            }
        }
        return visit(filter, Op(ident: ident), in: &state)
    }

    static func link(_ knote: Int32, in state: inout QueueState) throws(Errno) {
        struct Op: FilterVisitor {
            let knote: Int32
            func visit<F: FilterOperations>(_: F.Type, in state: inout QueueState) throws(Errno) {
                try F.link(knote, in: &state)
            }
        }
        try visit(state.table[knote].filter, Op(knote: knote), in: &state)
    }

    static func unlink(_ knote: Int32, in state: inout QueueState) {
        struct Op: FilterVisitor {
            let knote: Int32
            func visit<F: FilterOperations>(_: F.Type, in state: inout QueueState) { F.unlink(knote, in: &state) }
        }
        visit(state.table[knote].filter, Op(knote: knote), in: &state)
    }

    static func attach(_ knote: Int32, in state: inout QueueState) throws(Errno) {
        struct Op: FilterVisitor {
            let knote: Int32
            func visit<F: FilterOperations>(_: F.Type, in state: inout QueueState) throws(Errno) {
                try F.attach(knote, in: &state)
            }
        }
        try visit(state.table[knote].filter, Op(knote: knote), in: &state)
    }

    static func detach(_ knote: Int32, in state: inout QueueState) {
        struct Op: FilterVisitor {
            let knote: Int32
            func visit<F: FilterOperations>(_: F.Type, in state: inout QueueState) { F.detach(knote, in: &state) }
        }
        visit(state.table[knote].filter, Op(knote: knote), in: &state)
    }

    static func touch(_ knote: Int32, with change: kevent, in state: inout QueueState) throws(Errno) {
        struct Op: FilterVisitor {
            let knote: Int32
            let change: kevent
            func visit<F: FilterOperations>(_: F.Type, in state: inout QueueState) throws(Errno) {
                try F.touch(knote, with: change, in: &state)
            }
        }
        try visit(state.table[knote].filter, Op(knote: knote, change: change), in: &state)
    }

    static func registered(_ knote: Int32, justAttached: Bool, in state: inout QueueState) {
        struct Op: FilterVisitor {
            let knote: Int32
            let justAttached: Bool
            func visit<F: FilterOperations>(_: F.Type, in state: inout QueueState) {
                F.registered(knote, justAttached: justAttached, in: &state)
            }
        }
        visit(state.table[knote].filter, Op(knote: knote, justAttached: justAttached), in: &state)
    }

    static func event(_ knote: Int32, in state: inout QueueState) -> Bool {
        struct Op: FilterVisitor {
            let knote: Int32
            func visit<F: FilterOperations>(_: F.Type, in state: inout QueueState) -> Bool {
                F.event(knote, in: &state)
            }
        }
        return visit(state.table[knote].filter, Op(knote: knote), in: &state)
    }

    static func deliver(_ knote: Int32, into event: inout kevent, in state: inout QueueState) -> Bool {
        struct Op: FilterVisitor {
            let knote: Int32
            let event: UnsafeMutablePointer<kevent>
            func visit<F: FilterOperations>(_: F.Type, in state: inout QueueState) -> Bool {
                F.deliver(knote, into: &event.pointee, in: &state)
            }
        }
        return withUnsafeMutablePointer(to: &event) { pointer in
            visit(state.table[knote].filter, Op(knote: knote, event: pointer), in: &state)
        }
    }

    static func sourceReported(_ filter: Int16, payload: UInt32, in state: inout QueueState) {
        struct Op: FilterVisitor {
            let payload: UInt32
            func visit<F: FilterOperations>(_: F.Type, in state: inout QueueState) {
                F.sourceReported(payload, in: &state)
            }
        }
        visit(filter, Op(payload: payload), in: &state)
    }

    static func scanStarting(_ filter: Int16, in state: inout QueueState) {
        struct Op: FilterVisitor {
            func visit<F: FilterOperations>(_: F.Type, in state: inout QueueState) { F.scanStarting(in: &state) }
        }
        visit(filter, Op(), in: &state)
    }

    static func workBeforeWaiting(_ filter: Int16, in state: inout QueueState) -> Bool {
        struct Op: FilterVisitor {
            func visit<F: FilterOperations>(_: F.Type, in state: inout QueueState) -> Bool {
                F.workBeforeWaiting(in: &state)
            }
        }
        return visit(filter, Op(), in: &state)
    }

    static func scanEnded(_ filter: Int16, in state: inout QueueState) {
        struct Op: FilterVisitor {
            func visit<F: FilterOperations>(_: F.Type, in state: inout QueueState) { F.scanEnded(in: &state) }
        }
        visit(filter, Op(), in: &state)
    }

    static func closeSources(_ filter: Int16, in state: inout QueueState) {
        struct Op: FilterVisitor {
            func visit<F: FilterOperations>(_: F.Type, in state: inout QueueState) { F.closeSources(in: &state) }
        }
        visit(filter, Op(), in: &state)
    }
}
