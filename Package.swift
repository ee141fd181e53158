// swift-tools-version: 6.1
import PackageDescription
import Foundation

// scripts/build-release sets L3AF_STATIC_LIBS to the archives of libbpf, libelf, zlib and SQLite (paths separated by
// ':'): the shipped binaries carry them inside, nothing for the dynamic loader to find, map and relocate at every
// start. Other builds link the shared libraries as usual.
let staticArchives = (ProcessInfo.processInfo.environment["L3AF_STATIC_LIBS"] ?? "").split(separator: ":").map(String.init)
/// How a target links `libraries`: their archives when the build asks for them, else the shared libraries by name.
func linked(_ libraries: [String]) -> [LinkerSetting] {
    let archives = libraries.compactMap { library in staticArchives.first { $0.hasSuffix("/lib\(library).a") } }
    return archives.count == libraries.count ? [.unsafeFlags(archives)] : libraries.map { .linkedLibrary($0) }
}

// scripts/build-release sets L3AF_VERSION to `git describe` of the tree it builds (0.1.0-12-gabcdef0): what `--version`
// prints and the packages are named by. Unset, the build says 0.0.0-dev.
let stampedVersion = ProcessInfo.processInfo.environment["L3AF_VERSION"].map { version -> [CSetting] in
    precondition(version.allSatisfy { $0.isLetter || $0.isNumber || ".-+~".contains($0) }, "L3AF_VERSION '\(version)' has characters a version can't")
    return [.define("L3AF_VERSION", to: "\"\(version)\"")]
} ?? []

