import Glibc
import KQueue
import Testing

/// SPEC.md section 3, EVFILT_AIO from Swift: requests own their buffers until their completion
/// is taken; each end is an event with the request's ID, udata and result. Every test runs on
/// both backends (io_uring where the kernel allows it, and the thread pool).
@Suite("SPEC 3: EVFILT_AIO (Swift API)")
struct AIOTests {
    static let backends: [AIOBackend] = [.ioUring, .threadPool]

    /// A queue on `backend`, or nil when io_uring is not available here (the request fails).
    static func queue(_ backend: AIOBackend) throws -> KernelQueue? {
        let queue = try KernelQueue(aioBackend: backend)
        guard backend == .ioUring else { return queue }
        let probe = try TempFile(size: 0)
        do {
            let id = try queue.submit(.sync(probe.descriptor))
            _ = try waitForEvent(queue, id)
            _ = try Self.take(queue, id)
        } catch {
            return nil  // io_uring unavailable (disabled, seccomp, old kernel)
        }
        #expect(queue.aioBackend == .ioUring)
        return queue
    }

    /// Events within `timeout`; a signal another suite sends the process (EINTR) is no event.
    static func events(_ queue: KernelQueue, max: Int = 64, timeout: Duration) throws -> [KEvent] {
        do {
            return try queue.events(maxEvents: max, timeout: timeout)
        } catch .interrupted {
            return []
        }
    }

