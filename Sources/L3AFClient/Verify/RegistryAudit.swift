import Foundation
import L3AFModel

/// Checks a whole registry as a client sees it: the index's signature, expiry and version; every shard
/// against its digest in the index; every package document against its digest in its shard; every artifact against its digest and size in
/// its document. Works against l3af-registry, a static server or CDN, or `file://` on the tree.
public struct RegistryAudit: Sendable {
    public let baseURL: String
    public let verifier: IndexVerifier
    public var http: HTTPClient

    public init(baseURL: String, trustedKeys: [TrustedKey], http: HTTPClient = HTTPClient()) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.verifier = IndexVerifier(trustedKeys: trustedKeys)
        self.http = http
    }

    /// What was checked.
    public struct Report: Sendable, Codable {
        public var indexVersion: UInt64
        public var shards: Int
        public var packages: Int
        public var artifacts: Int
        public var bytes: UInt64
        /// The key rotations (`keys/<n>.json`) followed to reach a key the index is signed with, when the keys given
        /// were older than it.
        public var rotationsFollowed: Int = 0

        enum CodingKeys: String, CodingKey {
            case indexVersion = "index_version"
            case shards, packages, artifacts, bytes
            case rotationsFollowed = "rotations_followed"
        }
    }

    /// Verifies everything; the first failure is thrown, naming the file and what failed.
    public func run(now: Timestamp = Timestamp(Date())) async throws -> Report {
        let (index, followed) = try await verifiedIndex(try await fetch("index.json"), now: now)
        var report = Report(indexVersion: index.version, shards: index.shards.count, packages: 0, artifacts: 0, bytes: 0, rotationsFollowed: followed)
        var listed: [(name: String, entry: RegistryIndex.Entry, shard: String)] = []
        for (id, shardEntry) in index.shards.sorted(by: { $0.key < $1.key }) {
            let shardPath = RegistryIndex.shardPath(id, shardEntry)
            let bytes = try await fetch(shardPath)
            try DigestMismatchError.check(shardPath, bytes: bytes, sha256: shardEntry.sha256, size: shardEntry.size, against: "the signed index")
            listed += try IndexShard.decode(bytes, id: id).packages.map { ($0.key, $0.value, shardPath) }
        }
        for (name, entry, shardPath) in listed.sorted(by: { $0.name < $1.name }) {
            let path = "packages/\(name).json"
            let bytes = try await fetch(path)
            try DigestMismatchError.check(path, bytes: bytes, sha256: entry.sha256, size: entry.size, against: shardPath)
            let document = try DocumentDecoder.decode(PackageDocument.self, from: bytes, document: path)
            report.packages += 1
            for version in document.versions.values.sorted(by: { $0.version < $1.version }) {
                let platform = version.manifest.platforms?.first ?? "any"
                let artifactPath = "\(name)/\(version.version)/\(platform)/\(version.artifact)"
                let artifact = try await fetch(artifactPath)
                try DigestMismatchError.check(artifactPath, bytes: artifact, sha256: version.sha256, size: version.size, against: path)
                report.artifacts += 1
                report.bytes += UInt64(artifact.count)
            }
        }
        return report
    }

    /// The index verified, and how many key rotations were followed for it. Signed by no key given, the registry may
    /// have rotated its key since: its rotations are followed as a client does (each signed by a key trusted before it;
    /// rotations older than the keys given are passed).
    func verifiedIndex(_ body: [UInt8], now: Timestamp) async throws -> (RegistryIndex, Int) {
        do { return (try verifier.verify(body, now: now), 0) } catch {
            guard case .untrusted = error.reason, let (keys, count) = try await followRotations(from: verifier.trustedKeys) else { throw error }
            return (try IndexVerifier(trustedKeys: keys).verify(body, now: now), count)
        }
    }

    /// The keys after every rotation `keys/1.json`, `keys/2.json`, … that verifies against the keys before it, and
    /// how many were followed; `nil` when none could be. Once one is followed, a later one that doesn't verify fails.
    func followRotations(from trusted: [TrustedKey]) async throws -> ([TrustedKey], Int)? {
        var keys = trusted, followed = 0
        for number in UInt64(1)...1000 {
            let path = "keys/\(number).json"
            let bytes: [UInt8]
            do { bytes = try await fetch(path) } catch { break }
            do {
                keys = try KeyRotation.verify(bytes, version: number, trusted: keys).keys
                followed += 1
            } catch {
                // A rotation from before the keys given is signed by keys not given: passed by until one verifies.
                guard followed == 0 else { throw KeyRotationError(url: "\(baseURL)/\(path)", problem: error.description) }
            }
        }
        return followed > 0 ? (keys, followed) : nil
    }

    private func fetch(_ path: String) async throws -> [UInt8] {
        let response = try await http.send(HTTPRequest(url: "\(baseURL)/\(path)"))
        // file:// transfers have no HTTP status: curl reports 0 when the read succeeded.
        guard response.status == 200 || (response.status == 0 && baseURL.hasPrefix("file:")) else {
            throw FetchStatusError(url: "\(baseURL)/\(path)", status: response.status)
        }
        return response.body
    }
}

/// Bytes that are not what signed metadata says they are.
public struct DigestMismatchError: L3AFError, Equatable {
    public let file: String
    /// What named the expected digest: "the signed index", or a package document.
    public let source: String
    public let expected: SHA256Digest
    public let actual: SHA256Digest
    public let expectedSize: UInt64
    public let actualSize: UInt64

    public var code: String { "digest-mismatch" }
    public var description: String {
        "\(file) does not match \(source): expected sha256 \(expected) (\(expectedSize) bytes), got \(actual) (\(actualSize) bytes)"
    }
    public var hint: String? { "the file was altered or corrupted after it was signed; fetch it again or restore it from the registry" }

    /// Checks that `bytes`, the file at `path`, have the digest and size `source` gives for it.
    static func check(_ path: String, bytes: [UInt8], sha256: SHA256Digest, size: UInt64, against source: String) throws(DigestMismatchError) {
        let actual = SHA256Digest(of: bytes)
        guard actual == sha256, UInt64(bytes.count) == size else {
            throw DigestMismatchError(file: path, source: source, expected: sha256, actual: actual, expectedSize: size, actualSize: UInt64(bytes.count))
        }
    }
}

/// A fetch answered with something other than 200.
public struct FetchStatusError: L3AFError, Equatable {
    public let url: String
    public let status: Int
    public var code: String { "http-\(status)" }
    public var description: String { "\(url) answered HTTP \(status)" }
}
