import Foundation
import L3AFTestSupport
import Testing

/// The host commands end to end, all real: the CLI against a registry on loopback, programs on a veth port of a
/// network each test makes, real traffic, the state database, bpffs pins.
@Suite(.serialized, .enabled(if: bpfUnavailable == nil, "\(bpfUnavailable ?? "")"))
struct HostTests {
    @Test func installShowsCountersUnderRealTrafficAndRemoveCleansUp() throws {
        let host = try HostHarness()
        defer { host.remove() }
        var run = try host.l3af(["install", "ratelimiting@latest", "--iface", host.port, "--set", "rate=5", "--set", "ports=8080"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("revision 1: install ratelimiting@1.0.0 on \(host.port) (xdp_ingress)"), "\(run.stdout)")
        // On a terminal (a pty from script(1)) the download shows a progress bar, as `l3af fetch`'s does.
        let line = ([Executable.path("l3af"), "install", "packet-counter", "--iface", host.port, "--hook", "xdp_ingress", "--seq", "5"] + host.settings)
            .map { "'\($0)'" }.joined(separator: " ")
        run = try Executable.run("/usr/bin/script", ["-qec", line, "/dev/null"])
        #expect(run.status == 0, "\(run.stdout)")
        #expect(run.stdout.contains("% 0.0/") && run.stdout.contains(" KB\r\u{1B}[K") && run.stdout.contains("revision 2"), "\(run.stdout.debugDescription)")
        #expect(try host.chain().map(\.spec) == ["packet-counter@1.0.0", "ratelimiting@1.0.0"])

        #expect(try host.network.ping(5) == 5)
        _ = try host.network.connect(20, port: 8080)
        let chain = try host.chain()
        #expect(chain[0].counters["xdp_counter_map[6]", default: 0] >= 20, "TCP packets counted: \(chain[0].counters)")
        #expect(chain[1].counters["rl_recv_count_map[0]"] == 20, "\(chain[1].counters)")
        #expect(chain[1].counters["rl_drop_count_map[0]", default: 0] >= 10, "\(chain[1].counters)")
        let status = try host.status()
        #expect(status["difference"] == nil || status["difference"] is NSNull)

        run = try host.l3af(["remove", "ratelimiting", "--iface", host.port])
        #expect(run.status == 0, "\(run.stderr)")
        run = try host.l3af(["remove", "packet-counter", "--iface", host.port])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try host.chain().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: "\(host.pinRoot)/\(host.port)"), "root detached, pins gone")
        #expect(try host.history().map(\.kind) == ["remove", "remove", "install", "install"])
        #expect(try host.network.ping(3) == 3)
    }

    @Test func upgradePassesPinsAndRollbackWorksWithTheRegistryDown() throws {
        let host = try HostHarness()
        defer { host.remove() }
        #expect(try host.l3af(["install", "ratelimiting", "--iface", host.port, "--set", "rate=100", "--set", "ports=8080"]).status == 0)
        try host.publish("ratelimiting", version: "1.1.0")
        try host.publish("ratelimiting", version: "2.0.0")

        var run = try host.l3af(["pin", "ratelimiting@1.0.0"])
        #expect(run.status == 0, "\(run.stderr)")
        run = try host.l3af(["upgrade"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("skipped: ratelimiting on \(host.port)/xdp_ingress is pinned at 1.0.0"), "\(run.stdout)")
        #expect(try host.chain().map(\.spec) == ["ratelimiting@1.0.0"])

        // Pinning another version moves it there now.
        run = try host.l3af(["pin", "ratelimiting@1.1.0"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try host.chain().map(\.spec) == ["ratelimiting@1.1.0"])
        #expect(try host.l3af(["unpin", "ratelimiting"]).status == 0)
        // The requirement was `latest`: 2.0.0.
        run = try host.l3af(["upgrade"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try host.chain().map(\.spec) == ["ratelimiting@2.0.0"])
        _ = try host.network.connect(5, port: 8080)
        #expect(try host.chain()[0].counters["rl_recv_count_map[0]"] == 5)

        _ = host.registry.server.stop()
        run = try host.l3af(["rollback"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try host.chain().map(\.spec) == ["ratelimiting@1.1.0"])
        #expect(try host.chain()[0].counters["rl_recv_count_map[0]"] == 5, "state maps carried over on rollback")
        run = try host.l3af(["rollback", "1"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try host.chain().map(\.spec) == ["ratelimiting@1.0.0"])
        run = try host.l3af(["rollback", "3"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try host.chain().map(\.spec) == ["ratelimiting@2.0.0"])
        // The newest earlier revision with a lower version: revision 5's 1.0.0.
        run = try host.l3af(["rollback", "ratelimiting"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try host.chain().map(\.spec) == ["ratelimiting@1.0.0"])
        let kinds = try host.history().map(\.kind)
        #expect(kinds == ["rollback", "rollback", "rollback", "rollback", "upgrade", "pin", "install"], "\(kinds)")
        #expect(try host.network.ping(3) == 3)
    }

    @Test func theHealthWatchRollsABadReleaseBackByItself() throws {
        let host = try HostHarness()
        defer { host.remove() }
        #expect(try host.l3af(["install", "ratelimiting@^1.0", "--iface", host.port, "--set", "rate=1000", "--set", "ports=8080"]).status == 0)
        try host.publish("ratelimiting", version: "1.2.0", bad: true)
        // SYNs all through the watch, from another thread.
        let network = host.network
        let traffic = Thread { _ = try? network.connect(300, port: 8080, perSecond: 30) }
        traffic.start()
        let run = try host.l3af(["upgrade", "--watch", "6", "--interval", "0.5"])
        #expect(run.status == 1)
        let after = try host.l3af(["status"]).stdout
        #expect(run.stderr.contains("rolled back automatically"), "\(run.stderr) \(after)")
        #expect(run.stderr.contains("broke 'dropped SYNs stay at or under half of the limited SYNs'"), "\(run.stderr)")
        #expect(try host.chain().map(\.spec) == ["ratelimiting@1.0.0"])
        let history = try host.history()
        #expect(history.map(\.kind) == ["auto-rollback", "upgrade", "install"])
        #expect(history[0].cause.contains("automatic rollback of revision 2"))
        // A good release under the same watch stays.
        try host.publish("ratelimiting", version: "1.3.0")
        let again = try host.l3af(["upgrade", "ratelimiting", "--watch", "1", "--interval", "0.5"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try host.chain().map(\.spec) == ["ratelimiting@1.3.0"])
    }

    @Test func restorePutsTheLastRevisionBackAfterThePinsWereWiped() throws {
        let host = try HostHarness()
        defer { host.remove() }
        #expect(try host.l3af(["install", "packet-counter", "--iface", host.port]).status == 0)
        #expect(try host.l3af(["install", "ratelimiting", "--iface", host.port, "--set", "rate=100", "--set", "ports=8080"]).status == 0)
        var run = try host.l3af(["restore"])
        #expect(run.stdout.contains("nothing to do"), "\(run.stdout)")
        let before = try host.chain().map(\.programID)

        // As after a reboot: nothing pinned, nothing attached.
        try FileManager.default.removeItem(atPath: "\(host.pinRoot)/\(host.port)")
        _ = try Executable.run("/usr/sbin/tc", ["qdisc", "del", "dev", host.port, "clsact"])
        run = try host.l3af(["status"])
        #expect(run.stdout.contains("the kernel DISAGREES"), "\(run.stdout)")
        run = try host.l3af(["restore"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("restored revision 2"), "\(run.stdout)")
        #expect(try host.chain().map(\.spec) == ["packet-counter@1.0.0", "ratelimiting@1.0.0"])
        #expect(try host.chain("tc_egress").map(\.spec) == ["packet-counter@1.0.0"])
        #expect(try host.chain().map(\.programID) != before, "loaded again")
        run = try host.l3af(["restore"])
        #expect(run.stdout.contains("nothing to do"), "\(run.stdout)")
        _ = try host.network.connect(3, port: 8080)
        #expect(try host.chain()[1].counters["rl_recv_count_map[0]"] == 3)
        #expect(try host.history().count == 2, "restore records no revision")
    }

    @Test func badInputIsRefusedAndChangesNothing() throws {
        let host = try HostHarness()
        defer { host.remove() }
        #expect(try host.l3af(["install", "ratelimiting", "--iface", host.port, "--seq", "10", "--set", "rate=100", "--set", "ports=8080"]).status == 0)
        let before = try host.chain().map(\.programID)
        let cases: [([String], String)] = [
            (["install", "nosuchpackage", "--iface", host.port], "nosuchpackage"),
            (["install", "packet-counter@9.9.9", "--iface", host.port], "9.9.9"),
            (["install", "packet-counter", "--iface", "nosuch0"], "there is no network interface 'nosuch0'"),
            (["install", "packet-counter", "--iface", host.port, "--hook", "tc_ingress"], "has no program for tc_ingress"),
            (["install", "packet-counter", "--iface", host.port, "--hook", "xdp_ingress", "--seq", "10"], "seq_id 10 on \(host.port)/xdp_ingress is taken by ratelimiting@1.0.0"),
            (["install", "ratelimiting", "--iface", host.port], "is already installed on"),
            (["install", "ip-denylist", "--iface", host.port, "--set", "ipv4=10.0.0.300/8"], "ipv4"),
            (["rollback", "99"], "there is no revision 99"),
            (["rollback", "ratelimiting"], "no earlier version"),
            (["remove", "packet-counter", "--iface", host.port], "packet-counter is not installed"),
            (["pin", "ratelimiting@7.0.0"], "7.0.0"),
        ]
        for (arguments, message) in cases {
            let run = try host.l3af(arguments)
            #expect(run.status == 1, "\(arguments): \(run.stdout) \(run.stderr)")
            #expect(run.stderr.contains(message), "\(arguments): \(run.stderr)")
            #expect(run.stderr.contains("hint:") || arguments[0] == "install", "\(arguments): \(run.stderr)")
        }
        let unknownHook = try host.l3af(["install", "packet-counter", "--iface", host.port, "--hook", "egress"])
        #expect(unknownHook.status != 0)
        #expect(unknownHook.stderr.contains("egress"))
        let badSet = try host.l3af(["upgrade", "--watch", "soon"])
        #expect(badSet.status == 1 && badSet.stderr.contains("'soon' is not a duration"))
        #expect(try host.chain().map(\.programID) == before, "the chain is exactly as it was")
        #expect(try host.history().count == 1, "nothing recorded")
        #expect(try host.l3af(["status"]).stdout.contains("the kernel runs exactly this"))
    }

    /// l3afd payloads through `l3af apply`: add, no-op, version change, disable, remove, delete by name, and refusals.
    @Test func appliesL3afdPayloads() throws {
        let host = try HostHarness()
        defer { host.remove() }
        func payload(_ xdp: String, tcEgress: String = "[]", hostName: String = "node-1", iface: String? = nil) throws -> String {
            let file = host.folder.appending(path: "payload-\(UUID().uuidString).json")
            try """
                [{"host_name": "\(hostName)", "iface": "\(iface ?? host.port)", "bpf_programs": {"xdp_ingress": \(xdp), "tc_egress": \(tcEgress)}}]
                """.write(to: file, atomically: true, encoding: .utf8)
            return file.path
        }
        // L3AF's documented ratelimiting example (its user program fields are ignored: the manifest's parameters
        // take start_args), behind a packet counter, and the counter on TC egress too.
        let ratelimiting = """
            {"name": "ratelimiting", "seq_id": 2, "artifact": "l3af_ratelimiting.tar.gz", "map_name": "xdp_rl_ingress_next_prog",
             "cmd_start": "ratelimiting", "version": "latest", "user_program_daemon": true, "admin_status": "enabled",
             "prog_type": "xdp", "cfg_version": 1, "start_args": {"ports": "8080,8081", "rate": "2"},
             "monitor_maps": [{"name": "rl_drop_count_map", "key": 0, "aggregator": "scalar"},
                              {"name": "rl_recv_count_map", "key": 0, "aggregator": "max-rate"}]}
            """
        let counter = #"{"name": "packet-counter", "seq_id": 1, "version": "1.0.0", "admin_status": "enabled", "prog_type": "xdp"}"#
        let egress = #"[{"name": "packet-counter", "seq_id": 1, "version": "latest", "admin_status": "enabled", "prog_type": "tc"}]"#
        let apply = { (file: String, extra: [String]) throws -> Executable.Result in try host.l3af(["apply", file, "--host-name", "node-1"] + extra) }

        var run = try apply(try payload("[\(counter), \(ratelimiting)]", tcEgress: egress), [])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try host.chain().map(\.spec) == ["packet-counter@1.0.0", "ratelimiting@1.0.0"])
        #expect(try host.chain("tc_egress").map(\.spec) == ["packet-counter@1.0.0"])
        _ = try host.network.connect(10, port: 8080)
        #expect(try host.chain()[1].counters["rl_drop_count_map[0]", default: 0] >= 5, "rate 2 from start_args")
        let ids = try host.chain().map(\.programID)

        run = try apply(try payload("[\(counter), \(ratelimiting)]", tcEgress: egress), [])
        #expect(run.stdout.contains("nothing to change"), "\(run.stdout) \(run.stderr)")

        // A version change: one flip, the counter untouched.
        try host.publish("ratelimiting", version: "1.1.0")
        run = try apply(try payload("[\(counter), \(ratelimiting.replacingOccurrences(of: #""version": "latest""#, with: #""version": "1.1.0""#))]", tcEgress: egress), [])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try host.chain().map(\.spec) == ["packet-counter@1.0.0", "ratelimiting@1.1.0"])
        #expect(try host.chain()[0].programID == ids[0])

        // Disabled: out of the chain, still configured.
        run = try apply(try payload("[\(counter), \(ratelimiting.replacingOccurrences(of: #""admin_status": "enabled""#, with: #""admin_status": "disabled""#))]", tcEgress: egress), [])
        #expect(run.status == 0, "\(run.stderr)")
        let status = try host.status()
        let programs = ((status["chains"] as? [[String: Any]])?.first { $0["hook"] as? String == "xdp_ingress" }?["programs"] as? [[String: Any]]) ?? []
        #expect(programs.count == 2)
        #expect(programs.first { $0["package"] as? String == "ratelimiting" }?["enabled"] as? Bool == false)
        #expect(programs.first { $0["package"] as? String == "ratelimiting" }?["program_id"] == nil)

        // Left out of the payload: removed. Then delete by name.
        run = try apply(try payload("[\(counter)]", tcEgress: egress), [])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try host.chain().map(\.spec) == ["packet-counter@1.0.0"])
        let names = host.folder.appending(path: "names.json")
        try #"[{"host_name": "node-1", "iface": "\#(host.port)", "bpf_programs": {"tc_egress": ["packet-counter"]}}]"#.write(to: names, atomically: true, encoding: .utf8)
        run = try apply(names.path, ["--delete"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try host.chain("tc_egress").isEmpty)
        #expect(try host.chain().map(\.spec) == ["packet-counter@1.0.0"])
        let revisions = try host.history().count

        // Refusals, each naming the problem; nothing changes.
        let cases: [(String, String)] = [
            (try payload("[\(counter)]", hostName: "node-2"), "host_name is 'node-2', but this host is 'node-1'"),
            (try payload("[\(counter), \(counter.replacingOccurrences(of: "packet-counter", with: "ratelimiting"))]"), "seq_id"),
            (try payload("[\(counter)]", iface: "nosuch0"), "no network interface 'nosuch0'"),
            (try payload(#"[{"name": "packet-counter", "seq_id": "one"}]"#), "seq_id"),
            (try payload(#"[{"name": "ratelimiting", "seq_id": 3, "start_args": {"burst": "5"}}]"#), "has no parameter 'burst'"),
            (try payload(#"[{"name": "ratelimiting", "seq_id": 3, "start_args": {"rate": "lots"}}]"#), "rate"),
            (try payload(#"[{"name": "nosuchpackage", "seq_id": 3}]"#), "nosuchpackage"),
        ]
        for (file, message) in cases {
            let refused = try apply(file, [])
            #expect(refused.status == 1, "\(message): \(refused.stdout)")
            #expect(refused.stderr.contains(message), "\(message): \(refused.stderr)")
        }
        #expect(try host.history().count == revisions)
        #expect(try host.chain().map(\.spec) == ["packet-counter@1.0.0"])
    }
}
