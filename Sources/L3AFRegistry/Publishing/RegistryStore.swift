import Foundation
import L3AFModel
import L3AFPackage
import L3AFSystem
import Logging

/// The registry's single writer. Every change follows one order, each step atomic (temp + fsync + rename):
/// artifact files, then the package document, then the dist-tag links, then the re-signed index with a
/// higher version. A crash between steps leaves files the old index doesn't reference; ``open`` finishes
/// or undoes them, so after a restart the tree is the old one or the new one and its signature verifies.
public actor RegistryStore {
    public let layout: RegistryLayout
    let key: IndexSigningKey
    let indexLifetime: Int64
    let now: @Sendable () -> Timestamp
    let logger: Logger
    let lock: RegistryLock
    let cache: TreeCache

    private(set) var documents: [PackageName: PackageDocument] = [:]
    /// Every package by its ``PackageName/collisionKey``, so a new name is checked against all of them at once.
    private var collisionKeys: [String: PackageName] = [:]
    private(set) var index: RegistryIndex
    /// The shards the signed index names, by id.
    private(set) var shards: [String: IndexShard] = [:]
    /// Per shard id, the file the index named before the current one: kept for clients that read the
    /// previous index a moment ago, removed when the shard changes again.
    private var retiredShards: [String: String] = [:]

    /// Opens (creating if needed) the registry at `layout`, repairing what a crash left behind.
    public init(
        layout: RegistryLayout, key: IndexSigningKey, indexLifetimeSeconds: Int64 = 7 * 86_400,
        now: @escaping @Sendable () -> Timestamp = { Timestamp(Date()) }, logger: Logger = Logger(label: "l3af.registry")
    ) throws(RegistryError) {
        try RegistryFiles.makeFolders(layout.packagesFolder)
        try RegistryFiles.makeFolders(layout.privateFolder)
        try RegistryFiles.makeFolders(layout.shardsFolder)
        self.layout = layout
        self.key = key
        self.indexLifetime = indexLifetimeSeconds
        self.now = now
        self.logger = logger
        self.lock = RegistryLock(path: layout.lockFile)
        self.cache = TreeCache(tree: layout.tree)
        let stamp = now(), cache = self.cache
        // One step under the writer lock, so no other writer's unsigned shard is taken for a leftover.
        let (recovered, index, shards) = try lock.withLock { () throws(RegistryError) in
            try Credentials.splitOwnersFile(layout)
            let recovered = try Recovery.run(layout: layout, logger: logger)
            var index = recovered.index
                ?? RegistryIndex(version: recovered.formerVersion ?? 0, issued: stamp, expires: stamp.adding(seconds: indexLifetimeSeconds))
            // The shards as the documents on disk make them; an index that names other shards missed the end of a write.
            var shards: [String: IndexShard] = [:]
            for (name, entry) in recovered.entries { shards[RegistryIndex.shard(of: name.rawValue), default: IndexShard()].packages[name.rawValue] = entry }
            var shardEntries: [String: RegistryIndex.Entry] = [:]
            for (id, shard) in shards { shardEntries[id] = try Self.writeShard(shard, id: id, layout: layout, onlyWhenMissing: true) }
            if recovered.index == nil || index.shards != shardEntries {
                if recovered.index != nil { logger.warning("completing an interrupted write: re-signing the index over the documents on disk") }
                try Self.signAndWrite(&index, shards: shardEntries, key: key, lifetime: indexLifetimeSeconds, now: stamp, layout: layout, cache: cache)
            }
            Recovery.removeShards(in: layout, except: Set(index.shards.map { RegistryIndex.shardPath($0.key, $0.value) }), logger: logger)
            return (recovered, index, shards)
        }
        self.documents = recovered.documents
        self.collisionKeys = Dictionary(recovered.documents.keys.map { ($0.collisionKey, $0) }, uniquingKeysWith: { a, _ in a })
        self.shards = shards
        self.index = index
        cache.publish(recovered.documents)
    }

    /// Checks, from the request's headers alone, that `token` may write `name`: known, its scope covers the name,
    /// and its owner owns the package once it exists. Called before an upload's body is read, so a stranger costs
    /// no memory, no libarchive and no libbpf.
    public nonisolated func authorize(_ token: String?, for name: PackageName) throws(RegistryError) {
        let credentials = try Credentials.load(layout, for: name)
        let record = try credentials.authenticate(token)
        try credentials.authorize(record, for: name)
    }

    /// The current index version.
    public func indexVersion() -> UInt64 { index.version }

    /// The signed index being served.
    public func currentIndex() -> RegistryIndex { index }

    /// The cache that serves the tree's files.
    public nonisolated var files: TreeCache { cache }

    // MARK: Writes

    /// Publishes `tarball` as `name@version`. The manifest inside must say the same name and version.
    /// The tarball is inspected before the writer is entered, so a large upload holds up no one.
    public nonisolated func publish(
        name: PackageName, version: SemanticVersion, tarball: [UInt8], tag: DistTag?, token: String?
    ) async throws(RegistryError) -> PublishReceipt {
        try authorize(token, for: name)
        // libarchive and libbpf are blocking C: on a thread of their own, never on the cooperative pool.
        let inspected: InspectedPackage
        do {
            inspected = try await OffPool.run { () throws(PackageError) in try PackageInspector.inspect(tarball, name: "\(name)@\(version)") }
        } catch {
            throw RegistryError.invalid(error)
        }
        return try await write(inspected, name: name, version: version, tarball: tarball, tag: tag, token: token)
    }

    private func write(
        _ inspected: InspectedPackage, name: PackageName, version: SemanticVersion, tarball: [UInt8], tag: DistTag?, token: String?
    ) throws(RegistryError) -> PublishReceipt {
        guard inspected.manifest.name == name, inspected.manifest.version == version else {
            throw RegistryError(.badRequest, "manifest-mismatch",
                                "the upload is for \(name)@\(version) but its manifest says \(inspected.manifest.name)@\(inspected.manifest.version)",
                                hint: "publish the tarball under the name and version its l3af.json gives")
        }
        if RegistryLayout.reservedNames.contains(name.rawValue) {
            throw RegistryError(.badRequest, "reserved-name", "'\(name)' is reserved by the registry's own folders",
                                hint: "choose another package name")
        }
        return try write(name, token: token, allowNew: true) { () throws(RegistryError) -> (PackageDocument, PublishReceipt) in
            var doc = documents[name] ?? PackageDocument(name: name)
            if let existing = doc.entry(for: version) {
                guard existing.sha256 == inspected.sha256 else {
                    throw RegistryError(.conflict, "version-exists",
                                        "\(name)@\(existing.version) is already published with different contents (sha256 \(existing.sha256)); published versions never change",
                                        hint: "publish a new version number")
                }
                let tags = doc.distTags.filter { $0.value == existing.version }.keys.map(\.rawValue).sorted()
                return (doc, PublishReceipt(name: name.rawValue, version: existing.version.description, sha256: existing.sha256.hex,
                                           size: existing.size, tags: tags, created: false,
                                           artifactPath: RegistryLayout.artifactPath(name, existing.version, platform: RegistryLayout.platformFolders(of: existing.manifest)[0])))
            }
            if let collision = collisionKeys[name.collisionKey], collision != name {
                throw RegistryError(.conflict, "name-collision", "'\(name)' collides with the existing package '\(collision)' ('-' and '_' count as the same)",
                                    hint: "publish under '\(collision)' or choose another name")
            }
            // 1. The artifact, under each platform folder (hard links to one file).
            let platforms = RegistryLayout.platformFolders(of: inspected.manifest)
            let first = "\(layout.tree)/\(RegistryLayout.artifactPath(name, version, platform: platforms[0]))"
            try RegistryFiles.write(tarball, to: first)
            for platform in platforms.dropFirst() {
                let path = "\(layout.tree)/\(RegistryLayout.artifactPath(name, version, platform: platform))"
                try RegistryFiles.makeFolders((path as NSString).deletingLastPathComponent)
                unlink(path)
                guard link(first, path) == 0 else { throw .io("linking \(path)", errno: errno) }
            }
            // 2. The document.
            let stamp = now()
            doc.versions[version.description] = VersionEntry(
                manifest: inspected.manifest, artifact: RegistryLayout.artifactName(for: name), sha256: inspected.sha256,
                size: inspected.size, published: stamp)
            if doc.description.isEmpty || Self.isNewest(version, in: doc) { doc.description = inspected.manifest.description }
            var tags: [DistTag] = []
            if let tag { doc.distTags[tag] = version; tags.append(tag) }
            if tag == nil || doc.distTags[.latest] == nil, Self.shouldMoveLatest(to: version, in: doc) {
                doc.distTags[.latest] = version
                if !tags.contains(.latest) { tags.append(.latest) }
            }
            doc.modified = stamp
            return (doc, PublishReceipt(name: name.rawValue, version: version.description, sha256: inspected.sha256.hex,
                                       size: inspected.size, tags: tags.map(\.rawValue).sorted(), created: true,
                                       artifactPath: RegistryLayout.artifactPath(name, version, platform: platforms[0])))
        }
    }

    /// Marks `name@version` yanked (or not). Yanking the version `latest` points at moves `latest` to the
    /// newest release that is not yanked.
    public func setYanked(_ yanked: Bool, name: PackageName, version: SemanticVersion, token: String?) throws(RegistryError) -> VersionEntry {
        try write(name, token: token) { () throws(RegistryError) -> (PackageDocument, VersionEntry) in
            var doc = try existing(name)
            guard var entry = doc.entry(for: version) else { throw Self.noSuchVersion(name, version, in: doc) }
            entry.yanked = yanked
            doc.versions[entry.version.description] = entry
            if yanked, doc.distTags[.latest] == entry.version,
               let replacement = doc.versions.values.filter({ !$0.yanked && !$0.version.isPrerelease }).map(\.version).max()
            {
                doc.distTags[.latest] = replacement
            }
            doc.modified = now()
            return (doc, entry)
        }
    }

    /// Points `tag` at `version`.
    public func setTag(_ tag: DistTag, name: PackageName, version: SemanticVersion, token: String?) throws(RegistryError) -> [String: String] {
        try write(name, token: token) { () throws(RegistryError) -> (PackageDocument, [String: String]) in
            var doc = try existing(name)
            guard let entry = doc.entry(for: version) else { throw Self.noSuchVersion(name, version, in: doc) }
            doc.distTags[tag] = entry.version
            doc.modified = now()
            return (doc, Self.tagTable(doc))
        }
    }

    /// Removes `tag`; `latest` can't be removed while versions exist.
    public func removeTag(_ tag: DistTag, name: PackageName, token: String?) throws(RegistryError) -> [String: String] {
        try write(name, token: token) { () throws(RegistryError) -> (PackageDocument, [String: String]) in
            var doc = try existing(name)
            guard tag != .latest else {
                throw RegistryError(.badRequest, "latest-required", "the 'latest' tag can't be removed", hint: "point it at another version instead")
            }
            guard doc.distTags.removeValue(forKey: tag) != nil else {
                throw RegistryError(.notFound, "no-such-tag", "\(name) has no tag '\(tag)'")
            }
            doc.modified = now()
            return (doc, Self.tagTable(doc))
        }
    }

    /// Sets (or with an empty message clears) the deprecation of every version whose number falls in
    /// `range` (prereleases included). Returns the versions changed.
    public func deprecate(name: PackageName, range: VersionRequirement, message: String, token: String?) throws(RegistryError) -> [String] {
        try write(name, token: token) { () throws(RegistryError) -> (PackageDocument, [String]) in
            var doc = try existing(name)
            let matching = doc.versions.values.filter { entry in
                switch range {
                case .any: true
                case .tag(let tag): doc.distTags[tag] == entry.version
                case .range(let r): r.bounds.allSatisfy { $0.admits(entry.version) }
                }
            }
            guard !matching.isEmpty else {
                throw RegistryError(.notFound, "no-matching-version", "no version of \(name) matches '\(range)'")
            }
            for var entry in matching {
                entry.deprecated = message.isEmpty ? nil : message
                doc.versions[entry.version.description] = entry
            }
            doc.modified = now()
            return (doc, matching.map(\.version).sorted().map(\.description))
        }
    }

    /// Adds `owner` to the owners of `name`; only an existing owner may.
    public func addOwner(_ owner: String, name: PackageName, token: String?) throws(RegistryError) -> [String] {
        try lock.withLock { () throws(RegistryError) -> [String] in
            var credentials = try Credentials.load(layout, for: name)
            let record = try credentials.authenticate(token)
            guard documents[name] != nil else { throw Self.noSuchPackage(name) }
            try credentials.authorize(record, for: name)
            var owners = credentials.owners[name] ?? [record.owner]
            if !owners.contains(owner) { owners.append(owner) }
            credentials.owners[name] = owners
            try credentials.saveOwners(layout)
            return owners
        }
    }

    /// Re-signs the index when less than half its lifetime is left, so it never expires under clients.
    @discardableResult
    public func refreshIndexIfNeeded() throws(RegistryError) -> Bool {
        let stamp = now()
        guard index.expires.secondsSince1970 - stamp.secondsSince1970 < indexLifetime / 2 else { return false }
        try lock.withLock { () throws(RegistryError) in
            try Self.signAndWrite(&index, shards: index.shards, key: key, lifetime: indexLifetime, now: stamp, layout: layout, cache: cache)
        }
        logger.info("re-signed the index before it expires", metadata: ["index.version": "\(index.version)"])
        return true
    }

    // MARK: Internals

    /// Runs one write under the lock: authenticate, authorize, change the document, then persist the
    /// document, tag links and a re-signed index, in that order.
    private func write<T>(
        _ name: PackageName, token: String?, allowNew: Bool = false,
        _ change: () throws(RegistryError) -> (PackageDocument, T)
    ) throws(RegistryError) -> T {
        try lock.withLock { () throws(RegistryError) -> T in
            var credentials = try Credentials.load(layout, for: name)
            let record = try credentials.authenticate(token)
            if documents[name] == nil, !allowNew { throw Self.noSuchPackage(name) }
            try credentials.authorize(record, for: name)
            let before = documents[name]
            let result: T, doc: PackageDocument
            do throws(RegistryError) {
                (doc, result) = try change()
                guard doc != before else { return result }
                let bytes = try Self.encoded(doc)
                try RegistryFiles.write(bytes, to: layout.documentFile(name))
                // Served from disk again from now on, and from the new document for artifacts, before the index names it.
                cache.invalidate("packages/\(name).json")
                cache.publish(doc)
                try Self.writeTagLinks(doc, layout: layout)
                // Only the changed document's shard changes: one small file, and one digest in the signed index.
                let id = RegistryIndex.shard(of: name.rawValue)
                var shard = shards[id] ?? IndexShard()
                shard.packages[name.rawValue] = RegistryIndex.Entry(of: bytes)
                let shardEntry = try Self.writeShard(shard, id: id, layout: layout)
                var shardEntries = index.shards
                let replaced = shardEntries.updateValue(shardEntry, forKey: id)
                try Self.signAndWrite(&index, shards: shardEntries, key: key, lifetime: indexLifetime, now: now(), layout: layout, cache: cache)
                shards[id] = shard
                retire(replaced, of: id)
            } catch {
                // A failure at any step (disk full, a signing error) puts the tree back as the signed index has it,
                // so no later write signs over a document this one left behind.
                undo(name, before: before)
                throw error
            }
            documents[name] = doc
            collisionKeys[name.collisionKey] = name
            if credentials.owners[name] == nil {
                credentials.owners[name] = [record.owner]
                try? credentials.saveOwners(layout)
            }
            logger.info("registry write", metadata: ["package": "\(name)", "owner": "\(record.owner)", "index.version": "\(index.version)"])
            return result
        }
    }

    /// Keeps the shard file the previous index named (for clients that read that index a moment ago) and removes the
    /// one kept before it, unless the current index names that file again (a shard whose contents came back).
    private func retire(_ replaced: RegistryIndex.Entry?, of id: String) {
        guard let replaced, replaced != index.shards[id] else { return }
        let current = index.shards[id].map { RegistryIndex.shardPath(id, $0) }
        if let retired = retiredShards[id], retired != current { unlink("\(layout.tree)/\(retired)") }
        retiredShards[id] = RegistryIndex.shardPath(id, replaced)
    }

    /// Puts `name`'s files back as `before` had them (no document when it is `nil`): its document, its tag links,
    /// and no version folder that `before` doesn't list. Best effort: each step is tried; the open at the next start
    /// finishes whatever a second failure here leaves.
    private func undo(_ name: PackageName, before: PackageDocument?) {
        let fm = FileManager.default
        let folder = layout.packageFolder(name)
        if let before {
            cache.publish(before)
            if let bytes = try? Self.encoded(before) { try? RegistryFiles.write(bytes, to: layout.documentFile(name)) }
            // The tag links are made to match; a version folder `before` doesn't list is this write's.
            try? Self.writeTagLinks(before, layout: layout)
            for item in (try? fm.contentsOfDirectory(atPath: folder)) ?? [] where before.versions[item] == nil {
                if (try? fm.destinationOfSymbolicLink(atPath: "\(folder)/\(item)")) == nil { try? fm.removeItem(atPath: "\(folder)/\(item)") }
            }
        } else {
            cache.forget(name)
            unlink(layout.documentFile(name))
            try? fm.removeItem(atPath: folder)
        }
        cache.invalidateAll()
        logger.warning("a registry write failed; its files were put back", metadata: ["package": "\(name)"])
    }

    private func existing(_ name: PackageName) throws(RegistryError) -> PackageDocument {
        guard let doc = documents[name] else { throw Self.noSuchPackage(name) }
        return doc
    }

    /// A document's bytes as written to the tree.
    static func encoded(_ doc: PackageDocument) throws(RegistryError) -> [UInt8] {
        do { return Array(try DocumentDecoder.encode(doc)) } catch {
            throw RegistryError(.internalFailure, "encoding-failed", "encoding the document of \(doc.name) failed: \(error)")
        }
    }

    /// A shard's bytes as written to the tree.
    static func encoded(_ shard: IndexShard) throws(RegistryError) -> [UInt8] {
        do { return try shard.canonicalBytes() } catch {
            throw RegistryError(.internalFailure, "encoding-failed", "encoding an index shard failed: \(error)")
        }
    }

    /// Writes `shard` (named by its digest) and returns what the index says of it. `onlyWhenMissing`: when the
    /// registry opens, a file already there with these bytes is left alone.
    static func writeShard(_ shard: IndexShard, id: String, layout: RegistryLayout, onlyWhenMissing: Bool = false) throws(RegistryError) -> RegistryIndex.Entry {
        let bytes = try encoded(shard)
        let entry = RegistryIndex.Entry(of: bytes)
        let path = "\(layout.tree)/\(RegistryIndex.shardPath(id, entry))"
        if !onlyWhenMissing || RegistryFiles.read(path) != bytes { try RegistryFiles.write(bytes, to: path) }
        return entry
    }

    /// Signs an index one version higher over `shards` and writes it.
    static func signAndWrite(
        _ index: inout RegistryIndex, shards: [String: RegistryIndex.Entry], key: IndexSigningKey, lifetime: Int64,
        now: Timestamp, layout: RegistryLayout, cache: TreeCache
    ) throws(RegistryError) {
        let next = RegistryIndex(version: index.version + 1, issued: now, expires: now.adding(seconds: lifetime), shards: shards)
        let signed: [UInt8]
        do {
            signed = try key.sign(next)
        } catch {
            throw RegistryError(.internalFailure, "signing-failed", "signing the index failed: \(error)")
        }
        try RegistryFiles.write(signed, to: layout.indexFile)
        index = next
        cache.invalidate("index.json")
    }

    /// Makes `<name>/<tag>` links match the document's dist-tags.
    static func writeTagLinks(_ doc: PackageDocument, layout: RegistryLayout) throws(RegistryError) {
        let folder = layout.packageFolder(doc.name)
        try RegistryFiles.makeFolders(folder)
        for (tag, version) in doc.distTags {
            let path = "\(folder)/\(tag.rawValue)"
            if (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) != version.description {
                try RegistryFiles.symlink(version.description, at: path)
            }
        }
        let wanted = Set(doc.distTags.keys.map(\.rawValue))
        for item in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where item.first?.isLetter == true && !wanted.contains(item) {
            if (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(folder)/\(item)")) != nil { unlink("\(folder)/\(item)") }
        }
    }

    static func shouldMoveLatest(to version: SemanticVersion, in doc: PackageDocument) -> Bool {
        guard let current = doc.distTags[.latest], let entry = doc.entry(for: current), !entry.yanked else { return true }
        if version.isPrerelease { return current.isPrerelease && current < version }
        return current.isPrerelease || current < version
    }

    static func isNewest(_ version: SemanticVersion, in doc: PackageDocument) -> Bool {
        doc.versions.values.allSatisfy { $0.version <= version }
    }

    static func tagTable(_ doc: PackageDocument) -> [String: String] {
        Dictionary(uniqueKeysWithValues: doc.distTags.map { ($0.key.rawValue, $0.value.description) })
    }

    static func noSuchPackage(_ name: PackageName) -> RegistryError {
        RegistryError(.notFound, "no-such-package", "no package named '\(name)' is published here", hint: "check the name with l3af search")
    }

    static func noSuchVersion(_ name: PackageName, _ version: SemanticVersion, in doc: PackageDocument) -> RegistryError {
        let known = doc.versions.values.map(\.version).sorted().map(\.description).joined(separator: ", ")
        return RegistryError(.notFound, "no-such-version", "\(name)@\(version) is not published (versions: \(known))")
    }

    /// Every token's record (never the token itself), oldest first.
    public static func listTokens(layout: RegistryLayout) throws(RegistryError) -> [TokenSummary] {
        try Credentials.load(layout).tokens.map { TokenSummary(id: $0.id, owner: $0.owner, packages: $0.packages, created: $0.created) }
    }

    /// Revokes the token `id`: its hash is removed, so it is refused from the next request on (the server re-reads
    /// the tokens on every write).
    public static func revokeToken(layout: RegistryLayout, id: String) throws(RegistryError) -> TokenSummary {
        let lock = RegistryLock(path: layout.lockFile)
        return try lock.withLock { () throws(RegistryError) -> TokenSummary in
            var credentials = try Credentials.load(layout)
            let record = try credentials.revokeToken(id)
            try credentials.saveTokens(layout)
            return TokenSummary(id: record.id, owner: record.owner, packages: record.packages, created: record.created)
        }
    }

    /// Creates a publish token for `owner` covering `packages` (names, or `*`), stores its hash, and
    /// returns the token. Works whether or not a server is running on the same root.
    public static func addToken(layout: RegistryLayout, owner: String, packages: [String], now: Timestamp = Timestamp(Date())) throws(RegistryError) -> String {
        try RegistryFiles.makeFolders(layout.privateFolder)
        let lock = RegistryLock(path: layout.lockFile)
        return try lock.withLock { () throws(RegistryError) -> String in
            var credentials = try Credentials.load(layout)
            let token = credentials.addToken(owner: owner, packages: packages, now: now)
            try credentials.saveTokens(layout)
            return token
        }
    }
}

/// A token as `token list` shows it: its id, owner, scope and age, never the token or its hash.
public struct TokenSummary: Codable, Sendable, Equatable {
    public let id: String
    public let owner: String
    public let packages: [String]
    public let created: Timestamp
}
