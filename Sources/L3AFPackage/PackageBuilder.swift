import Foundation
import L3AFArchive
import L3AFBPF
import L3AFModel
import L3AFSystem

/// A package built by `l3af pack`: the tarball's bytes and what it holds.
public struct BuiltPackage: Sendable {
    public let manifest: Manifest
    /// `l3af_<name>-<version>.tar.gz`.
    public let fileName: String
    public let bytes: [UInt8]
    public let sha256: SHA256Digest
    /// Each object file, and whether it was compiled from C here (or taken as built).
    public let objects: [(file: String, compiled: Bool)]
}

/// Builds a package from a source folder: `l3af.json` plus, for each object file it names (`x.bpf.o`), either the C
/// source `x.bpf.c` (compiled with clang `-target bpf -O2 -g`) or the object itself. Every object is opened with libbpf
/// and checked against the manifest (entry function, program type for the hook, next map, parameter/monitor/state
/// maps) before anything is written. The tarball has l3afd's layout, one top folder `l3af_<name>` holding the
/// manifest and the objects, and is reproducible: the same sources and compiler give the same bytes, wherever the
/// folder lives (debug paths are made relative to it).
public struct PackageBuilder: Sendable {
    /// The clang to compile with.
    public var clang: String
    /// Extra compiler flags (`-DDEBUG`, `-I…`), after l3af's own.
    public var extraFlags: [String]

    public init(clang: String? = nil, extraFlags: [String] = []) {
        self.clang = clang ?? ProcessInfo.processInfo.environment["L3AF_CLANG"] ?? "clang"
        self.extraFlags = extraFlags
    }

    /// The flags every object is compiled with, before `extraFlags`.
    public static var compileFlags: [String] {
        var flags = ["-target", "bpf", "-O2", "-g", "-Wall", "-fdebug-compilation-dir=.", "-fno-ident"]
        // libbpf's headers include <asm/types.h>, which Debian keeps under the multiarch folder.
        for multiarch in ["x86_64-linux-gnu", "aarch64-linux-gnu"] where FileManager.default.fileExists(atPath: "/usr/include/\(multiarch)/asm") {
            flags.append("-I/usr/include/\(multiarch)")
        }
        return flags
    }

    /// Builds the package in `folder`.
    public func build(folder: String) throws(PackageError) -> BuiltPackage {
        let folder = URL(fileURLWithPath: folder).standardizedFileURL.path
        let manifestPath = "\(folder)/\(Manifest.fileName)"
        guard let manifestBytes = AtomicFile.read(manifestPath) else {
            throw PackageError("manifest-missing", "\(folder) has no readable \(Manifest.fileName)",
                               hint: "a package folder holds l3af.json and the C source of each object it names")
        }
        let manifest: Manifest
        do {
            manifest = try DocumentDecoder.decode(Manifest.self, from: manifestBytes, document: manifestPath)
        } catch {
            throw PackageError(error)
        }
        let top = "l3af_\(manifest.name)"
        var entries = [ArchiveEntry(path: "\(top)/\(Manifest.fileName)", kind: .file, permissions: 0o644, contents: manifestBytes)]
        var objects: [(file: String, compiled: Bool)] = []
        var problems: [String] = []
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("l3af-pack-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        for objectFile in Set(manifest.programs.map(\.objectFile) + (manifest.probes ?? []).map(\.objectFile)).sorted() {
            guard !objectFile.contains("/"), !objectFile.hasPrefix(".") else {
                throw PackageError("object-path-invalid", "the object file '\(objectFile)' must be a plain file name in the package's top folder",
                                   hint: "name it like 'ratelimiting.bpf.o' and keep its source beside l3af.json")
            }
            let source = objectFile.hasSuffix(".o") ? String(objectFile.dropLast(2)) + ".c" : objectFile + ".c"
            let bytes: [UInt8]
            if FileManager.default.fileExists(atPath: "\(folder)/\(source)") {
                bytes = try compile(source, in: folder, scratch: scratch)
                objects.append((objectFile, true))
            } else if let built = AtomicFile.read("\(folder)/\(objectFile)") {
                bytes = built
                objects.append((objectFile, false))
            } else {
                throw PackageError("object-source-missing", "\(folder) has neither \(source) nor \(objectFile), which \(Manifest.fileName) names",
                                   hint: "add the C source \(source) (or a built \(objectFile)), or fix object_file in the manifest")
            }
            do {
                let opened = try BPFObjectFile(bytes: bytes, name: objectFile)
                for program in manifest.programs where program.objectFile == objectFile {
                    problems += opened.problems(for: program)
                }
                for probe in manifest.probes ?? [] where probe.objectFile == objectFile {
                    problems += opened.problems(for: probe)
                }
            } catch {
                problems.append(error.description)
            }
            entries.append(ArchiveEntry(path: "\(top)/\(objectFile)", kind: .file, permissions: 0o644, contents: bytes))
        }
        guard problems.isEmpty else {
            throw PackageError("package-objects-invalid", "\(manifest.name)@\(manifest.version): " + problems.joined(separator: "; "),
                               hint: "fix the C source or the manifest so they name the same functions and maps")
        }
        let tarball: [UInt8]
        do {
            tarball = try ArchiveWriter.tarGz(entries, name: "\(top).tar.gz")
        } catch {
            throw PackageError(error)
        }
        return BuiltPackage(manifest: manifest, fileName: "l3af_\(manifest.name)-\(manifest.version).tar.gz", bytes: tarball,
                            sha256: SHA256Digest(of: tarball), objects: objects)
    }

    /// Compiles `source` (a file name in `folder`) and returns the object's bytes. Runs in `folder` with relative
    /// paths so the debug info names no absolute path.
    private func compile(_ source: String, in folder: String, scratch: String) throws(PackageError) -> [UInt8] {
        let output = "\(scratch)/\(source).o"
        do {
            try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        } catch {
            throw PackageError("pack-failed", "creating \(scratch): \(error)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [clang] + Self.compileFlags + ["-I."] + extraFlags + ["-c", source, "-o", output]
        process.currentDirectoryURL = URL(fileURLWithPath: folder)
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw PackageError("clang-missing", "can't run \(clang): \(error)", hint: "install clang (apt-get install clang), or pass --clang PATH or set L3AF_CLANG")
        }
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if process.terminationStatus == 127 {
            throw PackageError("clang-missing", "can't run '\(clang)': not found", hint: "install clang (apt-get install clang), or pass --clang PATH or set L3AF_CLANG")
        }
        guard process.terminationStatus == 0, let bytes = AtomicFile.read(output) else {
            throw PackageError("compile-failed", "clang could not compile \(folder)/\(source):\n\(message.trimmingCharacters(in: .whitespacesAndNewlines))",
                               hint: "fix the C source; l3af compiles it with: \(clang) \((Self.compileFlags + ["-I."] + extraFlags).joined(separator: " ")) -c \(source)")
        }
        return bytes
    }
}
