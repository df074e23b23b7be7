import CKQueue
import CKQueueShim
import Glibc
import Synchronization
import SystemPackage

/// The memory a Swift request owns until the kernel is done with it: one page-aligned
/// allocation cut into segments (one for a plain read or write, several for a vectored one).
final class AIOStorage: @unchecked Sendable {
    // SAFETY: allocated in init, freed in deinit; while a request is in flight only the kernel
    // (or a pool thread) touches the bytes, and the engine holds the only reference.
    let bytes: UnsafeMutableRawBufferPointer
    let segments: UnsafeMutablePointer<iovec>
    let segmentCount: Int
    /// Bytes over all segments.
    let count: Int

    init(segmentSizes: [Int]) {
        let total = segmentSizes.reduce(0, +)
        count = total
        bytes = .allocate(byteCount: max(total, 1), alignment: 4096)
        bytes.initializeMemory(as: UInt8.self, repeating: 0)
        segmentCount = segmentSizes.count
        segments = .allocate(capacity: max(segmentSizes.count, 1))
        var offset = 0
        for (i, size) in segmentSizes.enumerated() {
            segments[i] = iovec(iov_base: bytes.baseAddress! + offset, iov_len: size)
            offset += size
        }
    }

    deinit {
        segments.deallocate()
        bytes.deallocate()
    }
}

/// Who owns a request and hears of its end. (Sendable: a C token or a udata pointer is only
/// handed back, never dereferenced here; a storage is reachable by one owner at a time.)
enum AIOOwner: @unchecked Sendable {
    /// The C ABI: its record of the request, handed to the completion hook.
    case c(UnsafeMutableRawPointer?)
    /// The Swift API: the buffer, returned to the caller with the completion.
    case swift(AIOStorage)
    /// An EVFILT_LIO knote: no I/O, completed when the C ABI says its list is done.
    case marker
}

/// One request of a kqueue (FreeBSD's `struct kaiocb`).
struct AIOJob: @unchecked Sendable {
    /// The request's identity in the backend (0: a free slot): a process-wide serial number
    /// above ``AIORequests/slotBits`` bits of slot, so a tag is never reused.
    var tag: UInt64 = 0
    var knote: Int32 = -1
    var op = kq_aio_op()
    var owner = AIOOwner.marker
    /// The backend has it.
    var inFlight = false
    /// Its result is known (for a C request cancelled at once: before the backend's end).
    var done = false
    var result: Int64 = 0
    /// Submitted by the call now running: an EBADF it completes with inline (io_uring looks the
    /// descriptor up during the submission) is reported by that call, as FreeBSD does.
    var justSubmitted = false
    var rejected = false
    /// A C vectored request's copy of the caller's iovec array (FreeBSD copies it in too), or
    /// the segments a continued vectored request has left.
    var iovecs: UnsafeMutablePointer<iovec>? = nil
    /// Bytes a first attempt transferred before it stopped at what would block (a page not
    /// in the cache): the continuation's result is added to them.
    var transferred: Int64 = 0
}

/// A request as it enters the engine.
struct AIOSubmission: @unchecked Sendable {
    var ident: UInt
    var filter: Int16
    var flags: UInt16
    var udata: UnsafeMutableRawPointer?
    var op: kq_aio_op
    var owner: AIOOwner
}

/// The caller's request, tag and error arrays, handed into the lock (valid and unshared for
/// the duration of the call).
struct AIOSubmissionLists: @unchecked Sendable {
    let requests: UnsafeMutableBufferPointer<AIOSubmission>
    let tags: UnsafeMutablePointer<UInt64>
    let errors: UnsafeMutablePointer<Int32>
}

/// A request of a submitted batch that went to the backend: its index and slot.
struct AIOStarted {
    var request: Int
    var slot: Int
}

/// An iovec array the engine allocated (a continued vectored request's remaining segments).
struct AIOSegments {
    var base: UnsafeMutablePointer<iovec>
    var count: Int
}

