import Foundation
import L3AFTestSupport
import Testing

/// Three real l3afd in a fleet: each with its own state, pin root, host name and network (sender and receiver
/// namespaces), all joined to one real etcd, packages from one real registry.
final class FleetHarness {
    final class Node {
        let name: String
        let network: TestNetwork
        let folder: URL
        let arguments: [String]
        var process: RunningProcess
        var url: String

        init(name: String, network: TestNetwork, folder: URL, arguments: [String]) throws {
            self.name = name
            self.network = network
            self.folder = folder
            self.arguments = arguments
            (process, url, _) = try DaemonHarness.launch(arguments)
        }

        func restart() throws {
            process.stop()
            (process, url, _) = try DaemonHarness.launch(arguments)
        }

        /// GET `path` of its API.
        func get(_ path: String) throws -> String {
            try Executable.run("/usr/bin/curl", ["-s", url + path]).stdout
        }

        /// `l3af status` of this node's state: the programs on its port's XDP chain and their counters.
        func chain(_ settings: [String]) throws -> [(spec: String, counters: [String: UInt64])] {
            let run = try Executable.run("l3af", ["status", "--json"] + settings)
            guard run.status == 0, let object = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any] else { throw FixtureError("status: \(run.stderr)") }
            let chains = (object["chains"] as? [[String: Any]]) ?? []
            guard let chain = chains.first(where: { $0["interface"] as? String == network.senderPort && $0["hook"] as? String == "xdp_ingress" }) else { return [] }
            return ((chain["programs"] as? [[String: Any]]) ?? []).filter { $0["enabled"] as? Bool != false }.map { program in
                ("\(program["package"]!)@\(program["version"]!)", ((program["counters"] as? [String: Any]) ?? [:]).mapValues { ($0 as? NSNumber)?.uint64Value ?? 0 })
            }
        }
    }

    let host: HostHarness
    let etcd: EtcdHarness
    var nodes: [Node] = []

    init(versions: [String], bad: Set<String>) throws {
        host = try HostHarness(ratelimiting: versions, bad: bad)
        etcd = try EtcdHarness()
        for i in 1...3 {
            let network = i == 1 ? host.network : try TestNetwork()
            let folder = host.folder.appending(path: "node-\(i)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let config = folder.appending(path: "l3afd.json")
            let fleet: [String: Any] = ["fleet": ["endpoints": [etcd.endpoint], "groups": ["edge"], "lease_seconds": 5, "retry_seconds": 2,
                                                  "interfaces": ["uplink": network.senderPort]]]
            try JSONSerialization.data(withJSONObject: fleet).write(to: config)
            nodes.append(try Node(name: "node-\(i)", network: network, folder: folder,
                                  arguments: ["--config", config.path, "--host-name", "node-\(i)", "--listen", "127.0.0.1:0", "--log-level", "notice"] + settings(folder, network)))
        }
    }

    func settings(_ folder: URL, _ network: TestNetwork) -> [String] {
        ["--registry", host.registry.url, "--trusted-key", host.registry.publicKey, "--repo", folder.appending(path: "repo").path,
         "--cache", folder.appending(path: "cache").path, "--state", folder.appending(path: "state").path, "--pin-root", network.pinRoot]
    }

    func chain(_ node: Node) throws -> [(spec: String, counters: [String: UInt64])] { try node.chain(settings(node.folder, node.network)) }

    /// `l3af fleet …` against this etcd.
    func fleet(_ arguments: [String]) throws -> Executable.Result {
        try Executable.run("l3af", ["fleet"] + arguments + ["--etcd", etcd.endpoint])
    }

    /// `l3af fleet hosts --json`, decoded.
    func hosts() throws -> [[String: Any]] {
        let run = try fleet(["hosts", "--json"])
        guard run.status == 0, let rows = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [[String: Any]] else { throw FixtureError("hosts: \(run.stderr)") }
        return rows
    }

    /// The version of ratelimiting each live host runs, by host, once all are in sync (or after `seconds`).
    func versionsInSync(_ seconds: Double = 60) throws -> [String: String] {
        let deadline = Date().addingTimeInterval(seconds)
        var rows: [[String: Any]] = []
        while Date() < deadline {
            rows = try hosts()
            if rows.count == nodes.count, rows.allSatisfy({ $0["in_sync"] as? Bool == true && $0["live"] as? Bool == true }) { break }
            Thread.sleep(forTimeInterval: 0.3)
        }
        if Date() >= deadline { print("not in sync after \(seconds) s: \(rows)\n" + nodes.map { "\($0.name):\n\($0.process.printed)" }.joined(separator: "\n")) }
        return Dictionary(uniqueKeysWithValues: rows.map { ($0["host"] as! String, ($0["running"] as? [String: String])?["uplink/xdp_ingress/ratelimiting"] ?? "-") })
    }

    func remove() {
        for node in nodes {
            node.process.stop()
            if node.network !== host.network { try? node.network.remove() }
        }
        etcd.remove()
        host.remove()
    }
}

