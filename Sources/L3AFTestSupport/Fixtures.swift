import Foundation
import L3AFArchive
import Synchronization

/// Helpers shared by the test targets: the repository's folders, eBPF objects compiled from the
/// first-party packages, package tarballs, temporary folders. Not used by the product.
public enum Fixtures {
    /// The repository's top folder.
    public static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    private static let compiled = Mutex<[String: [UInt8]]>([:])

    /// Compiles `source` (relative to the repository) with `clang -target bpf -O2 -g`, once per test run.
    public static func compileBPF(_ source: String) throws -> [UInt8] {
        if let cached = compiled.withLock({ $0[source] }) { return cached }
        let output = FileManager.default.temporaryDirectory.appending(path: "l3af-\(UUID().uuidString).bpf.o")
        defer { try? FileManager.default.removeItem(at: output) }
        let result = try Executable.run("/usr/bin/env", [
            "clang", "-target", "bpf", "-O2", "-g", "-I/usr/include/x86_64-linux-gnu", "-c",
            repositoryRoot.appending(path: source).path, "-o", output.path,
        ])
        guard result.status == 0 else { throw FixtureError("clang -target bpf \(source) failed: \(result.stderr)") }
        let bytes = Array(try Data(contentsOf: output))
        compiled.withLock { $0[source] = bytes }
        return bytes
    }

    /// The `xdp-root` manifest at `version`, optionally renamed or with its entry function changed.
    public static func xdpRootManifest(
        name: String = "xdp-root", version: String, entryFunction: String = "xdp_root", description: String = "XDP chain root",
        platforms: [String]? = nil
    ) -> String {
        let platformField = platforms.map { ", \"platforms\": [" + $0.map { "\"\($0)\"" }.joined(separator: ", ") + "]" } ?? ""
        return """
            {"name": "\(name)", "version": "\(version)", "description": "\(description)", "license": "BSD-2-Clause"\(platformField),
             "programs": [{"hook": "xdp_ingress", "object_file": "xdp_root.bpf.o", "entry_function": "\(entryFunction)",
                           "next_map": "xdp_root_array"}]}
            """
    }

    /// A package tarball in l3afd's layout: a top folder `top` holding `l3af.json` and the objects.
    public static func package(manifest: String, objects: [String: [UInt8]], top: String = "l3af_pkg") throws -> [UInt8] {
        var entries = [ArchiveEntry(path: "\(top)/l3af.json", kind: .file, permissions: 0o644, contents: Array(manifest.utf8))]
        for (name, bytes) in objects {
            entries.append(ArchiveEntry(path: "\(top)/\(name)", kind: .file, permissions: 0o644, contents: bytes))
        }
        return try ArchiveWriter.tarGz(entries)
    }

    /// An `xdp-root` package tarball at `version`, built from the real source.
    public static func xdpRootPackage(version: String, name: String = "xdp-root", description: String = "XDP chain root", platforms: [String]? = nil) throws -> [UInt8] {
        try package(
            manifest: xdpRootManifest(name: name, version: version, description: description, platforms: platforms),
            objects: ["xdp_root.bpf.o": try compileBPF("registry/xdp-root/xdp_root.bpf.c")], top: "l3af_\(name)")
    }

    /// Upstream l3afd's example `l3afd.cfg` (`Tests/Fixtures/l3afd.cfg`), with `settings` (section → key → value) in
    /// place of its values.
    public static func upstreamL3afdConfig(_ settings: [String: [String: String]] = [:]) throws -> String {
        let text = try String(contentsOf: repositoryRoot.appending(path: "Tests/Fixtures/l3afd.cfg"), encoding: .utf8)
        var section = ""
        return text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("[") { section = String(trimmed.dropFirst().dropLast()) }
            guard !trimmed.hasPrefix("#"), let colon = trimmed.firstIndex(of: ":"),
                  let value = settings[section]?[trimmed[..<colon].trimmingCharacters(in: .whitespaces)] else { return String(line) }
            return "\(trimmed[..<colon]): \(value)"
        }.joined(separator: "\n")
    }

    /// A new empty folder under the system's temporary folder.
    public static func temporaryFolder(_ label: String = "test") throws -> URL {
        let url = FileManager.default.temporaryDirectory.appending(path: "l3af-\(label)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// A fixture that could not be made.
public struct FixtureError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
