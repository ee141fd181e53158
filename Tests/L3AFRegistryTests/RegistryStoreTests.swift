import Foundation
import L3AFModel
import L3AFTestSupport
import Synchronization
import Testing
@testable import L3AFRegistry

/// A clock tests move by hand.
final class TestClock: Sendable {
    private let seconds = Mutex<Int64>(1_800_000_000)
    var now: Timestamp { Timestamp(secondsSince1970: seconds.withLock { $0 }) }
    func advance(_ by: Int64) { seconds.withLock { $0 += by } }
}

struct StoreFixture {
    let root: URL
    let layout: RegistryLayout
    let key = IndexSigningKey()
    let clock = TestClock()
    let token: String

    init() throws {
        root = try Fixtures.temporaryFolder("store")
        layout = RegistryLayout(root: root.path)
        token = try RegistryStore.addToken(layout: layout, owner: "netops", packages: ["*"])
    }

    func open(lifetime: Int64 = 3_600) throws -> RegistryStore {
        let clock = self.clock
        return try RegistryStore(layout: layout, key: key, indexLifetimeSeconds: lifetime, now: { clock.now })
    }

    func verify() throws -> RegistryIndex {
        try IndexVerifier(trustedKeys: [key.publicKey]).verify(RegistryFiles.read(layout.indexFile) ?? [], now: clock.now)
    }

    /// What `index` (through the shard file it names) says of `name`'s document.
    func listed(_ name: String, in index: RegistryIndex) throws -> RegistryIndex.Entry? {
        let id = RegistryIndex.shard(of: name)
        guard let entry = index.shards[id], let bytes = RegistryFiles.read("\(layout.tree)/\(RegistryIndex.shardPath(id, entry))") else { return nil }
        #expect(RegistryIndex.Entry(of: bytes) == entry, "the shard file is what the index signs")
        return try IndexShard.decode(bytes, id: id).packages[name]
    }
}

@Suite struct RegistryStoreTests {
    @Test func refreshesTheIndexBeforeItExpires() async throws {
        let fixture = try StoreFixture()
        let store = try fixture.open(lifetime: 3_600)
        let first = try fixture.verify()
        #expect(try await store.refreshIndexIfNeeded() == false, "fresh: nothing to do")
        fixture.clock.advance(1_801)
        #expect(try await store.refreshIndexIfNeeded() == true, "past half its lifetime: re-signed")
        let second = try fixture.verify()
        #expect(second.version == first.version + 1)
        #expect(second.expires == fixture.clock.now.adding(seconds: 3_600))
        fixture.clock.advance(3_601)
        #expect(throws: IndexVerificationError.self, "an index left alone past its lifetime is refused") { try fixture.verify() }
    }

    /// A write rewrites one shard (a new file named by its digest) and re-signs only its digest; the file the
    /// previous index named stays for clients that read it a moment ago, older ones go, and a restart keeps
    /// only what the index names.
    @Test func aWriteReplacesOneShardAndKeepsThePreviousOne() async throws {
        let fixture = try StoreFixture()
        var store = try fixture.open()
        let names = try ["xdp-root", "ratelimiting"].map { try PackageName($0) }
        #expect(RegistryIndex.shard(of: names[0].rawValue) != RegistryIndex.shard(of: names[1].rawValue))
        func shardFiles() -> Set<String> { Set((try? FileManager.default.contentsOfDirectory(atPath: fixture.layout.shardsFolder)) ?? []) }
        var seen: [RegistryIndex] = []
        for (name, version) in [(names[1], "1.0.0"), (names[0], "1.0.0"), (names[0], "1.1.0"), (names[0], "1.2.0")] {
            _ = try await store.publish(name: name, version: try SemanticVersion(parsing: version),
                                        tarball: try Fixtures.xdpRootPackage(version: version, name: name.rawValue), tag: nil, token: fixture.token)
            seen.append(try fixture.verify())
        }
        let other = RegistryIndex.shard(of: names[1].rawValue), mine = RegistryIndex.shard(of: names[0].rawValue)
        #expect(Set(seen.map { $0.shards[other] }).count == 1, "the other package's shard was never rewritten")
        let current = seen[3], previous = seen[2]
        #expect(try fixture.listed("xdp-root", in: current) != nil && fixture.listed("ratelimiting", in: current) != nil)
        #expect(try fixture.listed("xdp-root", in: previous) != nil, "the previous index's shard is still served")
        let expected = Set([RegistryIndex.shardPath(other, current.shards[other]!), RegistryIndex.shardPath(mine, current.shards[mine]!),
                            RegistryIndex.shardPath(mine, previous.shards[mine]!)].map { String($0.dropFirst("index/".count)) })
        #expect(shardFiles() == expected, "older shard files are removed")
        store = try fixture.open()
        #expect(try fixture.verify().version == current.version, "a clean restart signs nothing")
        #expect(shardFiles().count == 2, "a restart keeps only the shards the index names")
        _ = store
    }

