// EmptyDelay: how late EVFILT_EMPTY fires after a socket's send queue really emptied, and
// what the wait costs in CPU (docs/BENCHMARKS.md, "EVFILT_EMPTY").
//
//   cd Benchmarks && swift run -c release EmptyDelay [--rounds N]
//
// For each transport (loopback TCP, a UNIX stream pair), write size and way of waiting, one
// connection; a reader thread reads the other end as fast as it can ("tcp-paced": 64 KiB per
// millisecond, a slow consumer). A round writes the bytes
// (blocking writes), then waits for the EMPTY event. Meanwhile a reference thread polls
// SIOCOUTQ in a tight loop and records when it first reads 0: the moment the queue was truly
// empty (all data acknowledged, for TCP). Delay = event time - that moment. CPU = user + system
// time of the waiting thread (CLOCK_THREAD_CPUTIME_ID, as getrusage(RUSAGE_THREAD)) from the end of the write to the event:
// the library has no thread of its own, so every re-check it makes is in there.
//
// Ways of waiting: "oneshot" adds EV_ADD|EV_ONESHOT after the write (the usual use: write a
// reply, then learn when it is acknowledged); "level" and "clear" keep a knote registered
// across rounds (plain, and EV_CLEAR), the write landing on a knote that was idle.
import Glibc
import KQueue
import Synchronization
import SystemPackage

@inline(__always)
func now() -> Int64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
}

/// User + system CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID, what
/// getrusage(RUSAGE_THREAD) adds up, to the nanosecond).
func threadCPU() -> Int64 {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
}

func outq(_ fd: Int32) -> Int32 {
    var value: Int32 = 0
    _ = ioctl(fd, UInt(TIOCOUTQ), &value)
    return value
}

func check(_ value: Int32, _ what: String) -> Int32 {
    if value < 0 {
        perror(what)
        exit(1)
    }
    return value
}

/// The reference: the socket to watch (0: none) and when it was first seen empty.
let watched = Atomic<Int32>(0)
let emptyAt = Atomic<Int64>(0)

func startReference() {
    var thread = pthread_t()
    _ = pthread_create(
        &thread, nil,
        { _ in
            while true {
                let fd = watched.load(ordering: .acquiring)
                if fd == 0 {
                    sched_yield()
                    continue
                }
                if outq(fd) == 0 {
                    emptyAt.store(now(), ordering: .releasing)
                    watched.store(0, ordering: .releasing)
                }
            }
        }, nil)
}

/// Reads `fd` until end of file, then closes it. Paced: 64 KiB at most, then 1 ms of sleep
/// (a slow consumer: the queue drains in steps over many round trips).
func startReader(_ fd: Int32, paced: Bool) {
    let box = UnsafeMutablePointer<Int32>.allocate(capacity: 2)
    box[0] = fd
    box[1] = paced ? 1 : 0
    var thread = pthread_t()
    _ = pthread_create(
        &thread, nil,
        { argument in
            let pointer = argument!.assumingMemoryBound(to: Int32.self)
            let fd = pointer[0]
            let paced = pointer[1] == 1
            pointer.deallocate()
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 16)
            while read(fd, buffer, paced ? 1 << 16 : 1 << 20) > 0 {
                if paced { usleep(1000) }
            }
            buffer.deallocate()
            _ = close(fd)
            return nil
        }, box)
    pthread_detach(thread)
}

func tcpPair() -> (Int32, Int32) {
    let listener = check(socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0), "socket")
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let client = check(socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0), "socket")
    withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
            _ = check(bind(listener, raw, length), "bind")
            _ = check(listen(listener, 1), "listen")
            _ = check(getsockname(listener, raw, &length), "getsockname")
            _ = check(connect(client, raw, length), "connect")
        }
    }
    let server = check(accept(listener, nil, nil), "accept")
    _ = close(listener)
    return (client, server)
}

func unixPair() -> (Int32, Int32) {
    var fds: [Int32] = [0, 0]
    _ = check(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds), "socketpair")
    return (fds[0], fds[1])
}

func writeAll(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) {
    var done = 0
    while done < count {
        let n = write(fd, buffer + done, count - done)
        if n <= 0 {
            perror("write")
            exit(1)
        }
        done += n
    }
}

struct Sample {
    var delay: Int64
    var wait: Int64
    var cpu: Int64
}

enum Mode: String, CaseIterable {
    case oneshot, level, clear
}

