// swift-tools-version: 6.2
import PackageDescription

// Warnings are errors in this package's own targets (SE-0480). SwiftPM applies these settings
// only when this package is the root or a local (path) dependency: a package that depends on it
// by URL builds it with warnings suppressed, so a new compiler's warnings never break a user.
let warningsAreErrors: [SwiftSetting] = [.treatAllWarnings(as: .error)]
let cWarningsAreErrors: [CSetting] = [.treatAllWarnings(as: .error)]

let package = Package(
    name: "KQueue",
    products: [
        .library(name: "KQueue", targets: ["KQueue"]),
        // libkqueue.so for C programs. The deployable one (two files: a plain-C front with
        // SONAME libkqueue.so.12 and the Swift engine it loads, docs/C-LIBRARY.md) is built by
        // scripts/build-clib.sh, which gives its link flags on the command line: none of them
        // belongs here.
        .library(name: "kqueue", type: .dynamic, targets: ["KQueueCABI"]),
        .executable(name: "kq", targets: ["kq"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        // `swift package generate-documentation --target KQueue` (the DocC catalog
        // Sources/KQueue/KQueue.docc; CI stage `docc`). A command plugin: nothing of it is linked.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // `<sys/event.h>`: FreeBSD's C ABI, exactly as SPEC.md section 1 gives it.
        .target(name: "CKQueue", cSettings: cWarningsAreErrors),
        // What Swift cannot import directly: variadic syscalls, macros, the close() interposers.
        .target(
            name: "CKQueueShim", dependencies: ["CKQueue"],
            cSettings: cWarningsAreErrors
        ),
        .target(
            name: "KQueue",
            dependencies: [
                "CKQueue", "CKQueueShim",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
            ],
            swiftSettings: warningsAreErrors
        ),
        // kqueue()/kevent() called from C, for Swift code that measures the C ABI.
        .target(name: "CKQueueCalls", dependencies: ["CKQueue"], cSettings: cWarningsAreErrors),
        // The exported C entry points of libkqueue.so.
        .target(
            name: "KQueueCABI", dependencies: ["KQueue", "CKQueue", "CKQueueShim", "CKQueueAIO"],
            swiftSettings: warningsAreErrors),
        // libkqueue.so's aio_* (FreeBSD's SIGEV_KEVENT), forwarding other requests to glibc.
        .target(name: "CKQueueAIO", dependencies: ["CKQueue", "CKQueueShim"], cSettings: cWarningsAreErrors),
        .executableTarget(
            name: "kq",
            dependencies: [
                "KQueue", "KQueueCABI", "CKQueue", "CKQueueShim", "CKQueueCalls",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: warningsAreErrors
        ),
        // The README's Swift examples, complete programs (Tests/KQueueTests/ReadmeExamplesTests.swift
        // checks that README.md shows them verbatim and runs them).
        .executableTarget(
            name: "GettingStartedExample", dependencies: ["KQueue"], path: "Examples/GettingStarted",
            swiftSettings: warningsAreErrors),
        .executableTarget(
            name: "WatchExample", dependencies: ["KQueue"], path: "Examples/Watch", swiftSettings: warningsAreErrors),
        .executableTarget(
            name: "ContextsExample", dependencies: ["KQueue"], path: "Examples/Contexts",
            swiftSettings: warningsAreErrors),
        .executableTarget(
            name: "AsyncIOExample", dependencies: ["KQueue"], path: "Examples/AsyncIO",
            swiftSettings: warningsAreErrors),
        // Not warnings-as-errors yet: some tests still warn (unused results, a deprecated call).
        .testTarget(
            name: "KQueueTests",
            dependencies: [
                "KQueue", "CKQueue", "CKQueueShim",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: warningsAreErrors
        ),
    ],
    swiftLanguageModes: [.v6]
)
