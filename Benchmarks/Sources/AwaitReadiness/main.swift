// AwaitReadiness: the cost of awaiting one readiness on KQueueLoop against a raw kevent()
// loop doing the same work, in one process.
//
//   swift run -c release AwaitReadiness [--rounds R] [--iterations N] [--capacity C]
//
// One iteration, both ways: write one byte to a pipe, wait for the read end's readiness with
// a one-shot EVFILT_READ registration, read the byte back.
//   raw:   kevent(changes: [EV_ADD|EV_ONESHOT read], events: 1, no timeout) on this thread.
//   loop:  `try await loop.readable(fd)` in a task whose executor is the loop (the change
//          joins the loop's next kevent() call; the event resumes the task on the loop thread).
// Each round times a block of N iterations of each (order alternating between rounds); the
// ratio reported is the median over rounds of loop/raw, with the medians of ns/iteration.
import Glibc
import KQueueLoop

var rounds = 30
var iterations = 20_000
/// The loop's event buffer (`EventLoop(eventCapacity:)`; 256 by default). The raw loop's is 1.
var capacity = 256
var index = 1
let arguments = CommandLine.arguments
while index < arguments.count {
    if arguments[index] == "--rounds", index + 1 < arguments.count { rounds = Int(arguments[index + 1]) ?? rounds }
    if arguments[index] == "--capacity", index + 1 < arguments.count {
        capacity = Int(arguments[index + 1]) ?? capacity
    }
    if arguments[index] == "--iterations", index + 1 < arguments.count {
        iterations = Int(arguments[index + 1]) ?? iterations
    }
    index += 2
}

func makePipe() -> (Int32, Int32) {
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { fatalError("pipe: \(errno)") }
    return (fds[0], fds[1])
}

func nanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

/// ns per iteration of the raw kevent() loop.
func raw(_ queue: KernelQueue, _ reader: Int32, _ writer: Int32, _ count: Int) -> Double {
    var change = KEvent.read(FileDescriptor(rawValue: reader), flags: [.add, .oneShot])
    var event = KEvent(ident: 0, filter: .read)
    var byte: UInt8 = 1
    let start = nanoseconds()
    for _ in 0..<count {
        _ = write(writer, &byte, 1)
        let got = withUnsafePointer(to: &change) { change in
            withUnsafeMutablePointer(to: &event) { event in
                try? queue.kevent(
                    changes: UnsafeBufferPointer(start: change, count: 1),
                    events: UnsafeMutableBufferPointer(start: event, count: 1), timeout: nil)
            }
        }
        precondition(got == 1)
        _ = read(reader, &byte, 1)
    }
    return Double(nanoseconds() - start) / Double(count)
}

/// ns per iteration of the loop's awaited readiness.
func awaited(_ loop: EventLoop, _ reader: Int32, _ writer: Int32, _ count: Int) async -> Double {
    await Task(executorPreference: loop) {
        let descriptor = FileDescriptor(rawValue: reader)
        var byte: UInt8 = 1
        let start = nanoseconds()
        for _ in 0..<count {
            _ = write(writer, &byte, 1)
            _ = try? await loop.readable(descriptor)
            _ = read(reader, &byte, 1)
        }
        return Double(nanoseconds() - start) / Double(count)
    }.value
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

let queue = try KernelQueue()
let loop = try EventLoop(name: "await-bench", eventCapacity: capacity)
let (rawReader, rawWriter) = makePipe()
let (loopReader, loopWriter) = makePipe()
// Warm-up: both paths, untimed.
_ = raw(queue, rawReader, rawWriter, iterations / 4)
_ = await awaited(loop, loopReader, loopWriter, iterations / 4)
var rawTimes: [Double] = []
var loopTimes: [Double] = []
var ratios: [Double] = []
for round in 0..<rounds {
    let r: Double
    let l: Double
    if round.isMultiple(of: 2) {
        r = raw(queue, rawReader, rawWriter, iterations)
        l = await awaited(loop, loopReader, loopWriter, iterations)
    } else {
        l = await awaited(loop, loopReader, loopWriter, iterations)
        r = raw(queue, rawReader, rawWriter, iterations)
    }
    rawTimes.append(r)
    loopTimes.append(l)
    ratios.append(l / r)
}
loop.shutdown()
func format(_ value: Double) -> String {
    String(Int((value * 10).rounded())).dropLast() + "." + String(Int((value * 10).rounded())).suffix(1)
}
print(
    "AwaitReadiness: \(rounds) rounds x \(iterations) iterations (write 1 byte, one-shot read readiness, read 1 byte)")
print("raw kevent() loop      \(format(median(rawTimes))) ns/iteration")
print("await loop.readable()  \(format(median(loopTimes))) ns/iteration")
print("ratio (median of per-round loop/raw)  \(String(format(median(ratios) * 100)).dropLast(2))  -> \(median(ratios))")
