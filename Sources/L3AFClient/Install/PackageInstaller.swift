import Foundation
import L3AFArchive
import L3AFModel
import L3AFSystem

/// One package version placed in the repo.
public struct InstalledPackage: Codable, Sendable, Equatable {
    /// How the artifact was obtained this time.
    public enum Source: String, Codable, Sendable {
        /// Already unpacked and verified: nothing fetched.
        case installed
        /// Unpacked from the local cache: no artifact request.
        case cached
        case downloaded
    }

    public let name: String
    public let version: String
    public let path: String
    public let sha256: SHA256Digest
    public let source: Source
    public let unsigned: Bool
    public let yanked: Bool
    public let deprecated: String?
}

/// Resolves, fetches, verifies and unpacks packages from a signed registry:
/// index (signature, rollback, freeze) → documents (digest in the index) → resolution → artifacts
/// (cache by sha256, else several at once with the downloader; sha256 and size checked) → safe unpack.
/// Every package is resolved and every download verified before anything is unpacked.
public struct PackageInstaller: Sendable {
    public let configuration: ClientConfiguration
    public let trustedKeys: [TrustedKey]
    public let platform: String
    public let policy: TransferPolicy
    public let unpacker: Unpacker

    public init(configuration: ClientConfiguration, platform: String = PackageInstaller.hostPlatform()) throws {
        self.configuration = configuration
        self.trustedKeys = try configuration.trustedKeys.map { try TrustedKey(base64: $0) }
        self.platform = platform
        self.policy = configuration.transferPolicy
        self.unpacker = Unpacker()
    }

    var http: HTTPClient { HTTPClient(policy: policy) }

    /// This host's platform segment, as l3afd names it: the distribution's codename (`focal`, `bookworm`).
    public static func hostPlatform() -> String {
        guard let text = try? String(contentsOfFile: "/etc/os-release", encoding: .utf8) else { return "linux" }
        for line in text.split(separator: "\n") where line.hasPrefix("VERSION_CODENAME=") {
            return String(line.dropFirst("VERSION_CODENAME=".count)).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        }
        return "linux"
    }

