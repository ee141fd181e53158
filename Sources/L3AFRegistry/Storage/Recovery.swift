import Foundation
import L3AFModel
import Logging

/// Brings a tree a crash interrupted back to a consistent state, under the writer lock:
/// - leftover `.tmp-*` files are removed;
/// - package documents are read with the digests of their bytes; the store re-signs the index over them
///   when it names other shards (a document written just before a crash: the interrupted write completes);
/// - version folders no document lists (an artifact written just before a crash) are removed;
/// - dist-tag links are made to match the documents.
enum Recovery {
    struct Outcome {
        var documents: [PackageName: PackageDocument]
        /// What a shard says of each document: the digest and size of its bytes on disk.
        var entries: [PackageName: RegistryIndex.Entry]
        var index: RegistryIndex?
        /// The version of an index this release can't read (format 1, unsharded): the next one signed goes above it, so
        /// clients that accepted it take the new one.
        var formerVersion: UInt64?
    }

    static func run(layout: RegistryLayout, logger: Logger) throws(RegistryError) -> Outcome {
        let fm = FileManager.default
        removeTemporaries(in: layout.tree, logger: logger)
        var documents: [PackageName: PackageDocument] = [:]
        var entries: [PackageName: RegistryIndex.Entry] = [:]
        for file in (try? fm.contentsOfDirectory(atPath: layout.packagesFolder)) ?? [] where file.hasSuffix(".json") {
            let path = "\(layout.packagesFolder)/\(file)"
            do {
                let bytes = RegistryFiles.read(path) ?? []
                let doc = try DocumentDecoder.decode(PackageDocument.self, from: bytes, document: path)
                documents[doc.name] = doc
                entries[doc.name] = RegistryIndex.Entry(of: bytes)
            } catch {
                throw RegistryError(.internalFailure, "tree-corrupt", "\(error.description)", hint: "restore \(path) from a backup")
            }
        }
        var index: RegistryIndex?, formerVersion: UInt64?
        if let bytes = RegistryFiles.read(layout.indexFile) {
            index = try? DocumentDecoder.decode(SignedIndexEnvelope.self, from: bytes, document: "index.json").signed
            if index == nil, case .integer(let version)? = (try? JSONDecoder().decode(JSONValue.self, from: Data(bytes)))?["signed"]?["version"] {
                formerVersion = UInt64(clamping: version)
                logger.warning("re-signing an index this release can't read (an older format) over the documents", metadata: ["index.version": "\(version)"])
            }
        }
        for (name, doc) in documents {
            let folder = layout.packageFolder(name)
            for item in (try? fm.contentsOfDirectory(atPath: folder)) ?? [] {
                let path = "\(folder)/\(item)"
                let isLink = (try? fm.destinationOfSymbolicLink(atPath: path)) != nil
                if !isLink, doc.versions[item] == nil {
                    logger.warning("removing an artifact no document lists", metadata: ["path": "\(path)"])
                    try? fm.removeItem(atPath: path)
                }
            }
            try RegistryStore.writeTagLinks(doc, layout: layout)
        }
        // A first publish that crashed before its document: a package folder with no document.
        for item in (try? fm.contentsOfDirectory(atPath: layout.tree)) ?? [] {
            guard let name = try? PackageName(item), documents[name] == nil, !RegistryLayout.reservedNames.contains(item) else { continue }
            logger.warning("removing a package folder no document lists", metadata: ["path": "\(layout.tree)/\(item)"])
            try? fm.removeItem(atPath: "\(layout.tree)/\(item)")
        }
        return Outcome(documents: documents, entries: entries, index: index, formerVersion: formerVersion)
    }

    /// Removes the shard files of `index/` that the signed index does not name (`keep`, paths in the tree).
    static func removeShards(in layout: RegistryLayout, except keep: Set<String>, logger: Logger) {
        for file in (try? FileManager.default.contentsOfDirectory(atPath: layout.shardsFolder)) ?? [] where !keep.contains("index/\(file)") {
            logger.debug("removing a shard the index doesn't name", metadata: ["path": "index/\(file)"])
            try? FileManager.default.removeItem(atPath: "\(layout.shardsFolder)/\(file)")
        }
    }

    private static func removeTemporaries(in folder: String, logger: Logger) {
        guard let walker = FileManager.default.enumerator(atPath: folder) else { return }
        while let item = walker.nextObject() as? String {
            if (item as NSString).lastPathComponent.hasPrefix(RegistryFiles.temporaryPrefix) {
                logger.warning("removing a temporary file a crash left", metadata: ["path": "\(folder)/\(item)"])
                try? FileManager.default.removeItem(atPath: "\(folder)/\(item)")
            }
        }
    }
}
