import Glibc

/// Socket pairs whose every end is a registered descriptor, driven as chains. `active` pairs,
/// spread evenly over the descriptor range, carry the traffic: reading the byte that arrived
/// on one active pair's reader triggers a one-byte write to the next active pair's writer
/// (with one active pair, to itself). Every other descriptor is registered and stays idle,
/// so a wait's cost shows what idle registrations cost, not the cache misses of touching
/// more and more sockets (an earlier version walked the chain over all N pairs; then even
/// raw epoll grew 1.8x from N = 100 to 10,000).
final class ChainWorkload {
    /// (writer, reader) ends of each pair.
    let pairs: [(Int32, Int32)]
    /// Pair index of each reader descriptor, indexed by descriptor number.
    private var pairOfReader: [Int32]

    var descriptors: [Int32] { pairs.flatMap { [$0.0, $0.1] } }

    init(registered: Int) throws {
        var pairs: [(Int32, Int32)] = []
        for _ in 0..<max(1, registered / 2) {
            var ends: [Int32] = [0, 0]
            guard
                socketpair(
                    AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
                    0, &ends) == 0
            else {
                for pair in pairs {
                    Glibc.close(pair.0)
                    Glibc.close(pair.1)
                }
                throw BenchError("socketpair: \(String(cString: strerror(errno))) (raise the descriptor limit)")
            }
            pairs.append((ends[0], ends[1]))
        }
        self.pairs = pairs
        let highest = Int(pairs.map { max($0.0, $0.1) }.max() ?? 0)
        pairOfReader = Array(repeating: -1, count: highest + 1)
        for (index, pair) in pairs.enumerated() { pairOfReader[Int(pair.1)] = Int32(index) }
    }

    deinit {
        for pair in pairs {
            Glibc.close(pair.0)
            Glibc.close(pair.1)
        }
    }

    /// Runs `events` chained reads through `backend` with `active` chains in flight.
    /// Returns the number of waits and the nanoseconds they took in total (reads and writes
    /// included, as in a real event loop).
    func run(_ backend: WaitBackend, active: Int, events: Int) -> (waits: Int, nanoseconds: Int64) {
        let stride = max(1, pairs.count / max(1, active))
        var byte: UInt8 = 1
        for chain in 0..<active { _ = write(pairs[(chain * stride) % pairs.count].0, &byte, 1) }
        let ready = UnsafeMutableBufferPointer<Int32>.allocate(capacity: 256)
        defer { ready.deallocate() }
        var handled = 0
        var waits = 0
        var inFlight = active
        let start = monotonicNanoseconds()
        while inFlight > 0 {
            let count = backend.wait(into: ready)
            waits += 1
            for i in 0..<count {
                let fd = ready[i]
                guard Int(fd) < pairOfReader.count, pairOfReader[Int(fd)] >= 0 else { continue }
                guard read(fd, &byte, 1) == 1 else { continue }
                handled += 1
                // Keep this chain going while the others in flight still leave room in the budget.
                if handled + inFlight - 1 < events {
                    let chain = Int(pairOfReader[Int(fd)]) / stride
                    let next = ((chain + 1) % active) * stride % pairs.count
                    _ = write(pairs[next].0, &byte, 1)
                } else {
                    inFlight -= 1
                }
            }
        }
        return (waits, monotonicNanoseconds() - start)
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func monotonicNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}
