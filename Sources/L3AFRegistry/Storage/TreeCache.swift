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
    private let state = Mutex<(files: [String: CachedFile], bytes: Int)>(([:], 0))

    init(tree: String, limit: Int = 256 << 20) {
        self.tree = tree
        self.limit = limit
    }

    /// The file at `relativePath` inside the tree (links followed), or `nil` when there is none.
    /// Callers pass only validated path segments.
    public func file(_ relativePath: String) -> CachedFile? {
        if let hit = state.withLock({ $0.files[relativePath] }) { return hit }
        guard let data = FileManager.default.contents(atPath: "\(tree)/\(relativePath)") else { return nil }
        let file = CachedFile(bytes: ByteBuffer(bytes: data), etag: "\"\(SHA256Digest(of: data).hex)\"")
        state.withLock { state in
            if state.bytes + data.count > limit { state = ([:], 0) }
            state.files[relativePath] = file
            state.bytes += data.count
        }
        return file
    }

    /// Forgets everything; called after every write.
    func invalidateAll() {
        state.withLock { $0 = ([:], 0) }
    }
}
