// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "KQueue",
    products: [
        .library(name: "KQueue", targets: ["KQueue"]),
        // `swift build -c release --product kqueue` yields libkqueue.so for C programs.
        .library(name: "kqueue", type: .dynamic, targets: ["KQueueCABI"]),
        .executable(name: "kq", targets: ["kq"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
    ],
    targets: [
        // `<sys/event.h>`: FreeBSD's C ABI, exactly as SPEC.md section 1 gives it.
        .target(name: "CKQueue"),
        // What Swift cannot import directly: variadic syscalls, macros, the close() interposers.
        .target(name: "CKQueueShim", dependencies: ["CKQueue"]),
        .target(
            name: "KQueue",
            dependencies: [
                "CKQueue", "CKQueueShim",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
            ]
        ),
        // kqueue()/kevent() called from C, for Swift code that measures the C ABI.
        .target(name: "CKQueueCalls", dependencies: ["CKQueue"]),
        // The exported C entry points of libkqueue.so.
        .target(name: "KQueueCABI", dependencies: ["KQueue", "CKQueue"]),
        .executableTarget(
            name: "kq",
            dependencies: [
                "KQueue", "KQueueCABI", "CKQueue", "CKQueueShim", "CKQueueCalls",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .testTarget(
            name: "KQueueTests",
            dependencies: [
                "KQueue", "CKQueue", "CKQueueShim",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
