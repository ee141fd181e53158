import Foundation
import L3AFModel
import NIOCore
import Synchronization

/// A file of the tree, ready to serve.
public struct CachedFile: Sendable {
    public let bytes: ByteBuffer
    /// A strong ETag: the quoted SHA-256 of the bytes.
    public let etag: String
}

/// The tree's files as served: read from disk once, then from memory until a write changes the tree.
/// Bounded, so a registry of large artifacts doesn't hold them all.
public final class TreeCache: Sendable {
    let tree: String
    let limit: Int
    /// `generation` grows whenever files are forgotten, so bytes read from disk before a write replaced them are not
    /// kept after it.
    private let state = Mutex<(files: [String: CachedFile], bytes: Int, generation: UInt64)>(([:], 0, 0))
    private let documents = Mutex<[PackageName: PackageDocument]>([:])

    init(tree: String, limit: Int = 256 << 20) {
        self.tree = tree
        self.limit = limit
    }

    /// The file at `relativePath` inside the tree (links followed), or `nil` when there is none.
    /// Callers pass only validated path segments.
    public func file(_ relativePath: String) -> CachedFile? {
        let (hit, generation) = state.withLock { ($0.files[relativePath], $0.generation) }
        if let hit { return hit }
        guard let data = FileManager.default.contents(atPath: "\(tree)/\(relativePath)") else { return nil }
        let file = CachedFile(bytes: ByteBuffer(bytes: data), etag: "\"\(SHA256Digest(of: data).hex)\"")
        state.withLock { state in
            guard state.generation == generation else { return }
            if state.bytes + data.count > limit { state.files = [:]; state.bytes = 0 }
            if let old = state.files.updateValue(file, forKey: relativePath) { state.bytes -= old.bytes.readableBytes }
            state.bytes += data.count
        }
        return file
    }

    /// The published document of `name`, as of the last completed write. Reads never wait for a write.
    public func document(_ name: PackageName) -> PackageDocument? { documents.withLock { $0[name] } }

    /// Every published document, as of the last completed write.
    public func allDocuments() -> [PackageDocument] { documents.withLock { Array($0.values) }.sorted { $0.name < $1.name } }

    /// Replaces what reads see; called when the registry opens.
    func publish(_ snapshot: [PackageName: PackageDocument]) {
        documents.withLock { $0 = snapshot }
    }

    /// Replaces one document; called during a write, once its file is in place.
    func publish(_ document: PackageDocument) {
        documents.withLock { $0[document.name] = document }
    }

    /// Forgets the document of a package whose first publish failed.
    func forget(_ name: PackageName) {
        _ = documents.withLock { $0.removeValue(forKey: name) }
    }

    /// Forgets the cached bytes of the file at `path` (relative to the tree); called when it changes. Artifacts and
    /// shards never change once written, so a write forgets only the document and the index it rewrote.
    func invalidate(_ path: String) {
        state.withLock { state in
            if let gone = state.files.removeValue(forKey: path) { state.bytes -= gone.bytes.readableBytes }
            state.generation += 1
        }
    }

    /// Forgets every cached file (after a failed write put files back).
    func invalidateAll() {
        state.withLock { $0 = ([:], 0, $0.generation + 1) }
    }
}
