import Foundation
import L3AFModel
import Logging

/// Brings a tree a crash interrupted back to a consistent state, under the writer lock:
/// - leftover `.tmp-*` files are removed;
/// - a package document the index doesn't match (written just before a crash) is kept, and the index
///   re-signed over it (the interrupted write completes);
/// - version folders no document lists (an artifact written just before a crash) are removed;
/// - dist-tag links are made to match the documents.
enum Recovery {
    struct Outcome {
        var documents: [PackageName: PackageDocument]
        var index: RegistryIndex?
        var needsSigning: Bool
    }

    static func run(layout: RegistryLayout, logger: Logger) throws(RegistryError) -> Outcome {
        let fm = FileManager.default
        removeTemporaries(in: layout.tree, logger: logger)
        var documents: [PackageName: PackageDocument] = [:]
        for file in (try? fm.contentsOfDirectory(atPath: layout.packagesFolder)) ?? [] where file.hasSuffix(".json") {
            let path = "\(layout.packagesFolder)/\(file)"
            do {
                let doc = try DocumentDecoder.decode(PackageDocument.self, from: RegistryFiles.read(path) ?? [], document: path)
                documents[doc.name] = doc
            } catch {
                throw RegistryError(.internalFailure, "tree-corrupt", "\(error.description)", hint: "restore \(path) from a backup")
            }
        }
        var index: RegistryIndex?
        if let bytes = RegistryFiles.read(layout.indexFile) {
            index = try? DocumentDecoder.decode(SignedIndexEnvelope.self, from: bytes, document: "index.json").signed
        }
        var needsSigning = index == nil
        if let index {
            for (name, doc) in documents {
                if index.packages[name.rawValue] != RegistryStore.indexEntry(of: Array(try! DocumentDecoder.encode(doc))) {
                    logger.warning("completing an interrupted write", metadata: ["package": "\(name)"])
                    needsSigning = true
                }
            }
            if Set(index.packages.keys) != Set(documents.keys.map(\.rawValue)) { needsSigning = true }
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
            guard let name = try? PackageName(item), documents[name] == nil, item != "packages" else { continue }
            logger.warning("removing a package folder no document lists", metadata: ["path": "\(layout.tree)/\(item)"])
            try? fm.removeItem(atPath: "\(layout.tree)/\(item)")
        }
        return Outcome(documents: documents, index: index, needsSigning: needsSigning)
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