/// A knote whose request a submission completed, activated at the next scan if it still
/// belongs to that request.
struct AIOPendingActivation {
    var knote: Int32
    var tag: UInt64
}

/// A Swift request's end, taken from the kqueue.
struct AIOTaken: @unchecked Sendable {
    var result: Int64
    var storage: AIOStorage
}

/// What cancelling one request did (aio_cancel's answers).
enum AIOCancelOutcome {
    case canceled, notCanceled, allDone, notFound
}

/// A kqueue's asynchronous I/O (SPEC.md 3, EVFILT_AIO): its backend, opened on first use, and
/// its requests by slot.
struct AIORequests: ~Copyable {
    static let slotBits = 24
    static let slotMask: UInt64 = (1 << 24) - 1
    static let reapBatch = 64
    /// Serial numbers of tags, process-wide (39 bits: tags stay below 2^63).
    static let serial = Atomic<UInt64>(0)
    /// The backend to open (`KQ_AIO_BACKEND_*`; AUTO follows KQUEUE_AIO_BACKEND, else io_uring
    /// where available).
    var requestedKind = Int32(KQ_AIO_BACKEND_AUTO)
    var backend: OpaquePointer? = nil
    var eventFD: Int32 = -1
    var ringFD: Int32 = -1
    var jobs: [AIOJob] = []
    var freeSlots: [Int32] = []
    var inFlight = 0
    var closing = false
    var scratch: UnsafeMutablePointer<kq_aio_completion>? = nil
    /// Set while a submission takes what it completed itself: their knotes are activated by
    /// the scan that the ring's eventfd edge (already on epoll's list) brings, which spares
    /// a wakeup write per submission.
    var deferActivation = false
    /// Knotes to activate at the next scan, with the tag each must still carry.
    var pendingActivations: [AIOPendingActivation] = []
    /// A submission's lists of what goes to the backend, kept between calls for their room.
    var submittedOps: [kq_aio_op] = []
    var startedSlots: [AIOStarted] = []

    static func isReadOrWrite(_ opcode: Int32) -> Bool {
        opcode == KQ_AIO_OP_READ || opcode == KQ_AIO_OP_WRITE || opcode == KQ_AIO_OP_READV
            || opcode == KQ_AIO_OP_WRITEV
    }

    mutating func allocate() -> Int? {
        if let slot = freeSlots.popLast() { return Int(slot) }
        guard jobs.count <= Int(Self.slotMask) else { return nil }
        jobs.append(AIOJob())
        return jobs.count - 1
    }

    /// Fills a free slot with a submitted request: its tag, knote and operation, and its owner
    /// moved out of the request (a swap, no reference counting; the request keeps a marker).
    /// A C vectored request's iovec array is copied, as FreeBSD copies it in. Returns the
    /// job's operation.
    mutating func start(
        _ slot: Int, tag: UInt64, knote: Int32, request: UnsafeMutablePointer<AIOSubmission>
    ) -> kq_aio_op {
        jobs.withUnsafeMutableBufferPointer { jobs in
            let job = jobs.baseAddress! + slot
            job.pointee.tag = tag
            job.pointee.knote = knote
            job.pointee.op = request.pointee.op
            job.pointee.op.tag = tag
            swap(&job.pointee.owner, &request.pointee.owner)
            let opcode = job.pointee.op.opcode
            guard case .c = job.pointee.owner, opcode == KQ_AIO_OP_READV || opcode == KQ_AIO_OP_WRITEV else {
                return job.pointee.op
            }
            let count = Int(job.pointee.op.length)
            let copy = UnsafeMutablePointer<iovec>.allocate(capacity: max(count, 1))
            if count > 0, let source = job.pointee.op.buffer?.assumingMemoryBound(to: iovec.self) {
                copy.initialize(from: source, count: count)
            }
            job.pointee.iovecs = copy
            job.pointee.op.buffer = UnsafeMutableRawPointer(copy)
            return job.pointee.op
        }
    }

