import CKQueue
import CKQueueShim
import Glibc

/// The C entry points behind `libkqueue.so`'s `kqueue`, `kqueuex` and `kevent`: FreeBSD's
/// error behaviour, -1 with `errno` set. Not for Swift programs; use ``KernelQueue``.
@_spi(CABI)
public enum CABI {
    /// KQUEUE_CLOEXEC: every kqueue descriptor is close-on-exec here, so it changes nothing.
    static let knownFlags: UInt32 = 0x1

    public static func kqueue(flags: UInt32 = 0) -> Int32 {
        guard flags & ~knownFlags == 0 else {
            errno = EINVAL
            return -1
        }
        do throws(Errno) {
            return try KQueueRegistry.create().descriptor
        } catch {
            errno = error.rawValue
            return -1
        }
    }

    public static func kevent(
        _ kq: Int32, _ changes: UnsafePointer<CKQueue.kevent>?, _ changeCount: Int32,
        _ events: UnsafeMutablePointer<CKQueue.kevent>?, _ eventCapacity: Int32,
        _ timeout: UnsafePointer<timespec>?
    ) -> Int32 {
        guard let core = KQueueRegistry.lookup(kq) else {
            errno = EBADF
            return -1
        }
        switch core.kevent(
            changes: changes, changeCount: Int(changeCount), events: events, eventCapacity: Int(eventCapacity),
            timeout: timeout)
        {
        case .success(let count):
            return Int32(count)
        case .failure(let error):
            errno = error.rawValue
            return -1
        }
    }
}

// MARK: Asynchronous I/O, for libkqueue.so's aio_* (Sources/CKQueueAIO)

extension CABI {
    /// Registers and starts C requests on kqueue `kq`: per request its tag, or its errno
    /// (EBADF: `kq` is not a kqueue).
    public static func aioSubmit(
        _ kq: Int32, _ requests: UnsafePointer<kq_aio_request>, _ count: Int32, _ tags: UnsafeMutablePointer<UInt64>,
        _ errors: UnsafeMutablePointer<Int32>
    ) {
        let count = Int(count)
        guard let core = KQueueRegistry.lookup(kq), !core.isForkedAway.load(ordering: .relaxed) else {
            for i in 0..<count {
                tags[i] = 0
                errors[i] = EBADF
            }
            return
        }
        var submissions = (0..<count).map { i -> AIOSubmission in
            let request = requests[i]
            let owner: AIOOwner = request.op.opcode == 0 && request.filter != 0 ? .marker : .c(request.token)
            return AIOSubmission(
                ident: request.ident, filter: request.filter, flags: request.flags, udata: request.udata,
                op: request.op, owner: owner)
        }
        submissions.withUnsafeMutableBufferPointer { submissions in
            core.state.withLock { state in
                guard !state.isClosed else {
                    for i in 0..<count { errors[i] = EBADF }
                    return
                }
                state.submitAIO(AIOSubmissionLists(requests: submissions, tags: tags, errors: errors))
            }
        }
    }

    /// aio_cancel of one request: 0 AIO_CANCELED, 1 AIO_NOTCANCELED, 2 AIO_ALLDONE, -1 unknown.
    public static func aioCancel(_ kq: Int32, _ tag: UInt64) -> Int32 {
        guard let core = KQueueRegistry.lookup(kq) else { return -1 }
        let outcome = core.state.withLock { state -> AIOCancelOutcome in
            state.isClosed ? .notFound : state.cancelAIO(tag: tag)
        }
        switch outcome {
        case .canceled: return 0
        case .notCanceled: return 1
        case .allDone: return 2
        case .notFound: return -1
        }
    }

    /// aio_return (or the end of a list): the request's knote goes.
    public static func aioRelease(_ kq: Int32, _ ident: UInt, _ filter: Int16, _ tag: UInt64) {
        guard let core = KQueueRegistry.lookup(kq) else { return }
        core.state.withLock { state in
            if !state.isClosed { state.releaseAIO(ident: ident, filter: filter, tag: tag) }
        }
    }

    /// Takes the completions kqueue `kq`'s backend has (aio_error, aio_suspend).
    public static func aioPoll(_ kq: Int32) {
        guard let core = KQueueRegistry.lookup(kq) else { return }
        core.state.withLock { state in
            if !state.isClosed { state.reapWithOneWakeup(acknowledge: true) }
        }
    }

    /// The descriptor that becomes readable when kqueue `kq`'s backend has completions, or -1.
    public static func aioWaitDescriptor(_ kq: Int32) -> Int32 {
        guard let core = KQueueRegistry.lookup(kq) else { return -1 }
        return core.state.withLock { state in state.isClosed ? -1 : state.sources.aio.eventFD }
    }

    /// An EVFILT_LIO marker's list is done: posted to kqueue `kq` without its lock.
    public static func aioMarkDone(_ kq: Int32, _ tag: UInt64) {
        KQueueRegistry.lookup(kq)?.aioMailbox.post(tag)
    }
}