    /// A shard whose contents come back (yank, unyank, yank within one second: the same document bytes again) is the
    /// file the index names, and stays.
    @Test func aShardThatComesBackIsKept() async throws {
        let fixture = try StoreFixture()
        let store = try fixture.open()
        let name = try PackageName("xdp-root"), version = SemanticVersion(1, 0, 0)
        _ = try await store.publish(name: name, version: version, tarball: try Fixtures.xdpRootPackage(version: "1.0.0"), tag: nil, token: fixture.token)
        for yanked in [true, false, true, false, true] {
            _ = try await store.setYanked(yanked, name: name, version: version, token: fixture.token)
            let index = try fixture.verify()
            #expect(try fixture.listed("xdp-root", in: index) != nil, "the shard the index names is on disk")
        }
    }

    /// A tree whose index is in the unsharded format 1 (written by an earlier release) gets a sharded index one
    /// version above it, so clients that accepted the old one take the new one.
    @Test func anOldFormatIndexIsReplacedWithAHigherVersion() async throws {
        let fixture = try StoreFixture()
        _ = try await fixture.open().publish(name: PackageName("xdp-root"), version: SemanticVersion(1, 0, 0),
                                             tarball: try Fixtures.xdpRootPackage(version: "1.0.0"), tag: nil, token: fixture.token)
        let old = #"{"signatures":[],"signed":{"expires":"2030-01-01T00:00:00Z","issued":"2026-01-01T00:00:00Z","packages":{},"spec_version":1,"version":41}}"#
        try RegistryFiles.write(Array(old.utf8), to: fixture.layout.indexFile)
        _ = try fixture.open()
        let index = try fixture.verify()
        #expect(index.version == 42 && index.specVersion == 2)
        #expect(try fixture.listed("xdp-root", in: index) != nil)
    }

