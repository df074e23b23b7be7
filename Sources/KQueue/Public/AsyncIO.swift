import CKQueue
import CKQueueShim
import Glibc

/// The identity of an asynchronous I/O request on its kqueue: the `ident` of the
/// ``Filter/aio`` event that reports its end (C programs use the `aiocb`'s address instead).
public struct AIORequestID: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt
    public init(rawValue: UInt) { self.rawValue = rawValue }

    /// Set in every Swift request's ident, so it never equals an `aiocb` address.
    static let swiftBit: UInt = 1 << 63
    init(tag: UInt64) { rawValue = UInt(tag) | Self.swiftBit }
    var tag: UInt64 { UInt64(rawValue & ~Self.swiftBit) }
    var isSwiftRequest: Bool { rawValue & Self.swiftBit != 0 }

    public var description: String { "AIORequestID(0x\(String(rawValue, radix: 16)))" }
}

/// The I/O machinery behind a kqueue's requests.
public enum AIOBackend: Sendable, Equatable {
    /// A ring of the kqueue's own (Linux's io_uring).
    case ioUring
    /// A process-wide pool of worker threads (where io_uring is unavailable).
    case threadPool
}

/// Bytes owned by an asynchronous request while it is in flight.
///
/// Noncopyable: submitting a request consumes its buffer, and the buffer comes back only with
/// the request's ``AIOCompletion``, so no code can read or write it, or free it, while the
/// kernel does. A vectored request uses the buffer's segments as its `iovec`s.
public struct AIOBuffer: ~Copyable, @unchecked Sendable {
    // SAFETY: the storage is reachable only through this noncopyable value, or through the
    // engine while a request owns it.
    let storage: AIOStorage

    /// `count` zero bytes in one segment (page-aligned).
    public init(count: Int) { storage = AIOStorage(segmentSizes: [max(count, 0)]) }

    /// Zero bytes in one segment per size, contiguous (for vectored requests).
    public init(segmentSizes: [Int]) { storage = AIOStorage(segmentSizes: segmentSizes.map { max($0, 0) }) }

    /// A copy of `bytes`, in one segment.
    public init(_ bytes: some Collection<UInt8>) {
        storage = AIOStorage(segmentSizes: [bytes.count])
        _ = UnsafeMutableRawBufferPointer(storage.bytes).initializeMemory(as: UInt8.self, from: bytes)
    }

    init(storage: AIOStorage) { self.storage = storage }

    /// Total bytes over all segments.
    public var count: Int { storage.count }
    /// The number of segments (`iovec`s of a vectored request).
    public var segmentCount: Int { storage.segmentCount }

    /// The bytes of segment `index`.
    public func segment(_ index: Int) -> [UInt8] {
        precondition(index >= 0 && index < storage.segmentCount, "segment index out of range")
        let segment = storage.segments[index]
        return Array(UnsafeRawBufferPointer(start: segment.iov_base, count: segment.iov_len))
    }

    /// Every byte, segments in order.
    public var bytes: [UInt8] { Array(UnsafeRawBufferPointer(start: storage.bytes.baseAddress, count: count)) }

    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: storage.bytes.baseAddress, count: count))
    }

    public mutating func withUnsafeMutableBytes<R, E: Error>(
        _ body: (UnsafeMutableRawBufferPointer) throws(E) -> R
    ) throws(E) -> R {
        try body(UnsafeMutableRawBufferPointer(start: storage.bytes.baseAddress, count: count))
    }
}

/// One asynchronous request (FreeBSD's `aio_read`, `aio_write`, `aio_readv`, `aio_writev`,
/// `aio_fsync`), owning its buffer until it completes.
public struct AIORequest: ~Copyable {
    let opcode: Int32
    let descriptor: FileDescriptor
    let offset: Int64
    let storage: AIOStorage?
    let udata: UnsafeMutableRawPointer?

    /// Reads `buffer.count` bytes at `offset` into the buffer (a short read at end of file).
    public static func read(
        from descriptor: FileDescriptor, at offset: Int64, into buffer: consuming AIOBuffer,
        udata: UnsafeMutableRawPointer? = nil
    ) -> AIORequest {
        AIORequest(
            opcode: Int32(KQ_AIO_OP_READ), descriptor: descriptor, offset: offset, storage: buffer.storage, udata: udata
        )
    }

    /// Writes the buffer's bytes at `offset`.
    public static func write(
        to descriptor: FileDescriptor, at offset: Int64, from buffer: consuming AIOBuffer,
        udata: UnsafeMutableRawPointer? = nil
    ) -> AIORequest {
        AIORequest(
            opcode: Int32(KQ_AIO_OP_WRITE), descriptor: descriptor, offset: offset, storage: buffer.storage,
            udata: udata)
    }