let package = Package(
    name: "l3af",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "l3af", targets: ["l3af"]),
        .executable(name: "l3afd", targets: ["l3afd"]),
        .executable(name: "l3af-registry", targets: ["l3af-registry"]),
        .library(name: "L3AFModel", targets: ["L3AFModel"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        // C libraries. libbpf is linked as usual (CBPF adds a typed log sink); libcurl and libarchive are bound on first use (CLazyLink.h
        // says why): their targets declare the API from the system headers and define forwarding stubs.
        .target(name: "CBPF", linkerSettings: staticArchives.isEmpty ? linked(["bpf"]) : linked(["bpf", "elf", "z"])),
        .target(name: "CLazyLink"),
        // curl_easy_setopt and curl_easy_getinfo are variadic, which Swift can't call: typed wrappers too.
        .target(name: "CCurl", dependencies: ["CLazyLink"]),
        .target(name: "CArchive", dependencies: ["CLazyLink"]),
        // Linux calls glibc hides behind _GNU_SOURCE (syncfs).
        .target(name: "CLinux"),
        .target(name: "CBuildInfo", cSettings: stampedVersion),

        // Pure values shared by every part: names, versions, requirements, manifest, documents, payloads.
        .target(
            name: "L3AFModel",
            dependencies: ["CBuildInfo", .product(name: "Crypto", package: "swift-crypto")]),

        // Files and locks: atomic writes, the one flock wrapper, paths proven inside a folder, blocking work off the pool.
        .target(name: "L3AFSystem", dependencies: ["L3AFModel", "CLinux"]),
        // libarchive: reading tarballs safely (caps, no links or escapes) and writing reproducible ones.
        .target(name: "L3AFArchive", dependencies: ["L3AFModel", "CArchive"]),
        // libbpf: objects opened from files or memory, inspected, loaded; maps, programs, links.
        .target(name: "L3AFBPF", dependencies: ["L3AFModel", "CBPF", .product(name: "Logging", package: "swift-log")]),
        // Chains of programs on interfaces, changed one atomic prog-array update at a time.
        .target(name: "L3AFRuntime", dependencies: ["L3AFModel", "L3AFBPF", "CLinux"]),
        // The host: desired chains and revisions in SQLite, one writer at a time, install/upgrade/rollback/apply/restore.
        .target(
            name: "L3AFHost",
            dependencies: [
                "L3AFModel", "L3AFSystem", "L3AFBPF", "L3AFRuntime", "L3AFClient",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            // GRDB links SQLite by name; in the shipped build this archive comes first on the link line and answers every
            // call (libsqlite3.so stays named, mapped and unused).
            linkerSettings: staticArchives.isEmpty ? [] : linked(["sqlite3"])),
        // The client side: HTTP over libcurl, and (later) fetch, verify, unpack, store.
        .target(
            name: "L3AFClient",
            dependencies: ["L3AFModel", "L3AFSystem", "L3AFArchive", "CCurl", .product(name: "Logging", package: "swift-log")]),
        // The registry: the signed static tree, publishing, tokens, and its HTTP routes.
        .target(
            name: "L3AFRegistry",
            dependencies: [
                "L3AFModel", "L3AFSystem", "L3AFArchive", "L3AFBPF", "L3AFPackage", "L3AFHTTPServer",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),

        // What both servers share: the one error middleware (errors as a status and a JSON body).
        .target(name: "L3AFHTTPServer", dependencies: [
            "L3AFModel", "L3AFSystem", .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),

        // A package tarball checked as the registry must before accepting it; used by publish and pack too.
        .target(name: "L3AFPackage", dependencies: ["L3AFModel", "L3AFSystem", "L3AFArchive", "L3AFBPF"]),

        // The fleet: desired state in etcd (v3, over gRPC with code generated once from etcd's protos by
        // scripts/gen-etcd-grpc), l3afd's agent that reconciles through the host owner, and the operator's side.
        .target(
            name: "L3AFFleet",
            dependencies: [
                "L3AFModel", "L3AFHost",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ]),

        // The command layers; ArgumentParser lives only in these. The client's executable links no server code.
        .target(
            name: "L3AFCLISupport",
            dependencies: [
                "L3AFModel", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "L3AFCLI",
            dependencies: [
                "L3AFModel", "L3AFSystem", "L3AFClient", "L3AFPackage", "L3AFHost", "L3AFCLISupport", "L3AFFleet",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .target(
            name: "L3AFRegistryCLI",
            dependencies: [
                "L3AFModel", "L3AFSystem", "L3AFRegistry", "L3AFCLISupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(name: "l3af", dependencies: ["L3AFCLI", "L3AFCLISupport"]),
        // The node daemon: l3afd's REST API and ours over L3AFHost, metrics, TLS.
        .target(
            name: "L3AFDaemon",
            dependencies: [
                "L3AFModel", "L3AFSystem", "L3AFHost", "L3AFRuntime", "L3AFCLISupport", "L3AFHTTPServer", "L3AFFleet", "CLinux",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        .executableTarget(name: "l3afd", dependencies: ["L3AFDaemon", "L3AFCLISupport"]),
        .executableTarget(name: "l3af-registry", dependencies: ["L3AFRegistryCLI", "L3AFCLISupport"]),

        // bench/chain's in-process half (chains built with the engine, timed with BPF_PROG_TEST_RUN); not a product.
        .executableTarget(name: "l3af-bench-chain", dependencies: ["L3AFRuntime", "L3AFBPF", "L3AFModel"], path: "bench/chain-helper"),

        // bench/fleet's simulated fleet: many agents with the real reconcile logic and fake chains, against a real etcd.
        .executableTarget(name: "l3af-bench-fleet", dependencies: ["L3AFFleet", "L3AFHost", "L3AFHostTesting", "L3AFModel"], path: "bench/fleet-helper"),

        // Helpers for the test targets only: BPF objects compiled from registry/, package tarballs, processes.
        .target(name: "L3AFTestSupport", dependencies: ["L3AFArchive"]),

        // Fakes of the host's seams (packages, chains, clock) for unit tests of host logic without root or a registry.
        .target(name: "L3AFHostTesting", dependencies: ["L3AFHost", "L3AFClient", "L3AFModel", "L3AFRuntime"]),

        .testTarget(name: "L3AFModelTests", dependencies: ["L3AFModel"]),
        .testTarget(name: "L3AFFleetTests", dependencies: ["L3AFFleet", "L3AFHost", "L3AFHostTesting", "L3AFModel", "L3AFTestSupport"]),
        .testTarget(name: "L3AFSystemTests", dependencies: ["L3AFSystem", "L3AFModel"]),
        .testTarget(
            name: "L3AFHostTests",
            dependencies: ["L3AFHost", "L3AFHostTesting", "L3AFModel", "L3AFRuntime", .product(name: "GRDB", package: "GRDB.swift")],
            resources: [.copy("Fixtures")]),
        .testTarget(name: "L3AFDaemonTests", dependencies: ["L3AFDaemon", "L3AFFleet", "L3AFHost", "L3AFHostTesting", "L3AFModel", "L3AFTestSupport"]),
        .testTarget(name: "L3AFPackageTests", dependencies: ["L3AFPackage", "L3AFArchive", "L3AFModel"]),
        .testTarget(name: "SystemLibraryTests", dependencies: ["CBPF", "CCurl", "CArchive"]),
        .testTarget(name: "L3AFArchiveTests", dependencies: ["L3AFArchive", "L3AFModel"]),
        .testTarget(name: "L3AFBPFTests", dependencies: ["L3AFBPF", "L3AFModel", "L3AFTestSupport"]),
        .testTarget(name: "L3AFRuntimeTests", dependencies: ["L3AFRuntime", "L3AFBPF", "L3AFModel", "L3AFTestSupport"]),
        .testTarget(name: "L3AFClientTests", dependencies: ["L3AFClient", "L3AFModel", "L3AFArchive", "L3AFTestSupport"]),
        .testTarget(
            name: "L3AFRegistryTests",
            dependencies: ["L3AFRegistry", "L3AFArchive", "L3AFClient", "L3AFModel", "L3AFTestSupport"]),
        .testTarget(
            name: "L3AFCLITests",
            dependencies: ["L3AFCLI", "L3AFDaemon", "L3AFModel", "L3AFArchive", "L3AFClient", "L3AFPackage", "L3AFTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
