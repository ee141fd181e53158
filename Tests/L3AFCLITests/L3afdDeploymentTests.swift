import Foundation
import L3AFArchive
import L3AFClient
import L3AFTestSupport
import Testing

/// A stock L3AF deployment, run unchanged: an l3afd-style plain repository built the way L3AF builds its own (programs
/// in `Tests/Fixtures/l3afd-repo`: custom section names, no manifest, maps pinned by name, L3AF's roots), an
/// `l3afd.cfg` in upstream's format, and L3AF's add / update / delete payloads, on XDP and TC hooks of a veth port with
/// real traffic between two namespaces.
@Suite(.serialized, .enabled(if: bpfUnavailable == nil, "\(bpfUnavailable ?? "")"))
struct L3afdDeploymentTests {
    /// One deployment: a test network, a folder for state and the repository, and l3afd's files.
    final class Deployment {
        let network: TestNetwork
        let folder: URL
        let repository: URL
        let platform = PackageInstaller.hostPlatform()
        var port: String { network.senderPort }
        /// l3afd's `BpfMapDefaultPath`: this test's own folder on bpffs (chains are pinned in its `l3af/`).
        var mapRoot: String { network.mapRoot }
        var store: URL { folder.appending(path: "l3af-config.json") }

        init() throws {
            network = try TestNetwork()
            folder = try Fixtures.temporaryFolder("l3afd-deployment")
            repository = folder.appending(path: "srv-l3afd")
            try publish("xdp-root", "latest", ["xdp_root.bpf.o": "xdp_root.bpf.c"], artifact: "l3af_xdp_root.tar.gz")
            try publish("tc-root", "latest", ["tc_root_ingress.bpf.o": "tc_root_ingress.bpf.c", "tc_root_egress.bpf.o": "tc_root_egress.bpf.c"],
                        artifact: "l3af_tc_root.tar.gz")
            try publish("ratelimiting", "1.0", ["ratelimiting.bpf.o": "ratelimiting.bpf.c"], artifact: "l3af_ratelimiting.tar.gz")
            try publish("ratelimiting", "v1.1", ["ratelimiting.bpf.o": "ratelimiting.bpf.c", "NOTES": nil], artifact: "l3af_ratelimiting.zip")
            try publish("traffic-mirror", "1.0", ["traffic_mirror.bpf.o": "traffic_mirror.bpf.c"], artifact: "l3af_traffic-mirror.tar.gz")
        }

        /// Packs `files` (name → source under Tests/Fixtures/l3afd-repo, compiled; `nil`: a text file) as L3AF does,
        /// in a top folder named after the artifact, at `<name>/<version>/<platform>/<artifact>`.
        func publish(_ name: String, _ version: String, _ files: [String: String?], artifact: String, extra: String = "") throws {
            let top = artifact.replacingOccurrences(of: ".tar.gz", with: "").replacingOccurrences(of: ".zip", with: "")
            var entries: [ArchiveEntry] = []
            for (file, source) in files.sorted(by: { $0.key < $1.key }) {
                let bytes = try source.map { try Fixtures.compileBPF("Tests/Fixtures/l3afd-repo/\($0)") } ?? Array("\(name) \(version)\(extra)\n".utf8)
                entries.append(ArchiveEntry(path: "\(top)/\(file)", kind: .file, permissions: 0o644, contents: bytes))
            }
            let target = repository.appending(path: "\(name)/\(version)/\(platform)")
            try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
            if artifact.hasSuffix(".zip") {
                // A zip as L3AF's build makes one, written by Python's zipfile.
                let staging = folder.appending(path: "zip-\(UUID().uuidString)")
                for entry in entries {
                    let file = staging.appending(path: entry.path)
                    try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
                    try Data(entry.contents).write(to: file)
                }
                let zipped = try Executable.run("/usr/bin/env", ["python3", "-c", """
                    import os, sys, zipfile
                    with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
                        for root, _, files in os.walk(sys.argv[2]):
                            for f in sorted(files):
                                path = os.path.join(root, f)
                                z.write(path, os.path.relpath(path, sys.argv[2]))
                    """, target.appending(path: artifact).path, staging.path])
                #expect(zipped.status == 0, "\(zipped.stderr)")
            } else {
                try Data(ArchiveWriter.tarGz(entries)).write(to: target.appending(path: artifact))
            }
        }