    /// Reads into the buffer's segments in order, starting at `offset` (`aio_readv`).
    public static func readVectored(
        from descriptor: FileDescriptor, at offset: Int64, into buffer: consuming AIOBuffer,
        udata: UnsafeMutableRawPointer? = nil
    ) -> AIORequest {
        AIORequest(
            opcode: Int32(KQ_AIO_OP_READV), descriptor: descriptor, offset: offset, storage: buffer.storage,
            udata: udata)
    }

    /// Writes the buffer's segments in order, starting at `offset` (`aio_writev`).
    public static func writeVectored(
        to descriptor: FileDescriptor, at offset: Int64, from buffer: consuming AIOBuffer,
        udata: UnsafeMutableRawPointer? = nil
    ) -> AIORequest {
        AIORequest(
            opcode: Int32(KQ_AIO_OP_WRITEV), descriptor: descriptor, offset: offset, storage: buffer.storage,
            udata: udata)
    }

    /// Flushes the file's data (and, unless `dataOnly`, its metadata) to storage (`aio_fsync`
    /// with O_SYNC or O_DSYNC).
    public static func sync(
        _ descriptor: FileDescriptor, dataOnly: Bool = false, udata: UnsafeMutableRawPointer? = nil
    ) -> AIORequest {
        AIORequest(
            opcode: Int32(dataOnly ? KQ_AIO_OP_FDATASYNC : KQ_AIO_OP_FSYNC), descriptor: descriptor, offset: 0,
            storage: nil, udata: udata)
    }

    // Consuming: the buffer's owner moves into the submission (no retain and release).
    consuming func submission(flags: Flags) -> AIOSubmission {
        var op = kq_aio_op()
        op.opcode = opcode
        op.fd = descriptor.rawValue
        op.offset = offset
        let storage = storage ?? AIOStorage(segmentSizes: [])
        if opcode == Int32(KQ_AIO_OP_READV) || opcode == Int32(KQ_AIO_OP_WRITEV) {
            op.buffer = UnsafeMutableRawPointer(storage.segments)
            op.length = UInt64(storage.segmentCount)
        } else if self.storage != nil {
            op.buffer = storage.bytes.baseAddress
            op.length = UInt64(storage.count)
        }
        return AIOSubmission(
            ident: 0, filter: FilterID.aio, flags: flags.rawValue, udata: udata, op: op, owner: .swift(storage))
    }
}

/// Several requests started with one system call where the backend allows (io_uring).
public struct AIOBatch: ~Copyable {
    var requests: [AIOSubmission] = []
    public init() {}
    /// A batch with room for `count` requests before it grows.
    public init(reservingCapacity count: Int) { requests.reserveCapacity(count) }
    /// Adds a request; `flags` as in ``KernelQueue/submit(_:flags:)``.
    public mutating func append(_ request: consuming AIORequest, flags: Flags = []) {
        // Room for a typical batch at once, rather than growing through 1, 2, 4 and 8.
        if requests.capacity == 0 { requests.reserveCapacity(16) }
        requests.append(request.submission(flags: flags))
    }
    public var count: Int { requests.count }
}

/// A finished request: its result and its buffer, back to the caller.
public struct AIOCompletion: ~Copyable {
    public let id: AIORequestID
    /// Bytes transferred (0 for a sync), or the errno (`.canceled` after ``KernelQueue/cancel(_:)``).
    public let result: Result<Int, Errno>
    /// The request's buffer (empty for a sync), to read from or to reuse.
    public var buffer: AIOBuffer

    /// Takes the buffer out of the completion.
    public consuming func takeBuffer() -> AIOBuffer { buffer }
}

/// What ``KernelQueue/cancel(_:)`` did (`aio_cancel`'s answers).
public enum AIOCancelResult: Sendable, Equatable {
    /// Cancelled: it completes with `Errno.canceled` and an event.
    case canceled
    /// Already running: it completes normally.
    case notCanceled
    /// Already done.
    case allDone
}

extension KernelQueue {
    /// Creates a kqueue whose asynchronous requests use `backend` (`.ioUring` fails with the
    /// reason where io_uring is unavailable, once the first request is submitted).
    public convenience init(aioBackend backend: AIOBackend) throws(Errno) {
        try self.init()
        core.state.withLock { state in
            state.sources.aio.requestedKind = Int32(
                backend == .ioUring ? KQ_AIO_BACKEND_IO_URING : KQ_AIO_BACKEND_THREADS)
        }
    }

