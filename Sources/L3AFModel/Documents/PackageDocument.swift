/// `packages/<name>.json`: everything a client needs to resolve and fetch a package's versions.
///
/// Its SHA-256 is listed in the signed index, so it needs no signature of its own.
public struct PackageDocument: Hashable, Sendable, Codable {
    public var name: PackageName
    public var description: String
    /// Tag → version; `latest` is present whenever a version is.
    public var distTags: [DistTag: SemanticVersion]
    /// Keyed by the version's text.
    public var versions: [String: VersionEntry]
    public var modified: Timestamp?

    public init(
        name: PackageName, description: String = "", distTags: [DistTag: SemanticVersion] = [:],
        versions: [VersionEntry] = [], modified: Timestamp? = nil
    ) {
        self.name = name
        self.description = description
        self.distTags = distTags
        self.versions = Dictionary(versions.map { ($0.version.description, $0) }, uniquingKeysWith: { $1 })
        self.modified = modified
    }

    /// The entry for `version` (build metadata ignored), if published.
    public func entry(for version: SemanticVersion) -> VersionEntry? {
        versions[version.description] ?? versions.values.first { $0.version.hasSamePrecedence(as: version) }
    }

    /// Resolves a requirement to one published version's entry, by the model's picking rules.
    public func resolve(_ requirement: VersionRequirement) throws(ResolutionError) -> VersionEntry {
        let candidates = versions.values.map { VersionCandidate($0.version, yanked: $0.yanked) }
        let picked = try requirement.pick(from: candidates, distTags: distTags, package: name.rawValue)
        return entry(for: picked)!
    }

    enum CodingKeys: String, CodingKey {
        case name, description
        case distTags = "dist-tags"
        case versions, modified
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(PackageName.self, forKey: .name)
        description = try c.decodeIfPresent(String.self, forKey: .description) ?? ""
        modified = try c.decodeIfPresent(Timestamp.self, forKey: .modified)
        versions = try c.decode([String: VersionEntry].self, forKey: .versions)
        for (key, entry) in versions where key != entry.version.description {
            throw DecodingError.dataCorruptedError(
                forKey: .versions, in: c,
                debugDescription: "the entry under '\(key)' says it is version \(entry.version)")
        }
        let rawTags = try c.decode([String: SemanticVersion].self, forKey: .distTags)
        var tags: [DistTag: SemanticVersion] = [:]
        for (key, version) in rawTags {
            do {
                tags[try DistTag(key)] = version
            } catch {
                throw DecodingError.dataCorruptedError(forKey: .distTags, in: c, debugDescription: error.description)
            }
            guard versions[version.description] != nil else {
                throw DecodingError.dataCorruptedError(
                    forKey: .distTags, in: c, debugDescription: "the tag '\(key)' points at \(version), which is not in versions")
            }
        }
        if !versions.isEmpty, tags[.latest] == nil {
            throw DecodingError.dataCorruptedError(
                forKey: .distTags, in: c, debugDescription: "a package with versions must have a 'latest' tag")
        }
        distTags = tags
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(description, forKey: .description)
        try c.encode(Dictionary(uniqueKeysWithValues: distTags.map { ($0.key.rawValue, $0.value) }), forKey: .distTags)
        try c.encode(versions, forKey: .versions)
        try c.encodeIfPresent(modified, forKey: .modified)
    }
}

/// One published version in a package document.
public struct VersionEntry: Hashable, Sendable, Codable {
    public var version: SemanticVersion
    /// The artifact's file name, the last segment of its l3afd URL.
    public var artifact: String
    public var sha256: SHA256Digest
    public var size: UInt64
    public var published: Timestamp
    public var yanked: Bool
    /// The deprecation message, if deprecated.
    public var deprecated: String?
    /// The package's manifest, so that clients see programs, hooks and parameters before fetching.
    public var manifest: Manifest

    public init(
        manifest: Manifest, artifact: String, sha256: SHA256Digest, size: UInt64, published: Timestamp,
        yanked: Bool = false, deprecated: String? = nil
    ) {
        self.version = manifest.version
        self.artifact = artifact
        self.sha256 = sha256
        self.size = size
        self.published = published
        self.yanked = yanked
        self.deprecated = deprecated
        self.manifest = manifest
    }

    /// Whether the artifact is built for `platform` (portable packages are built for all).
    public func supports(platform: String) -> Bool {
        manifest.platforms.map { $0.contains(platform) } ?? true
    }

    enum CodingKeys: String, CodingKey {
        case version, artifact, sha256, size, published, yanked, deprecated, manifest
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        version = try c.decode(SemanticVersion.self, forKey: .version)
        artifact = try c.decode(String.self, forKey: .artifact)
        guard FileName.isPlain(artifact) else {
            throw DecodingError.dataCorruptedError(
                forKey: .artifact, in: c, debugDescription: "'\(artifact)' is not a plain file name")
        }
        sha256 = try c.decode(SHA256Digest.self, forKey: .sha256)
        size = try c.decode(UInt64.self, forKey: .size)
        published = try c.decode(Timestamp.self, forKey: .published)
        yanked = try c.decodeIfPresent(Bool.self, forKey: .yanked) ?? false
        deprecated = try c.decodeIfPresent(String.self, forKey: .deprecated)
        manifest = try c.decode(Manifest.self, forKey: .manifest)
        guard manifest.version == version else {
            throw DecodingError.dataCorruptedError(
                forKey: .manifest, in: c, debugDescription: "the manifest says version \(manifest.version), the entry \(version)")
        }
    }
}