    /// Installs every spec; returns them in order.
    public func fetch(
        _ specs: [PackageSpec], progress: (@Sendable (UInt64, UInt64) -> Void)? = nil
    ) async throws -> [InstalledPackage] {
        guard let registry = configuration.registry, !registry.isEmpty else {
            throw ConfigurationError(description: "no registry URL is configured", hint: "pass --registry URL, set L3AF_REGISTRY, or add \"registry\" to \(ClientConfiguration.defaultFile)")
        }
        let metadata = signedMetadata(from: registry)
        if let installed = installedExactly(specs, source: metadata.registry) { return installed }
        let index = try await metadata.index()
        // Resolve everything first: a bad spec changes nothing.
        var chosen: [(spec: PackageSpec, entry: VersionEntry)] = []
        for spec in specs {
            let document = try await metadata.document(spec.name, in: index)
            let entry = try document.resolve(spec.requirement)
            guard entry.supports(platform: platform) else {
                throw PlatformError(package: "\(spec.name)@\(entry.version)", platform: platform, built: entry.manifest.platforms ?? [])
            }
            chosen.append((spec, entry))
        }
        // Downloads run without the repo lock: they land in the cache, renamed into place once verified.
        var jobs: [(index: Int, job: DownloadJob)] = []
        for (i, item) in chosen.enumerated() {
            let name = item.spec.name.rawValue, version = item.entry.version.description
            let folder = Unpacker.versionFolder(repo: configuration.repo, name: name, version: version)
            if FileManager.default.fileExists(atPath: "\(folder)/\(InstallMarker.fileName)") { continue }
            let cached = cachePath(item.entry.sha256)
            if let digest = FileDigest.sha256(of: cached), digest.sha256 == item.entry.sha256, digest.size == item.entry.size { continue }
            let segment = item.entry.manifest.platforms == nil ? "any" : platform
            let url = "\(metadata.registry)/\(name)/\(version)/\(segment)/\(item.entry.artifact)"
            jobs.append((i, DownloadJob(url: url, destination: cached, partial: "\(configuration.cache)/partial/\(item.entry.sha256.hex).part",
                                        size: item.entry.size, sha256: item.entry.sha256)))
        }
        var downloaded = Set<Int>()
        if !jobs.isEmpty {
            let outcomes = await Downloader(policy: policy).run(jobs.map(\.job), progress: progress)
            for (job, outcome) in zip(jobs, outcomes) {
                if case .failure(let error) = outcome { throw error }
                downloaded.insert(job.index)
            }
        }
        // Placing into the repo happens under its lock: one process at a time decides what a folder holds. A folder
        // with a marker is complete (it was renamed in whole), so when every version has one no lock is needed.
        let repo = configuration.repo, unpacker = self.unpacker, cache = configuration.cache, source = metadata.registry
        let chosenItems = chosen.map { (name: $0.spec.name.rawValue, entry: $0.entry) }
        let allInstalled = chosenItems.allSatisfy { item in
            FileManager.default.fileExists(atPath: "\(Unpacker.versionFolder(repo: repo, name: item.name, version: item.entry.version.description))/\(InstallMarker.fileName)")
        }
        let place: @Sendable () throws -> [(path: String, installed: Bool)] = {
            try chosenItems.map { item -> (path: String, installed: Bool) in
                let version = item.entry.version.description
                let folder = Unpacker.versionFolder(repo: repo, name: item.name, version: version)
                if let marker = InstallMarker.read(in: folder) {
                    try Self.checkReuse(marker, folder: folder, artifact: item.entry.artifact, sha256: item.entry.sha256, unsigned: false,
                                        what: "\(item.name)@\(version) from \(source)")
                    return ("\(folder)/\(Unpacker.artifactBase(item.entry.artifact))", true)
                }
                if FileManager.default.fileExists(atPath: folder) {
                    throw InstalledCheckError(description: "\(folder) exists but was not installed by l3af", hint: "move it away, then fetch again")
                }
                let path = try unpacker.unpack(tarball: "\(cache)/artifacts/\(item.entry.sha256.hex).tar.gz", repo: repo, name: item.name, version: version,
                                               artifact: item.entry.artifact, sha256: item.entry.sha256, source: source, unsigned: false)
                return (path, false)
            }
        }
        let placed = allInstalled ? try place() : try await Self.withRepoLock(repo, place)
        return chosen.enumerated().map { i, item in
            installed(item, path: placed[i].path, source: placed[i].installed ? .installed : downloaded.contains(i) ? .downloaded : .cached)
        }
    }

    /// Runs `body` holding the repo's lock (`<repo>/.lock`, flock), on a thread of its own: every process that
    /// unpacks into the repo or clears its leftovers takes it, so none deletes another's staging folder or decides
    /// on a folder another is filling. Leftovers of interrupted unpacks are removed first: under the lock, any
    /// staging folder is a dead process's.
    static func withRepoLock<T: Sendable>(_ repo: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await OffPool.run {
            try FileLock.withLock("\(repo)/.lock") {
                Unpacker.removeLeftovers(in: repo)
                return try body()
            }
        }
    }

    /// An installed version is reused only when it holds exactly what is asked for: the same artifact, the same
    /// digest, and the same trust (a folder installed unsigned never answers for a signed install, nor one from
    /// another plain repository for this one).
    static func checkReuse(_ marker: InstallMarker, folder: String, artifact: String, sha256: SHA256Digest?, source: String? = nil,
                           unsigned: Bool, what: String) throws {
        var differences: [String] = []
        if marker.unsigned != unsigned { differences.append(marker.unsigned ? "it was installed unsigned" : "it was installed from a signed registry") }
        if marker.artifact != artifact { differences.append("its artifact is \(marker.artifact), not \(artifact)") }
        if let sha256, marker.sha256 != sha256 { differences.append("its sha256 is \(marker.sha256), not \(sha256)") }
        if let source, marker.source != source { differences.append("it came from \(marker.source), not \(source)") }
        guard differences.isEmpty else {
            throw InstalledCheckError(description: "\(folder) holds something other than \(what): " + differences.joined(separator: "; "),
                                      hint: "remove \(folder) (l3af verify shows what it holds), then fetch again")
        }
    }

