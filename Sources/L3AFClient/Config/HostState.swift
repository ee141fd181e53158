import Foundation
import L3AFModel
import L3AFSystem

/// What this host has accepted from each registry: the highest index version, so an older index
/// (a rollback attack, or a stale mirror) is refused. Keyed by the id of the key that signed the index,
/// so a mirror at another URL gets no way around it. Kept as `registries.json` in the state folder,
/// replaced atomically.
public struct HostState: Sendable {
    public let folder: String

    public init(folder: String) { self.folder = folder }

    struct Entry: Codable { var indexVersion: UInt64 }

    private var file: String { "\(folder)/registries.json" }

    /// What was accepted, by signing key. A file that exists but can't be read is an error, never "nothing
    /// accepted yet": that would silently turn rollback protection off.
    private func load() throws(StateFileError) -> [String: Entry] {
        guard let bytes = AtomicFile.read(file) else { return [:] }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        do { return try decoder.decode([String: Entry].self, from: Data(bytes)) } catch {
            throw StateFileError(path: file, problem: "\(error)", protects: "index rollback protection")
        }
    }

    /// The highest index version accepted, by the id of the key that signed it.
    public func acceptedVersions() throws(StateFileError) -> [String: UInt64] { try load().mapValues(\.indexVersion) }

    /// Records that `version` signed by `keyID` was accepted (never lowering what was recorded). Under the state
    /// lock, the file is read once: a corrupt one is reported, never overwritten.
    public func recordIndexVersion(_ version: UInt64, forKey registry: String) throws {
        try FileLock.withLock("\(folder)/.lock") {
            var entries = try load()
            if let recorded = entries[registry]?.indexVersion, recorded >= version { return }
            entries[registry] = Entry(indexVersion: version)
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            try AtomicFile.write(Array(try encoder.encode(entries)), to: file)
        }
    }
}

/// The record of accepted index versions can't be read: rollback protection can't be checked, so nothing is trusted.
public struct StateFileError: L3AFError {
    public let path: String
    public let problem: String
    /// What the file guards, for the message.
    public var protects = "index rollback protection"
    public var code: String { "state-file-corrupt" }
    public var description: String { "\(path) can't be read (\(problem)), so \(protects) can't be checked; nothing was fetched" }
    public var hint: String? { "restore it from a backup, or, to trust what the repositories serve now, move it away (the next fetch records anew)" }
}

/// Trust on first use for plain l3afd repositories, which sign nothing: the sha256 of the first artifact fetched at
/// each URL (`<repo>/<name>/<version>/<platform>/<artifact>`), so a later fetch of other bytes at the same URL is
/// refused. A moving tag (`latest`) is the one URL allowed to change; its record follows it. Kept as
/// `plain-artifacts.json` in the state folder, replaced atomically under the state lock.
public struct ArtifactDigests: Sendable {
    public let folder: String

    public init(folder: String) { self.folder = folder }

    struct Entry: Codable, Equatable {
        var sha256: String
        var recorded: String
    }

    private var file: String { "\(folder)/plain-artifacts.json" }

    private func load() throws(StateFileError) -> [String: Entry] {
        guard let bytes = AtomicFile.read(file) else { return [:] }
        do { return try JSONDecoder().decode([String: Entry].self, from: Data(bytes)) } catch {
            throw StateFileError(path: file, problem: "\(error)", protects: "trust-on-first-use digests of plain repositories")
        }
    }

    /// The digest recorded for `url`, if any.
    public func recorded(_ url: String) throws(StateFileError) -> SHA256Digest? {
        guard let entry = try load()[url] else { return nil }
        do { return try SHA256Digest(hex: entry.sha256) } catch {
            throw StateFileError(path: file, problem: "the digest recorded for \(url) is not a sha256 ('\(entry.sha256)')",
                                 protects: "trust-on-first-use digests of plain repositories")
        }
    }

    /// Checks `sha256` against what `url` served before: the first time, or for a moving version, it passes;
    /// other bytes at a fixed URL are refused, naming both digests.
    public func check(_ url: String, sha256: SHA256Digest, moving: Bool) throws {
        guard !moving, let before = try recorded(url), before != sha256 else { return }
        throw ArtifactChangedError(url: url, recorded: before, served: sha256)
    }

    /// Records `sha256` as what `url` serves (after `check` passed and the artifact unpacked).
    public func record(_ url: String, sha256: SHA256Digest, moving: Bool) throws {
        try FileLock.withLock("\(folder)/.lock") {
            var entries = try load()
            if let before = entries[url], before.sha256 == sha256.hex { return }
            if entries[url] != nil, !moving { throw ArtifactChangedError(url: url, recorded: try recorded(url) ?? sha256, served: sha256) }
            entries[url] = Entry(sha256: sha256.hex, recorded: Timestamp(Date()).description)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            try AtomicFile.write(Array(try encoder.encode(entries)), to: file)
        }
    }
}

/// A plain repository now serves other bytes at a URL whose first artifact this host recorded.
public struct ArtifactChangedError: L3AFError {
    public let url: String
    public let recorded: SHA256Digest
    public let served: SHA256Digest
    public var code: String { "artifact-changed" }
    public var description: String {
        "\(url) now serves an artifact with sha256 \(served.hex), but this host recorded \(recorded.hex) when it first fetched it; nothing was changed"
    }
    public var hint: String? {
        "a published version's bytes must not change: publish the new build as a new version (or find out who altered the repository)"
    }
}

/// The keys each registry rotated to (`keys/<n>.json`, followed when the trusted keys sign no index), so the next
/// fetch trusts them from the start: `key-rotations.json` in the state folder, by registry URL, replaced atomically
/// under the state lock.
public struct RotatedKeys: Sendable {
    public let folder: String

    public init(folder: String) { self.folder = folder }

    public struct Entry: Codable, Equatable, Sendable {
        /// The last rotation followed.
        public var rotation: UInt64
        /// Its keys, in base64.
        public var keys: [String]
    }

    private var file: String { "\(folder)/key-rotations.json" }

    private func load() throws(StateFileError) -> [String: Entry] {
        guard let bytes = AtomicFile.read(file) else { return [:] }
        do { return try JSONDecoder().decode([String: Entry].self, from: Data(bytes)) } catch {
            throw StateFileError(path: file, problem: "\(error)", protects: "the registry keys rotated to")
        }
    }

    /// The rotation followed for `registry` and its keys (none followed: 0 and none).
    public func entry(for registry: String) throws -> (rotation: UInt64, keys: [TrustedKey]) {
        guard let entry = try load()[registry] else { return (0, []) }
        return (entry.rotation, try entry.keys.map { try TrustedKey(base64: $0) })
    }

    /// Records that `registry`'s keys are now `keys`, from rotation `rotation`.
    public func record(_ rotation: UInt64, keys: [TrustedKey], for registry: String) throws {
        try FileLock.withLock("\(folder)/.lock") {
            var entries = try load()
            if let recorded = entries[registry]?.rotation, recorded >= rotation { return }
            entries[registry] = Entry(rotation: rotation, keys: keys.map(\.base64))
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            try AtomicFile.write(Array(try encoder.encode(entries)), to: file)
        }
    }
}