@Suite(.serialized, .enabled(if: bpfUnavailable == nil && etcdUnavailable == nil, "\(bpfUnavailable ?? etcdUnavailable ?? "")"))
struct FleetDaemonTests {
    /// A group install reaches all three hosts, with real traffic through each chain; a host pin holds one back in a
    /// rollout; a bad release stops at the first wave and that host rolls back by itself while the others never
    /// change; etcd killed mid-rollout leaves every node forwarding, and they converge when it is back; a host whose
    /// l3afd dies leaves the live list.
    @Test func aFleetOfThreeL3afd() throws {
        let fleet = try FleetHarness(versions: ["1.0.0", "1.0.1", "1.0.2", "1.0.3"], bad: ["1.0.2"])
        defer { fleet.remove() }
        var run = try fleet.fleet(["install", "ratelimiting@=1.0.0", "--group", "edge", "--iface", "uplink", "--param", "rate=1000", "--param", "ports=8080"])
        #expect(run.status == 0, "\(run.stderr)")
        let hosts = try fleet.hosts()
        #expect(try fleet.versionsInSync() == ["node-1": "1.0.0", "node-2": "1.0.0", "node-3": "1.0.0"], "\(hosts)")
        for node in fleet.nodes {
            #expect(try node.network.connect(5, port: 8080) == 5, "\(node.name) forwards")
            let chain = try fleet.chain(node)
            #expect(chain.map(\.spec) == ["ratelimiting@1.0.0"] && chain.first?.counters["rl_recv_count_map[0]"] == 5, "\(node.name): \(chain)")
        }
        // The host's revision names the etcd revision it came from.
        let history = try Executable.run("l3af", ["history", "--json"] + fleet.settings(fleet.nodes[1].folder, fleet.nodes[1].network))
        #expect(history.stdout.contains("fleet: etcd revision "), "\(history.stdout)")

        // node-3 is held at 1.0.0; the rollout goes to node-1, then node-2.
        #expect(try fleet.fleet(["pin", "node-3", "ratelimiting@1.0.0"]).status == 0)
        run = try fleet.fleet(["rollout", "ratelimiting@1.0.1", "--group", "edge", "--waves", "1,100%", "--watch", "2s"])
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
        #expect(run.stdout.contains("held back by their pins: node-3") && run.stdout.contains("wave 1/2: 1 host(s): node-1"), "\(run.stdout)")
        #expect(try fleet.versionsInSync() == ["node-1": "1.0.1", "node-2": "1.0.1", "node-3": "1.0.0"])

        // A bad release: node-1 (the first wave) breaks its health rule under traffic and rolls back by itself; the
        // rollout stops there and node-2 never changes.
        let node2Revisions = try Executable.run("l3af", ["history", "--json"] + fleet.settings(fleet.nodes[1].folder, fleet.nodes[1].network)).stdout
        let network = fleet.nodes[0].network
        let traffic = Thread { _ = try? network.connect(400, port: 8080, perSecond: 30) }
        traffic.start()
        run = try fleet.fleet(["rollout", "ratelimiting@1.0.2", "--group", "edge", "--waves", "1,100%", "--watch", "6s"])
        #expect(run.status == 1, "\(run.stdout)")
        #expect(run.stderr.contains("stopped in wave 1") && run.stderr.contains("node-1: rolled-back"), "\(run.stdout)\(run.stderr)")
        #expect(try fleet.versionsInSync() == ["node-1": "1.0.1", "node-2": "1.0.1", "node-3": "1.0.0"])
        #expect(try Executable.run("l3af", ["history", "--json"] + fleet.settings(fleet.nodes[1].folder, fleet.nodes[1].network)).stdout == node2Revisions)
        let node1 = try Executable.run("l3af", ["history"] + fleet.settings(fleet.nodes[0].folder, fleet.nodes[0].network)).stdout
        #expect(node1.contains("automatic rollback of revision") && node1.contains("ratelimiting@1.0.2"), "\(node1)")

        // etcd killed in the middle of a rollout: the rollout fails, every node keeps forwarding; back, they converge.
        let rollout = try RunningProcess("l3af", ["fleet", "rollout", "ratelimiting@1.0.3", "--group", "edge", "--waves", "1,100%", "--watch", "4s", "--etcd", fleet.etcd.endpoint])
        _ = try rollout.waitForLine(containing: "wave 1/2")
        fleet.etcd.kill()
        #expect(rollout.wait() == 1, "\(rollout.printed)")
        for node in fleet.nodes { #expect(try node.network.connect(3, port: 8080) == 3, "\(node.name) forwards without etcd") }
        // Each says so: its fleet report and its metrics.
        var report = ""
        for _ in 0..<100 {
            report = try fleet.nodes[1].get("/l3af/v1/fleet")
            if report.contains("\"connected\":false") || report.contains("\"connected\" : false") { break }
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(report.contains("false") && report.contains("disconnected_seconds"), "\(report)")
        var metrics = ""
        for _ in 0..<20 {
            metrics = try fleet.nodes[1].get("/metrics")
            if metrics.contains("l3afd_fleet_connected{host=\"node-2\"} 0") { break }
            Thread.sleep(forTimeInterval: 0.3)
        }
        #expect(metrics.contains("l3afd_fleet_connected{host=\"node-2\"} 0"), "\(metrics.split(separator: "\n").filter { $0.contains("fleet") })")
        try fleet.etcd.restart()
        let converged = try fleet.versionsInSync()
        #expect(converged["node-2"] == "1.0.1" && converged["node-3"] == "1.0.0", "\(converged)")
        // The operator runs it again; it finishes.
        run = try fleet.fleet(["rollout", "ratelimiting@1.0.3", "--group", "edge", "--waves", "1,100%", "--watch", "1s"])
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
        #expect(try fleet.versionsInSync() == ["node-1": "1.0.3", "node-2": "1.0.3", "node-3": "1.0.0"])
        let diff = try fleet.fleet(["diff"])
        #expect(diff.stdout.components(separatedBy: "in sync").count == 4, "\(diff.stdout)")

        // A node whose l3afd dies leaves the live list when its lease runs out; its programs stay attached.
        fleet.nodes[2].process.stop(signal: SIGKILL)
        var live: [String] = []
        for _ in 0..<100 {
            live = try fleet.hosts().filter { $0["live"] as? Bool == true }.map { $0["host"] as! String }
            if live.count == 2 { break }
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(live == ["node-1", "node-2"], "\(live)")
        #expect(try fleet.nodes[2].network.connect(3, port: 8080) == 3)
        try fleet.nodes[2].restart()
        #expect(try fleet.versionsInSync()["node-3"] == "1.0.0")
    }
}