    mutating func free(_ slot: Int) {
        jobs[slot].iovecs?.deallocate()
        jobs[slot] = AIOJob()
        freeSlots.append(Int32(slot))
    }

    func slot(of tag: UInt64) -> Int? {
        let slot = Int(tag & Self.slotMask)
        guard tag != 0, slot < jobs.count, jobs[slot].tag == tag else { return nil }
        return slot
    }

    static func makeTag(slot: Int) -> UInt64 {
        // Never 0 (a free slot), and distinct for 2^39 - 1 requests in a row (an OR of 1 would
        // give serials 2k and 2k + 1 the same number: a slot reused at once, the same tag).
        let number = serial.add(1, ordering: .relaxed).newValue & ((1 << 39) - 1)
        return (number == 0 ? 1 : number) << UInt64(slotBits) | UInt64(slot)
    }
}

/// EVFILT_LIO completions posted to a kqueue from outside its lock (a list's last request may
/// end in another kqueue, or in the C ABI's own thread): a leaf lock, and the backend's
/// eventfd to wake the kqueue's scan.
final class AIOMailbox: Sendable {
    private struct Box {
        var eventFD: Int32 = -1
        var tags: [UInt64] = []
    }
    private let box = Mutex(Box())

    func open(eventFD: Int32) { box.withLock { $0.eventFD = eventFD } }

    /// Posts a marker's completion; false once the kqueue's AIO is closed.
    func post(_ tag: UInt64) {
        let fd = box.withLock { box -> Int32 in
            guard box.eventFD >= 0 else { return -1 }
            box.tags.append(tag)
            return box.eventFD
        }
        if fd >= 0 { Syscall.eventFDSignal(fd) }
    }

    func take() -> [UInt64] {
        box.withLock { box in
            defer { box.tags.removeAll() }
            return box.tags
        }
    }

    func close() { box.withLock { $0 = Box() } }
}

extension QueueState {
    // MARK: Backend

    /// Opens the kqueue's backend on first use: its eventfd joins the epoll instance
    /// (edge-triggered, tagged for EVFILT_AIO), its descriptors are published for fork.
    mutating func prepareAIO() throws(Errno) {
        guard sources.aio.backend == nil else { return }
        let backend = try Syscall.aioBackendOpen(kind: sources.aio.requestedKind)
        let eventFD = kq_aio_backend_event_fd(backend)
        let events = UInt32(EPOLLIN.rawValue) | UInt32(EPOLLET.rawValue)
        do throws(Errno) {
            try self.backend.add(eventFD, events: events, tag: EpollTag.source(filter: FilterID.aio))
        } catch {
            Syscall.aioBackendClose(backend)
            throw error
        }
        let ringFD = kq_aio_backend_ring_fd(backend)
        internalDescriptors.insert(eventFD)
        if ringFD >= 0 { internalDescriptors.insert(ringFD) }
        sources.aio.backend = backend
        sources.aio.eventFD = eventFD
        sources.aio.ringFD = ringFD
        sources.aio.scratch = .allocate(capacity: AIORequests.reapBatch)
        aioMailbox.open(eventFD: eventFD)
    }

    /// The backend's kind (`KQ_AIO_BACKEND_*`), or nil before the first request.
    var aioBackendKind: Int32? {
        sources.aio.backend.map { kq_aio_backend_kind($0) }
    }

    // MARK: Submission (FreeBSD's aio_aqueue)

