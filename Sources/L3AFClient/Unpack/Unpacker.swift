import Foundation
import Glibc
import L3AFArchive
import L3AFModel
import L3AFSystem

/// What an installed version's folder records about itself: where it came from and the digest of every
/// file, so `l3af verify` can re-check it. Written last, inside the folder that is renamed into place.
public struct InstallMarker: Codable, Sendable, Equatable {
    public static let fileName = ".l3af-install.json"

    public var name: String
    public var version: String
    public var artifact: String
    public var sha256: SHA256Digest
    public var source: String
    /// True for an l3afd-style artifact installed without a signature.
    public var unsigned: Bool
    public var installed: Timestamp
    /// Relative path (under the version folder) → sha256 of every file.
    public var files: [String: SHA256Digest]

    /// The marker of the version installed in `folder`, or `nil` when there is none (or it can't be read).
    public static func read(in folder: String) -> InstallMarker? {
        guard let bytes = AtomicFile.read("\(folder)/\(fileName)") else { return nil }
        return try? DocumentDecoder.decode(InstallMarker.self, from: bytes, document: "\(folder)/\(fileName)")
    }
}

/// Unpacks a verified artifact into `<repo>/<name>/<version>/<artifact-base>/`: safely (libarchive, the
/// reader's rules and caps), into a temporary folder beside the target, synced to disk, then renamed into place,
/// so a version on disk is complete or absent. Leftover temporaries are removed by ``removeLeftovers(in:)``.
public struct Unpacker: Sendable {
    public var limits: ArchiveLimits

    public init(limits: ArchiveLimits = ArchiveLimits()) { self.limits = limits }

    /// The folder `name@version` lives in.
    public static func versionFolder(repo: String, name: String, version: String) -> String { "\(repo)/\(name)/\(version)" }

    /// The artifact's base name: its file name without `.tar.gz` / `.tgz`.
    public static func artifactBase(_ artifact: String) -> String {
        for suffix in [".tar.gz", ".tgz", ".tar", ".zip"] where artifact.hasSuffix(suffix) { return String(artifact.dropLast(suffix.count)) }
        return artifact
    }

