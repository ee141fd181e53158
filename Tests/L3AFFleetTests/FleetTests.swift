import Foundation
import L3AFFleet
import L3AFModel
import L3AFTestSupport
import Logging
import Synchronization
import Testing

/// A host for the agent that records what it is told to apply; a version named in `bad` is "rolled back".
final class RecordingHost: FleetHost {
    struct Applied: Sendable {
        var versions: [String: String]
        var cause: String
    }
    let bad: Set<String>
    private let state = Mutex<(applied: [Applied], running: [String: String])>(([], [:]))

    init(bad: Set<String> = []) { self.bad = bad }

    var applied: [Applied] { state.withLock { $0.applied } }

    func apply(_ effective: FleetEffective, cause: String) async throws -> (revision: Int?, rolledBack: String?) {
        let versions = effective.versions
        let count = state.withLock { value -> Int in
            value.applied.append(Applied(versions: versions, cause: cause))
            return value.applied.count
        }
        if let broken = versions.values.first(where: { bad.contains(String($0.drop { $0 == "=" })) }) {
            return (count, "automatic rollback: \(broken) broke a health rule")
        }
        state.withLock { $0.running = versions }
        return (count, nil)
    }

    func running() async -> (versions: [String: String], revision: Int?) {
        state.withLock { ($0.running, $0.applied.count) }
    }
}

func payload(_ version: String, iface: String = "uplink", name: String = "ratelimiting") -> L3afBPFPrograms {
    var program = BPFProgram(name: name, seqID: 1)
    program.version = version
    program.adminStatus = "enabled"
    return L3afBPFPrograms(hostName: "", iface: iface, bpfPrograms: HookLists(xdpIngress: [program]))
}

/// Polls `condition` for up to `seconds`.
func eventually(_ seconds: Double = 20, _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(100))
    }
    return false
}

@Suite struct FleetModelTests {
    @Test func namesTargetsAndWaves() throws {
        #expect(throws: FleetError.self) { try FleetName("../etc", what: "host") }
        #expect(throws: FleetError.self) { try FleetName("-x", what: "host") }
        #expect(throws: FleetError.self) { try FleetName(String(repeating: "a", count: 64), what: "host") }
        #expect(try FleetTarget("@edge") == .group(FleetName("edge", what: "group")))
        #expect(try FleetTarget("node-1.dc2") == .host(FleetName("node-1.dc2", what: "host")))
        #expect(throws: FleetError.self) { try FleetLayout(prefix: "l3af/") }
        let hosts = try (1...10).map { try FleetName("h\(String(format: "%02d", $0))", what: "host") }
        let waves = RolloutWaves.split(hosts, waves: try RolloutWaves.parse("1,10%,50%,100%"))
        #expect(waves.map(\.count) == [1, 4, 5], "10% of 10 adds nobody after the first host: dropped")
        #expect(waves[0] == [hosts[0]])
        #expect(RolloutWaves.split(hosts, waves: ["3"]).map(\.count) == [10], "the last wave always reaches every host")
        #expect(throws: FleetError.self) { try RolloutWaves.parse("1,0%") }
        #expect(throws: FleetError.self) { try RolloutWaves.parse("x") }
    }