    /// Owners are kept per package; a registry written with the single owners.json is split when it opens.
    @Test func theOldOwnersFileIsSplitPerPackage() async throws {
        let fixture = try StoreFixture()
        try RegistryFiles.write(Array(#"{"xdp-root": ["storage"], "Bad Name": ["x"]}"#.utf8), to: fixture.layout.legacyOwnersFile)
        let store = try fixture.open()
        #expect(!FileManager.default.fileExists(atPath: fixture.layout.legacyOwnersFile))
        #expect(try Credentials.load(fixture.layout, for: PackageName("xdp-root")).owners == ["xdp-root": ["storage"]])
        await #expect(throws: RegistryError.self, "netops is not an owner of xdp-root") {
            _ = try await store.publish(name: PackageName("xdp-root"), version: SemanticVersion(1, 0, 0),
                                        tarball: try Fixtures.xdpRootPackage(version: "1.0.0"), tag: nil, token: fixture.token)
        }
    }

    @Test func publishingMovesLatestOnlyForward() async throws {
        let fixture = try StoreFixture()
        let store = try fixture.open()
        let name = try PackageName("xdp-root")
        for version in ["1.1.0", "1.0.5", "2.0.0-rc.1", "1.2.0"] {
            _ = try await store.publish(name: name, version: try SemanticVersion(parsing: version),
                                        tarball: try Fixtures.xdpRootPackage(version: version), tag: nil, token: fixture.token)
        }
        let doc = try #require(store.files.document(name))
        #expect(doc.distTags[.latest] == SemanticVersion(1, 2, 0), "an older release or a prerelease doesn't take latest")
        let link = try FileManager.default.destinationOfSymbolicLink(atPath: fixture.layout.packageFolder(name) + "/latest")
        #expect(link == "1.2.0")
        #expect(try fixture.verify().version == 5, "one index version per write, after the first signing")
    }

    @Test func recoveryCompletesAWriteInterruptedAfterTheDocument() async throws {
        let fixture = try StoreFixture()
        let name = try PackageName("xdp-root")
        do {
            let store = try fixture.open()
            _ = try await store.publish(name: name, version: SemanticVersion(1, 0, 0), tarball: try Fixtures.xdpRootPackage(version: "1.0.0"), tag: nil, token: fixture.token)
        }
        let indexBefore = try fixture.verify()
        // A crash after the document was renamed into place but before the index was: edit the document
        // as a completed write would have, and leave the index as it was.
        var doc = try DocumentDecoder.decode(PackageDocument.self, from: RegistryFiles.read(fixture.layout.documentFile(name))!, document: "d")
        doc.description = "changed just before the crash"
        try RegistryFiles.write(Array(try DocumentDecoder.encode(doc)), to: fixture.layout.documentFile(name))
        // …plus a temporary file and an artifact no document lists.
        try RegistryFiles.write([1, 2, 3], to: fixture.layout.packagesFolder + "/.tmp-xdp-root.json-123")
        try RegistryFiles.write([4, 5], to: fixture.layout.versionFolder(name, SemanticVersion(9, 9, 9)) + "/any/l3af_xdp-root.tar.gz")

        let store = try fixture.open()
        let indexAfter = try fixture.verify()
        #expect(indexAfter.version == indexBefore.version + 1)
        #expect(try fixture.listed("xdp-root", in: indexAfter)?.sha256 == SHA256Digest(of: RegistryFiles.read(fixture.layout.documentFile(name))!))
        #expect(store.files.document(name)?.description == "changed just before the crash")
        #expect(!FileManager.default.fileExists(atPath: fixture.layout.packagesFolder + "/.tmp-xdp-root.json-123"))
        #expect(!FileManager.default.fileExists(atPath: fixture.layout.versionFolder(name, SemanticVersion(9, 9, 9))))
    }

    @Test func recoveryRemovesAFirstPublishThatNeverGotADocument() throws {
        let fixture = try StoreFixture()
        _ = try fixture.open()
        try RegistryFiles.write([1], to: fixture.layout.tree + "/ghost/1.0.0/any/l3af_ghost.tar.gz")
        _ = try fixture.open()
        #expect(!FileManager.default.fileExists(atPath: fixture.layout.tree + "/ghost"))
    }

    @Test func tokensAreStoredHashed() throws {
        let fixture = try StoreFixture()
        let stored = String(decoding: RegistryFiles.read(fixture.layout.tokensFile)!, as: UTF8.self)
        #expect(!stored.contains(fixture.token))
        #expect(stored.contains(SHA256Digest(of: Array(fixture.token.utf8)).hex))
        let attributes = try FileManager.default.attributesOfItem(atPath: fixture.layout.tokensFile)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
    }

    @Test(arguments: [
        ("bytes=0-9", 100, ByteRange.satisfiable(0..<10)), ("bytes=90-", 100, .satisfiable(90..<100)),
        ("bytes=-5", 100, .satisfiable(95..<100)), ("bytes=50-500", 100, .satisfiable(50..<100)),
        ("bytes=100-", 100, .unsatisfiable), ("bytes=5-1", 100, .ignored), ("bytes=0-1,5-6", 100, .ignored),
        ("items=0-1", 100, .ignored), ("bytes=-0", 100, .unsatisfiable),
    ])
    func parsesRanges(_ header: String, _ size: Int, _ expected: ByteRange) {
        #expect(ByteRange.parse(header, size: size) == expected)
    }
}
