import Foundation
import GRDB
import L3AFHost
import L3AFHostTesting
import L3AFModel
import Testing

/// The state.db release 0.1.0 wrote (Fixtures/make-state-db.sh made it with that release's binaries: install, upgrade,
/// pin, rollback, an l3afd payload with a disabled program and start_args, a change cut before its commit) is read and
/// migrated by this release, and snapshots with fields this release doesn't know are still read.
@Suite struct MigrationTests {
    func copyFixture() throws -> FakeHost {
        let fake = try FakeHost { _ in }
        let fixture = try #require(Bundle.module.path(forResource: "state-0.1.0", ofType: "db", inDirectory: "Fixtures"))
        let state = fake.host.options.client.state
        try FileManager.default.removeItem(atPath: "\(state)/state.db")
        try FileManager.default.copyItem(atPath: fixture, toPath: "\(state)/state.db")
        return fake
    }

    @Test func aReleaseZeroOneDatabaseIsMigratedAndEveryRevisionRead() throws {
        let fake = try copyFixture()
        defer { fake.remove() }
        let database = try HostDatabase(path: fake.host.options.databasePath)
        let history = try database.history()
        #expect(history.map(\.number) == [8, 7, 6, 5, 4, 3, 2, 1])
        #expect(history.map(\.kind).reversed() == [.install, .upgrade, .pin, .install, .rollback, .pin, .apply, .rollback])
        #expect(history.allSatisfy { RevisionKind.known.contains($0.kind) })
        let apply = try #require(try database.revision(7))
        let disabled = try #require(apply.snapshot.programs.first { $0.package == "packet-counter" })
        #expect(!disabled.enabled && disabled.payload?.adminStatus == "disabled")
        let limiter = try #require(apply.snapshot.programs.first { $0.package == "ratelimiting" })
        #expect(limiter.version == "1.1.0" && limiter.parameters == ["rate": "30", "ports": "8080,443"] && limiter.program.health.count == 1)
        #expect(apply.snapshot.roots["xdp_ingress"]?.package == "xdp-root")
        #expect(try database.pending()?.number == 9, "the interrupted change is still there for the next writer")
        #expect(try database.pins().map(\.version) == ["1.1.0"])
        let queue = try DatabaseQueue(path: fake.host.options.databasePath)
        let formats = try queue.read { db in try Int.fetchAll(db, sql: "SELECT DISTINCT format FROM revision") }
        #expect(formats == [HostSnapshot.currentFormat], "every row rewritten in the current format")
        let stored = try queue.read { db in try String.fetchOne(db, sql: "SELECT snapshot FROM revision WHERE number = 7") }
        #expect(stored?.contains("\"format\":\(HostSnapshot.currentFormat)") == true)
    }

    @Test func snapshotsFromANewerReleaseAreReadIgnoringWhatThisOneDoesNotKnow() throws {
        let fake = try copyFixture()
        defer { fake.remove() }
        let database = try HostDatabase(path: fake.host.options.databasePath)
        let queue = try DatabaseQueue(path: fake.host.options.databasePath)
        try queue.write { db in
            var json = try String.fetchOne(db, sql: "SELECT snapshot FROM revision WHERE number = 8")!
            json = json.replacingOccurrences(of: "\"programs\":[{", with: "\"future_top\":1,\"programs\":[{\"future_field\":{\"x\":1},")
            json = json.replacingOccurrences(of: "\"entry_function\":", with: "\"future_manifest_field\":true,\"entry_function\":")
            json = json.replacingOccurrences(of: "\"format\":2", with: "\"format\":3")
            try db.execute(sql: "UPDATE revision SET snapshot = ?, kind = 'future-kind' WHERE number = 8", arguments: [json])
        }
        let current = try #require(try database.current())
        #expect(current.number == 8 && current.kind.rawValue == "future-kind" && current.snapshot.programs.count == 1)
    }

    @Test func aHostOpenedOnTheOldDatabaseFinishesTheInterruptedChange() async throws {
        let fake = try copyFixture()
        defer { fake.remove() }
        fake.chains.state.withLock { $0.interfaces.insert("l3fx15157") }
        try fake.packages.publish("ratelimiting", "1.0.0")
        let host = try HostManager(options: fake.host.options, source: fake.packages, chains: fake.chains, clock: FakeClock())
        // The first writer finishes the change revision 9 began (the fake kernel takes it), then restore finds nothing to do.
        #expect(try await host.restore() == false)
        #expect(try host.database.pending() == nil && host.database.current()?.number == 9)
        #expect(fake.chains.running(ChainKey(interface: "l3fx15157", hook: .xdpIngress)) == ["packet-counter@1.0.0", "ratelimiting@1.0.0"])
    }
}