    /// Groups fold in order, the host's document wins, a pin holds a package against a rollout step.
    @Test func aHostsDesiredStateFoldsItsGroupsAndItsOwn() throws {
        let edge = try FleetName("edge", what: "group"), canary = try FleetName("canary", what: "group")
        var counter = payload("1.0.0", name: "packet-counter")
        counter.bpfPrograms.xdpIngress[0].seqID = 2
        var edgeDocument = FleetDesired(programs: [payload("1.0.0"), payload("2.0.0", iface: "mgmt", name: "ip-denylist")])
        edgeDocument.programs[0].bpfPrograms.xdpIngress.append(counter.bpfPrograms.xdpIngress[0])
        let canaryDocument = FleetDesired(programs: [payload("1.0.1")])
        var folded = FleetEffective.fold(groups: [(edge, edgeDocument, 5), (canary, canaryDocument, 7)], host: nil)
        #expect(folded.versions == ["uplink/xdp_ingress/ratelimiting": "1.0.1", "uplink/xdp_ingress/packet-counter": "1.0.0", "mgmt/xdp_ingress/ip-denylist": "2.0.0"])
        #expect(folded.sources == ["@edge@5", "@canary@7"])
        var host = FleetDesired(pins: ["ratelimiting": "1.0.0"])
        host.rollout = .init(id: "r1", package: "packet-counter", version: "1.1.0", watchSeconds: 30)
        folded = FleetEffective.fold(groups: [(edge, edgeDocument, 5), (canary, canaryDocument, 7)], host: (host, 9))
        #expect(folded.versions["uplink/xdp_ingress/ratelimiting"] == "=1.0.0", "the host's pin wins over its groups, exactly")
        #expect(folded.versions["uplink/xdp_ingress/packet-counter"] == "=1.1.0", "the rollout step moves its package")
        #expect(folded.isMet(by: ["uplink/xdp_ingress/ratelimiting": "1.0.0", "uplink/xdp_ingress/packet-counter": "1.1.0", "mgmt/xdp_ingress/ip-denylist": "2.3.0"]))
        #expect(!folded.isMet(by: ["uplink/xdp_ingress/ratelimiting": "1.0.1", "uplink/xdp_ingress/packet-counter": "1.1.0", "mgmt/xdp_ingress/ip-denylist": "2.3.0"]))
        #expect(folded.watchSeconds == 30)
        host.pins["packet-counter"] = "1.0.0"
        let held = FleetEffective.fold(groups: [(edge, edgeDocument, 5)], host: (host, 10))
        #expect(held.versions["uplink/xdp_ingress/packet-counter"] == "=1.0.0", "a pin holds a package against a rollout")
        #expect(FleetEffective.fold(groups: [], host: nil).configured == false)
        // A fleet document names no host, and its pins are exact versions.
        var bad = FleetDesired(programs: [payload("1.0.0")], pins: ["ratelimiting": "^1.0"])
        bad.programs[0].hostName = "node-1"
        #expect(bad.problems().count == 2, "\(bad.problems())")
        var tooLong = FleetDesired(programs: [payload("1.0.0")])
        tooLong.watchSeconds = 7200
        tooLong.rollout = .init(id: "r", package: "ratelimiting", version: "1.0.1", watchSeconds: 7200)
        #expect(tooLong.problems().count == 2, "a watch longer than a host runs one is refused: \(tooLong.problems())")
    }
}

/// Against a real etcd started by the test.
@Suite(.serialized, .enabled(if: etcdUnavailable == nil, "\(etcdUnavailable ?? "")"))
struct FleetEtcdTests {
    static let logger = Logger(label: "fleet-test")

    func store(_ etcd: EtcdHarness, actor: String = "tester") throws -> FleetStore {
        FleetStore(client: try EtcdClient(endpoints: [etcd.endpoint]), layout: try FleetLayout(), actor: actor)
    }

    /// Two writers that read the same revision: one wins, the other is told who changed it and writes nothing. The
    /// same through two concurrent `l3af fleet set` processes.
    @Test func twoWritersOfOneKeyOneWinsTheOtherIsTold() async throws {
        let etcd = try EtcdHarness()
        defer { etcd.remove() }
        let alice = try store(etcd, actor: "alice"), bob = try store(etcd, actor: "bob")
        let edge = FleetTarget.group(try FleetName("edge", what: "group"))
        let first = try await alice.write(edge, FleetDesired(programs: [payload("1.0.0")]), ifAt: 0, cause: "first")
        func attempt(_ store: FleetStore, _ version: String, _ cause: String) async -> FleetError? {
            do { _ = try await store.write(edge, FleetDesired(programs: [payload(version)]), ifAt: first, cause: cause); return nil } catch { return error as? FleetError }
        }
        async let a = attempt(alice, "1.0.1", "alice's")
        async let b = attempt(bob, "1.0.2", "bob's")
        let results = await [a, b]
        #expect(results.filter { $0 == nil }.count == 1, "one wins")
        let lost = try #require(results.compactMap { $0 }.first)
        #expect(lost.kind == .conflict && lost.description.contains("since it was read at revision \(first)"), "\(lost)")
        #expect(lost.description.contains("by alice (alice's)") || lost.description.contains("by bob (bob's)"), "\(lost)")

        // Two CLI processes with the revision they both read.
        let (_, current) = try await alice.read(edge)
        let file = try Fixtures.temporaryFolder("fleet-set").appending(path: "payload.json")
        try Data("[{\"iface\": \"uplink\", \"xdp_ingress\": [{\"name\": \"ratelimiting\", \"version\": \"1.0.3\", \"seq_id\": 1}]}]".utf8).write(to: file)
        let arguments = ["fleet", "set", "@edge", file.path, "--expect-revision", "\(current)", "--etcd", etcd.endpoint]
        async let one = Task.detached { try Executable.run("l3af", arguments) }.value
        async let two = Task.detached { try Executable.run("l3af", arguments) }.value
        let runs = try await [one, two]
        #expect(runs.map(\.status).sorted() == [0, 1], "\(runs.map(\.stderr))")
        let refused = try #require(runs.first { $0.status == 1 })
        #expect(refused.stderr.contains("was changed at revision") && refused.stderr.contains("nothing was written"), "\(refused.stderr)")
        // A stale revision is refused the same way, and a bad document before it reaches etcd.
        let stale = try Executable.run("l3af", ["fleet", "set", "@edge", file.path, "--expect-revision", "\(first)", "--etcd", etcd.endpoint])
        #expect(stale.status == 1 && stale.stderr.contains("was changed at revision"), "\(stale.stderr)")
        let badHost = try Executable.run("l3af", ["fleet", "pin", "../x", "ratelimiting@1.0.0", "--etcd", etcd.endpoint])
        #expect(badHost.status != 0 && badHost.stderr.contains("can't name a fleet member"), "\(badHost.stderr)")
        let down = try Executable.run("l3af", ["fleet", "hosts", "--etcd", "http://127.0.0.1:\(try EtcdHarness.freePort())"])
        #expect(down.status == 1 && down.stderr.contains("did not answer"), "\(down.stderr)")
    }