    /// Installs an artifact from a plain l3afd repository (`<repo>/<name>/<version>/<platform>/<artifact>`), which
    /// signs nothing: allowed when `allowed` (the operator named the repository) or listed in `allow_unsigned`. The
    /// version, artifact and platform become URL and path segments, so each must be a plain name.
    ///
    /// Trust on first use: the sha256 of what a URL served first is recorded (``ArtifactDigests``); a fixed version
    /// installed with that digest is used without a request, and any other fetch of the URL must serve the same bytes,
    /// else it is refused, naming both digests. A moving version (`latest`) is fetched every time and may change: each
    /// of its builds is installed as `latest-<digest prefix>`, so what `latest` meant in an earlier revision stays
    /// installed for rollback.
    public func fetchUnsigned(name: PackageName, version: String, artifact: String, from repository: String, allowed: Bool) async throws -> InstalledPackage {
        let base = repository.hasSuffix("/") ? String(repository.dropLast()) : repository
        guard allowed || configuration.allowUnsigned.contains(where: { $0 == repository || $0 == base }) else {
            throw UnsignedSourceError(repository: base)
        }
        guard BPFProgram.repositorySchemes.contains(urlScheme(of: base) ?? "") else {
            throw ConfigurationError(description: "'\(base)' is not a file, http or https URL", hint: "e.g. file:///srv/l3afd or https://repo.example")
        }
        _ = try FileName(version, field: "version")
        _ = try FileName(artifact, field: "artifact")
        _ = try FileName(platform, field: "platform")
        guard artifact.hasSuffix(".tar.gz") || artifact.hasSuffix(".tgz") || artifact.hasSuffix(".zip") else {
            throw ConfigurationError(description: "artifact '\(artifact)' is neither a .tar.gz nor a .zip", hint: "l3afd repositories serve l3af_<name>.tar.gz or .zip")
        }
        // A repository this host has taken a signed index from is never taken for a plain one: an index that is
        // suddenly missing is an attack or a broken mirror, not a reason to load unsigned code.
        guard !signedMetadata(from: base).hasCachedIndex else {
            throw InstalledCheckError(description: "\(base) served a signed index to this host before; its artifacts are not taken unsigned",
                                      hint: "install from it as a registry with its trusted key; if its index went missing, check the repository")
        }
        let url = "\(base)/\(name)/\(version)/\(platform)/\(artifact)"
        let digests = ArtifactDigests(folder: configuration.state)
        let moving = MovingVersion.isMoving(version)
        let repo = configuration.repo
        if !moving {
            // A fixed version installed from this URL with the digest recorded for it: used as it is, with no request,
            // so a host re-applies what it runs while its repository is down.
            let folder = Unpacker.versionFolder(repo: repo, name: name.rawValue, version: version)
            if let marker = InstallMarker.read(in: folder), marker.unsigned, marker.source == url, marker.artifact == artifact,
               try await OffPool.run({ try digests.recorded(url) }) == marker.sha256 {
                return InstalledPackage(name: name.rawValue, version: version, path: "\(folder)/\(Unpacker.artifactBase(artifact))", sha256: marker.sha256,
                                        source: .installed, unsigned: true, yanked: false, deprecated: nil)
            }
        }
        let response = try await signedMetadata(from: base).get(url, headers: [])
        let sha256 = SHA256Digest(of: response.body)
        try await OffPool.run { try digests.check(url, sha256: sha256, moving: moving) }
        let installedVersion = moving ? MovingVersion.build(version, digestHex: sha256.hex) : version
        let folder = Unpacker.versionFolder(repo: repo, name: name.rawValue, version: installedVersion)
        let reuse: @Sendable () throws -> InstalledPackage? = {
            guard let marker = InstallMarker.read(in: folder) else { return nil }
            try Self.checkReuse(marker, folder: folder, artifact: artifact, sha256: sha256, source: url, unsigned: true, what: "\(name)@\(version) from \(url)")
            return InstalledPackage(name: name.rawValue, version: installedVersion, path: "\(folder)/\(Unpacker.artifactBase(artifact))", sha256: marker.sha256,
                                    source: .installed, unsigned: true, yanked: false, deprecated: nil)
        }
        try AtomicFile.write(response.body, to: cachePath(sha256), mode: 0o600)
        let unpacker = self.unpacker, tarball = cachePath(sha256)
        let installed = try await Self.withRepoLock(repo) {
            if let installed = try reuse() { return installed }
            let path = try unpacker.unpack(tarball: tarball, repo: repo, name: name.rawValue, version: installedVersion,
                                           artifact: artifact, sha256: sha256, source: url, unsigned: true)
            return InstalledPackage(name: name.rawValue, version: installedVersion, path: path, sha256: sha256, source: .downloaded, unsigned: true,
                                    yanked: false, deprecated: nil)
        }
        // Recorded once it unpacked: bytes that never installed are not what this host trusts.
        try await OffPool.run { try digests.record(url, sha256: sha256, moving: moving) }
        return installed
    }

