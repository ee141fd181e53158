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
        run = try host.l3af(["install", "packet-counter", "--iface", host.port, "--hook", "xdp_ingress", "--seq", "5"])
        #expect(run.status == 0, "\(run.stderr)")
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
}