    /// The backend of this kqueue's requests: nil before the first one.
    public var aioBackend: AIOBackend? {
        core.state.withLock { state in
            state.aioBackendKind.map { $0 == Int32(KQ_AIO_BACKEND_IO_URING) ? .ioUring : .threadPool }
        }
    }

    /// Starts `request`. Its end is reported by an ``Filter/aio`` event on this kqueue: `ident`
    /// the returned ID, `udata` the request's, `data` 0 or the errno, ``Flags/endOfFile`` set,
    /// and ``KEvent/aioResult`` the bytes or the error. Without `.oneShot`, `.clear` or
    /// `.dispatch` in `flags` the event is level-triggered until ``completion(of:)`` takes it.
    ///
    /// - Throws: what FreeBSD reports at submission: `.badFileDescriptor` for a descriptor not
    ///   open (or not open for reading, or writing), `.invalidArgument` for a negative offset
    ///   or other flags, `.badFileDescriptor` after ``close()``; the buffer is then freed.
    @discardableResult
    public func submit(_ request: consuming AIORequest, flags: Flags = []) throws(Errno) -> AIORequestID {
        var batch = AIOBatch(reservingCapacity: 1)
        batch.append(request, flags: flags)
        return try submit(batch)[0].get()
    }

    /// Starts every request of `batch` (one system call on io_uring); one result per request,
    /// in order.
    public func submit(_ batch: consuming AIOBatch) -> [Result<AIORequestID, Errno>] {
        // Moved out, not copied: a copy would share the buffer, and the mutable access below
        // would copy every request (a retain and a release of each buffer).
        var requests: [AIOSubmission] = []
        swap(&requests, &batch.requests)
        let count = requests.count
        guard count > 0 else { return [] }
        return requests.withUnsafeMutableBufferPointer { requests in
            withUnsafeTemporaryAllocation(of: UInt64.self, capacity: count) { tags in
                withUnsafeTemporaryAllocation(of: Int32.self, capacity: count) { errors in
                    core.state.withLock { state in
                        guard !state.isClosed else {
                            errors.initialize(repeating: EBADF)
                            return
                        }
                        state.submitAIO(
                            AIOSubmissionLists(
                                requests: requests, tags: tags.baseAddress!, errors: errors.baseAddress!))
                    }
                    return (0..<count).map { i in
                        errors[i] == 0 ? .success(AIORequestID(tag: tags[i])) : .failure(Errno(rawValue: errors[i]))
                    }
                }
            }
        }
    }

    /// Takes the completion of request `id` (its event goes too), or nil while it is in
    /// flight. Each completion is taken once.
    ///
    /// - Throws: `.invalidArgument` for an ID that is not a request of this kqueue, or whose
    ///   completion was taken; `.badFileDescriptor` after ``close()``.
    public func completion(of id: AIORequestID) throws(Errno) -> AIOCompletion? {
        guard id.isSwiftRequest else { throw .invalidArgument }
        let taken = try core.state.withLock { state throws(Errno) -> AIOTaken? in
            guard !state.isClosed else { throw .badFileDescriptor }
            return try state.takeAIOCompletion(tag: id.tag)
        }
        guard let taken else { return nil }
        let result: Result<Int, Errno> =
            taken.result < 0 ? .failure(Errno(rawValue: Int32(-taken.result))) : .success(Int(taken.result))
        return AIOCompletion(id: id, result: result, buffer: AIOBuffer(storage: taken.storage))
    }

    /// Asks to cancel request `id` (`aio_cancel`).
    public func cancel(_ id: AIORequestID) throws(Errno) -> AIOCancelResult {
        guard id.isSwiftRequest else { throw .invalidArgument }
        let outcome = try core.state.withLock { state throws(Errno) -> AIOCancelOutcome in
            guard !state.isClosed else { throw .badFileDescriptor }
            return state.cancelAIO(tag: id.tag)
        }
        switch outcome {
        case .canceled: return .canceled
        case .notCanceled: return .notCanceled
        case .allDone: return .allDone
        case .notFound: throw .invalidArgument
        }
    }
}

extension KEvent {
    /// For an ``Filter/aio`` event of a Swift request: its ID.
    public var aioRequest: AIORequestID? {
        guard filter == .aio else { return nil }
        let id = AIORequestID(rawValue: ident)
        return id.isSwiftRequest ? id : nil
    }

    /// For an ``Filter/aio`` event of a Swift request: bytes transferred, or the errno.
    public var aioResult: Result<Int, Errno>? {
        guard aioRequest != nil else { return nil }
        if data != 0 { return .failure(Errno(rawValue: Int32(truncatingIfNeeded: data))) }
        return .success(Int(Int64(bitPattern: ext.1)))
    }
}