    /// A build of l3afd itself for a graceful restart: `<base>/<version>/<artifact>` (file, http or https), trusted on
    /// first use as a plain repository's artifact is (other bytes at a URL this host fetched before are refused), and
    /// unpacked with the package unpacker's checks into `<folder>/<version>/<artifact base>/`. A version already
    /// unpacked there is used only when its files still hash to what its marker recorded and that is what was served.
    /// Returns the unpacked folder.
    public func fetchDaemonBuild(from base: String, version: String, artifact: String, into folder: String) async throws -> String {
        let base = base.hasSuffix("/") ? String(base.dropLast()) : base
        guard BPFProgram.repositorySchemes.contains(urlScheme(of: base) ?? "") else {
            throw ConfigurationError(description: "'\(base)' is not a file, http or https URL", hint: "e.g. file:///srv/l3afd or https://repo.example")
        }
        _ = try FileName(version, field: "version")
        _ = try FileName(artifact, field: "artifact")
        let url = "\(base)/\(version)/\(artifact)"
        let response = try await signedMetadata(from: base).get(url, headers: [])
        let sha256 = SHA256Digest(of: response.body)
        let digests = ArtifactDigests(folder: configuration.state)
        try await OffPool.run { try digests.check(url, sha256: sha256, moving: false) }
        try AtomicFile.write(response.body, to: cachePath(sha256), mode: 0o600)
        // A build is one large binary, not a package of small objects.
        let unpacker = Unpacker(limits: ArchiveLimits(maximumEntries: 100, maximumFileBytes: 512 << 20, maximumTotalBytes: 512 << 20))
        let tarball = cachePath(sha256), parent = (folder as NSString).deletingLastPathComponent, name = (folder as NSString).lastPathComponent
        let path = try await OffPool.run { () throws -> String in
            let path = try unpacker.unpack(tarball: tarball, repo: parent, name: name, version: version, artifact: artifact, sha256: sha256,
                                           source: url, unsigned: true)
            let marker = try Unpacker.check(repo: parent, name: name, version: version)
            guard marker.sha256 == sha256 else {
                throw InstalledCheckError(description: "\(folder)/\(version) holds another build (sha256 \(marker.sha256)) than \(url) serves (\(sha256))",
                                          hint: "remove \(folder)/\(version), then ask again")
            }
            return path
        }
        try await OffPool.run { try digests.record(url, sha256: sha256, moving: false) }
        return path
    }

    /// Whether `repository` is a signed registry (it serves `index.json`) rather than a plain l3afd repository. Only
    /// "not there" means plain: any other failure is an error, so a registry that is down is never taken for a plain one.
    public func servesSignedIndex(_ repository: String) async throws -> Bool {
        let base = repository.hasSuffix("/") ? String(repository.dropLast()) : repository
        if base == configuration.registry { return true }
        // A "no" for a repository that served this host a signed index before is refused by `fetchUnsigned`.
        return urlScheme(of: base) == "file"
            ? URL(string: "\(base)/index.json").map { FileManager.default.fileExists(atPath: $0.path) } ?? false
            : try await servesIndexOverHTTP(base)
    }