func measure(transport: String, size: Int, mode: Mode, rounds: Int, payload: UnsafeRawPointer) -> [Sample] {
    let (client, server) = transport.hasPrefix("tcp") ? tcpPair() : unixPair()
    startReader(server, paced: transport.hasSuffix("paced"))
    let queue = try! KernelQueue()
    let socket = FileDescriptor(rawValue: client)
    if mode != .oneshot {
        try! queue.apply([.empty(socket, flags: mode == .clear ? [.add, .clear] : .add)])
        _ = try! queue.events(maxEvents: 4, timeout: .seconds(1))  // the empty queue at registration
    }
    var samples: [Sample] = []
    var events = [KEvent](repeating: KEvent(ident: 0, filter: .empty), count: 4)
    for _ in 0..<rounds + 2 {
        writeAll(client, payload, size)
        emptyAt.store(0, ordering: .relaxed)
        watched.store(client, ordering: .releasing)
        let written = now()
        let cpuBefore = threadCPU()
        if mode == .oneshot { try! queue.apply([.empty(socket, flags: [.add, .oneShot])]) }
        var fired: Int64 = 0
        while fired == 0 {
            let n = try! events.withUnsafeMutableBufferPointer { buffer in
                try queue.kevent(
                    changes: UnsafeBufferPointer(start: nil, count: 0), events: buffer, timeout: .seconds(5))
            }
            guard n > 0 else {
                print("no EMPTY event within 5 s (\(transport) \(size) \(mode))")
                exit(1)
            }
            if events[0].filter == .empty { fired = now() }
        }
        let cpu = threadCPU() - cpuBefore
        while watched.load(ordering: .acquiring) != 0 { sched_yield() }
        samples.append(Sample(delay: fired - emptyAt.load(ordering: .acquiring), wait: fired - written, cpu: cpu))
    }
    queue.close()
    _ = close(client)
    return Array(samples.dropFirst(2))  // warm-up
}

func fixed(_ value: Double) -> String {
    let hundredths = Int((value * 100).rounded())
    let fraction = hundredths % 100
    return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
}

func percentile(_ values: [Int64], _ p: Double) -> Int64 {
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p + 0.5))]
}

func microseconds(_ nanoseconds: Int64) -> String {
    let value = Double(nanoseconds) / 1000
    return value.magnitude >= 100 ? String(Int(value.rounded())) : String(Double(Int(value * 10)) / 10)
}

var rounds = 30
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    if argument == "--rounds", let value = arguments.popFirst().flatMap({ Int($0) }), value > 0 { rounds = value }
}
signal(SIGPIPE, SIG_IGN)
startReference()
let sizes = [1_024, 65_536, 1_048_576, 16_777_216]
let payload = UnsafeMutableRawPointer.allocate(byteCount: sizes.max()!, alignment: 16)
memset(payload, 0x5A, sizes.max()!)
var load = [Double](repeating: 0, count: 3)
getloadavg(&load, 3)
print("EmptyDelay: \(rounds) rounds per row; load average at start \(load.map(fixed))")
print("delay = event - first SIOCOUTQ == 0 seen by a spinning reference thread; wait = event - end of write;")
print("cpu = user+system time of the waiting thread during the wait (median)")
print("")
print("transport  bytes      mode     delay p50 us  delay p90 us  wait p50 us  cpu p50 us  cpu/wait")
for transport in ["tcp", "tcp-paced", "unix"] {
    for size in sizes where !(transport == "tcp-paced" && size < 65_536) {
        for mode in Mode.allCases {
            let samples = measure(transport: transport, size: size, mode: mode, rounds: rounds, payload: payload)
            let delay50 = percentile(samples.map(\.delay), 0.5)
            let delay90 = percentile(samples.map(\.delay), 0.9)
            let wait50 = percentile(samples.map(\.wait), 0.5)
            let cpu50 = percentile(samples.map(\.cpu), 0.5)
            let share = wait50 > 0 ? fixed(Double(cpu50) / Double(wait50)) : "-"
            func pad(_ text: String, _ width: Int) -> String {
                text + String(repeating: " ", count: max(0, width - text.count))
            }
            print(
                pad(transport, 11) + pad(String(size), 11) + pad(mode.rawValue, 9) + pad(microseconds(delay50), 14)
                    + pad(microseconds(delay90), 14) + pad(microseconds(wait50), 13) + pad(microseconds(cpu50), 12)
                    + share)
        }
    }
}
getloadavg(&load, 3)
print("load average at end \(load.map(fixed))")
