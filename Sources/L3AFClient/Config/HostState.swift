import Foundation
import L3AFArchive
import L3AFModel

/// What this host has accepted from each registry: the highest index version, so an older index
/// (a rollback attack, or a stale mirror) is refused. Keyed by the id of the key that signed the index,
/// so a mirror at another URL gets no way around it. Kept as `registries.json` in the state folder,
/// replaced atomically.
public struct HostState: Sendable {
    public let folder: String

    public init(folder: String) { self.folder = folder }

    struct Entry: Codable { var indexVersion: UInt64 }

    private var file: String { "\(folder)/registries.json" }

    private func load() -> [String: Entry] {
        guard let bytes = AtomicFile.read(file) else { return [:] }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return (try? decoder.decode([String: Entry].self, from: Data(bytes))) ?? [:]
    }

    /// The highest index version accepted from `registry`.
    public func lastIndexVersion(forKey keyID: String) -> UInt64? { load()[keyID]?.indexVersion }

    /// Records that `version` signed by `keyID` was accepted (never lowering what was recorded).
    public func recordIndexVersion(_ version: UInt64, forKey registry: String) throws {
        let lockFile = "\(folder)/.lock"
        try AtomicFile.makeFolders(folder)
        try FileLock(path: lockFile).withLock { () throws(StorageError) in
            var entries = load()
            if let recorded = entries[registry]?.indexVersion, recorded >= version { return }
            entries[registry] = Entry(indexVersion: max(version, entries[registry]?.indexVersion ?? 0))
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            try AtomicFile.write(Array((try? encoder.encode(entries)) ?? Data()), to: file)
        }
    }
}