    static func waitForEvent(_ queue: KernelQueue, _ id: AIORequestID) throws -> KEvent {
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            for event in try events(queue, timeout: .milliseconds(100)) where event.aioRequest == id {
                return event
            }
        }
        Issue.record("no event for \(id) within 5 s")
        throw Errno.timedOut
    }

    /// The completion of a request that is done (a test failure if it is not).
    static func take(_ queue: KernelQueue, _ id: AIORequestID) throws -> AIOCompletion {
        if let completion = try queue.completion(of: id) { return completion }
        Issue.record("\(id) is still in flight")
        throw Errno.resourceTemporarilyUnavailable
    }

    static func pattern(_ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: i &* 7 &+ 3) }

    @Test("3.AIO: a read's event has the request's ID, udata, error 0, EV_EOF and its byte count", arguments: backends)
    func readEventAndCompletion(_ backend: AIOBackend) throws {
        guard let queue = try Self.queue(backend) else { return }
        let file = try TempFile(size: 8192)
        let udata = UnsafeMutableRawPointer(bitPattern: 0xfeed)
        let id = try queue.submit(.read(from: file.descriptor, at: 100, into: AIOBuffer(count: 4096), udata: udata))
        let event = try Self.waitForEvent(queue, id)
        #expect(event.filter == .aio)
        #expect(event.ident == id.rawValue)
        #expect(event.udata == udata)
        #expect(event.data == 0)
        #expect(event.flags.contains(.endOfFile))
        #expect(event.aioResult == .success(4096))
        let completion = try Self.take(queue, id)
        #expect(completion.result == .success(4096))
        let bytes = completion.buffer.bytes
        #expect(bytes.count == 4096)
        #expect(bytes.enumerated().allSatisfy { $0.element == Self.pattern($0.offset + 100) })
        // Taken once; the event went with it.
        #expect(throws: Errno.invalidArgument) { _ = try queue.completion(of: id) }
        #expect(try queue.events(timeout: .zero).isEmpty)
    }

    @Test(
        "3.AIO: changes find a request's knote by its ID: EV_DISABLE holds the event, EV_ENABLE returns it, EV_DELETE removes it",
        arguments: backends)
    func changesFindRequestKnote(_ backend: AIOBackend) throws {
        guard let queue = try Self.queue(backend) else { return }
        let file = try TempFile(size: 8192)
        func change(_ id: AIORequestID, _ flags: Flags) -> KEvent {
            KEvent(ident: id.rawValue, filter: .aio, flags: flags)
        }
        let held = try queue.submit(.read(from: file.descriptor, at: 0, into: AIOBuffer(count: 512)))
        try queue.apply([change(held, .disable)])
        // Done while disabled: no event, until it is enabled again.
        let deadline = ContinuousClock.now + .seconds(5)
        var done = false
        while !done && ContinuousClock.now < deadline {
            #expect(try Self.events(queue, timeout: .milliseconds(20)).isEmpty)
            done = try queue.completion(of: held) != nil
        }
        #expect(done)
        let deleted = try queue.submit(.read(from: file.descriptor, at: 512, into: AIOBuffer(count: 512)))
        try queue.apply([change(deleted, .delete)])
        #expect(changeError(queue, change(deleted, .delete)) == .noSuchFileOrDirectory)
        while try queue.completion(of: deleted) == nil && ContinuousClock.now < deadline {
            #expect(try Self.events(queue, timeout: .milliseconds(20)).isEmpty)
        }
        let enabled = try queue.submit(.read(from: file.descriptor, at: 1024, into: AIOBuffer(count: 512)))
        try queue.apply([change(enabled, .disable), change(enabled, .enable)])
        #expect(try Self.waitForEvent(queue, enabled).aioResult == .success(512))
        _ = try Self.take(queue, enabled)
        // An ID that names no request, and one whose completion was taken: ENOENT.
        #expect(changeError(queue, change(enabled, .delete)) == .noSuchFileOrDirectory)
        #expect(
            changeError(queue, KEvent(ident: UInt(1) << 63 | 12345, filter: .aio, flags: .delete))
                == .noSuchFileOrDirectory)
    }

    @Test("3.AIO: a request that reuses a finished one's slot at once gets a new ID", arguments: backends)
    func reusedSlotGetsNewID(_ backend: AIOBackend) throws {
        guard let queue = try Self.queue(backend) else { return }
        let file = try TempFile(size: 8192)
        var seen = Set<AIORequestID>()
        var previous: AIORequestID? = nil
        // One request at a time: each takes the slot the one before freed, with the next serial.
        for _ in 0..<16 {
            let id = try queue.submit(.read(from: file.descriptor, at: 0, into: AIOBuffer(count: 512)))
            #expect(seen.insert(id).inserted, "\(id) was given twice")
            if let previous {
                // The finished request's ID names nothing now, not the request in its slot.
                #expect(throws: Errno.invalidArgument) { _ = try queue.completion(of: previous) }
            }
            _ = try Self.waitForEvent(queue, id)
            _ = try Self.take(queue, id)
            previous = id
        }
    }

    @Test(
        "3.AIO: a read of a file whose first half alone is in the page cache is whole, not short",
        arguments: backends)
    func partlyCachedReadIsWhole(_ backend: AIOBackend) throws {
        guard let queue = try Self.queue(backend) else { return }
        let size = 64 * 1024
        let file = try TempFile(size: size)
        let fd = file.descriptor.rawValue
        #expect(fsync(fd) == 0)
        #expect(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0)
        #expect(posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM) == 0)
        var half = [UInt8](repeating: 0, count: size / 2)
        #expect(pread(fd, &half, size / 2, 0) == size / 2)
        let map = try #require(mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0).flatMap { $0 == MAP_FAILED ? nil : $0 })
        defer { munmap(map, size) }
        var resident = [UInt8](repeating: 0, count: size / 4096)
        #expect(mincore(map, size, &resident) == 0)
        #expect(resident.first! & 1 == 1 && resident.last! & 1 == 0, "the second half must not be cached")
        let id = try queue.submit(.read(from: file.descriptor, at: 0, into: AIOBuffer(count: size)))
        _ = try Self.waitForEvent(queue, id)
        let completion = try Self.take(queue, id)
        #expect(completion.result == .success(size))
        #expect(completion.buffer.bytes.enumerated().allSatisfy { $0.element == Self.pattern($0.offset) })
    }

    @Test("3.AIO: write, vectored write and read, sync, short read at end of file", arguments: backends)
    func writeVectoredSyncShortRead(_ backend: AIOBackend) throws {
        guard let queue = try Self.queue(backend) else { return }
        let file = try TempFile(size: 0)
        let written = try queue.submit(.write(to: file.descriptor, at: 0, from: AIOBuffer(Array("hello, ".utf8))))
        _ = try Self.waitForEvent(queue, written)
        #expect(try Self.take(queue, written).result == .success(7))
        var segments = AIOBuffer(segmentSizes: [3, 2])
        segments.withUnsafeMutableBytes { bytes in
            for (i, c) in "kq-io".utf8.enumerated() { bytes[i] = c }
        }
        let vectored = try queue.submit(.writeVectored(to: file.descriptor, at: 7, from: segments))
        _ = try Self.waitForEvent(queue, vectored)
        #expect(try Self.take(queue, vectored).result == .success(5))
        let synced = try queue.submit(.sync(file.descriptor, dataOnly: true), flags: .oneShot)
        let syncEvent = try Self.waitForEvent(queue, synced)
        #expect(syncEvent.flags.contains(.oneShot))
        #expect(try Self.take(queue, synced).result == .success(0))
        let read = try queue.submit(
            .readVectored(from: file.descriptor, at: 0, into: AIOBuffer(segmentSizes: [7, 100])))
        _ = try Self.waitForEvent(queue, read)
        let completion = try Self.take(queue, read)
        #expect(completion.result == .success(12))  // short: the file has 12 bytes
        #expect(completion.buffer.segment(0) == Array("hello, ".utf8))
        #expect(Array(completion.buffer.segment(1).prefix(5)) == Array("kq-io".utf8))
        let past = try queue.submit(.read(from: file.descriptor, at: 1000, into: AIOBuffer(count: 10)))
        _ = try Self.waitForEvent(queue, past)
        #expect(try Self.take(queue, past).result == .success(0))
    }

    @Test("3.AIO: bad input fails at submission as on FreeBSD; I/O errors come in the completion", arguments: backends)
    func errors(_ backend: AIOBackend) throws {
        guard let queue = try Self.queue(backend) else { return }
        let file = try TempFile(size: 100)
        #expect(throws: Errno.badFileDescriptor) {
            try queue.submit(.read(from: FileDescriptor(rawValue: 1_000_000), at: 0, into: AIOBuffer(count: 8)))
        }
        #expect(throws: Errno.invalidArgument) {
            try queue.submit(.read(from: file.descriptor, at: -1, into: AIOBuffer(count: 8)))
        }
        #expect(throws: Errno.invalidArgument) {
            try queue.submit(.write(to: file.descriptor, at: 0, from: AIOBuffer(count: 8)), flags: .add)
        }
        let writeOnly = try FileDescriptor.open(file.path, .writeOnly)
        defer { try? writeOnly.close() }
        #expect(throws: Errno.badFileDescriptor) {
            try queue.submit(.read(from: writeOnly, at: 0, into: AIOBuffer(count: 8)))
        }
        #expect(try queue.events(timeout: .zero).isEmpty)
        var pair: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
        defer { Glibc.close(pair[0]) }
        Glibc.close(pair[1])
        signal(SIGPIPE, SIG_IGN)
        let id = try queue.submit(.write(to: FileDescriptor(rawValue: pair[0]), at: 0, from: AIOBuffer(count: 4)))
        let event = try Self.waitForEvent(queue, id)
        #expect(event.data == Int64(EPIPE))
        #expect(event.aioResult == .failure(.brokenPipe))
        #expect(try Self.take(queue, id).result == .failure(.brokenPipe))
    }

    @Test("3.AIO: a pending request is cancelled, reports ECANCELED, and its buffer comes back", arguments: backends)
    func cancellation(_ backend: AIOBackend) throws {
        guard let queue = try Self.queue(backend) else { return }
        var pair: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
        defer {
            Glibc.close(pair[0])
            Glibc.close(pair[1])
        }
        let id = try queue.submit(.read(from: FileDescriptor(rawValue: pair[0]), at: 0, into: AIOBuffer(count: 16)))
        if let early = try queue.completion(of: id) { Issue.record("done early: \(early.result)") }  // in flight
        #expect(try queue.cancel(id) == .canceled)
        let event = try Self.waitForEvent(queue, id)
        #expect(event.data == Int64(ECANCELED))
        #expect(try queue.cancel(id) == .allDone)
        let completion = try Self.take(queue, id)
        #expect(completion.result == .failure(.canceled))
        #expect(completion.buffer.count == 16)
        #expect(throws: Errno.invalidArgument) { try queue.cancel(id) }
    }

    @Test("3.AIO: 1,000 requests in flight, submitted as one batch, each completes once", arguments: backends)
    func thousandInFlight(_ backend: AIOBackend) throws {
        guard let queue = try Self.queue(backend) else { return }
        let file = try TempFile(size: 64_000)
        var batch = AIOBatch()
        for i in 0..<1000 {
            batch.append(
                .read(
                    from: file.descriptor, at: Int64(i * 64), into: AIOBuffer(count: 64),
                    udata: UnsafeMutableRawPointer(bitPattern: i + 1)), flags: .oneShot)
        }
        let ids = try queue.submit(batch).map { try $0.get() }
        var pending = Set(ids)
        let deadline = ContinuousClock.now + .seconds(10)
        while !pending.isEmpty && ContinuousClock.now < deadline {
            for event in try Self.events(queue, max: 256, timeout: .milliseconds(200)) {
                let id = try #require(event.aioRequest)
                #expect(pending.remove(id) != nil, "an event twice")
                #expect(event.aioResult == .success(64))
            }
        }
        #expect(pending.isEmpty)
        for (i, id) in ids.enumerated() {
            let completion = try Self.take(queue, id)
            #expect(completion.buffer.segment(0).first == Self.pattern(i * 64))
        }
    }

    /// A small file's text (/proc).
    static func contents(_ path: String) -> String {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return "" }
        defer { Glibc.close(fd) }
        var bytes = [UInt8](repeating: 0, count: 4096)
        let n = read(fd, &bytes, bytes.count)
        return String(decoding: bytes.prefix(max(n, 0)), as: UTF8.self)
    }

    /// The names of this process's threads (/proc/self/task/*/comm).
    static func threadNames() -> [String] {
        guard let dir = opendir("/proc/self/task") else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let tid = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard tid.first?.isNumber == true else { continue }
            names.append(String(contents("/proc/self/task/\(tid)/comm").prefix { $0 != "\n" }))
        }
        return names
    }

    /// The CPUs this process may run on (the Cpus_allowed mask of /proc/self/status).
    static func allowedCPUs() -> Int {
        let status = contents("/proc/self/status").split(separator: "\n")
        guard let line = status.first(where: { $0.hasPrefix("Cpus_allowed:") }) else { return 1 }
        return line.dropFirst("Cpus_allowed:".count).reduce(0) { count, digit in
            count + (digit.hexDigitValue?.nonzeroBitCount ?? 0)
        }
    }

    @Test(
        "3.AIO: a batch of file reads is shared with a helper thread when there is a second CPU; each read once, data right",
        arguments: backends)
    func sharedWithHelper(_ backend: AIOBackend) throws {
        guard let queue = try Self.queue(backend) else { return }
        let count = 2048
        let file = try TempFile(size: count * 512)
        for _ in 0..<3 {
            var batch = AIOBatch()
            for i in 0..<count {
                batch.append(
                    .read(from: file.descriptor, at: Int64(i * 512), into: AIOBuffer(count: 512)), flags: .oneShot)
            }
            let ids = try queue.submit(batch).map { try $0.get() }
            var pending = Set(ids)
            let deadline = ContinuousClock.now + .seconds(10)
            while !pending.isEmpty && ContinuousClock.now < deadline {
                for event in try Self.events(queue, max: 256, timeout: .milliseconds(200)) {
                    let id = try #require(event.aioRequest)
                    #expect(pending.remove(id) != nil, "an event twice")
                    #expect(event.aioResult == .success(512))
                }
            }
            #expect(pending.isEmpty)
            for (i, id) in ids.enumerated() {
                let bytes = try Self.take(queue, id).buffer.bytes
                #expect(bytes.first == Self.pattern(i * 512) && bytes.last == Self.pattern(i * 512 + 511))
            }
        }
        let online = Self.allowedCPUs()
        let forced = getenv("KQUEUE_AIO_HELPERS").map { String(cString: $0) }
        if online > 1 && (forced == nil || forced != "0") {
            #expect(Self.threadNames().contains("kq-aio-helper"), "no helper thread with \(online) CPUs")
        }
    }

    @Test(
        "3.AIO: a queue kept 64 deep by resubmitting each batch of completions (shared with helpers, run by the waiting thread): every read once, data right",
        arguments: backends)
    func queueKeptFullByResubmission(_ backend: AIOBackend) throws {
        try keepQueueFull(backend, reads: 20_000, blockSize: 512, dropCacheEvery: nil)
    }

    @Test(
        "3.AIO: reads shared with helpers stay whole and right when the file leaves the page cache midway (a helper on pread goes back to RWF_NOWAIT)",
        arguments: backends)
    func sharedReadsRightAfterCacheDrop(_ backend: AIOBackend) throws {
        try keepQueueFull(backend, reads: 9_000, blockSize: 4096, dropCacheEvery: 3_000)
    }

    /// Keeps 64 reads of `blockSize` bytes in flight over a file of 1,024 blocks, resubmitting
    /// each batch of completions until `reads` are done; each read once, its data right. With
    /// `dropCacheEvery`, the file's pages leave the page cache after every so many reads.
    func keepQueueFull(_ backend: AIOBackend, reads: Int, blockSize: Int, dropCacheEvery: Int?) throws {
        guard let queue = try Self.queue(backend) else { return }
        let blocks = 1024
        let file = try TempFile(size: blocks * blockSize)
        let fd = file.descriptor.rawValue
        var offsets: [AIORequestID: Int] = [:]
        var started: [Int] = []
        var next = 0
        func append(_ buffer: consuming AIOBuffer, to batch: inout AIOBatch) {
            let offset = (next &* 7919) % blocks * blockSize
            next += 1
            started.append(offset)
            batch.append(.read(from: file.descriptor, at: Int64(offset), into: buffer), flags: .oneShot)
        }
        func submit(_ batch: consuming AIOBatch) throws {
            for (result, offset) in zip(queue.submit(batch), started) { offsets[try result.get()] = offset }
            started.removeAll()
        }
        func check(_ completion: borrowing AIOCompletion, at offset: Int) {
            #expect(completion.result == .success(blockSize))
            let bytes = completion.buffer.bytes
            #expect(bytes.first == Self.pattern(offset) && bytes.last == Self.pattern(offset + blockSize - 1))
        }
        var first = AIOBatch(reservingCapacity: 64)
        for _ in 0..<64 { append(AIOBuffer(count: blockSize), to: &first) }
        try submit(first)
        var done = 0
        var dropped = 0
        let deadline = ContinuousClock.now + .seconds(30)
        while done < reads && ContinuousClock.now < deadline {
            if let every = dropCacheEvery, done / every > dropped {
                dropped += 1
                #expect(fsync(fd) == 0)
                #expect(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0)
            }
            var again = AIOBatch()
            for event in try Self.events(queue, max: 64, timeout: .milliseconds(200)) {
                let id = try #require(event.aioRequest)
                guard let offset = offsets.removeValue(forKey: id) else {
                    Issue.record("an event twice")
                    continue
                }
                let completion = try Self.take(queue, id)
                check(completion, at: offset)
                append(completion.takeBuffer(), to: &again)
                done += 1
            }
            try submit(again)
        }
        #expect(done >= reads)
        if let every = dropCacheEvery { #expect(dropped == (reads - 1) / every) }
        while !offsets.isEmpty && ContinuousClock.now < deadline {
            for event in try Self.events(queue, max: 64, timeout: .milliseconds(200)) {
                let id = try #require(event.aioRequest)
                guard let offset = offsets.removeValue(forKey: id) else {
                    Issue.record("an event twice")
                    continue
                }
                check(try Self.take(queue, id), at: offset)
            }
        }
        #expect(offsets.isEmpty)
    }

    @Test(
        "3.AIO: cancelling each request of a shared batch at once: each ends once, read whole or cancelled",
        arguments: backends)
    func cancelSharedBatch(_ backend: AIOBackend) throws {
        guard let queue = try Self.queue(backend) else { return }
        let count = 1024
        let file = try TempFile(size: count * 512)
        var batch = AIOBatch()
        for i in 0..<count {
            batch.append(.read(from: file.descriptor, at: Int64(i * 512), into: AIOBuffer(count: 512)), flags: .oneShot)
        }
        let ids = try queue.submit(batch).map { try $0.get() }
        var outcomes: [AIOCancelResult] = []
        for id in ids { outcomes.append(try queue.cancel(id)) }
        var pending = Set(ids)
        let deadline = ContinuousClock.now + .seconds(10)
        while !pending.isEmpty && ContinuousClock.now < deadline {
            for event in try Self.events(queue, max: 256, timeout: .milliseconds(200)) {
                let id = try #require(event.aioRequest)
                #expect(pending.remove(id) != nil, "an event twice")
            }
        }
        #expect(pending.isEmpty)
        for (i, id) in ids.enumerated() {
            let completion = try Self.take(queue, id)
            switch completion.result {
            case .success(let n):
                #expect(n == 512)
                #expect(outcomes[i] != .canceled)
                #expect(completion.buffer.bytes.first == Self.pattern(i * 512))
            case .failure(let error):
                #expect(error == .canceled)
                #expect(outcomes[i] == .canceled)
            }
        }
    }

    @Test(
        "3.AIO: closing a kqueue with requests in flight cancels them; later data finds no reader", arguments: backends)
    func closeWithRequestsInFlight(_ backend: AIOBackend) throws {
        var pair: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
        do {
            guard let queue = try Self.queue(backend) else { return }
            for _ in 0..<8 {
                _ = try queue.submit(.read(from: FileDescriptor(rawValue: pair[0]), at: 0, into: AIOBuffer(count: 64)))
            }
            queue.close()
            #expect(throws: Errno.badFileDescriptor) { try queue.submit(.sync(FileDescriptor(rawValue: pair[0]))) }
        }
        // Data sent now finds no reader: the requests are gone, their buffers with them.
        #expect(write(pair[1], "late", 4) == 4)
        var probe = [UInt8](repeating: 0, count: 4)
        #expect(read(pair[0], &probe, 4) == 4)
        Glibc.close(pair[0])
        Glibc.close(pair[1])
        // Descriptors: Tests/C/aio.c checks they all went (its tests run in a process each).
    }

    /// The README's Swift example, as written there (kept in step by hand).
    @Test("3.AIO: the README's example")
    func readmeExample() throws {
        let queue = try KernelQueue()
        let temp = try TempFile(size: 8192)
        let file = temp.descriptor
        var printed: [String] = []
        func print(_ items: Any...) { printed.append(items.map { "\($0)" }.joined(separator: " ")) }
        let id = try queue.submit(.read(from: file, at: 4096, into: AIOBuffer(count: 4096)), flags: .oneShot)
        _ = try Self.waitForEvent(queue, id)  // (the README's loop has a one-second timeout)
        let done = try Self.take(queue, id)
        print(done.result, done.buffer.bytes.prefix(16))
        #expect(printed.count == 1)
        #expect(done.result == .success(4096))
        let id2 = try queue.submit(.read(from: file, at: 4096, into: AIOBuffer(count: 4096)), flags: .oneShot)
        var seen = false
        for event in try Self.events(queue, timeout: .seconds(1)) where event.aioRequest == id2 {
            print(event.aioResult as Any)  // .success(bytes) or .failure(errno)
            if let done = try queue.completion(of: id2) {  // the result and the buffer, once
                print(done.result, done.buffer.bytes.prefix(16))
                seen = true
            }
        }
        #expect(seen)
    }

    @Test("3.AIO: the default backend follows KQUEUE_AIO_BACKEND (CI runs both)")
    func defaultBackendFollowsEnvironment() throws {
        let queue = try KernelQueue()
        #expect(queue.aioBackend == nil)
        let file = try TempFile(size: 0)
        let id = try queue.submit(.sync(file.descriptor))
        _ = try Self.waitForEvent(queue, id)
        let forced = getenv("KQUEUE_AIO_BACKEND").map { String(cString: $0) }
        if forced == "threads" { #expect(queue.aioBackend == .threadPool) }
        if forced == "io_uring" { #expect(queue.aioBackend == .ioUring) }
        #expect(queue.aioBackend != nil)
    }
}

/// A temporary file of `size` bytes where byte i is `AIOTests.pattern(i)`, removed at deinit.
final class TempFile {
    let path: String
    let descriptor: FileDescriptor

    init(size: Int) throws {
        var template = Array("/tmp/kq-aio-swift-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        descriptor = FileDescriptor(rawValue: fd)
        let bytes = (0..<size).map { AIOTests.pattern($0) }
        _ = try descriptor.writeAll(toAbsoluteOffset: 0, bytes)
    }

    deinit {
        unlink(path)
        try? descriptor.close()
    }
}
