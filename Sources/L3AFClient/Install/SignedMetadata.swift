import Foundation
import L3AFModel
import L3AFSystem

/// Fetches and verifies a registry's signed metadata: the index (conditional GET with its ETag; verified
/// against the trusted keys, the last version this host accepted, and its expiry), the one shard of it that
/// lists a package (checked against its digest in the index), and package documents (checked against their
/// digest in the shard). Shards and documents are cached by digest, so an unchanged one is never fetched again.
public struct SignedMetadata: Sendable {
    public let registry: String
    public let verifier: IndexVerifier
    public let state: HostState
    public let cacheFolder: String
    /// The transport; its policy also sets the retries of ``get(_:headers:)``.
    public let http: HTTPClient
    var policy: TransferPolicy { http.policy }

    public init(registry: String, trustedKeys: [TrustedKey], state: HostState, cacheFolder: String, http: HTTPClient) {
        self.registry = registry.hasSuffix("/") ? String(registry.dropLast()) : registry
        self.verifier = IndexVerifier(trustedKeys: trustedKeys)
        self.state = state
        self.cacheFolder = cacheFolder
        self.http = http
    }

    private var indexCache: String { "\(cacheFolder)/metadata/\(SHA256Digest(of: Array(registry.utf8)).hex.prefix(16))" }

    /// Whether this host has taken a verified index from the registry (it is cached once verified).
    public var hasCachedIndex: Bool { FileManager.default.fileExists(atPath: "\(indexCache)/index.json") }

    /// The verified index. Records its version as accepted.
    public func index(now: Timestamp = Timestamp(Date())) async throws -> RegistryIndex {
        var headers: [(String, String)] = []
        let cachedBody = AtomicFile.read("\(indexCache)/index.json")
        if cachedBody != nil, let etag = AtomicFile.read("\(indexCache)/index.etag").map({ String(decoding: $0, as: UTF8.self) }) {
            headers.append(("If-None-Match", etag))
        }
        let response = try await get("\(registry)/index.json", headers: headers)
        let body = response.status == 304 ? (cachedBody ?? []) : response.body
        var versions = try state.acceptedVersions()
        var accepted: UInt64?
        let rotated = try RotatedKeys(folder: state.folder).entry(for: registry)
        func verify(_ trusted: [TrustedKey]) throws -> (RegistryIndex, String) {
            try IndexVerifier(trustedKeys: trusted).verifyWithKey(body, now: now, lastAcceptedVersion: { key in
                accepted = versions[key]
                return accepted
            })
        }
        let (index, keyID): (RegistryIndex, String)
        do {
            (index, keyID) = try verify(verifier.trustedKeys + rotated.keys)
        } catch let error as IndexVerificationError {
            // Signed by no key trusted here: the registry may have rotated its key. Follow its rotations, each signed
            // by a key trusted before it; the index must then verify with the last one's keys.
            guard case .untrusted = error.reason, !verifier.trustedKeys.isEmpty,
                  let keys = try await followRotations(after: rotated.rotation, trusted: verifier.trustedKeys + rotated.keys)
            else { throw error }
            versions = try state.acceptedVersions()
            (index, keyID) = try verify(keys)
        }
        // The state file was just read: write it (under its lock) only when this index is newer.
        if accepted.map({ $0 < index.version }) ?? true {
            // Under the state folder's lock, with an fsync: off the cooperative pool.
            let state = state, version = index.version
            try await OffPool.run { try state.recordIndexVersion(version, forKey: keyID) }
        }
        if response.status != 304 {
            // A cache: verified again on every use, so it needs no fsync.
            try? AtomicFile.write(body, to: "\(indexCache)/index.json", durable: false)
            if let etag = response.headers["etag"] { try? AtomicFile.write(Array(etag.utf8), to: "\(indexCache)/index.etag", durable: false) }
        }
        return index
    }