    /// Registers each request's knote (FreeBSD registers it at submission, `kn_ptr` the job)
    /// and starts its I/O, the batch in one system call where the backend allows. Writes each
    /// request's tag, or its errno (the request then left no trace).
    mutating func submitAIO(_ lists: AIOSubmissionLists) {
        let requests = lists.requests
        let tags = lists.tags
        let errors = lists.errors
        let allowed = EV.oneShot | EV.clear | EV.dispatch
        do throws(Errno) {
            try prepareAIO()
        } catch {
            for i in requests.indices { errors[i] = error.rawValue }
            return
        }
        // The scratch lists of the last submission, moved out (a copy would share the buffer,
        // and the first append would copy it) and back: their room is kept between calls.
        var ops: [kq_aio_op] = []
        var opSlots: [AIOStarted] = []
        swap(&ops, &sources.aio.submittedOps)
        swap(&opSlots, &sources.aio.startedSlots)
        defer {
            ops.removeAll(keepingCapacity: true)
            opSlots.removeAll(keepingCapacity: true)
            swap(&ops, &sources.aio.submittedOps)
            swap(&opSlots, &sources.aio.startedSlots)
        }
        let kind = aioBackendKind
        for i in requests.indices {
            tags[i] = 0
            errors[i] = 0
            // Read in place: a copy of the request would retain and release its owner.
            let request = requests.baseAddress! + i
            guard request.pointee.flags & ~allowed == 0 else {
                errors[i] = EINVAL
                continue
            }
            guard let slot = sources.aio.allocate() else {
                errors[i] = EAGAIN
                continue
            }
            let tag = AIORequests.makeTag(slot: slot)
            let isSwift: Bool
            if case .swift = request.pointee.owner { isSwift = true } else { isSwift = false }
            // A Swift request's ident is its new tag: no older knote can hold it.
            if isSwift { request.pointee.ident = UInt(tag) | AIORequestID.swiftBit }
            let knote = request.pointee.filter != 0 ? registerAIOKnote(request, tag: tag, replacing: !isSwift) : -1
            let op = sources.aio.start(slot, tag: tag, knote: knote, request: request)
            tags[i] = tag
            if op.opcode != 0 {
                if let error = Self.submissionError(op, kind: kind) {
                    if sources.aio.jobs[slot].knote >= 0 { drop(sources.aio.jobs[slot].knote) }
                    sources.aio.free(slot)
                    tags[i] = 0
                    errors[i] = error.rawValue
                    continue
                }
                sources.aio.jobs[slot].inFlight = true
                sources.aio.jobs[slot].justSubmitted = true
                ops.append(op)
                opSlots.append(AIOStarted(request: i, slot: slot))
            }
        }
        guard !ops.isEmpty, let backend = sources.aio.backend else { return }
        var taken = 0
        var failure = Errno.resourceTemporarilyUnavailable
        do throws(Errno) {
            taken = try ops.withUnsafeBufferPointer { ops throws(Errno) in
                try Syscall.aioBackendSubmit(backend, ops.baseAddress!, count: ops.count)
            }
        } catch {
            failure = error
        }
        sources.aio.inFlight += taken
        if taken > 0 && Syscall.aioBackendShared(backend) > 0 { setHasWork(FilterID.aio, true) }
        for started in opSlots[taken...] {
            let request = started.request
            let slot = started.slot
            // Not started: the request fails at submission and leaves nothing behind.
            if sources.aio.jobs[slot].knote >= 0 { drop(sources.aio.jobs[slot].knote) }
            sources.aio.free(slot)
            tags[request] = 0
            errors[request] = failure.rawValue
        }
        if aioBackendKind == Int32(KQ_AIO_BACKEND_IO_URING) {
            // What the submission completed (cached data is copied inside io_uring_enter):
            // EBADF of a request submitted now is refused below; the rest is activated by the
            // scan that the ring's eventfd edge brings (no eventfd read, no wakeup write here).
            sources.aio.deferActivation = true
            reapAIO(acknowledge: false)
            sources.aio.deferActivation = false
        }
        for started in opSlots[..<taken] {
            let request = started.request
            let slot = started.slot
            sources.aio.jobs[slot].justSubmitted = false
            guard sources.aio.jobs[slot].rejected else { continue }
            if sources.aio.jobs[slot].knote >= 0 { drop(sources.aio.jobs[slot].knote) }
            sources.aio.free(slot)
            tags[request] = 0
            errors[request] = EBADF
        }
    }

