// swift-tools-version: 6.1
import PackageDescription

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
    ],
    targets: [
        // C libraries, found with pkg-config; each is a module map plus a one-line shim header.
        .systemLibrary(
            name: "CBPF", pkgConfig: "libbpf",
            providers: [.apt(["libbpf-dev", "libelf-dev"])]),
        .systemLibrary(
            name: "CCurl", pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(
            name: "CArchive", pkgConfig: "libarchive",
            providers: [.apt(["libarchive-dev"])]),

        // Pure values shared by every part: names, versions, requirements, manifest, documents, payloads.
        .target(
            name: "L3AFModel",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")]),

        // The command layer of all three executables; ArgumentParser lives only here.
        .target(
            name: "L3AFCLI",
            dependencies: [
                "L3AFModel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .executableTarget(name: "l3af", dependencies: ["L3AFCLI"]),
        .executableTarget(name: "l3afd", dependencies: ["L3AFCLI"]),
        .executableTarget(name: "l3af-registry", dependencies: ["L3AFCLI"]),

        .testTarget(name: "L3AFModelTests", dependencies: ["L3AFModel"]),
        .testTarget(name: "SystemLibraryTests", dependencies: ["CBPF", "CCurl", "CArchive"]),
        .testTarget(name: "L3AFCLITests", dependencies: ["L3AFCLI", "L3AFModel"]),
    ],
    swiftLanguageModes: [.v6]
)
