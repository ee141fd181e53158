/// The signed part of `index.json`: a snapshot of the whole registry.
///
/// `version` grows with every write so clients can refuse an older snapshot (a rollback attack);
/// `expires` bounds how long a snapshot is believed (a freeze attack). Each package is listed with
/// the SHA-256 and size of its document, which is how documents are authenticated.
public struct RegistryIndex: Hashable, Sendable, Codable {
    /// The index format this code writes and reads.
    public static let formatVersion = 1

    public var specVersion: Int
    public var version: UInt64
    public var issued: Timestamp
    public var expires: Timestamp
    /// Package name → its document's digest and size.
    public var packages: [String: Entry]

    /// What the index says of one package document.
    public struct Entry: Hashable, Sendable, Codable {
        public var sha256: SHA256Digest
        public var size: UInt64

        public init(sha256: SHA256Digest, size: UInt64) {
            self.sha256 = sha256
            self.size = size
        }
    }

    public init(version: UInt64, issued: Timestamp, expires: Timestamp, packages: [String: Entry] = [:]) {
        self.specVersion = Self.formatVersion
        self.version = version
        self.issued = issued
        self.expires = expires
        self.packages = packages
    }

    enum CodingKeys: String, CodingKey {
        case specVersion = "spec_version"
        case version, issued, expires, packages
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        specVersion = try c.decode(Int.self, forKey: .specVersion)
        guard specVersion == Self.formatVersion else {
            throw DecodingError.dataCorruptedError(
                forKey: .specVersion, in: c,
                debugDescription: "spec_version \(specVersion) is not supported; this l3af reads \(Self.formatVersion)")
        }
        version = try c.decode(UInt64.self, forKey: .version)
        issued = try c.decode(Timestamp.self, forKey: .issued)
        expires = try c.decode(Timestamp.self, forKey: .expires)
        guard expires > issued else {
            throw DecodingError.dataCorruptedError(forKey: .expires, in: c, debugDescription: "expires is not after issued")
        }
        packages = try c.decode([String: Entry].self, forKey: .packages)
        for name in packages.keys {
            do {
                _ = try PackageName(name)
            } catch {
                throw DecodingError.dataCorruptedError(forKey: .packages, in: c, debugDescription: error.description)
            }
        }
    }
}