        /// `l3afd.cfg`: upstream's example, pointing at `url` and at this test's folders.
        func config(url: String, chainDebug: String?, chaining: Bool) throws -> URL {
            let file = folder.appending(path: "l3afd.cfg")
            try Fixtures.upstreamL3afdConfig([
                "l3afd": ["BpfMapDefaultPath": mapRoot, "bpf-chaining-enabled": "\(chaining)"],
                "ebpf-repo": ["url": url],
                "web": ["metrics-addr": "127.0.0.1:0"],
                "ebpf-chain-debug": ["addr": chainDebug ?? "localhost:8899", "enabled": "\(chainDebug != nil)"],
                "l3af-configs": ["restapi-addr": "127.0.0.1:0"],
                "l3af-config-store": ["filename": store.path],
            ]).write(to: file, atomically: true, encoding: .utf8)
            return file
        }

        /// `l3afd --config l3afd.cfg`, with where its own state and repo live and the name of this host added.
        func start(url: String, chainDebug: String? = nil, chaining: Bool = true) throws -> (process: RunningProcess, api: String, metrics: String) {
            let (process, api, metrics) = try DaemonHarness.launch([
                "--config", try config(url: url, chainDebug: chainDebug, chaining: chaining).path, "--state", folder.appending(path: "state").path, "--cache", folder.appending(path: "cache").path,
                "--repo", folder.appending(path: "repo").path,
                "--host-name", "node-1", "--sample-interval", "0.3", "--log-level", "warning",
            ])
            return (process, api, try #require(metrics, "metrics on their own address, as [web] metrics-addr says"))
        }

        func remove() {
            try? network.remove()
            try? FileManager.default.removeItem(at: folder)
        }

        /// L3AF's payload for this port: ratelimiting on XDP ingress, traffic-mirror on TC ingress.
        func payload(version: String = "1.0", artifact: String = "l3af_ratelimiting.tar.gz", mapArgs: String = "") -> String {
            """
            [{"host_name": "node-1", "iface": "\(port)", "ipv4_address": "10.9.8.7",
              "bpf_programs": {
                "xdp_ingress": [{"name": "ratelimiting", "seq_id": 1, "artifact": "\(artifact)", "map_name": "xdp_rl_ingress_next_prog",
                                 "cmd_start": "", "version": "\(version)", "user_program_daemon": false, "is_plugin": false,
                                 "cpu": 0, "memory": 0, "admin_status": "enabled", "prog_type": "xdp", "rules_file": "", "rules": "",
                                 "config_file_path": "", "cfg_version": 1, "start_args": {}, "stop_args": {}, "status_args": {},
                                 "object_file": "ratelimiting.bpf.o", "entry_function_name": "_xdp_ratelimiting",
                                 "monitor_maps": [{"name": "rl_recv_count_map", "key": 0, "aggregator": "scalar"},
                                                  {"name": "rl_drop_count_map", "key": 0, "aggregator": "scalar"}]\(mapArgs)}],
                "tc_ingress": [{"name": "traffic-mirror", "seq_id": 1, "artifact": "l3af_traffic-mirror.tar.gz", "map_name": "tc_mirror_next_prog",
                                "version": "1.0", "admin_status": "enabled", "prog_type": "tc", "cfg_version": 1,
                                "object_file": "traffic_mirror.bpf.o", "entry_function_name": "_tc_traffic_mirror",
                                "monitor_maps": [{"name": "tc_packet_count_map", "key": 0, "aggregator": "scalar"}]}]
              }}]
            """
        }
    }

    static func object(_ api: String, _ iface: String) async throws -> [String: Any] {
        let (status, text) = try await DaemonHarness.request(api, "GET", "/l3af/configs/v1/\(iface)")
        #expect(status == 200, "\(text)")
        return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "one object: \(text)")
    }

    static func first(_ object: [String: Any], _ hook: String) -> [String: Any]? {
        ((object["bpf_programs"] as? [String: Any])?[hook] as? [[String: Any]])?.first
    }

