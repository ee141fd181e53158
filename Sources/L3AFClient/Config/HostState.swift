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
            throw StateFileError(path: file, problem: "\(error)")
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
    public var code: String { "state-file-corrupt" }
    public var description: String { "\(path) can't be read (\(problem)), so index rollback protection can't be checked; nothing was fetched" }
    public var hint: String? { "restore it from a backup, or, to trust the registry's current index again, move it away (the next fetch records anew)" }
}