    /// A thread that would wait runs a chunk of the requests queued for the helper threads
    /// (their completions signal the backend's eventfd, which the next look reports). Once
    /// the queue is empty, waits no longer ask.
    mutating func assistAIO() -> Bool {
        guard let backend = sources.aio.backend, Syscall.aioBackendAssist(backend) > 0 else {
            setHasWork(FilterID.aio, false)
            return false
        }
        return true
    }

    /// Takes what the submission itself completed (io_uring copies cached data during the
    /// system call): no eventfd read (its edge is already on epoll's list, and the next scan
    /// reads it), and one wakeup for all the knotes activated, not one per knote.
    mutating func reapWithOneWakeup(acknowledge: Bool = false) {
        let outer = deferWakeup
        let outerCount = deferredActivations
        deferWakeup = true
        deferredActivations = 0
        reapAIO(acknowledge: acknowledge)
        let activated = deferredActivations
        deferWakeup = outer
        deferredActivations = outerCount + (outer ? activated : 0)
        if !outer && activated > 0 { signalWakeup() }
    }

    /// What FreeBSD's aio_aqueue refuses before queueing: a descriptor not open, or not open
    /// for the transfer's direction (EBADF; io_uring finds these during the submission, the
    /// pool asks fcntl), a negative offset on anything but a character device (EINVAL).
    private static func submissionError(_ op: kq_aio_op, kind: Int32?) -> Errno? {
        let reading = op.opcode == KQ_AIO_OP_READ || op.opcode == KQ_AIO_OP_READV
        let transfer = AIORequests.isReadOrWrite(op.opcode)
        if kind != Int32(KQ_AIO_BACKEND_IO_URING) || (transfer && op.offset < 0) {
            guard let flags = Syscall.statusFlags(op.fd) else { return .badFileDescriptor }
            if transfer {
                let mode = flags & O_ACCMODE
                if reading ? mode == O_WRONLY : mode == O_RDONLY { return .badFileDescriptor }
            }
        }
        if transfer && op.offset < 0 {
            guard let status = try? Syscall.fileStatus(op.fd), status.st_mode & S_IFMT == S_IFCHR else {
                return .invalidArgument
            }
        }
        return nil
    }

    /// A request's knote: (ident, filter) as FreeBSD's aio_aqueue registers it, with the
    /// sigevent's flags. An older knote on the same ident (a reused aiocb) is replaced.
    private mutating func registerAIOKnote(
        _ request: UnsafePointer<AIOSubmission>, tag: UInt64, replacing: Bool
    ) -> Int32 {
        let ident = request.pointee.ident
        let filter = request.pointee.filter
        if replacing, let old = table.others.value(filter: filter, ident: ident) { drop(old) }
        var knote = Knote()
        knote.ident = ident
        knote.filter = filter
        knote.flags = request.pointee.flags
        knote.udata = request.pointee.udata
        knote.filterState = Int64(bitPattern: tag)
        let index = table.allocate(knote)
        // Where the filter's find looks (AIOFilter.link: a Swift request's ident is its slot's).
        try? FilterTable.link(index, in: &self)
        return index
    }

    // MARK: Completion

    /// The backend reported: take its completions (and the list completions posted to this
    /// kqueue) and activate their knotes.
    mutating func reapAIO(acknowledge: Bool = true) {
        guard let backend = sources.aio.backend, let scratch = sources.aio.scratch else { return }
        if acknowledge { Syscall.aioBackendAcknowledge(backend) }
        if !sources.aio.deferActivation && !sources.aio.pendingActivations.isEmpty {
            for pending in sources.aio.pendingActivations
            where table[pending.knote].status.contains(.inUse)
                && UInt64(bitPattern: table[pending.knote].filterState) == pending.tag
            {
                activate(pending.knote)
            }
            sources.aio.pendingActivations.removeAll(keepingCapacity: true)
        }
        var retries: [kq_aio_op] = []
        while true {
            let n = Syscall.aioBackendReap(backend, into: scratch, capacity: AIORequests.reapBatch)
            for k in 0..<n { completeAIO(tag: scratch[k].tag, result: scratch[k].result, retries: &retries) }
            if n < AIORequests.reapBatch { break }
        }
        if !retries.isEmpty { resubmit(retries, backend: backend) }
        for tag in aioMailbox.take() {
            guard let slot = sources.aio.slot(of: tag), !sources.aio.jobs[slot].done else { continue }
            finishAIO(slot, result: 0)
        }
    }