    /// etcd over TLS asking for client certificates: the client with the CA and a certificate from it gets in (the
    /// library and `l3af fleet`); without a certificate, or trusting another CA, it is refused.
    @Test func etcdOverMutualTLS() async throws {
        let folder = try Fixtures.temporaryFolder("etcd-tls").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        func openssl(_ arguments: String) throws {
            let run = try Executable.run("/usr/bin/openssl", arguments.split(separator: " ").map(String.init))
            guard run.status == 0 else { throw FixtureError("openssl \(arguments): \(run.stderr)") }
        }
        for ca in ["ca", "other-ca"] {
            try openssl("req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=\(ca) -keyout \(folder)/\(ca).key -out \(folder)/\(ca).pem")
        }
        try "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n".write(toFile: "\(folder)/san.ext", atomically: true, encoding: .utf8)
        for name in ["server", "node"] {
            try openssl("req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=\(name) -keyout \(folder)/\(name).key -out \(folder)/\(name).csr")
            try openssl("x509 -req -in \(folder)/\(name).csr -CA \(folder)/ca.pem -CAkey \(folder)/ca.key -CAcreateserial -days 2 -extfile \(folder)/san.ext -out \(folder)/\(name).pem")
        }
        let etcd = try EtcdHarness(tls: ("\(folder)/server.pem", "\(folder)/server.key", "\(folder)/ca.pem"))
        defer { etcd.remove() }
        #expect(etcd.endpoint.hasPrefix("https://"))
        let client = try EtcdClient(endpoints: [etcd.endpoint], tls: FleetTLS(ca: "\(folder)/ca.pem", certificate: "\(folder)/node.pem", key: "\(folder)/node.key"))
        let written = try await client.put("/l3af/fleet/tls-check", Array("ok".utf8))
        #expect(try await client.get("/l3af/fleet/tls-check").0?.modRevision == written)
        let tls = ["--etcd", etcd.endpoint, "--etcd-ca", "\(folder)/ca.pem"]
        let good = try Executable.run("l3af", ["fleet", "hosts"] + tls + ["--etcd-cert", "\(folder)/node.pem", "--etcd-key", "\(folder)/node.key"])
        #expect(good.status == 0, "\(good.stderr)")
        let noCertificate = try Executable.run("l3af", ["fleet", "hosts"] + tls)
        #expect(noCertificate.status == 1 && noCertificate.stderr.contains("did not answer"), "\(noCertificate.stderr)")
        let otherCA = try Executable.run("l3af", ["fleet", "hosts", "--etcd", etcd.endpoint, "--etcd-ca", "\(folder)/other-ca.pem", "--etcd-cert", "\(folder)/node.pem", "--etcd-key", "\(folder)/node.key"])
        #expect(otherCA.status == 1, "\(otherCA.stderr)")
        let plain = try Executable.run("l3af", ["fleet", "hosts", "--etcd", etcd.endpoint])
        #expect(plain.status == 1 && plain.stderr.contains("https etcd endpoints need the CA"), "\(plain.stderr)")
    }