    /// `GET <base>/index.json`: 200 is a signed registry, 404 or 410 a plain repository, anything else an error.
    private func servesIndexOverHTTP(_ base: String) async throws -> Bool {
        let response: HTTPResponse
        do { response = try await http.send(HTTPRequest(url: "\(base)/index.json", headers: [])) } catch let error as TransportError {
            throw FetchError(url: "\(base)/index.json", reason: .transport(error.message, attempts: 1))
        }
        switch response.status {
        case 200: return true
        case 404, 410: return false
        default: throw FetchError(url: "\(base)/index.json", reason: .status(response.status, attempts: 1))
        }
    }

    /// Re-checks an installed version: its files against its marker, and the marker against the registry's
    /// signed metadata.
    public func verify(name: PackageName, version: SemanticVersion) async throws -> InstallMarker {
        let marker = try Unpacker.check(repo: configuration.repo, name: name.rawValue, version: version.description)
        guard !marker.unsigned else { return marker }
        guard let registry = configuration.registry else { return marker }
        let metadata = signedMetadata(from: registry)
        let document = try await metadata.document(name, in: try await metadata.index())
        guard let entry = document.entry(for: version) else {
            throw InstalledCheckError(description: "\(name)@\(version) is installed but the registry at \(registry) does not list it", hint: nil)
        }
        guard entry.sha256 == marker.sha256 else {
            throw InstalledCheckError(description: "\(name)@\(version) was installed from an artifact (sha256 \(marker.sha256)) the signed registry does not list (\(entry.sha256))",
                                      hint: "remove it and fetch again")
        }
        return marker
    }

    /// The signed-metadata reader for `registry`, with this host's keys, state, cache and transfer policy.
    private func signedMetadata(from registry: String) -> SignedMetadata {
        SignedMetadata(registry: registry, trustedKeys: trustedKeys, state: HostState(folder: configuration.state),
                       cacheFolder: configuration.cache, http: http)
    }

    public func cachePath(_ sha256: SHA256Digest) -> String { "\(configuration.cache)/artifacts/\(sha256.hex).tar.gz" }

    /// When every spec names an exact version (`name@=1.2.3`) that is installed from `source`, those versions:
    /// nothing is asked of the registry, since a published version never changes and each install marker holds the
    /// digest verified when it was unpacked. A host pinned to exact versions so keeps working while its registry
    /// is unreachable. Otherwise `nil`, and the specs are resolved against the signed index as usual.
    private func installedExactly(_ specs: [PackageSpec], source: String) -> [InstalledPackage]? {
        var found: [InstalledPackage] = []
        for spec in specs {
            guard let version = spec.requirement.exactVersion else { return nil }
            let folder = Unpacker.versionFolder(repo: configuration.repo, name: spec.name.rawValue, version: version.description)
            guard let marker = InstallMarker.read(in: folder), !marker.unsigned, marker.source == source,
                  marker.version == version.description else { return nil }
            found.append(InstalledPackage(name: marker.name, version: marker.version, path: "\(folder)/\(Unpacker.artifactBase(marker.artifact))",
                                          sha256: marker.sha256, source: .installed, unsigned: false, yanked: false, deprecated: nil))
        }
        return found
    }

    private func installed(_ item: (spec: PackageSpec, entry: VersionEntry), path: String, source: InstalledPackage.Source) -> InstalledPackage {
        InstalledPackage(name: item.spec.name.rawValue, version: item.entry.version.description, path: path, sha256: item.entry.sha256,
                         source: source, unsigned: false, yanked: item.entry.yanked, deprecated: item.entry.deprecated)
    }
}

/// A package not built for this host's platform.
public struct PlatformError: L3AFError {
    public let package: String
    public let platform: String
    public let built: [String]
    public var code: String { "platform-not-built" }
    public var description: String { "\(package) is not built for this platform '\(platform)' (built for: \(built.joined(separator: ", ")))" }
    public var hint: String? { "pick a version built for \(platform), or pass --platform" }
}

/// An unsigned source the user did not allow.
public struct UnsignedSourceError: L3AFError {
    public let repository: String
    public var code: String { "unsigned-source-not-allowed" }
    public var description: String { "\(repository) serves unsigned artifacts, which are not allowed from it" }
    public var hint: String? { "pass --allow-unsigned, or list it under \"allow_unsigned\" in \(ClientConfiguration.defaultFile)" }
}