    private mutating func completeAIO(tag: UInt64, result: Int64, retries: inout [kq_aio_op]) {
        guard let slot = sources.aio.slot(of: tag), sources.aio.jobs[slot].inFlight else { return }
        sources.aio.inFlight -= 1
        if sources.aio.jobs[slot].justSubmitted && result == -Int64(EBADF) {
            sources.aio.jobs[slot].inFlight = false
            sources.aio.jobs[slot].rejected = true
            return
        }
        let op = sources.aio.jobs[slot].op
        if result == -Int64(EAGAIN) && op.attempt == 0 && AIORequests.isReadOrWrite(op.opcode)
            && !sources.aio.closing && !sources.aio.jobs[slot].done
        {
            sources.aio.jobs[slot].op.attempt = 1
            sources.aio.inFlight += 1
            retries.append(sources.aio.jobs[slot].op)
            return
        }
        // A plain transfer that moved every byte needs no look (most do).
        let whole = result == Int64(op.length) && (op.opcode == KQ_AIO_OP_READ || op.opcode == KQ_AIO_OP_WRITE)
        if result > 0 && !whole && op.attempt == 0 && !sources.aio.closing && !sources.aio.jobs[slot].done,
            let rest = continueShortTransfer(slot, transferred: result)
        {
            sources.aio.inFlight += 1
            retries.append(rest)
            return
        }
        sources.aio.jobs[slot].inFlight = false
        // A first attempt that would have blocked, while the kqueue closes: never started.
        var result = result == -Int64(EAGAIN) && op.attempt == 0 ? -Int64(ECANCELED) : result
        // A continuation's end: what the first attempt moved counts (an error after it is the
        // short count, as read(2) reports a failure after some bytes).
        let before = sources.aio.jobs[slot].transferred
        if before > 0 { result = result >= 0 ? before + result : before }
        if sources.aio.jobs[slot].done {
            // Completed at once by a cancel (C ABI): now the kernel is done with its memory.
            sources.aio.free(slot)
            return
        }
        finishAIO(slot, result: result)
    }

    /// A first attempt on a regular file (or block device) that moved fewer bytes than asked
    /// stopped at what would block (RWF_NOWAIT: a page not in the cache, a block to allocate);
    /// FreeBSD moves them all (short only at the end of the file). The rest becomes the
    /// request's second attempt, which may block; nil when the transfer is complete, at the
    /// end of the file, or on a stream (whose short transfer is the answer).
    private mutating func continueShortTransfer(_ slot: Int, transferred: Int64) -> kq_aio_op? {
        var op = sources.aio.jobs[slot].op
        guard AIORequests.isReadOrWrite(op.opcode) else { return nil }
        let vectored = op.opcode == KQ_AIO_OP_READV || op.opcode == KQ_AIO_OP_WRITEV
        let segments = op.buffer?.assumingMemoryBound(to: iovec.self)
        let asked: Int64 =
            vectored
            ? (0..<Int(op.length)).reduce(0) { $0 + Int64(segments![$1].iov_len) } : Int64(op.length)
        guard transferred < asked, let status = try? Syscall.fileStatus(op.fd) else { return nil }
        let kind = status.st_mode & S_IFMT
        guard kind == S_IFREG || kind == S_IFBLK else { return nil }
        let reading = op.opcode == KQ_AIO_OP_READ || op.opcode == KQ_AIO_OP_READV
        if reading && kind == S_IFREG && op.offset + transferred >= Int64(status.st_size) { return nil }
        op.offset += transferred
        op.attempt = 1
        if vectored {
            let rest = Self.segments(segments!, count: Int(op.length), after: Int(transferred))
            sources.aio.jobs[slot].iovecs?.deallocate()
            sources.aio.jobs[slot].iovecs = rest.base
            op.buffer = UnsafeMutableRawPointer(rest.base)
            op.length = UInt64(rest.count)
        } else {
            op.buffer = op.buffer.map { $0 + Int(transferred) }
            op.length -= UInt64(transferred)
        }
        sources.aio.jobs[slot].transferred = transferred
        sources.aio.jobs[slot].op = op
        return op
    }

