/// The signed part of `index.json`: a snapshot of the whole registry, in shards.
///
/// `version` grows with every write so clients can refuse an older snapshot (a rollback attack);
/// `expires` bounds how long a snapshot is believed (a freeze attack). Packages are spread over up to 256
/// shards by the first byte of the SHA-256 of their name; the index lists each shard's digest and size,
/// and a shard (``IndexShard``, at ``shardPath(_:_:)``) lists its packages' document digests and sizes.
/// So the signed file stays small however many packages there are, a write re-signs one shard's digest,
/// and a client fetches the one shard its package is in (shards are named by their digest: immutable and
/// cached by it).
public struct RegistryIndex: Hashable, Sendable, Codable {
    /// The index format this code writes and reads. Format 1 listed every package in the index itself.
    public static let formatVersion = 2

    public var specVersion: Int
    public var version: UInt64
    public var issued: Timestamp
    public var expires: Timestamp
    /// Shard id (two hex digits) → the digest and size of that shard's file.
    public var shards: [String: Entry]

    /// The digest and size of a file the index (or a shard) vouches for.
    public struct Entry: Hashable, Sendable, Codable {
        public var sha256: SHA256Digest
        public var size: UInt64

        public init(sha256: SHA256Digest, size: UInt64) {
            self.sha256 = sha256
            self.size = size
        }

        /// The entry as a JSON value, as its Codable form decodes to.
        public var jsonValue: JSONValue { .object(["sha256": .string(sha256.hex), "size": .integer(Int64(clamping: size))]) }

        /// What an index or shard says of a file with these bytes.
        public init(of bytes: [UInt8]) {
            self.init(sha256: SHA256Digest(of: bytes), size: UInt64(bytes.count))
        }
    }

    public init(version: UInt64, issued: Timestamp, expires: Timestamp, shards: [String: Entry] = [:]) {
        self.specVersion = Self.formatVersion
        self.version = version
        self.issued = issued
        self.expires = expires
        self.shards = shards
    }

    /// The shard `name` is listed in: the first byte of the SHA-256 of its name, in hex.
    public static func shard(of name: String) -> String {
        String(SHA256Digest(of: Array(name.utf8)).hex.prefix(2))
    }

    /// Where a shard with this entry lives in the tree. The digest in the name makes every shard file
    /// immutable: an index and the shards it names always agree, whatever a cache in between holds.
    public static func shardPath(_ id: String, _ entry: Entry) -> String { "index/\(id)-\(entry.sha256.hex).json" }

    /// Whether `text` is a shard id (two lowercase hex digits).
    public static func isShardID(_ text: some StringProtocol) -> Bool {
        text.utf8.count == 2 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    enum CodingKeys: String, CodingKey {
        case specVersion = "spec_version"
        case version, issued, expires, shards
    }

    /// The index as a JSON value, as its Codable form would decode to (what is signed, canonically written).
    public var jsonValue: JSONValue {
        .object([
            "spec_version": .integer(Int64(specVersion)), "version": .integer(Int64(clamping: version)),
            "issued": .string(issued.description), "expires": .string(expires.description),
            "shards": .object(shards.mapValues(\.jsonValue)),
        ])
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        specVersion = try c.decode(Int.self, forKey: .specVersion)
        guard specVersion == Self.formatVersion else {
            throw DecodingError.dataCorruptedError(
                forKey: .specVersion, in: c,
                debugDescription: "spec_version \(specVersion) is not supported; this l3af reads \(Self.formatVersion)"
                    + (specVersion < Self.formatVersion ? " (upgrade the registry: format \(Self.formatVersion) shards the index)" : " (upgrade l3af)"))
        }
        version = try c.decode(UInt64.self, forKey: .version)
        issued = try c.decode(Timestamp.self, forKey: .issued)
        expires = try c.decode(Timestamp.self, forKey: .expires)
        guard expires > issued else {
            throw DecodingError.dataCorruptedError(forKey: .expires, in: c, debugDescription: "expires is not after issued")
        }
        shards = try c.decode([String: Entry].self, forKey: .shards)
        if let bad = shards.keys.first(where: { !Self.isShardID($0) }) {
            throw DecodingError.dataCorruptedError(forKey: .shards, in: c, debugDescription: "'\(bad.prefix(16))' is not a shard id (two hex digits)")
        }
    }
}

/// One shard of the index (`index/<id>-<sha256>.json`): the packages whose name hashes to it, each with the
/// digest and size of its document. Authenticated by its digest in the signed index.
public struct IndexShard: Hashable, Sendable, Codable {
    public var packages: [String: RegistryIndex.Entry]

    public init(packages: [String: RegistryIndex.Entry] = [:]) { self.packages = packages }

    /// The shard as a JSON value, as its Codable form decodes to.
    public var jsonValue: JSONValue { .object(["packages": .object(packages.mapValues(\.jsonValue))]) }

    /// The shard as written to the tree: canonical JSON, compact.
    public func canonicalBytes() throws(CanonicalJSONError) -> [UInt8] { try jsonValue.canonicalBytes() }

    enum CodingKeys: String, CodingKey { case packages }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        packages = try c.decode([String: RegistryIndex.Entry].self, forKey: .packages)
        for name in packages.keys {
            do {
                _ = try PackageName(name)
            } catch {
                throw DecodingError.dataCorruptedError(forKey: .packages, in: c, debugDescription: error.description)
            }
        }
    }

    /// Decodes shard `id`, checking that every name is a package name that belongs in it.
    public static func decode(_ bytes: [UInt8], id: String) throws(DocumentError) -> IndexShard {
        let document = "index shard \(id)"
        let shard = try DocumentDecoder.decode(IndexShard.self, from: bytes, document: document)
        for name in shard.packages.keys {
            guard RegistryIndex.shard(of: name) == id else {
                throw DocumentError(document: document, path: "packages", problem: "'\(name)' belongs in shard \(RegistryIndex.shard(of: name)), not \(id)")
            }
        }
        return shard
    }
}