    /// `history` walks etcd's revisions of a document; `rollback` writes an earlier one back as a new revision.
    @Test func historyAndRollbackComeFromEtcdsRevisions() async throws {
        let etcd = try EtcdHarness()
        defer { etcd.remove() }
        let fleet = try store(etcd)
        let edge = FleetTarget.group(try FleetName("edge", what: "group"))
        var revisions: [Int64] = []
        for version in ["1.0.0", "1.0.1", "1.0.2"] {
            revisions.append(try await fleet.modify(edge, cause: "move to \(version)") { $0.programs = [payload(version)] })
        }
        let (entries, compacted) = try await fleet.history(edge)
        #expect(!compacted && entries.map(\.revision) == revisions.reversed())
        #expect(entries.map { $0.desired?.cause } == ["move to 1.0.2", "move to 1.0.1", "move to 1.0.0"])
        let (written, from) = try await fleet.rollback(edge, to: nil)
        #expect(from == revisions[1] && written > revisions[2])
        #expect(try await fleet.read(edge).0?.programs == [payload("1.0.1")])
        _ = try await fleet.rollback(edge, to: revisions[0])
        #expect(try await fleet.read(edge).0?.programs == [payload("1.0.0")])
        // Compacted away: said so, nothing written.
        _ = try etcd.etcdctl(["compact", "\(revisions[2])"])
        await #expect(throws: FleetError.self) { try await fleet.rollback(edge, to: revisions[0]) }
        // A watch that would resume before the compaction is told so (the agent then reads everything again).
        await #expect { try await fleet.client.watch([.prefix(fleet.layout.groups)], from: revisions[0]) { _, _ in } } throws: { error in
            (error as? FleetError)?.kind == .compacted
        }
        let text = try Executable.run("l3af", ["fleet", "history", "@edge", "--etcd", etcd.endpoint])
        #expect(text.status == 0 && text.stdout.contains("compacted away"), "\(text.stdout)\(text.stderr)")
    }

    /// The agent applies its groups' and its own documents, writes its status under a lease, keeps running what it
    /// applied while etcd is gone (fail static), resumes its watch when etcd is back, and reads everything again
    /// when the revision it would resume from was compacted.
    @Test func theAgentFollowsItsKeysThroughAnOutageAndACompaction() async throws {
        let etcd = try EtcdHarness()
        defer { etcd.remove() }
        let fleet = try store(etcd)
        let host = RecordingHost()
        var configuration = FleetConfiguration(endpoints: [etcd.endpoint])
        configuration.groups = ["edge"]
        configuration.leaseSeconds = 2
        let agent = try FleetAgent(configuration: configuration, hostName: "node-1", host: host, logger: Self.logger)
        let running = Task { await agent.run() }
        defer { running.cancel() }
        let edge = FleetTarget.group(try FleetName("edge", what: "group"))
        let node = try FleetName("node-1", what: "host")
        let written = try await fleet.modify(edge, cause: "install") { $0.programs = [payload("1.0.0")] }
        #expect(try await eventually { host.applied.last?.versions["uplink/xdp_ingress/ratelimiting"] == "1.0.0" })
        #expect(host.applied.last?.cause.contains("etcd revision \(written) (@edge@\(written))") == true, "\(host.applied.last?.cause ?? "")")
        #expect(try await eventually { try await fleet.statuses().first?.state == .inSync })
        let status = try #require(try await fleet.statuses().first)
        #expect(status.host == "node-1" && status.groups == ["edge"] && status.revision == written && status.versions == ["uplink/xdp_ingress/ratelimiting": "1.0.0"])
        // The host's own document wins.
        _ = try await fleet.modify(.host(node), cause: "pin") { $0.pins = ["ratelimiting": "0.9.0"] }
        #expect(try await eventually { host.applied.last?.versions["uplink/xdp_ingress/ratelimiting"] == "=0.9.0" })
        _ = try await fleet.modify(.host(node), cause: "unpin") { $0.pins = [:] }
        #expect(try await eventually { host.applied.last?.versions["uplink/xdp_ingress/ratelimiting"] == "1.0.0" })

        // etcd gone: nothing applied, the agent says it is disconnected; back: it catches up.
        let appliedBefore = host.applied.count
        etcd.kill()
        #expect(try await eventually(15) { await agent.report().connected == false })
        #expect(host.applied.count == appliedBefore, "fail static: nothing changes while etcd is away")
        try await Task.sleep(for: .seconds(1))
        try etcd.restart()
        // Changes made before the agent is back, then compacted: it can't resume its watch and reads everything.
        let later = try store(etcd)
        for version in ["1.1.0", "1.2.0"] { _ = try await later.modify(edge, cause: version) { $0.programs = [payload(version)] } }
        let (_, now) = try await later.read(edge)
        _ = try etcd.etcdctl(["compact", "\(now)"])
        #expect(try await eventually(30) { host.applied.last?.versions["uplink/xdp_ingress/ratelimiting"] == "1.2.0" })
        #expect(try await eventually { await agent.report().connected })
        let settled = try await eventually { let report = await agent.report(); return report.state == .inSync && report.appliedRevision == now }
        #expect(settled, "in sync at the newest revision")
        // Its status came back under a new lease (the old one expired while etcd was down).
        #expect(try await eventually { try await later.statuses().first?.revision == now })
        // Stopped on purpose: it revokes its lease and leaves the live list at once.
        running.cancel()
        #expect(try await eventually(5) { try await later.statuses().isEmpty })
    }

    /// A rollout through three agents: waves in order, a pinned host held back; a bad version stops at the first
    /// wave, that host's step is taken back and the others are never told of it.
    @Test func aRolloutGoesInWavesAndStopsAtTheFirstBadHost() async throws {
        let etcd = try EtcdHarness()
        defer { etcd.remove() }
        let fleet = try store(etcd)
        var hosts: [RecordingHost] = []
        var tasks: [Task<Void, Never>] = []
        defer { tasks.forEach { $0.cancel() } }
        for i in 1...3 {
            let host = RecordingHost(bad: ["9.9.9"])
            var configuration = FleetConfiguration(endpoints: [etcd.endpoint])
            configuration.groups = ["edge"]
            let agent = try FleetAgent(configuration: configuration, hostName: "node-\(i)", host: host, logger: Self.logger)
            hosts.append(host)
            tasks.append(Task { await agent.run() })
        }
        let edge = try FleetName("edge", what: "group")
        _ = try await fleet.modify(.group(edge), cause: "install") { $0.programs = [payload("1.0.0")] }
        _ = try await fleet.modify(.host(try FleetName("node-3", what: "host")), cause: "hold") { $0.pins = ["ratelimiting": "1.0.0"] }
        #expect(try await eventually { try await fleet.statuses().filter { $0.state == .inSync && $0.versions.values.contains { FleetEffective.admits($0, "1.0.0") } }.count == 3 })

        let lines = Mutex<[String]>([])
        let good = FleetRollout(store: fleet, package: try PackageName("ratelimiting"), version: "1.1.0", group: edge, waves: ["1", "100%"], watchSeconds: 0, graceSeconds: 20, pollSeconds: 0.1)
        let outcome = try await good.run { line in lines.withLock { $0.append(line) } }
        #expect(outcome.waves == [["node-1"], ["node-2"]] && outcome.heldBack == ["node-3"], "\(lines.withLock { $0 })")
        #expect(try await fleet.read(.group(edge)).0?.programs == [payload("=1.1.0")], "the group took the version")
        #expect(try await fleet.read(.host(try FleetName("node-1", what: "host"))).0?.rollout == nil, "the steps are removed")
        #expect(try await eventually { try await fleet.statuses().map { $0.versions["uplink/xdp_ingress/ratelimiting"] } == ["=1.1.0", "=1.1.0", "=1.0.0"] })
        // Every host has applied the documents as they are now (the steps' removal included) before the next rollout.
        let applied = try await eventually {
            let documents = try await fleet.documents()
            return try await fleet.statuses().allSatisfy { status in
                let name = try FleetName(status.host, what: "host")
                return status.state == .inSync && status.fingerprint == FleetStore.effective(host: name, groups: status.groups, documents: documents).fingerprint
            }
        }
        #expect(applied)

        let appliedByNode2 = hosts[1].applied.count
        let bad = FleetRollout(store: fleet, package: try PackageName("ratelimiting"), version: "9.9.9", group: edge, waves: ["1", "100%"], watchSeconds: 0, graceSeconds: 20, pollSeconds: 0.1)
        await #expect { _ = try await bad.run { _ in } } throws: { error in
            (error as? FleetError)?.kind == .halted && (error as? FleetError)?.description.contains("node-1: rolled-back") == true
        }
        #expect(hosts[0].applied.contains { $0.versions.values.contains("=9.9.9") }, "node-1 tried it")
        #expect(!hosts[1].applied.contains { $0.versions.values.contains("=9.9.9") } && hosts[1].applied.count == appliedByNode2, "node-2 was never told")
        #expect(try await fleet.read(.group(edge)).0?.programs == [payload("=1.1.0")], "the group keeps its version")
        #expect(try await fleet.read(.host(try FleetName("node-1", what: "host"))).0?.rollout == nil, "node-1's step was taken back")
        #expect(try await eventually { try await fleet.statuses().first { $0.host == "node-1" }?.versions["uplink/xdp_ingress/ratelimiting"] == "=1.1.0" })
    }
}