    /// The value of the `l3afd_BPFMonitorMap` series for `map_name`, from `/metrics`.
    static func monitored(_ metrics: String, _ mapName: String, iface: String) async throws -> Double? {
        let text = String(decoding: try await HTTPClient().send(HTTPRequest(url: metrics)).body, as: UTF8.self)
        let line = text.split(separator: "\n").first { $0.hasPrefix("l3afd_BPFMonitorMap{") && $0.contains(#"map_name="\#(mapName)""#) && $0.contains(#"interface_name="\#(iface)""#) }
        return line.flatMap { $0.split(separator: " ").last.flatMap { Double($0) } }
    }

    /// Waits (bounded) until the sampled series for `mapName` reaches `minimum`.
    static func monitored(_ metrics: String, _ mapName: String, iface: String, atLeast minimum: Double) async throws -> Double {
        var value = 0.0
        for _ in 0..<40 {
            value = try await monitored(metrics, mapName, iface: iface) ?? 0
            if value >= minimum { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        return value
    }

    func xdpAttached(_ port: String) throws -> Bool { try Executable.run("/usr/sbin/ip", ["link", "show", port]).stdout.contains("xdp") }

    @Test func addUpdateDeleteFromAPlainRepositoryOverNginx() async throws {
        let deployment = try Deployment()
        defer { deployment.remove() }
        let nginx = try NginxServer(tree: deployment.repository, probe: "/xdp-root/latest/\(deployment.platform)/l3af_xdp_root.tar.gz")
        defer { withExtendedLifetime(nginx) {} }
        // The chain debug view on a port below the ephemeral range, as NginxServer picks its own.
        let debug = "127.0.0.1:\(Int.random(in: 20_000...32_000))"
        let (daemon, api, metrics) = try deployment.start(url: nginx.url, chainDebug: debug)
        defer { _ = daemon.stop(signal: SIGTERM) }
        let port = deployment.port, mapRoot = deployment.mapRoot
        #expect(try deployment.network.ping(3) == 3)

        // add: fetched from the plain repository (no index, no manifest), the roots as [xdp-root]/[tc-root] say.
        var answer = try await DaemonHarness.request(api, "POST", "/l3af/configs/v1/add", deployment.payload())
        #expect(answer.status == 200, "\(answer.text)")
        var object = try await Self.object(api, port)
        #expect(object["ipv4_address"] as? String == "10.9.8.7" && object["host_name"] as? String == "node-1")
        let rl = try #require(Self.first(object, "xdp_ingress"))
        #expect(rl["name"] as? String == "ratelimiting" && rl["version"] as? String == "1.0" && rl["artifact"] as? String == "l3af_ratelimiting.tar.gz")
        #expect(rl["object_file"] as? String == "ratelimiting.bpf.o" && rl["entry_function_name"] as? String == "_xdp_ratelimiting")
        #expect(rl["map_name"] as? String == "xdp_rl_ingress_next_prog" && rl["prog_type"] as? String == "xdp" && rl["cfg_version"] as? Int == 1)
        #expect(Self.first(object, "tc_ingress")?["name"] as? String == "traffic-mirror")
        #expect(try xdpAttached(port), "the XDP root is attached")

        // l3afd's chain debug view: each hook's root, then its programs, with their ids and l3afd's map paths.
        let view = try await DaemonHarness.request("http://\(debug)", "GET", "/bpfs/\(port)")
        let programs = try #require(try JSONSerialization.jsonObject(with: Data(view.text.utf8)) as? [[String: Any]], "\(view.text)")
        #expect(programs.map { ($0["Program"] as? [String: Any])?["name"] as? String ?? "?" } == ["xdp-root", "ratelimiting", "tc-root", "traffic-mirror"])
        #expect(programs.allSatisfy { ($0["ProgID"] as? Int ?? 0) > 0 }, "\(view.text)")
        #expect(programs[1]["MapNamePath"] as? String == "\(mapRoot)/\(port)/ratelimiting/1_0/xdp_rl_ingress_next_prog")
        #expect(programs[1]["PrevMapNamePath"] as? String == "\(mapRoot)/\(port)/xdp-root/latest/xdp_root_array")

        // Real traffic through both chains; the monitor maps rise in /metrics under l3afd's names.
        #expect(try deployment.network.ping(5) == 5, "pings pass the chain")
        #expect(try await Self.monitored(metrics, "rl_recv_count_map_0_scalar", iface: port, atLeast: 5) >= 5)
        #expect(try await Self.monitored(metrics, "tc_packet_count_map_0_scalar", iface: port, atLeast: 5) >= 5)
        let before = try await Self.monitored(metrics, "rl_recv_count_map_0_scalar", iface: port) ?? 0
        #expect(try deployment.network.ping(4) == 4)
        #expect(try await Self.monitored(metrics, "rl_recv_count_map_0_scalar", iface: port, atLeast: before + 4) >= before + 4, "the series rises with traffic")

        // Maps where l3afd pins them; pinned-by-name maps in the program's folder, never at the bpffs root.
        for path in ["\(port)/ratelimiting/1_0/rl_recv_count_map", "\(port)/ratelimiting/1_0/xdp_rl_ingress_next_prog",
                     "\(port)/xdp-root/latest/xdp_root_array", "tc/globals/\(port)/traffic-mirror/1_0/tc_packet_count_map",
                     "tc/globals/\(port)/tc-root/latest/tc_ingress_root_array"] {
            #expect(FileManager.default.fileExists(atPath: "\(mapRoot)/\(path)"), "\(path) is pinned")
        }
        #expect(!FileManager.default.fileExists(atPath: "/sys/fs/bpf/rl_recv_count_map"), "nothing pinned at the bpffs root")

        // update: a version change (v1.1, a .zip) and a map_args change (drop echo requests): pings stop.
        let mapArgs = #", "map_args": [{"name": "rl_config_map", "args": [{"key": 0, "value": 1}]}]"#
        answer = try await DaemonHarness.request(api, "POST", "/l3af/configs/v1/update", deployment.payload(version: "v1.1", artifact: "l3af_ratelimiting.zip", mapArgs: mapArgs))
        #expect(answer.status == 200, "\(answer.text)")
        object = try await Self.object(api, port)
        let updated = try #require(Self.first(object, "xdp_ingress"))
        #expect(updated["version"] as? String == "v1.1" && updated["artifact"] as? String == "l3af_ratelimiting.zip")
        #expect(((updated["map_args"] as? [[String: Any]])?.first?["name"] as? String) == "rl_config_map")
        #expect(try deployment.network.ping(3) == 0, "map_args took effect: echo requests are dropped")
        #expect(try await Self.monitored(metrics, "rl_drop_count_map_0_scalar", iface: port, atLeast: 3) >= 3)
        #expect(FileManager.default.fileExists(atPath: "\(mapRoot)/\(port)/ratelimiting/v1_1/rl_config_map"))
        #expect(!FileManager.default.fileExists(atPath: "\(mapRoot)/\(port)/ratelimiting/1_0"), "the old version's pins are gone")

        // l3afd's config store follows every change.
        let stored = try JSONSerialization.jsonObject(with: Data(contentsOf: deployment.store)) as? [[String: Any]]
        #expect(stored?.first?["iface"] as? String == port)

        // delete, with a name that isn't there: ignored, as l3afd does. Everything is gone; GET answers null lists.
        let delete = #"[{"host_name": "node-1", "iface": "\#(port)", "bpf_programs": {"xdp_ingress": ["ratelimiting", "not-there"], "tc_ingress": ["traffic-mirror"]}}]"#
        answer = try await DaemonHarness.request(api, "POST", "/l3af/configs/v1/delete", delete)
        #expect(answer.status == 200, "\(answer.text)")
        object = try await Self.object(api, port)
        let lists = try #require(object["bpf_programs"] as? [String: Any])
        for hook in ["xdp_ingress", "tc_ingress", "tc_egress", "probes"] { #expect(lists[hook] is NSNull, "\(hook) is null: \(object)") }
        #expect(try !xdpAttached(port), "the root is detached")
        #expect(try deployment.network.ping(3) == 3)
        #expect(!FileManager.default.fileExists(atPath: "\(mapRoot)/\(port)"), "l3afd's map pins are gone")
        #expect(!FileManager.default.fileExists(atPath: "\(mapRoot)/tc/globals/\(port)"))

        // The repository serves other bytes at coordinates this host fetched before. While 1.0 is installed it is used
        // as recorded, with no request; fetched again (its folder gone), the new bytes are refused, naming both
        // digests, and nothing changes.
        try deployment.publish("ratelimiting", "1.0", ["ratelimiting.bpf.o": "ratelimiting.bpf.c", "EXTRA": nil], artifact: "l3af_ratelimiting.tar.gz")
        try FileManager.default.removeItem(at: deployment.folder.appending(path: "repo/ratelimiting/1.0"))
        answer = try await DaemonHarness.request(api, "POST", "/l3af/configs/v1/add", deployment.payload())
        #expect(answer.status >= 400 && answer.status < 500, "\(answer.status) \(answer.text)")
        #expect(answer.text.contains("artifact-changed") && answer.text.contains("ratelimiting/1.0/\(deployment.platform)/l3af_ratelimiting.tar.gz"), "\(answer.text)")
        object = try await Self.object(api, port)
        #expect((object["bpf_programs"] as? [String: Any])?["xdp_ingress"] is NSNull, "nothing changed")
        #expect(try !xdpAttached(port))
    }

    /// An l3afd config store left by l3afd (over file://) is imported at first start as revision 1, and the chains
    /// come up; a second start does not import it again.
    @Test func anUpstreamConfigStoreIsImportedAtFirstStart() async throws {
        let deployment = try Deployment()
        defer { deployment.remove() }
        let url = "file://\(deployment.repository.path)"
        try deployment.payload().write(to: deployment.store, atomically: true, encoding: .utf8)
        var (daemon, api, metrics) = try deployment.start(url: url)
        defer { _ = daemon.stop(signal: SIGTERM) }
        let object = try await Self.object(api, deployment.port)
        #expect(Self.first(object, "xdp_ingress")?["name"] as? String == "ratelimiting" && object["ipv4_address"] as? String == "10.9.8.7")
        #expect(try xdpAttached(deployment.port))
        #expect(try deployment.network.ping(3) == 3)
        #expect(try await Self.monitored(metrics, "rl_recv_count_map_0_scalar", iface: deployment.port, atLeast: 3) >= 3)
        let history = try Executable.run("l3af", ["history", "--json", "--state", deployment.folder.appending(path: "state").path])
        #expect(history.stdout.contains("import l3afd's config store"), "\(history.stdout) \(history.stderr)")

        // Restarted: the host's own history rules; the store (rewritten by then) is not imported again.
        #expect(daemon.stop(signal: SIGTERM) == 0)
        (daemon, api, metrics) = try deployment.start(url: url)
        let again = try Executable.run("l3af", ["history", "--json", "--state", deployment.folder.appending(path: "state").path])
        #expect(again.stdout.components(separatedBy: "import l3afd's config store").count == 2, "imported once: \(again.stdout)")
    }

    /// `latest` is the one version whose bytes may move: a new build is fetched as a new revision of what `latest`
    /// means, and a rollback runs the bytes the earlier revision ran, still installed by their digest.
    @Test func aMovingLatestIsANewRevisionAndRollbackRunsTheOldBytes() async throws {
        let deployment = try Deployment()
        defer { deployment.remove() }
        try deployment.publish("ratelimiting", "latest", ["ratelimiting.bpf.o": "ratelimiting.bpf.c", "NOTES": nil], artifact: "l3af_ratelimiting.tar.gz", extra: " build A")
        let (daemon, api, metrics) = try deployment.start(url: "file://\(deployment.repository.path)")
        defer { _ = daemon.stop(signal: SIGTERM) }
        let payload = deployment.payload(version: "latest")
        #expect(try await DaemonHarness.request(api, "POST", "/l3af/configs/v1/add", payload).status == 200)
        let repo = deployment.folder.appending(path: "repo/ratelimiting").path
        let first = try FileManager.default.contentsOfDirectory(atPath: repo).filter { $0.hasPrefix("latest-") }
        #expect(first.count == 1, "\(first)")

        func revisions() async throws -> Int {
            let history = try await DaemonHarness.request(api, "GET", "/l3af/v1/history")
            return (try JSONSerialization.jsonObject(with: Data(history.text.utf8)) as? [Any])?.count ?? -1
        }
        let added = try await revisions()

        // The same payload again fetches the same bytes: nothing changes.
        var answer = try await DaemonHarness.request(api, "POST", "/l3af/configs/v1/update", payload)
        #expect(answer.status == 200, "\(answer.text)")
        #expect(try await revisions() == added, "no new revision for the same bytes")

        // A new build of latest: a new revision, the new bytes running.
        try deployment.publish("ratelimiting", "latest", ["ratelimiting.bpf.o": "ratelimiting.bpf.c", "NOTES": nil], artifact: "l3af_ratelimiting.tar.gz", extra: " build B")
        answer = try await DaemonHarness.request(api, "POST", "/l3af/configs/v1/update", payload)
        #expect(answer.status == 200, "\(answer.text)")
        #expect(try await revisions() == added + 1, "a new revision of what latest means")
        let both = try FileManager.default.contentsOfDirectory(atPath: repo).filter { $0.hasPrefix("latest-") }
        #expect(both.count == 2, "\(both)")
        let second = try #require(both.first { !first.contains($0) })
        func running() async throws -> String? {
            let status = try await DaemonHarness.request(api, "GET", "/l3af/v1/status")
            return [first[0], second].first { status.text.contains("ratelimiting@\($0)") || status.text.contains("\"\($0)\"") }
        }
        #expect(try await running() == second, "the new build runs")
        let series = String(decoding: try await HTTPClient().send(HTTPRequest(url: metrics)).body, as: UTF8.self)
        #expect(series.contains(#"l3afd_BPFRunning{host="node-1",ebpf_program="ratelimiting",version="latest""#), "labelled as l3afd labels it: \(series)")
        #expect(try await Self.object(api, deployment.port)["bpf_programs"].map { "\($0)" }?.contains("latest") == true, "GET still says latest, as sent")

        // Rollback: the first build's bytes run again, from where they were installed.
        answer = try await DaemonHarness.request(api, "POST", "/l3af/v1/rollback", "{}")
        #expect(answer.status == 200, "\(answer.text)")
        #expect(try await running() == first[0], "the earlier build runs again")
        #expect(try deployment.network.ping(3) == 3)
    }

    /// `bpf-chaining-enabled: false`: each hook runs its one program attached directly, with no root fetched or loaded;
    /// a second program on a hook is a 400 that changes nothing.
    @Test func withoutChainingEachHookRunsOneProgramWithoutARoot() async throws {
        let deployment = try Deployment()
        defer { deployment.remove() }
        let (daemon, api, metrics) = try deployment.start(url: "file://\(deployment.repository.path)", chaining: false)
        defer { _ = daemon.stop(signal: SIGTERM) }
        let port = deployment.port
        var answer = try await DaemonHarness.request(api, "POST", "/l3af/configs/v1/add", deployment.payload())
        #expect(answer.status == 200, "\(answer.text)")
        #expect(try xdpAttached(port))
        #expect(!FileManager.default.fileExists(atPath: "\(deployment.mapRoot)/\(port)/xdp-root"), "no root")
        #expect(!FileManager.default.fileExists(atPath: "\(deployment.folder.path)/repo/xdp-root"), "no root fetched")
        #expect(try deployment.network.ping(4) == 4)
        #expect(try await Self.monitored(metrics, "rl_recv_count_map_0_scalar", iface: port, atLeast: 4) >= 4)
        #expect(try await Self.monitored(metrics, "tc_packet_count_map_0_scalar", iface: port, atLeast: 4) >= 4)

        let second = #"[{"host_name": "node-1", "iface": "\#(port)", "bpf_programs": {"xdp_ingress": [{"name": "traffic-mirror", "seq_id": 2, "version": "1.0", "#
            + #""artifact": "l3af_traffic-mirror.tar.gz", "map_name": "tc_mirror_next_prog", "prog_type": "xdp", "object_file": "traffic_mirror.bpf.o", "#
            + #""entry_function_name": "_tc_traffic_mirror", "admin_status": "enabled"}]}}]"#
        answer = try await DaemonHarness.request(api, "POST", "/l3af/configs/v1/add", second)
        #expect(answer.status == 400 && answer.text.contains("bpf-chaining-enabled is false"), "\(answer.status) \(answer.text)")
        let object = try await Self.object(api, port)
        #expect(((object["bpf_programs"] as? [String: Any])?["xdp_ingress"] as? [Any])?.count == 1, "nothing changed")
        #expect(try deployment.network.ping(2) == 2)

        // `l3af` on the same state follows the daemon's settings: the CLI refuses the second program too.
        let file = deployment.folder.appending(path: "second.json")
        try second.write(to: file, atomically: true, encoding: .utf8)
        let cli = try Executable.run("l3af", ["apply", file.path, "--add", "--host-name", "node-1", "--state", deployment.folder.appending(path: "state").path,
                                              "--repo", deployment.folder.appending(path: "repo").path, "--cache", deployment.folder.appending(path: "cache").path,
                                              "--pin-root", deployment.network.pinRoot])
        #expect(cli.status == 1 && cli.stderr.contains("bpf-chaining-enabled is false"), "\(cli.status) \(cli.stderr)")
        #expect(try xdpAttached(port) && !FileManager.default.fileExists(atPath: "\(deployment.network.pinRoot)/\(port)/xdp_ingress/root"), "still alone")
    }

    /// A probe from a payload's `probes`: attached as its section says (a tracepoint here), listed by GET as sent,
    /// counting real events, still attached (the same program) after the daemon restarts, and gone after delete.
    @Test func aProbeAttachesCountsSurvivesARestartAndIsDeleted() async throws {
        let deployment = try Deployment()
        defer { deployment.remove() }
        try deployment.publish("getppid-counter", "1.0", ["getppid_counter.bpf.o": "getppid_counter.bpf.c"], artifact: "l3af_getppid-counter.tar.gz")
        let url = "file://\(deployment.repository.path)"
        var (daemon, api, _) = try deployment.start(url: url)
        defer { _ = daemon.stop(signal: SIGTERM) }
        let port = deployment.port
        let probe = #"{"name": "getppid-counter", "version": "1.0", "artifact": "l3af_getppid-counter.tar.gz", "prog_type": "tracepoint", "#
            + #""object_file": "getppid_counter.bpf.o", "entry_function_name": "count_getppid", "admin_status": "enabled"}"#
        let add = #"[{"host_name": "node-1", "iface": "\#(port)", "bpf_programs": {"probes": [\#(probe)]}}]"#
        var answer = try await DaemonHarness.request(api, "POST", "/l3af/configs/v1/add", add)
        #expect(answer.status == 200, "\(answer.text)")
        let listed = try await Self.object(api, port)
        #expect(((listed["bpf_programs"] as? [String: Any])?["probes"] as? [[String: Any]])?.first?["prog_type"] as? String == "tracepoint")

        let object = "\(deployment.network.pinRoot)/probes/\(port)/getppid-counter/1_0/getppid_counter_bpf_o", folder = "\(object)/count_getppid"
        func link() throws -> String { try Executable.run("/usr/sbin/bpftool", ["link", "show", "pinned", "\(folder)/link"]).stdout }
        let before = try link()
        #expect(before.contains("tracepoint") || before.contains("perf_event"), "bpftool sees the probe's link: \(before)")
        func count() throws -> UInt64 {
            let lookup = try Executable.run("/usr/sbin/bpftool", ["-j", "map", "lookup", "pinned", "\(object)/maps/getppid_count_map", "key", "0", "0", "0", "0"])
            guard let object = try JSONSerialization.jsonObject(with: Data(lookup.stdout.utf8)) as? [String: Any],
                  let bytes = object["value"] as? [String] else { return 0 }
            return bytes.enumerated().reduce(UInt64(0)) { sum, item in sum | (UInt64(item.element.dropFirst(2), radix: 16) ?? 0) << (8 * UInt64(item.offset)) }
        }
        let start = try count()
        let calls = try Executable.run("/usr/bin/env", ["python3", "-c", "import os\nfor _ in range(200): os.getppid()"])
        #expect(calls.status == 0)
        #expect(try count() >= start + 200, "the tracepoint counted the calls")

        // A restart adopts it: the same link, the same program, no second attach.
        #expect(daemon.stop(signal: SIGTERM) == 0)
        (daemon, api, _) = try deployment.start(url: url)
        #expect(try link() == before, "the same link after a restart")
        #expect(((try await Self.object(api, port)["bpf_programs"] as? [String: Any])?["probes"] as? [Any])?.count == 1)

        // Disabled through /update: detached, still configured; enabled again: attached again.
        let disabled = add.replacingOccurrences(of: #""admin_status": "enabled""#, with: #""admin_status": "disabled""#)
        #expect(try await DaemonHarness.request(api, "POST", "/l3af/configs/v1/update", disabled).status == 200)
        #expect(!FileManager.default.fileExists(atPath: "\(folder)/link"), "a disabled probe is detached")
        #expect(((try await Self.object(api, port)["bpf_programs"] as? [String: Any])?["probes"] as? [Any])?.count == 1, "and still configured")
        #expect(try await DaemonHarness.request(api, "POST", "/l3af/configs/v1/update", add).status == 200)
        #expect(try link().contains("tracepoint") || (try link()).contains("perf_event"), "attached again")

        let delete = #"[{"host_name": "node-1", "iface": "\#(port)", "bpf_programs": {"probes": ["getppid-counter"]}}]"#
        answer = try await DaemonHarness.request(api, "POST", "/l3af/configs/v1/delete", delete)
        #expect(answer.status == 200, "\(answer.text)")
        #expect(!FileManager.default.fileExists(atPath: object), "unpinned")
        #expect((try Executable.run("/usr/sbin/bpftool", ["link", "show", "pinned", "\(folder)/link"])).status != 0)
    }
}
