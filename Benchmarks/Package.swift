// swift-tools-version: 6.1
//
// The benchmarks of the KQueue package, kept in a package of their own so that the library
// never depends on a benchmark framework (see DESIGN.md, "Products").
//
//   cd Benchmarks
//   swift package --allow-writing-to-package-directory benchmark     # ordo-one/benchmark
//   swift package benchmark thresholds check                          # malloc-count gate
//   swift run -c release ChainRatio                                   # the ratio table
//   swift run -c release AIORandomRead                                # EVFILT_AIO vs pread, glibc AIO
import PackageDescription

let package = Package(
    name: "KQueueBenchmarks",
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        // The peer KQueueLoop's servers are measured against (never a dependency of the library).
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
    ],
    targets: [
        // The socketpair-chain workload, once per interface: C ABI, Swift API, raw epoll.
        // Shared by the ordo-one benchmark and by ChainRatio so both measure the same code.
        .target(
            name: "ChainWorkloads",
            dependencies: [
                .product(name: "KQueue", package: "main"),
                // libkqueue.so, which C programs link; its target's dependency on CKQueue also
                // makes `<sys/event.h>` importable (`import CKQueue`). The process then holds
                // two copies of the engine (static for the Swift API, the .so for the C ABI):
                // see docs/BENCHMARK-socketpair.md, "Notes on the build".
                .product(name: "kqueue", package: "main"),
                "CEpoll",
            ]
        ),
        // `<sys/epoll.h>` for the raw-epoll baseline.
        .target(name: "CEpoll"),
        // Counts malloc-family calls for ChainRatio (glibc's __libc_* entry points behind it).
        .target(name: "CMallocCounter"),
        // `swift run -c release ChainRatio`: the three workloads interleaved, one table of ratios.
        .executableTarget(
            name: "ChainRatio",
            dependencies: ["ChainWorkloads", "CMallocCounter"]
        ),
        // `swift run -c release BackendRatio`: the readiness backends against raw epoll
        // (persistent and re-armed registrations; docs/BENCHMARKS.md, "Backends").
        .executableTarget(
            name: "BackendRatio",
            dependencies: ["ChainWorkloads", "CMallocCounter"]
        ),
        // EVFILT_TIMER at scale, C ABI vs one timerfd per timer (docs/BENCHMARK-timers.md).
        // `<sys/timerfd.h>` and a raw close(2) for the baseline.
        .target(name: "CTimerfd"),
        // The timer workloads, shared by TimerScale and the TimerBenchmarks benchmark.
        .target(
            name: "TimerWorkloads",
            dependencies: [.product(name: "kqueue", package: "main"), "CEpoll", "CTimerfd"]
        ),
        // `swift run -c release TimerScale`: descriptors, add/delete time, RSS, lateness; one table.
        .executableTarget(
            name: "TimerScale",
            dependencies: ["TimerWorkloads", "CMallocCounter"]
        ),
        // `swift run -c release EmptyDelay`: EVFILT_EMPTY's delay after the send queue
        // emptied, and the CPU the wait costs (docs/BENCHMARKS.md).
        .executableTarget(
            name: "EmptyDelay",
            dependencies: [.product(name: "KQueue", package: "main")]
        ),
        // `swift run -c release NIOServers http|echo`: SwiftNIO's hello and line echo servers,
        // the baseline of Scripts/servers.sh (docs/BENCHMARKS.md, "KQueueLoop against SwiftNIO").
        .executableTarget(
            name: "NIOServers",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // The line echo load client (C, raw epoll) of Scripts/servers.sh.
        .executableTarget(name: "EchoLoad"),
        // `swift run -c release AwaitReadiness`: `await loop.readable(fd)` against a raw
        // kevent() loop doing the same one-shot wait.
        .executableTarget(
            name: "AwaitReadiness",
            dependencies: [.product(name: "KQueueLoop", package: "main")]
        ),
        .executableTarget(
            name: "TimerBenchmarks",
            dependencies: [
                "TimerWorkloads",
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/TimerBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "SocketPairChain",
            dependencies: [
                "ChainWorkloads",
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/SocketPairChain",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // `swift run -c release AIORandomRead`: 4 KiB random reads at depth 1 and 64 through
        // EVFILT_AIO (io_uring, thread pool), glibc's POSIX AIO and a pread loop; one table.
        .executableTarget(
            name: "AIORandomRead",
            dependencies: [.product(name: "KQueue", package: "main")]
        ),
        // Single-operation costs with allocation counts (issue: the headline benchmark).
        .executableTarget(
            name: "MicroBenchmarks",
            dependencies: [
                .product(name: "KQueue", package: "main"),
                .product(name: "kqueue", package: "main"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/MicroBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
