import L3AFModel

/// Where things live under a registry's `--root`:
///
/// ```
/// <root>/tree/                      the static tree, served as is by l3af-registry, nginx or a CDN
///   index.json                      signed snapshot: the digest of every shard
///   index/<id>-<sha256>.json        shards: package → document digest, named by their own digest
///   packages/<name>.json            package documents
///   <name>/<version>/<platform>/l3af_<name>.tar.gz   artifacts at l3afd's URL layout ("any" for portable)
///   <name>/<tag> -> <version>       dist-tags as symbolic links, so a static server resolves `latest`
/// <root>/private/                   never served: hashed tokens, package owners, the writer lock
/// ```
public struct RegistryLayout: Sendable {
    /// The platform folder of a portable (CO-RE) package; any platform segment is answered from it.
    public static let portablePlatform = "any"
    /// Names a package can't take because the tree's own folders use them.
    public static let reservedNames: Set<String> = ["packages", "api", "search", "index", "any", "keys", "schemas", "metrics"]

    public let root: String

    public init(root: String) {
        self.root = root.hasSuffix("/") && root.count > 1 ? String(root.dropLast()) : root
    }

    public var tree: String { "\(root)/tree" }
    public var privateFolder: String { "\(root)/private" }
    public var indexFile: String { "\(tree)/index.json" }
    public var packagesFolder: String { "\(tree)/packages" }
    public var shardsFolder: String { "\(tree)/index" }
    var tokensFile: String { "\(privateFolder)/tokens.json" }
    func ownersFile(_ name: PackageName) -> String { "\(privateFolder)/owners/\(name.rawValue).json" }
    /// Where owners were kept, all in one file, before they were kept per package.
    var legacyOwnersFile: String { "\(privateFolder)/owners.json" }
    var lockFile: String { "\(privateFolder)/write.lock" }

    /// The artifact file name l3afd payloads name: stable across versions.
    public static func artifactName(for name: PackageName) -> String { "l3af_\(name.rawValue).tar.gz" }

    public func documentFile(_ name: PackageName) -> String { "\(packagesFolder)/\(name.rawValue).json" }
    public func packageFolder(_ name: PackageName) -> String { "\(tree)/\(name.rawValue)" }
    public func versionFolder(_ name: PackageName, _ version: SemanticVersion) -> String {
        "\(packageFolder(name))/\(version)"
    }

    /// The artifact's path relative to the tree, for one platform folder.
    public static func artifactPath(_ name: PackageName, _ version: SemanticVersion, platform: String) -> String {
        "\(name.rawValue)/\(version)/\(platform)/\(artifactName(for: name))"
    }

    /// The platform folders a version's artifact is stored under.
    static func platformFolders(of manifest: Manifest) -> [String] {
        manifest.platforms ?? [portablePlatform]
    }
}