    /// Unpacks `tarball` and returns the artifact folder. An existing complete version is left alone.
    public func unpack(
        tarball: String, repo: String, name: String, version: String, artifact: String, sha256: SHA256Digest,
        source: String, unsigned: Bool, now: Timestamp = Timestamp(Date())
    ) throws -> String {
        let base = Self.artifactBase(artifact)
        let packageFolder = "\(repo)/\(name)"
        let target = Self.versionFolder(repo: repo, name: name, version: version)
        if FileManager.default.fileExists(atPath: target) { return "\(target)/\(base)" }
        guard let bytes = AtomicFile.read(tarball) else { throw StorageError("reading \(tarball)", errno: errno) }
        // The cache is verified where it is used: a file changed after it was downloaded is not unpacked.
        let actual = SHA256Digest(of: bytes)
        guard actual == sha256 else {
            unlink(tarball)
            throw InstalledCheckError(description: "the cached artifact \(tarball) for \(name)@\(version) was altered since it was verified (sha256 \(actual), expected \(sha256)); removed it",
                                      hint: "fetch again: it will be downloaded and verified anew")
        }
        var limits = self.limits
        // l3afd's plain repositories may serve zip artifacts; signed packages are gzip'd tar only.
        limits.allowZip = unsigned && artifact.hasSuffix(".zip")
        let entries = try ArchiveReader.entries(of: bytes, name: artifact, limits: limits)
        // l3afd's layout puts everything in one top folder named like the artifact; whatever it is named
        // here, it becomes <artifact-base>. Files at the top go into <artifact-base> too.
        let tops = Set(entries.map { $0.path.split(separator: "/", maxSplits: 1)[0] })
        let strip: String? = tops.count == 1 && entries.contains { $0.path.contains("/") } ? String(tops.first!) : nil
        try AtomicFile.makeFolders(packageFolder)
        let temporary = "\(packageFolder)/\(AtomicFile.temporaryPrefix)\(version)-\(UInt32.random(in: 0...UInt32.max))"
        try AtomicFile.makeFolders("\(temporary)/\(base)")
        var digests: [String: SHA256Digest] = [:]
        do {
            for entry in entries {
                var relative = entry.path
                if let strip {
                    guard relative != strip else { continue }
                    relative = String(relative.dropFirst(strip.count + 1))
                }
                let path = "\(temporary)/\(base)/\(relative)"
                switch entry.kind {
                case .directory:
                    try AtomicFile.makeFolders(path)
                case .file:
                    // Set-uid, set-gid and sticky bits were dropped when the archive was read.
                    try Self.writeFile(entry.contents, to: path, mode: entry.permissions & 0o111 != 0 ? 0o755 : 0o644)
                    digests["\(base)/\(relative)"] = SHA256Digest(of: entry.contents)
                }
            }
            let marker = InstallMarker(name: name, version: version, artifact: artifact, sha256: sha256, source: source,
                                       unsigned: unsigned, installed: now, files: digests)
            try Self.writeFile(Array(try DocumentDecoder.encode(marker)), to: "\(temporary)/\(InstallMarker.fileName)", mode: 0o644)
            try AtomicFile.syncFileSystem(of: temporary)
            guard rename(temporary, target) == 0 else {
                let code = errno
                if code == ENOTEMPTY || code == EEXIST { try? FileManager.default.removeItem(atPath: temporary); return "\(target)/\(base)" }
                throw StorageError("renaming \(temporary) to \(target)", errno: code)
            }
            try AtomicFile.syncFolder(packageFolder)
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
        return "\(target)/\(base)"
    }

    /// Removes temporary folders an interrupted unpack left in the repo.
    public static func removeLeftovers(in repo: String) {
        let fm = FileManager.default
        for package in (try? fm.contentsOfDirectory(atPath: repo)) ?? [] {
            for item in (try? fm.contentsOfDirectory(atPath: "\(repo)/\(package)")) ?? [] where item.hasPrefix(AtomicFile.temporaryPrefix) {
                try? fm.removeItem(atPath: "\(repo)/\(package)/\(item)")
            }
        }
    }

    private static func writeFile(_ bytes: [UInt8], to path: String, mode: mode_t) throws(StorageError) {
        try AtomicFile.makeFolders((path as NSString).deletingLastPathComponent)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else { throw StorageError("creating \(path)", errno: errno) }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw StorageError("writing \(path)", errno: errno) }
            offset += n
        }
        fchmod(fd, mode)
    }

    /// Re-reads every file of an installed version and compares it with its marker.
    public static func check(repo: String, name: String, version: String) throws -> InstallMarker {
        let folder = versionFolder(repo: repo, name: name, version: version)
        guard let bytes = AtomicFile.read("\(folder)/\(InstallMarker.fileName)") else {
            if FileManager.default.fileExists(atPath: folder) {
                throw InstalledCheckError(description: "\(folder) has no \(InstallMarker.fileName): it was not installed by l3af, so it can't be verified",
                                          hint: "reinstall it with l3af fetch \(name)@=\(version)")
            }
            throw InstalledCheckError(description: "\(name)@\(version) is not installed in \(repo)", hint: "install it with l3af fetch \(name)@=\(version)")
        }
        let marker = try DocumentDecoder.decode(InstallMarker.self, from: bytes, document: "\(folder)/\(InstallMarker.fileName)")
        var problems: [String] = []
        for (relative, digest) in marker.files.sorted(by: { $0.key < $1.key }) {
            guard let contents = AtomicFile.read("\(folder)/\(relative)") else {
                problems.append("\(relative) is missing")
                continue
            }
            let actual = SHA256Digest(of: contents)
            if actual != digest { problems.append("\(relative) was modified (sha256 \(actual), installed \(digest))") }
        }
        let walker = FileManager.default.enumerator(atPath: folder)
        while let item = walker?.nextObject() as? String {
            var isDirectory: ObjCBool = false
            if item != InstallMarker.fileName, FileManager.default.fileExists(atPath: "\(folder)/\(item)", isDirectory: &isDirectory),
               !isDirectory.boolValue, marker.files[item] == nil {
                problems.append("\(item) was added after installation")
            }
        }
        guard problems.isEmpty else {
            throw InstalledCheckError(description: "\(name)@\(version) in \(folder) does not match what was installed: " + problems.joined(separator: "; "),
                                      hint: "remove \(folder) and fetch it again")
        }
        return marker
    }
}

/// An installed version that is missing or differs from what was installed.
public struct InstalledCheckError: L3AFError {
    public let description: String
    public let hint: String?
    public var code: String { "installed-files-differ" }
}

