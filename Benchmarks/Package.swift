// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "KQueueBenchmarks",
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: []
)
