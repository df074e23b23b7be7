// AIORandomRead: 4 KiB random reads over a 256 MiB file in the page cache, at queue depth 1
// and 64, through EVFILT_AIO on io_uring, EVFILT_AIO on the thread pool, glibc's POSIX AIO
// (aio_read + aio_suspend) and a plain pread loop; one table of requests per second and
// ratios to the pread loop.
//
//   cd Benchmarks && swift run -c release AIORandomRead [--seconds S] [--rounds R] [--file PATH] [--keep-file]
//
// Each round runs every workload for S seconds (default 0.5), in an order rotated from round
// to round; the table shows the median over R rounds (default 5). The file is created once
// (PATH, default /tmp/kq-aio-bench.dat), read whole so it sits in the page cache, and
// removed at the end (kept with --keep-file: comparisons of two builds then read the same file,
// cached in the same pages). The same pseudo-random block sequence is used by every workload.
import Glibc
import KQueue

struct Options {
    var seconds = 0.5
    var rounds = 5
    var path = "/tmp/kq-aio-bench.dat"
    var keepFile = false
    /// Run only the workloads whose name contains this, or one of its `|`-separated parts
    /// (for profiling one, or comparing two: `--only 'io_uring|pread'`).
    var only: String? = nil
    /// Queue depths measured.
    var depths = [1, 64]

    init(_ arguments: [String]) {
        var i = 1
        while i < arguments.count {
            switch arguments[i] {
            case "--seconds":
                i += 1
                seconds = Double(arguments[i]) ?? seconds
            case "--rounds":
                i += 1
                rounds = Int(arguments[i]) ?? rounds
            case "--file":
                i += 1
                path = arguments[i]
            case "--keep-file":
                keepFile = true
            case "--depth":
                i += 1
                depths = [Int(arguments[i]) ?? 64]
            case "--only":
                i += 1
                only = arguments[i]
            case "-h", "--help":
                print(
                    "usage: AIORandomRead [--seconds S (0.5)] [--rounds R (5)] [--file PATH] [--keep-file]"
                        + " [--depth D] [--only NAME|NAME]")
                exit(0)
            default: fatalError("unknown argument \(arguments[i]); try --help")
            }
            i += 1
        }
    }
}

let blockSize = 4096
let fileSize = 256 << 20
let blocks = fileSize / blockSize

@inline(__always)
func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

/// A pseudo-random block number sequence (xorshift64*), the same for every workload.
struct Blocks {
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    @inline(__always)
    mutating func next() -> Int64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return Int64((state &* 0x2545_F491_4F6C_DD1D) % UInt64(blocks)) * Int64(blockSize)
    }
}

func prepareFile(_ path: String) -> Int32 {
    let fd = open(path, O_RDWR | O_CREAT, 0o644)
    precondition(fd >= 0, "cannot open \(path)")
    var status = stat()
    fstat(fd, &status)
    let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
    defer { chunk.deallocate() }
    if Int(status.st_size) != fileSize {
        for i in 0..<(1 << 20) { chunk[i] = UInt8(truncatingIfNeeded: i &* 31) }
        for offset in stride(from: 0, to: fileSize, by: 1 << 20) {
            precondition(pwrite(fd, chunk.baseAddress, 1 << 20, off_t(offset)) == 1 << 20)
        }
    }
    // Into the page cache: read it all (twice, the second pass should find it there).
    for _ in 0..<2 {
        for offset in stride(from: 0, to: fileSize, by: 1 << 20) {
            precondition(pread(fd, chunk.baseAddress, 1 << 20, off_t(offset)) == 1 << 20)
        }
    }
    return fd
}

/// Requests per second of one workload for `seconds`.
typealias Workload = (_ fd: Int32, _ depth: Int, _ seconds: Double) -> Double

func preadLoop(_ fd: Int32, _ depth: Int, _ seconds: Double) -> Double {
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: blockSize, alignment: 4096)
    defer { buffer.deallocate() }
    var blocks = Blocks()
    var done = 0
    let start = now()
    var elapsed = 0.0
    repeat {
        for _ in 0..<256 {
            precondition(pread(fd, buffer, blockSize, off_t(blocks.next())) == blockSize)
        }
        done += 256
        elapsed = now() - start
    } while elapsed < seconds
    return Double(done) / elapsed
}