    /// Follows `keys/<n>.json` from rotation `after + 1` on while there are more, each checked against the keys
    /// trusted before it; records the last one's keys (and carries the index version accepted under the old keys
    /// over to them, so rollback protection doesn't restart). Nil when there is no rotation to follow.
    func followRotations(after applied: UInt64, trusted: [TrustedKey]) async throws -> [TrustedKey]? {
        var keys = trusted, number = applied
        while number < applied + 100 {
            let url = "\(registry)/keys/\(number + 1).json"
            let response: HTTPResponse
            do { response = try await get(url, headers: []) } catch let error as FetchError {
                if case .status(404, _) = error.reason { break }
                throw error
            }
            guard response.status == 200 || (response.status == 0 && registry.hasPrefix("file:")) else { break }
            do {
                keys = try KeyRotation.verify(response.body, version: number + 1, trusted: keys).keys
            } catch {
                throw KeyRotationError(url: url, problem: error.description)
            }
            number += 1
        }
        guard number > applied else { return nil }
        let before = try state.acceptedVersions()
        let carried = trusted.compactMap { before[$0.keyID] }.max()
        let state = state, registry = registry, adopted = keys, rotation = number
        try await OffPool.run {
            if let carried { for key in adopted { try state.recordIndexVersion(carried, forKey: key.keyID) } }
            try RotatedKeys(folder: state.folder).record(rotation, keys: adopted, for: registry)
        }
        return keys
    }

    /// The document of `name`, verified against `index`: its shard against the index, the document against the shard.
    public func document(_ name: PackageName, in index: RegistryIndex) async throws -> PackageDocument {
        let id = RegistryIndex.shard(of: name.rawValue)
        guard let shardEntry = index.shards[id] else { throw PackageNotFoundError(package: name.rawValue, registry: registry) }
        let shardPath = RegistryIndex.shardPath(id, shardEntry)
        let shard = try IndexShard.decode(try await verified(shardPath, shardEntry, against: "the signed index"), id: id)
        guard let entry = shard.packages[name.rawValue] else { throw PackageNotFoundError(package: name.rawValue, registry: registry) }
        let path = "packages/\(name).json"
        return try DocumentDecoder.decode(PackageDocument.self, from: try await verified(path, entry, against: shardPath), document: path)
    }

    /// The bytes of `path` in the registry, checked against `entry`. Kept in a cache named by the digest, and checked
    /// against it on every use: an unchanged file is never fetched again, and a torn or altered copy is fetched again.
    func verified(_ path: String, _ entry: RegistryIndex.Entry, against source: String) async throws -> [UInt8] {
        let cached = "\(cacheFolder)/documents/\(entry.sha256.hex).json"
        if let bytes = AtomicFile.read(cached), SHA256Digest(of: bytes) == entry.sha256 { return bytes }
        let url = "\(registry)/\(path)"
        let response = try await get(url, headers: [])
        guard response.status == 200 || (response.status == 0 && registry.hasPrefix("file:")) else {
            throw FetchError(url: url, reason: .status(response.status, attempts: 1))
        }
        try DigestMismatchError.check(path, bytes: response.body, sha256: entry.sha256, size: entry.size, against: source)
        try? AtomicFile.write(response.body, to: cached, durable: false)
        return response.body
    }

    /// A GET with retries on transient failures (timeouts, resets, 408/429/5xx), honouring `Retry-After`.
    func get(_ url: String, headers: [(String, String)]) async throws -> HTTPResponse {
        var attempt = 0
        while true {
            attempt += 1
            do {
                let response = try await http.send(HTTPRequest(url: url, headers: headers))
                if TransferPolicy.isRetryable(status: response.status), attempt < policy.maximumAttempts {
                    let retryAfter = response.headers["retry-after"].flatMap { RetryAfter.delay($0, limit: policy.maximumRetryAfterSeconds) }
                    try await Task.sleep(for: .seconds(policy.delay(afterAttempt: attempt, retryAfter: retryAfter)))
                    continue
                }
                if response.status >= 400 {
                    throw FetchError(url: url, reason: .status(response.status, attempts: attempt))
                }
                return response
            } catch let error as TransportError where attempt < policy.maximumAttempts && error.code != "protocol-not-allowed" {
                try await Task.sleep(for: .seconds(policy.delay(afterAttempt: attempt, retryAfter: nil)))
            } catch let error as TransportError {
                throw FetchError(url: url, reason: .transport(error.message, attempts: attempt))
            }
        }
    }
}

/// A key rotation a registry serves that can't be followed.
public struct KeyRotationError: L3AFError {
    public let url: String
    public let problem: String
    public var code: String { "key-rotation-refused" }
    public var description: String { "the registry's key rotation \(url) is refused: \(problem)" }
    public var hint: String? { "nothing was trusted from it; if the registry's key really changed, add the new key to trusted_keys" }
}

/// A package the registry's signed index does not list.
public struct PackageNotFoundError: L3AFError, Equatable {
    public let package: String
    public let registry: String
    public var code: String { "no-such-package" }
    public var description: String { "no package named '\(package)' in the registry at \(registry)" }
    public var hint: String? { "check the name with l3af search" }
}