    /// A new array of the segments left after the first `skip` bytes of `segments`.
    private static func segments(
        _ segments: UnsafeMutablePointer<iovec>, count: Int, after skip: Int
    ) -> AIOSegments {
        var first = 0
        var skipped = 0
        while first < count && skipped + segments[first].iov_len <= skip {
            skipped += segments[first].iov_len
            first += 1
        }
        let rest = UnsafeMutablePointer<iovec>.allocate(capacity: max(count - first, 1))
        for i in first..<count { rest[i - first] = segments[i] }
        if first < count {
            rest[0].iov_base += skip - skipped
            rest[0].iov_len -= skip - skipped
        }
        return AIOSegments(base: rest, count: count - first)
    }

    /// Second attempts (the first would have blocked): in io_uring's workers or the pool.
    private mutating func resubmit(_ ops: [kq_aio_op], backend: OpaquePointer) {
        var taken = 0
        var failure = Errno.resourceTemporarilyUnavailable
        do throws(Errno) {
            taken = try ops.withUnsafeBufferPointer { ops throws(Errno) in
                try Syscall.aioBackendSubmit(backend, ops.baseAddress!, count: ops.count)
            }
        } catch {
            failure = error
        }
        for op in ops[taken...] {
            guard let slot = sources.aio.slot(of: op.tag) else { continue }
            sources.aio.inFlight -= 1
            sources.aio.jobs[slot].inFlight = false
            finishAIO(slot, result: -Int64(failure.rawValue))
        }
    }

    /// Records a request's result, activates its knote (`data` the error, EV_EOF; FreeBSD's
    /// filt_aio) and tells the C ABI. C requests and markers leave their slot at once (the
    /// knote keeps the tag); a Swift request keeps it until its completion is taken.
    mutating func finishAIO(_ slot: Int, result: Int64) {
        sources.aio.jobs[slot].done = true
        sources.aio.jobs[slot].result = result
        // Fields read one by one: a copy of the whole job would retain and release its owner.
        let knote = sources.aio.jobs[slot].knote
        let error = result < 0 ? Int32(truncatingIfNeeded: -result) : 0
        let status = result < 0 ? -1 : result
        if knote >= 0 {
            table[knote].savedData = 1  // done (FreeBSD: KAIOCB_FINISHED)
            if table[knote].filter == FilterID.aio {
                table[knote].data = Int64(error)
                table[knote].status.insert(.endOfFile)
                if case .swift = sources.aio.jobs[slot].owner { table[knote].ext.1 = UInt64(bitPattern: status) }
            }
            if sources.aio.deferActivation {
                let tag = sources.aio.jobs[slot].tag
                sources.aio.pendingActivations.append(AIOPendingActivation(knote: knote, tag: tag))
            } else {
                activate(knote)
            }
        }
        let inFlight = sources.aio.jobs[slot].inFlight
        switch sources.aio.jobs[slot].owner {
        case .c(let token):
            Syscall.aioCompletionHook(token: token, error: error, status: status)
            if !inFlight { sources.aio.free(slot) }
        case .marker:
            sources.aio.free(slot)
        case .swift:
            break
        }
    }

    // MARK: Cancellation, release, close

