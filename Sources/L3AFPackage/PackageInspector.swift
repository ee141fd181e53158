import L3AFArchive
import L3AFBPF
import L3AFModel

/// A package tarball that passed inspection.
public struct InspectedPackage: Sendable {
    public let manifest: Manifest
    public let sha256: SHA256Digest
    public let size: UInt64
    /// The folder inside the tarball that holds `l3af.json` ("" when it is at the top).
    public let baseFolder: String
}

/// Opens an uploaded tarball the way the registry must before accepting it: safely with libarchive,
/// `l3af.json` read and decoded, and every object opened with libbpf (not loaded) to check that each
/// program's entry function, hook type and maps are there.
public enum PackageInspector {
    /// Inspects `bytes`; `name` names the upload in errors.
    public static func inspect(_ bytes: [UInt8], name: String = "the upload") throws(PackageError) -> InspectedPackage {
        let entries: [ArchiveEntry]
        do {
            entries = try ArchiveReader.entries(of: bytes, name: name)
        } catch {
            throw PackageError(error)
        }
        let files = Dictionary(entries.filter { $0.kind == .file }.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        // l3af.json sits at the top, or in the one top folder named like the artifact (l3afd's layout).
        let candidates = files.keys.filter { $0 == Manifest.fileName || ($0.hasSuffix("/" + Manifest.fileName) && $0.split(separator: "/").count == 2) }
        guard candidates.count == 1, let manifestPath = candidates.first else {
            throw PackageError("manifest-missing",
                                candidates.isEmpty ? "\(name) has no \(Manifest.fileName) at its top or in its top folder"
                                                   : "\(name) has more than one \(Manifest.fileName)",
                                hint: "build packages with l3af pack, which writes the manifest")
        }
        let base = manifestPath == Manifest.fileName ? "" : String(manifestPath.dropLast(Manifest.fileName.count + 1))
        let manifest: Manifest
        do {
            manifest = try DocumentDecoder.decode(Manifest.self, from: files[manifestPath]!.contents, document: "\(name): \(manifestPath)")
        } catch {
            throw PackageError(error)
        }
        var problems: [String] = []
        let checks: [(objectFile: String, what: String, check: (borrowing BPFObjectFile) -> [String])] =
            manifest.programs.map { program in (program.objectFile, "\(program.hook)", { $0.problems(for: program) }) }
            + (manifest.probes ?? []).map { probe in (probe.objectFile, "the probe \(probe.entryFunction)", { $0.problems(for: probe) }) }
        for (objectFile, what, check) in checks {
            let objectPath = base.isEmpty ? objectFile : "\(base)/\(objectFile)"
            guard let object = files[objectPath] else {
                problems.append("the object file '\(objectPath)' for \(what) is not in the package")
                continue
            }
            do {
                let opened = try BPFObjectFile(bytes: object.contents, name: objectFile)
                problems += check(opened)
            } catch {
                problems.append(error.description)
            }
        }
        guard problems.isEmpty else {
            throw PackageError("package-objects-invalid",
                                "\(manifest.name)@\(manifest.version): " + problems.joined(separator: "; "),
                                hint: "fix the manifest or rebuild the objects; l3af pack checks this before packing")
        }
        return InspectedPackage(manifest: manifest, sha256: SHA256Digest(of: bytes), size: UInt64(bytes.count), baseFolder: base)
    }
}

/// A package tarball that is not a valid package: unreadable or unsafe, no manifest, or objects that don't
/// provide what the manifest names.
public struct PackageError: L3AFError {
    public let code: String
    public let description: String
    public let hint: String?

    init(_ code: String, _ description: String, hint: String? = nil) {
        self.code = code
        self.description = description
        self.hint = hint
    }

    init(_ error: any L3AFError) {
        self.init(error.code, error.description, hint: error.hint)
    }
}