func glibcAIO(_ fd: Int32, _ depth: Int, _ seconds: Double) -> Double {
    let buffers = UnsafeMutableRawPointer.allocate(byteCount: blockSize * depth, alignment: 4096)
    defer { buffers.deallocate() }
    let cbs = UnsafeMutablePointer<aiocb>.allocate(capacity: depth)
    defer { cbs.deallocate() }
    let list = UnsafeMutablePointer<UnsafePointer<aiocb>?>.allocate(capacity: depth)
    defer { list.deallocate() }
    var blocks = Blocks()
    func start(_ i: Int) {
        cbs[i] = aiocb()
        cbs[i].aio_fildes = fd
        cbs[i].aio_buf = UnsafeMutableRawPointer(buffers + i * blockSize)
        cbs[i].aio_nbytes = blockSize
        cbs[i].aio_offset = off_t(blocks.next())
        cbs[i].aio_sigevent.sigev_notify = Int32(SIGEV_NONE)
        precondition(aio_read(&cbs[i]) == 0)
        list[i] = UnsafePointer(cbs + i)
    }
    for i in 0..<depth { start(i) }
    var done = 0
    let begin = now()
    var elapsed = 0.0
    repeat {
        _ = aio_suspend(list, Int32(depth), nil)
        for i in 0..<depth where aio_error(&cbs[i]) != EINPROGRESS {
            precondition(aio_return(&cbs[i]) == blockSize)
            done += 1
            start(i)
        }
        elapsed = now() - begin
    } while elapsed < seconds
    for i in 0..<depth {
        while aio_error(&cbs[i]) == EINPROGRESS { _ = aio_suspend(list + i, 1, nil) }
        _ = aio_return(&cbs[i])
    }
    return Double(done) / elapsed
}

func kqueueAIO(_ backend: AIOBackend) -> Workload {
    { fd, depth, seconds in
        let queue = try! KernelQueue(aioBackend: backend)
        defer { queue.close() }
        let descriptor = FileDescriptor(rawValue: fd)
        var blocks = Blocks()
        var batch = AIOBatch(reservingCapacity: depth)
        for _ in 0..<depth {
            batch.append(.read(from: descriptor, at: blocks.next(), into: AIOBuffer(count: blockSize)), flags: .oneShot)
        }
        for result in queue.submit(batch) { _ = try! result.get() }
        precondition(queue.aioBackend == backend, "\(backend) is not available here")
        var events = [KEvent](repeating: KEvent(ident: 0, filter: .aio), count: depth)
        var done = 0
        let begin = now()
        var elapsed = 0.0
        repeat {
            let count = try! events.withUnsafeMutableBufferPointer { events in
                try queue.kevent(changes: UnsafeBufferPointer(start: nil, count: 0), events: events, timeout: nil)
            }
            var again = AIOBatch(reservingCapacity: count)
            for event in events.prefix(count) {
                let completion = try! queue.completion(of: event.aioRequest!)!
                guard case .success(blockSize) = completion.result else { fatalError("a read failed") }
                again.append(
                    .read(from: descriptor, at: blocks.next(), into: completion.takeBuffer()), flags: .oneShot)
            }
            done += count
            for result in queue.submit(again) { _ = try! result.get() }
            elapsed = now() - begin
        } while elapsed < seconds
        // Drain what is still in flight.
        var left = depth
        while left > 0 {
            let count = try! events.withUnsafeMutableBufferPointer { events in
                try queue.kevent(changes: UnsafeBufferPointer(start: nil, count: 0), events: events, timeout: nil)
            }
            for event in events.prefix(count) { _ = try! queue.completion(of: event.aioRequest!) }
            left -= count
        }
        return Double(done) / elapsed
    }
}

func fixed(_ value: Double, _ digits: Int) -> String {
    var buffer = [CChar](repeating: 0, count: 64)
    _ = withVaList([value]) { vsnprintf(&buffer, buffer.count, "%.\(digits)f", $0) }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

func pad(_ text: String, _ width: Int, left: Bool = false) -> String {
    let fill = String(repeating: " ", count: max(0, width - text.count))
    return left ? text + fill : fill + text
}

let options = Options(CommandLine.arguments)
let fd = prepareFile(options.path)
let workloads: [(name: String, run: Workload)] = [
    ("EVFILT_AIO, io_uring (Swift API)", kqueueAIO(.ioUring)),
    ("EVFILT_AIO, thread pool (Swift API)", kqueueAIO(.threadPool)),
    ("glibc POSIX AIO (aio_read, aio_suspend)", glibcAIO),
    ("pread loop", preadLoop),
].filter { workload in
    options.only.map { only in only.split(separator: "|").contains { workload.name.contains($0) } } ?? true
}
let depths = options.depths
var samples = [[Double]](repeating: [], count: workloads.count * depths.count)
for round in 0..<options.rounds {
    for k in 0..<workloads.count {
        let w = (k + round) % workloads.count
        for (d, depth) in depths.enumerated() {
            samples[w * depths.count + d].append(workloads[w].run(fd, depth, options.seconds))
        }
    }
}
func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.isEmpty ? .nan : sorted[sorted.count / 2]
}
let preadRow = workloads.firstIndex { $0.name == "pread loop" }
let baseline = depths.indices.map { d in preadRow.map { median(samples[$0 * depths.count + d]) } ?? .nan }
print(
    "4 KiB random reads, 256 MiB file in the page cache; median of \(options.rounds) rounds of \(options.seconds) s each"
)
print(pad("workload", 42, left: true) + depths.map { pad("depth \($0) req/s", 16) + pad("x pread", 9) }.joined())
for (w, workload) in workloads.enumerated() {
    var line = pad(workload.name, 42, left: true)
    for (d, _) in depths.enumerated() {
        let value = median(samples[w * depths.count + d])
        line += pad(fixed(value, 0), 16) + pad(fixed(value / baseline[d], 2), 9)
    }
    print(line)
}
close(fd)
if !options.keepFile { unlink(options.path) }