    /// aio_cancel for one request (FreeBSD's aio_cancel_job): a C request cancelled is
    /// complete at once (ECANCELED); a Swift one when the backend gives its buffer back.
    mutating func cancelAIO(tag: UInt64) -> AIOCancelOutcome {
        reapWithOneWakeup()
        guard let slot = sources.aio.slot(of: tag), let backend = sources.aio.backend else { return .notFound }
        let job = sources.aio.jobs[slot]
        if job.done { return .allDone }
        guard job.inFlight else { return .notCanceled }  // a marker
        switch Syscall.aioBackendCancel(backend, tag: tag) {
        case nil:
            if case .c = job.owner { finishAIO(slot, result: -Int64(ECANCELED)) }
            return .canceled
        case .alreadyInProcess?:
            return .notCanceled
        default:
            reapWithOneWakeup()
            guard let again = sources.aio.slot(of: tag) else { return .allDone }
            return sources.aio.jobs[again].done ? .allDone : .notCanceled
        }
    }

    /// aio_return's end of a request: its knote goes (FreeBSD's aio_free_entry), and a Swift
    /// request's slot with it.
    mutating func releaseAIO(ident: UInt, filter: Int16, tag: UInt64) {
        if let knote = table.others.value(filter: filter, ident: ident),
            UInt64(bitPattern: table[knote].filterState) == tag
        {
            drop(knote)
        }
        if let slot = sources.aio.slot(of: tag), sources.aio.jobs[slot].done, !sources.aio.jobs[slot].inFlight {
            sources.aio.free(slot)
        }
    }

    /// A Swift request's completion, taken once (nil while in flight; EINVAL if unknown).
    mutating func takeAIOCompletion(tag: UInt64) throws(Errno) -> AIOTaken? {
        if let slot = sources.aio.slot(of: tag), !sources.aio.jobs[slot].done { reapWithOneWakeup() }
        guard let slot = sources.aio.slot(of: tag), case .swift = sources.aio.jobs[slot].owner else {
            throw .invalidArgument
        }
        guard sources.aio.jobs[slot].done, !sources.aio.jobs[slot].inFlight else { return nil }
        let result = sources.aio.jobs[slot].result
        // Its knote, if still there (a delivered EV_ONESHOT one is gone: detach cleared it).
        let knote = sources.aio.jobs[slot].knote
        if knote >= 0 { drop(knote) }
        // The buffer moves out of the job (a swap: no reference counting).
        var owner = AIOOwner.marker
        swap(&owner, &sources.aio.jobs[slot].owner)
        sources.aio.free(slot)
        guard case .swift(let storage) = consume owner else { throw .invalidArgument }
        return AIOTaken(result: result, storage: storage)
    }

    /// The kqueue is closing: every request in flight is cancelled, and the close waits until
    /// the backend has given each back (completed or cancelled), so no buffer is written
    /// after its owner is gone; C requests get their result through the hook.
    mutating func closeAIO() {
        guard let backend = sources.aio.backend else { return }
        sources.aio.closing = true
        for slot in sources.aio.jobs.indices where sources.aio.jobs[slot].inFlight {
            _ = Syscall.aioBackendCancel(backend, tag: sources.aio.jobs[slot].tag)
        }
        while true {
            reapAIO()
            guard sources.aio.inFlight > 0 else { break }
            Syscall.aioBackendWait(backend)
        }
        for slot in sources.aio.jobs.indices where sources.aio.jobs[slot].tag != 0 {
            if !sources.aio.jobs[slot].done, case .c(let token) = sources.aio.jobs[slot].owner {
                Syscall.aioCompletionHook(token: token, error: ECANCELED, status: -1)
            }
            sources.aio.free(slot)
        }
        aioMailbox.close()
        // The ring and its eventfd may serve the next kqueue (kq_aio_backend_close).
        self.backend.remove(sources.aio.eventFD)
        internalDescriptors.remove(sources.aio.eventFD)
        if sources.aio.ringFD >= 0 { internalDescriptors.remove(sources.aio.ringFD) }
        Syscall.aioBackendClose(backend)
        sources.aio.scratch?.deallocate()
        let kind = sources.aio.requestedKind
        sources.aio = AIORequests()
        sources.aio.requestedKind = kind
    }
}
