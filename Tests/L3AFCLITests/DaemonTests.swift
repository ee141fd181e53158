import Foundation
import L3AFArchive
import L3AFClient
import L3AFDaemon
import L3AFTestSupport
import Testing

/// The monitor-map aggregators on known samples (time in seconds, value).
@Test func monitorMapAggregators() {
    let samples: [(time: Double, value: UInt64)] = [(0, 10), (1, 20), (2, 50), (4, 60)]
    #expect(DaemonMetrics.aggregate(.scalar, samples) == 60)
    #expect(DaemonMetrics.aggregate(.avg, samples) == 35)
    #expect(DaemonMetrics.aggregate(.maxRate, samples) == 30, "the largest per-second increase: 20 → 50 in 1 s")
    #expect(DaemonMetrics.aggregate(.maxRate, [(0, 5)]) == 0)
}

/// A running `l3afd` for one host harness, driven with plain HTTP through libcurl.
final class DaemonHarness {
    let host: HostHarness
    var process: RunningProcess
    var url: String
    var metricsURL: String?
    let extra: [String]

    init(host: HostHarness, extra: [String] = []) throws {
        self.host = host
        self.extra = extra
        (process, url, metricsURL) = try Self.start(host, extra)
    }

    static func arguments(_ host: HostHarness) -> [String] {
        ["--host-name", "node-1", "--sample-interval", "0.3", "--log-level", "warning"] + host.settings
    }

    static func start(_ host: HostHarness, _ extra: [String]) throws -> (RunningProcess, String, String?) {
        let listen = extra.contains("--listen") ? [] : ["--listen", "127.0.0.1:0"]
        return try launch(arguments(host) + listen + extra)
    }

    /// `l3afd` started with `arguments`: the process, its API's URL, and its metrics' URL when on their own address.
    static func launch(_ arguments: [String]) throws -> (RunningProcess, String, String?) {
        let process = try RunningProcess("l3afd", arguments)
        let line = try process.waitForLine(containing: "l3afd listening on ")
        guard let start = line.range(of: "://"), let url = line[line.index(start.lowerBound, offsetBy: -5)...].split(separator: " ").first else {
            throw FixtureError("no URL in '\(line)'")
        }
        let api = String(url).hasPrefix("shttp") ? String(url.dropFirst()) : String(url)
        var metrics: String?
        if let m = line.range(of: "(metrics on ") { metrics = String(line[m.upperBound...].dropLast()) }
        return (process, api, metrics)
    }

    func restart() throws {
        #expect(process.stop(signal: SIGTERM) == 0)
        (process, url, metricsURL) = try Self.start(host, extra)
    }

    func request(_ method: String, _ path: String, _ body: String? = nil) async throws -> (status: Int, text: String) {
        try await Self.request(url, method, path, body)
    }

    /// A request to the daemon at `url` (JSON when there is a body).
    static func httpRequest(_ url: String, _ method: String, _ path: String, _ body: String?) -> HTTPRequest {
        HTTPRequest(method: method, url: url + path, headers: body == nil ? [] : [("Content-Type", "application/json")], body: body.map { Array($0.utf8) })
    }

    /// `request`, for callers that hold only the daemon's URL (concurrent tasks).
    static func request(_ url: String, _ method: String, _ path: String, _ body: String? = nil) async throws -> (status: Int, text: String) {
        let response = try await HTTPClient().send(httpRequest(url, method, path, body))
        return (response.status, String(decoding: response.body, as: UTF8.self))
    }

    func json(_ path: String) async throws -> Any {
        let (status, text) = try await request("GET", path)
        #expect(status == 200, "\(path): \(text)")
        return try JSONSerialization.jsonObject(with: Data(text.utf8))
    }

    func metrics() async throws -> String {
        let response = try await HTTPClient().send(HTTPRequest(method: "GET", url: (metricsURL ?? url + "/metrics"), headers: [], body: nil))
        return String(decoding: response.body, as: UTF8.self)
    }

    func stop() { _ = process.stop(signal: SIGTERM) }
}

/// `l3afd` on loopback with real programs on a veth port: l3afd's API with L3AF's documented payloads, bad payloads,
/// metrics checked against the maps, restarts under traffic, our routes, OpenAPI coverage.
@Suite(.serialized, .enabled(if: bpfUnavailable == nil, "\(bpfUnavailable ?? "")"))
struct DaemonTests {
    /// L3AF's ratelimiting example, on this test's interface, behind a packet counter.
    static func payload(_ iface: String, ratelimiting: String = "", counter: Bool = true, host: String = "node-1") -> String {
        let rl = """
            {"name": "ratelimiting", "seq_id": 2, "artifact": "l3af_ratelimiting.tar.gz", "map_name": "xdp_rl_ingress_next_prog",
             "cmd_start": "ratelimiting", "version": "latest", "user_program_daemon": true, "admin_status": "enabled",
             "prog_type": "xdp", "cfg_version": 1, "start_args": {"ports": "8080,8081", "rate": "2"},
             "monitor_maps": [{"name": "rl_drop_count_map", "key": 0, "aggregator": "scalar"},
                              {"name": "rl_recv_count_map", "key": 0, "aggregator": "max-rate"}]\(ratelimiting)}
            """
        let pc = #"{"name": "packet-counter", "seq_id": 1, "version": "latest", "admin_status": "enabled", "prog_type": "xdp"}"#
        return #"[{"host_name": "\#(host)", "iface": "\#(iface)", "bpf_programs": {"xdp_ingress": [\#(counter ? pc + ", " : "")\#(rl)]}}]"#
    }

    /// `name@seq_id` of the XDP programs of a `GET /l3af/configs/v1` answer (an array) or of one interface's (an object).
    static func programs(_ config: Any) -> [String] {
        ((config as? [[String: Any]]) ?? (config as? [String: Any]).map { [$0] } ?? []).flatMap { payload -> [String] in
            let lists = (payload["bpf_programs"] as? [String: Any]) ?? [:]
            return ((lists["xdp_ingress"] as? [[String: Any]]) ?? []).map { "\($0["name"]!)@\($0["seq_id"]!)" }
        }
    }

    @Test func l3afdAddUpdateDeleteAndGet() async throws {
        let host = try HostHarness()
        defer { host.remove() }
        let daemon = try DaemonHarness(host: host)
        defer { daemon.stop() }
        #expect(Self.programs(try await daemon.json("/l3af/configs/v1")).isEmpty)

        // Nothing there yet: one object, 200, its four hook lists null (as l3afd answers).
        let empty = try await daemon.json("/l3af/configs/v1/\(host.port)") as? [String: Any]
        let emptyLists = empty?["bpf_programs"] as? [String: Any]
        #expect(empty?["iface"] as? String == host.port && ["xdp_ingress", "tc_ingress", "tc_egress", "probes"].allSatisfy { emptyLists?[$0] is NSNull },
                "\(String(describing: empty))")

        let withAddress = Self.payload(host.port).replacingOccurrences(of: #""iface": "\#(host.port)""#, with: #""iface": "\#(host.port)", "ipv4_address": "192.0.2.10""#)
        var reply = try await daemon.request("POST", "/l3af/configs/v1/add", withAddress)
        #expect(reply.status == 200, "\(reply.text)")
        #expect(try host.chain().map(\.spec) == ["packet-counter@1.0.0", "ratelimiting@1.0.0"])
        let config = try await daemon.json("/l3af/configs/v1/\(host.port)")
        #expect(Self.programs(config) == ["packet-counter@1", "ratelimiting@2"])
        let object = try #require(config as? [String: Any], "one object for one interface")
        #expect(object["ipv4_address"] as? String == "192.0.2.10", "ipv4_address comes back as sent")
        let lists = object["bpf_programs"] as! [String: Any]
        #expect(lists["tc_ingress"] is NSNull && lists["probes"] is NSNull)
        let first = lists["xdp_ingress"] as! [[String: Any]]
        #expect((first[1]["start_args"] as? [String: String]) == ["ports": "8080,8081", "rate": "2"], "the payload comes back as sent")
        #expect(first[1]["cmd_start"] as? String == "ratelimiting")

        // /add of programs already there leaves them as they are (a version change needs /update).
        let ids = try host.chain().map(\.programID)
        reply = try await daemon.request("POST", "/l3af/configs/v1/add",
                                         withAddress.replacingOccurrences(of: #""start_args": {"ports": "8080,8081", "rate": "2"}"#, with: #""start_args": {"ports": "8080", "rate": "9"}"#))
        #expect(reply.status == 200 && !reply.text.contains("number"), "no revision: \(reply.text)")
        #expect(try host.chain().map(\.programID) == ids, "nothing reloaded")
        #expect(Self.programs(try await daemon.json("/l3af/configs/v1")) == ["packet-counter@1", "ratelimiting@2"])

        // The CLI sees what the daemon did: same state, same lock.
        #expect(try host.history().first?.kind == "apply")

        // A version change through /update.
        try host.publish("ratelimiting", version: "1.1.0")
        reply = try await daemon.request("POST", "/l3af/configs/v1/update",
                                         Self.payload(host.port).replacingOccurrences(of: #""version": "latest", "user"#, with: #""version": "1.1.0", "user"#))
        #expect(reply.status == 200, "\(reply.text)")
        #expect(try host.chain().map(\.spec) == ["packet-counter@1.0.0", "ratelimiting@1.1.0"])

        // admin_status disabled: out of the chain, still in the configuration.
        reply = try await daemon.request("POST", "/l3af/configs/v1/update",
                                         Self.payload(host.port).replacingOccurrences(of: #""user_program_daemon": true, "admin_status": "enabled""#,
                                                                                     with: #""user_program_daemon": true, "admin_status": "disabled""#))
        #expect(reply.status == 200, "\(reply.text)")
        #expect(try host.chain().map(\.spec) == ["packet-counter@1.0.0"], "\(reply.text)")
        #expect(Self.programs(try await daemon.json("/l3af/configs/v1")) == ["packet-counter@1", "ratelimiting@2"])

        // Delete by name (L3AF's L3afBPFProgramNames); a name that isn't there is ignored, as l3afd does.
        reply = try await daemon.request("POST", "/l3af/configs/v1/delete",
                                         #"[{"host_name": "node-1", "iface": "\#(host.port)", "bpf_programs": {"xdp_ingress": ["ratelimiting", "nosuch"]}}]"#)
        #expect(reply.status == 200, "\(reply.text)")
        #expect(Self.programs(try await daemon.json("/l3af/configs/v1")) == ["packet-counter@1"])
        // /update is declarative for the host: an empty list empties it.
        reply = try await daemon.request("POST", "/l3af/configs/v1/update", "[]")
        #expect(reply.status == 200, "\(reply.text)")
        #expect(try host.chain().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: "\(host.pinRoot)/\(host.port)"))
    }

    @Test func badPayloadsAreA400NamingTheProblem() async throws {
        let host = try HostHarness()
        defer { host.remove() }
        let daemon = try DaemonHarness(host: host)
        defer { daemon.stop() }
        #expect(try await daemon.request("POST", "/l3af/configs/v1/add", Self.payload(host.port)).status == 200)
        let before = try host.chain().map(\.programID)
        let cases: [(String, String, String)] = [
            ("/l3af/configs/v1/add", #"[{"host_name": "node-1", "iface": "\#(host.port)", "bpf_programs": {"xdp_ingress": [{"name": "ratelimiting", "seq_id": "two"}]}}]"#, "seq_id"),
            ("/l3af/configs/v1/add", #"{"host_name": "node-1"}"#, "expected an array"),
            ("/l3af/configs/v1/add", "not json", "request body"),
            ("/l3af/configs/v1/add", Self.payload("nosuch0"), "no network interface 'nosuch0'"),
            ("/l3af/configs/v1/add", Self.payload(host.port, host: "elsewhere"), "host_name is 'elsewhere'"),
            ("/l3af/configs/v1/update", Self.payload(host.port).replacingOccurrences(of: #""seq_id": 2"#, with: #""seq_id": 1"#), "seq_id"),
            ("/l3af/v1/install", #"{"spec": "ratelimiting", "iface": "\#(host.port)", "hook": "sideways"}"#, "sideways"),
            ("/l3af/v1/rollback", #"{"revision": 99}"#, "there is no revision 99"),
        ]
        for (path, body, message) in cases {
            let reply = try await daemon.request("POST", path, body)
            #expect(reply.status == 400, "\(path) \(message): \(reply.status) \(reply.text)")
            #expect(reply.text.contains(message), "\(path): \(reply.text)")
            #expect(reply.text.contains(#""error""#), "a JSON error body: \(reply.text)")
        }
        let other = try await daemon.request("GET", "/l3af/configs/v1/nosuch0")
        #expect(other.status == 200 && other.text.contains(#""xdp_ingress" : null"#), "\(other.text)")
        #expect(try await daemon.request("GET", "/no/such/route").status == 404)
        #expect(try host.chain().map(\.programID) == before, "nothing changed")
        #expect(try await daemon.metrics().contains("l3afd_BPFUpdateFailedCount"))
    }

    @Test func metricsFollowTheMapsUnderTraffic() async throws {
        let host = try HostHarness()
        defer { host.remove() }
        let daemon = try DaemonHarness(host: host, extra: ["--metrics-listen", "127.0.0.1:0"])
        defer { daemon.stop() }
        #expect(try await daemon.request("POST", "/l3af/configs/v1/add", Self.payload(host.port)).status == 200)
        func value(_ text: String, _ metric: String, _ labels: [String]) -> Double? {
            text.split(separator: "\n").first { line in line.hasPrefix(metric + "{") && labels.allSatisfy { line.contains($0) } }
                .flatMap { Double($0.split(separator: " ").last!) }
        }
        var text = try await daemon.metrics()
        #expect(value(text, "l3afd_BPFRunning", [#"ebpf_program="ratelimiting""#, #"version="1.0.0""#, #"interface_name="\#(host.port)""#,
                                                 #"direction="xdpingress""#, #"host="node-1""#, #"ipv4_address="""#]) == 1, "\(text)")
        #expect((value(text, "l3afd_BPFStartTime", [#"ebpf_program="ratelimiting""#]) ?? 0) > Date().timeIntervalSince1970 - 600, "\(text)")
        #expect(value(text, "l3afd_BPFStartCount", [#"ebpf_program="ratelimiting""#]) == 1, "\(text)")
        // SYNs at a steady pace; the drop counter (scalar) must equal the map read directly.
        _ = try host.network.connect(30, port: 8080, perSecond: 20)
        try await Task.sleep(for: .seconds(1))
        let drops = try #require(host.chain()[1].counters["rl_drop_count_map[0]"])
        // The sampler runs every 0.3 s; on a loaded machine it may run late: wait (up to 5 s) for a sample taken
        // after the traffic, then check.
        for _ in 0..<50 {
            text = try await daemon.metrics()
            let sampled = value(text, "l3afd_BPFMonitorMap", [#"ebpf_program="ratelimiting""#, #"map_name="rl_drop_count_map_0_scalar""#]) == Double(drops)
            if sampled, (value(text, "l3afd_BPFMonitorMap", [#"map_name="rl_recv_count_map_0_max-rate""#]) ?? 0) > 0 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(drops > 0)
        #expect(value(text, "l3afd_BPFMonitorMap", [#"ebpf_program="ratelimiting""#, #"map_name="rl_drop_count_map_0_scalar""#, #"host="node-1""#]) == Double(drops), "\(text)")
        let rate = try #require(value(text, "l3afd_BPFMonitorMap", [#"ebpf_program="ratelimiting""#, #"map_name="rl_recv_count_map_0_max-rate""#]))
        #expect(rate > 5 && rate < 100, "max-rate of ~20 SYNs/s: \(rate)")
        // An update counts (through /update: /add leaves a running program as it is).
        try host.publish("ratelimiting", version: "1.1.0")
        #expect(try await daemon.request("POST", "/l3af/configs/v1/update",
                                         Self.payload(host.port).replacingOccurrences(of: #""version": "latest", "user"#, with: #""version": "1.1.0", "user"#)).status == 200)
        text = try await daemon.metrics()
        #expect(value(text, "l3afd_BPFUpdateCount", [#"ebpf_program="ratelimiting""#]) == 1, "\(text)")
        #expect(value(text, "l3afd_BPFRunning", [#"version="1.1.0""#]) == 1)
        // A failed update, a delete, and a failed deploy: each counts.
        _ = try await daemon.request("POST", "/l3af/configs/v1/update",
                                     Self.payload(host.port).replacingOccurrences(of: #""version": "latest", "user"#, with: #""version": "9.9.9", "user"#))
        #expect(try await daemon.request("POST", "/l3af/configs/v1/delete",
                                         #"[{"host_name": "node-1", "iface": "\#(host.port)", "bpf_programs": {"xdp_ingress": ["ratelimiting"]}}]"#).status == 200)
        _ = try await daemon.request("POST", "/l3af/configs/v1/add",
                                     Self.payload(host.port, counter: false).replacingOccurrences(of: #""version": "latest", "user"#, with: #""version": "9.9.9", "user"#))
        text = try await daemon.metrics()
        // The Grafana dashboard (deploy/grafana) queries only series and labels l3afd exports.
        let dashboard = try JSONSerialization.jsonObject(with: Data(contentsOf: repositoryRoot.appending(path: "deploy/grafana/l3afd-dashboard.json"))) as? [String: Any]
        let panels = try #require(dashboard?["panels"] as? [[String: Any]])
        let queries = panels.flatMap { ($0["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String } }
            + [(((dashboard?["templating"] as? [String: Any])?["list"] as? [[String: Any]])?.first?["query"] as? String ?? "")]
        #expect(queries.count >= 8)
        for query in queries {
            let series = query.matches(of: /l3afd_[A-Za-z]+/).map { String($0.output) }
            #expect(!series.isEmpty, "\(query) names no l3afd series")
            for name in series { #expect(text.contains("\n\(name){"), "\(name) (in \(query)) is not exported:\n\(text)") }
            let labels = query.matches(of: /([a-z_]+)\s*=~?\s*"/).map { String($0.output.1) }
                + query.matches(of: /by \(([a-z_, ]+)\)/).flatMap { $0.output.1.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
            for label in labels {
                #expect(series.contains { name in text.split(separator: "\n").contains { $0.hasPrefix("\(name){") && $0.contains("\(label)=") } },
                        "label \(label) (in \(query)) is on none of \(series)")
            }
        }
    }

    @Test func restartsUnderTrafficSkipNoPacketAndKeepTheConfiguration() async throws {
        let host = try HostHarness()
        defer { host.remove() }
        // Two counters around the rate limiter: the second is the same program under another name.
        try host.publishRenamed("packet-counter", as: "packet-counter-b", version: "1.0.0")
        let daemon = try DaemonHarness(host: host)
        defer { daemon.stop() }
        let payload = #"[{"host_name": "node-1", "iface": "\#(host.port)", "bpf_programs": {"xdp_ingress": ["#
            + #"{"name": "packet-counter", "seq_id": 1, "version": "latest", "admin_status": "enabled"},"#
            + #"{"name": "ratelimiting", "seq_id": 2, "version": "latest", "admin_status": "enabled", "start_args": {"rate": "100000", "ports": "8080"}},"#
            + #"{"name": "packet-counter-b", "seq_id": 3, "version": "latest", "admin_status": "enabled"}]}}]"#
        #expect(try await daemon.request("POST", "/l3af/configs/v1/update", payload).status == 200)
        let expected = try await daemon.request("GET", "/l3af/configs/v1").text
        let ids = try host.chain().map(\.programID)
        let network = host.network
        let traffic = Thread { _ = try? network.connect(400, port: 8080, perSecond: 40) }
        traffic.start()
        let restarts = Int(ProcessInfo.processInfo.environment["L3AF_DAEMON_RESTARTS"] ?? "") ?? 20
        for round in 1...restarts {
            try daemon.restart()
            #expect(try await daemon.request("GET", "/l3af/configs/v1").text == expected, "round \(round)")
        }
        while !traffic.isFinished { try await Task.sleep(for: .milliseconds(50)) }
        let chain = try host.chain()
        #expect(chain.map(\.programID) == ids, "the programs were never detached or reloaded")
        let a = chain[0].counters["xdp_counter_map[6]", default: 0], b = chain[2].counters["xdp_counter_map[6]", default: 0]
        #expect(a > 0 && a == b, "first counter \(a), last counter \(b)")
        #expect(chain[1].counters["rl_recv_count_map[0]", default: 0] >= 400)
    }

    /// l3afd's graceful restart (`PUT /l3af/configs/v1/restart`): bad requests and unusable builds are refused with the
    /// process serving unchanged; a new build (this l3afd, served as v1.0.1) takes over under traffic, with no packet
    /// skipping the chain, no connection refused or reset (the listening socket passes across), and `GET` the same
    /// before and after; a build that never serves is stopped after time-to-restart and the build before it runs again.
    @Test func aRestartHandsOverToANewBuildAndABrokenOneIsRolledBack() async throws {
        let host = try HostHarness()
        defer { host.remove() }
        try host.publishRenamed("packet-counter", as: "packet-counter-b", version: "1.0.0")
        // The builds, as a plain file repository: <url>/<version>/l3afd.tar.gz holding l3afd/l3afd.
        let builds = host.folder.appending(path: "builds").path, base = host.folder.appending(path: "l3afd-base").path
        let broken = "#!/bin/sh\n[ \"$1\" = --version ] && { echo 'l3afd (never serves)'; exit 0; }\nexec sleep 60\n"
        let script = """
            import io, os, sys, tarfile
            def build(version, name, data, mode=0o755):
                os.makedirs(f"\(builds)/{version}", exist_ok=True)
                with tarfile.open(f"\(builds)/{version}/l3afd.tar.gz", "w:gz", compresslevel=1) as tar:
                    info = tarfile.TarInfo(f"l3afd/{name}"); info.size = len(data); info.mode = mode
                    tar.addfile(info, io.BytesIO(data))
            build("v1.0.1", "l3afd", open("\(Executable.path("l3afd"))", "rb").read())
            build("v1.0.2", "l3afd", b\"\"\"\(broken)\"\"\")
            build("v1.0.3", "README", b"no binary here\\n", 0o644)
            build("v1.0.4", "l3afd", b"#!/bin/sh\\necho 'not for this machine' >&2; exit 126\\n")
            """
        #expect(try Executable.run("/usr/bin/python3", ["-c", script]).status == 0)
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in(sin_family: sa_family_t(AF_INET), sin_port: 0, sin_addr: in_addr(s_addr: inet_addr("127.0.0.1")), sin_zero: (0, 0, 0, 0, 0, 0, 0, 0))
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) } }
        let port = Int(UInt16(bigEndian: address.sin_port))
        close(socket)
        let config = host.folder.appending(path: "l3afd.json")
        try #"{"graceful_restart": {"artifacts_url": "file://\#(builds)", "base_path": "\#(base)", "time_to_restart_seconds": 3}}"#
            .write(to: config, atomically: true, encoding: .utf8)
        let daemon = try DaemonHarness(host: host, extra: ["--config", config.path, "--listen", "127.0.0.1:\(port)"])
        var serving = daemon.process.processIdentifier
        defer { kill(serving, SIGTERM); daemon.stop() }
        let api = daemon.url
        func pid() async throws -> Int32? {
            for _ in 0..<200 {
                if let reply = try? await DaemonHarness.request(api, "GET", "/healthz"), reply.status == 200,
                   let object = try JSONSerialization.jsonObject(with: Data(reply.text.utf8)) as? [String: Any] {
                    return (object["pid"] as? NSNumber)?.int32Value
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            return nil
        }
        func executable(_ pid: Int32) -> String { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")) ?? "" }
        func restart(_ body: String) async throws -> (status: Int, text: String) { try await DaemonHarness.request(api, "PUT", "/l3af/configs/v1/restart", body) }

        let payload = #"[{"host_name": "node-1", "iface": "\#(host.port)", "bpf_programs": {"xdp_ingress": ["#
            + #"{"name": "packet-counter", "seq_id": 1, "version": "1.0.0", "admin_status": "enabled"},"#
            + #"{"name": "packet-counter-b", "seq_id": 2, "version": "1.0.0", "admin_status": "enabled"}]}}]"#
        #expect(try await daemon.request("POST", "/l3af/configs/v1/update", payload).status == 200)
        let expected = try await daemon.request("GET", "/l3af/configs/v1").text
        let ids = try host.chain().map(\.programID)

        // Refused, and the same process serves on.
        for (body, status, says) in [
            (#"{"hostname": "node-2", "version": "v1.0.1"}"#, 400, "this request is for host 'node-2'; this is 'node-1'"),
            (#"{"hostname": "node-1", "version": "1.0.1"}"#, 400, "is not vX.Y.Z"),
            (#"{"hostname": "node-1", "version": "v1.0.101"}"#, 400, "at most 100"),
            (#"{"hostname": "node-1", "version": "v1.0.1", "artifacturl": "http://elsewhere"}"#, 400, "artifacturl"),
            (#"{"hostname": "node-1", "version": "v1.0.9"}"#, 502, "v1.0.9/l3afd.tar.gz"),
            (#"{"hostname": "node-1", "version": "v1.0.3"}"#, 422, "has no executable l3afd/l3afd"),
            (#"{"hostname": "node-1", "version": "v1.0.4"}"#, 422, "not for this machine"),
        ] {
            let reply = try await restart(body)
            #expect(reply.status == status && reply.text.contains(says), "\(body): \(reply.status) \(reply.text)")
        }
        #expect(try await pid() == serving, "still the same process")

        // The new build takes over under traffic, with requests sent all along on new connections.
        let network = host.network
        let traffic = Thread { _ = try? network.connect(200, port: 8080, perSecond: 40) }
        traffic.start()
        let requests = try RunningProcess("/usr/bin/python3", ["-c", """
            import socket, time
            answered = refused = lost = 0
            end = time.time() + 6
            while time.time() < end:
                try:
                    s = socket.create_connection(("127.0.0.1", \(port)), timeout=5)
                except ConnectionRefusedError:
                    refused += 1; time.sleep(0.02); continue
                try:
                    s.sendall(b"GET /l3af/configs/v1 HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nConnection: close\\r\\n\\r\\n")
                    data = b""
                    while True:
                        chunk = s.recv(65536)
                        if not chunk: break
                        data += chunk
                    if data.startswith(b"HTTP/1.1 200"): answered += 1
                    else: lost += 1; print("lost: answer", data[:80], flush=True)
                except OSError as e:
                    lost += 1; print("lost:", repr(e), flush=True)
                finally:
                    s.close()
            print(f"answered {answered} refused {refused} lost {lost}", flush=True)
            """])
        try await Task.sleep(for: .milliseconds(500))
        let accepted = try await restart(#"{"hostname": "node-1", "version": "v1.0.1"}"#)
        #expect(accepted.status == 200 && accepted.text.contains("handing over"), "\(accepted.text)")
        for _ in 0..<300 where daemon.process.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!daemon.process.isRunning && daemon.process.wait() == 0, "the old process leaves once the new one serves")
        let next = try #require(try await pid())
        serving = next
        #expect(executable(next) == "\(base)/v1.0.1/l3afd/l3afd")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: "\(base)/latest/l3afd")) == "\(base)/v1.0.1/l3afd/l3afd")
        #expect(try await DaemonHarness.request(api, "GET", "/l3af/configs/v1").text == expected, "the same configuration")
        let line = try requests.waitForLine(containing: "answered", seconds: 20)
        // The sockets passed across: not one connection was refused, nor reset once accepted.
        #expect(line.contains("refused 0 lost 0") && !line.contains("answered 0 "), "\(requests.printed)")
        while !traffic.isFinished { try await Task.sleep(for: .milliseconds(50)) }
        let chain = try host.chain()
        #expect(chain.map(\.programID) == ids, "the programs were never detached or reloaded")
        let a = chain.first?.counters["xdp_counter_map[6]", default: 0] ?? 0, b = chain.last?.counters["xdp_counter_map[6]", default: 0] ?? 1
        #expect(a > 0 && a == b, "no packet skipped the chain: first counter \(a), last counter \(b)")

        // A build that never serves: stopped after time-to-restart; the build before it runs again in the same process.
        let started = Date()
        let hopeless = try await restart(#"{"hostname": "node-1", "version": "v1.0.2"}"#)
        #expect(hopeless.status == 200, "\(hopeless.text)")
        try await Task.sleep(for: .milliseconds(500))
        #expect(try await pid() == next, "the same process, running the build before")
        #expect(Date().timeIntervalSince(started) < 3 + 10, "back within time-to-restart and a start")
        #expect(executable(next) == "\(base)/v1.0.1/l3afd/l3afd")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: "\(base)/latest/l3afd")) == "\(base)/v1.0.1/l3afd/l3afd", "the link points back")
        #expect(!FileManager.default.fileExists(atPath: "\(base)/v1.0.2"), "the failed build is removed")
        #expect(try await DaemonHarness.request(api, "GET", "/l3af/configs/v1").text == expected)
        #expect(try host.chain().map(\.programID) == ids)
    }

    @Test func ourRoutesDriveTheSameOperations() async throws {
        let host = try HostHarness()
        defer { host.remove() }
        let daemon = try DaemonHarness(host: host)
        defer { daemon.stop() }
        var reply = try await daemon.request("POST", "/l3af/v1/install",
                                             #"{"spec": "ratelimiting", "iface": "\#(host.port)", "parameters": {"rate": "10", "ports": "8080"}}"#)
        #expect(reply.status == 200, "\(reply.text)")
        try host.publish("ratelimiting", version: "1.1.0")
        reply = try await daemon.request("POST", "/l3af/v1/pin", #"{"package": "ratelimiting", "version": "1.0.0"}"#)
        #expect(reply.status == 200, "\(reply.text)")
        reply = try await daemon.request("POST", "/l3af/v1/upgrade", "{}")
        #expect(reply.text.contains("pinned at 1.0.0"), "\(reply.text)")
        #expect(try await daemon.request("POST", "/l3af/v1/unpin", #"{"package": "ratelimiting"}"#).status == 200)
        reply = try await daemon.request("POST", "/l3af/v1/upgrade", "{}")
        #expect(try host.chain().map(\.spec) == ["ratelimiting@1.1.0"], "\(reply.text)")
        reply = try await daemon.request("POST", "/l3af/v1/rollback", "{}")
        #expect(reply.status == 200, "\(reply.text)")
        #expect(try host.chain().map(\.spec) == ["ratelimiting@1.0.0"])
        let status = try await daemon.json("/l3af/v1/status") as? [String: Any]
        #expect((status?["chains"] as? [[String: Any]])?.count == 1)
        let history = try await daemon.json("/l3af/v1/history") as? [[String: Any]]
        #expect(history?.first?["kind"] as? String == "rollback")
        #expect(history?.first?["actor"] as? String == "l3afd")
        reply = try await daemon.request("POST", "/l3af/v1/remove", #"{"package": "ratelimiting", "iface": "\#(host.port)"}"#)
        let emptied = try host.chain().isEmpty
        #expect(reply.status == 200 && emptied, "\(reply.text)")
    }

    /// An L3AF user's l3afd.cfg starts the daemon: metrics on [web] metrics-addr, the API served (flags still win).
    @Test func anL3afdCfgStartsTheDaemon() async throws {
        let host = try HostHarness()
        defer { host.remove() }
        let config = host.folder.appending(path: "l3afd.cfg")
        try """
            [l3afd]
            pid-file: ./l3afd.pid
            environment: DEV
            BpfMapDefaultPath: /sys/fs/bpf
            [web]
            metrics-addr: 127.0.0.1:0
            n-metric-samples: 20
            [l3af-configs]
            restapi-addr: 127.0.0.1:0
            [mtls]
            enabled: false
            """.write(to: config, atomically: true, encoding: .utf8)
        let daemon = try DaemonHarness(host: host, extra: ["--config", config.path])
        defer { daemon.stop() }
        #expect(daemon.metricsURL != nil, "metrics on their own address, as [web] metrics-addr says")
        #expect(try await daemon.request("POST", "/l3af/configs/v1/add", Self.payload(host.port)).status == 200)
        #expect(try await daemon.metrics().contains(#"l3afd_BPFRunning{host="node-1""#))
        let broken = host.folder.appending(path: "broken.cfg")
        try "[l3afd]\nbpf-chain-enabled: true\n".write(to: broken, atomically: true, encoding: .utf8)
        let refused = try Executable.run("l3afd", DaemonHarness.arguments(host) + ["--config", broken.path, "--listen", "127.0.0.1:0"])
        #expect(refused.status == 1 && refused.stderr.contains("line 2: l3afd has no key 'bpf-chain-enabled' in [l3afd]"), "\(refused.stderr)")
    }

    @Test func aSecondDaemonOnTheSameStateIsRefused() throws {
        let host = try HostHarness()
        defer { host.remove() }
        let daemon = try DaemonHarness(host: host)
        defer { daemon.stop() }
        let second = try Executable.run("l3afd", DaemonHarness.arguments(host))
        #expect(second.status == 1)
        #expect(second.stderr.contains("another l3afd"), "\(second.stderr)")
    }

    /// Every route in schemas/openapi.yaml is served, and every served route is in it.
    @Test func theOpenAPIDocumentListsExactlyTheServedRoutes() async throws {
        let text = try String(contentsOf: Fixtures.repositoryRoot.appending(path: "schemas/openapi.yaml"), encoding: .utf8)
        var documented = Set<String>(), path: String?
        var inPaths = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line == "paths:" { inPaths = true; continue }
            if inPaths, !line.hasPrefix(" ") { inPaths = false }
            guard inPaths else { continue }
            if line.hasPrefix("  /"), line.hasSuffix(":"), !line.hasPrefix("   ") { path = String(line.dropFirst(2).dropLast()) }
            for method in ["get", "post", "put", "delete", "patch"] where line == "    \(method):" {
                documented.insert("\(method.uppercased()) \(path ?? "")")
            }
        }
        let served = Set(daemonRoutes.map { "\($0.method) \($0.path)" })
        #expect(documented == served, "documented only: \(documented.subtracting(served)); served only: \(served.subtracting(documented))")

        let host = try HostHarness()
        defer { host.remove() }
        let daemon = try DaemonHarness(host: host)
        defer { daemon.stop() }
        for route in daemonRoutes {
            let reply = try await daemon.request(route.method, route.path.replacingOccurrences(of: "{iface}", with: host.port), route.method == "POST" ? "{}" : nil)
            #expect(reply.status != 404 && reply.status < 500, "\(route.method) \(route.path): \(reply.status) \(reply.text)")
        }
    }

    /// With a client CA configured, a client with a certificate from it gets in; one without is refused.
    @Test func mutualTLS() throws {
        let host = try HostHarness()
        defer { host.remove() }
        let folder = host.folder.appending(path: "tls").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        func openssl(_ arguments: String) throws {
            let run = try Executable.run("/usr/bin/openssl", arguments.split(separator: " ").map(String.init))
            #expect(run.status == 0, "openssl \(arguments): \(run.stderr)")
        }
        try openssl("req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=l3af-test-ca -keyout \(folder)/ca.key -out \(folder)/ca.pem")
        for name in ["server", "client", "stranger", "other"] {
            try openssl("req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=\(name) -keyout \(folder)/\(name).key -out \(folder)/\(name).csr")
        }
        try "subjectAltName=IP:127.0.0.1\n".write(toFile: "\(folder)/san.ext", atomically: true, encoding: .utf8)
        try openssl("x509 -req -in \(folder)/server.csr -CA \(folder)/ca.pem -CAkey \(folder)/ca.key -CAcreateserial -days 2 -extfile \(folder)/san.ext -out \(folder)/server.pem")
        try "subjectAltName=DNS:ops-1.example\n".write(toFile: "\(folder)/client.ext", atomically: true, encoding: .utf8)
        try "subjectAltName=DNS:web.example\n".write(toFile: "\(folder)/other.ext", atomically: true, encoding: .utf8)
        try openssl("x509 -req -in \(folder)/client.csr -CA \(folder)/ca.pem -CAkey \(folder)/ca.key -CAcreateserial -days 2 -extfile \(folder)/client.ext -out \(folder)/client.pem")
        // From the CA, but with a SAN no rule matches.
        try openssl("x509 -req -in \(folder)/other.csr -CA \(folder)/ca.pem -CAkey \(folder)/ca.key -CAcreateserial -days 2 -extfile \(folder)/other.ext -out \(folder)/other.pem")
        // Signed by itself, not by the CA.
        try openssl("x509 -req -in \(folder)/stranger.csr -signkey \(folder)/stranger.key -days 2 -out \(folder)/stranger.pem")
        let daemon = try DaemonHarness(host: host, extra: [
            "--tls-certificate", "\(folder)/server.pem", "--tls-key", "\(folder)/server.key", "--tls-client-ca", "\(folder)/ca.pem",
            "--san-match-rule", "ops-[0-9]+\\.example", "--tls-min-version", "1.3",
        ])
        defer { daemon.stop() }
        #expect(daemon.url.hasPrefix("https://"), "\(daemon.url)")
        func curl(_ extra: [String]) throws -> Executable.Result {
            try Executable.run("/usr/bin/curl", ["-sS", "--max-time", "5", "--cacert", "\(folder)/ca.pem", "\(daemon.url)/l3af/configs/v1"] + extra)
        }
        let allowed = try curl(["--cert", "\(folder)/client.pem", "--key", "\(folder)/client.key"])
        #expect(allowed.status == 0 && allowed.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[\n\n]" || allowed.stdout.contains("["),
                "\(allowed.stdout) \(allowed.stderr)")
        let anonymous = try curl([])
        #expect(anonymous.status != 0, "no client certificate: \(anonymous.stdout)")
        let stranger = try curl(["--cert", "\(folder)/stranger.pem", "--key", "\(folder)/stranger.key"])
        #expect(stranger.status != 0, "a certificate from another issuer: \(stranger.stdout)")
        let other = try curl(["--cert", "\(folder)/other.pem", "--key", "\(folder)/other.key"])
        #expect(other.stdout.contains("certificate-not-allowed") && other.stdout.contains("web.example"), "a SAN no rule matches: \(other.stdout)")
        let old = try curl(["--cert", "\(folder)/client.pem", "--key", "\(folder)/client.key", "--tlsv1.2", "--tls-max", "1.2"])
        #expect(old.status != 0, "TLS 1.2 refused when the minimum is 1.3: \(old.stdout)")
        // Our own client speaks what our daemon demands.
        let status = try Executable.run("l3af", ["status", "--host", daemon.url, "--cacert", "\(folder)/ca.pem", "--cert", "\(folder)/client.pem",
                                                 "--key", "\(folder)/client.key"])
        #expect(status.status == 0, "\(status.stderr)")
    }

    /// `l3af --host URL` drives the daemon: the same commands, the daemon doing the work and recording it.
    @Test func theCLIDrivesARemoteDaemon() async throws {
        let host = try HostHarness()
        defer { host.remove() }
        let daemon = try DaemonHarness(host: host)
        defer { daemon.stop() }
        func remote(_ arguments: [String]) throws -> Executable.Result { try Executable.run("l3af", arguments + ["--host", daemon.url]) }
        var run = try remote(["install", "ratelimiting", "--iface", host.port, "--set", "rate=10", "--set", "ports=8080"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("revision 1: install ratelimiting@1.0.0"), "\(run.stdout)")
        try host.publish("ratelimiting", version: "1.1.0")
        #expect(try remote(["pin", "ratelimiting@1.0.0"]).status == 0)
        run = try remote(["upgrade"])
        #expect(run.stdout.contains("skipped: ratelimiting on \(host.port)/xdp_ingress is pinned at 1.0.0"), "\(run.stdout) \(run.stderr)")
        #expect(try remote(["unpin", "ratelimiting"]).status == 0)
        #expect(try remote(["upgrade"]).status == 0)
        run = try remote(["status"])
        #expect(run.stdout.contains("ratelimiting@1.1.0") && run.stdout.contains("the kernel runs exactly this"), "\(run.stdout)")
        #expect(try remote(["rollback"]).status == 0)
        run = try remote(["history"])
        #expect(run.stdout.contains("l3afd") && run.stdout.contains("rollback to revision"), "\(run.stdout)")
        run = try remote(["rollback", "99"])
        #expect(run.status == 1 && run.stderr.contains("there is no revision 99"), "\(run.stderr)")
        #expect(try remote(["remove", "ratelimiting", "--iface", host.port]).status == 0)
        #expect(try host.chain().isEmpty)
    }

    /// A user program that records its argv and pid next to itself, then waits.
    static let recordingProgram = """
        #!/bin/sh
        echo "$*" >> "$(dirname "$0")/argv.log"
        echo $$ > "$(dirname "$0")/pid"
        exec sleep 600
        """

    /// A plain l3afd repository served over http (Python's http.server) holding `legacy-counter` 1.0, an artifact without
    /// a manifest: the packet counter's object and `scripts` (name → shell script) beside it.
    static func legacyRepository(_ host: HostHarness, scripts: [String: String]) throws -> (url: String, server: RunningProcess) {
        let repository = host.folder.appending(path: "l3afd-repo")
        var entries = [ArchiveEntry(path: "l3af_legacy-counter/xdp_counter.bpf.o", kind: .file, permissions: 0o644,
                                    contents: try Fixtures.compileBPF("registry/packet-counter/xdp_counter.bpf.c"))]
        for (name, script) in scripts { entries.append(ArchiveEntry(path: "l3af_legacy-counter/\(name)", kind: .file, permissions: 0o755, contents: Array(script.utf8))) }
        entries.sort { $0.path < $1.path }
        let folder = repository.appending(path: "legacy-counter/1.0/\(PackageInstaller.hostPlatform())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try Data(ArchiveWriter.tarGz(entries)).write(to: folder.appending(path: "l3af_legacy-counter.tar.gz"))
        let server = try RunningProcess("/usr/bin/python3", ["-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", repository.path])
        let line = try server.waitForLine(containing: "Serving HTTP")
        let port = line.split(separator: " ").first { Int($0) != nil && $0 != "0" }.map(String.init) ?? ""
        return ("http://127.0.0.1:\(port)", server)
    }

    /// A legacy l3afd artifact (no manifest) from an unsigned l3afd repository, with a user program: loaded as the
    /// payload describes, its user program started with l3afd's argv (--iface, --direction=xdpingress, --version=1_0, --rules-file
    /// written from `rules`, then --key=value), its `cpu` and `memory` set as limits, restarted when it dies at most 3
    /// times, and stopped with its `cmd_stop` (--iface, --direction, stop_args) when it leaves the configuration.
    @Test func legacyUserProgramsAreSupervised() async throws {
        let host = try HostHarness()
        defer { host.remove() }
        // The artifact: the counter's object, a user program that records its argv and pid, then waits, and its cmd_stop.
        let stopScript = """
            #!/bin/sh
            echo "$*" >> "$(dirname "$0")/stop.log"
            kill "$(cat "$(dirname "$0")/pid")"
            """
        let (repoURL, server) = try Self.legacyRepository(host, scripts: ["legacy-counter": Self.recordingProgram, "legacy-counter-stop": stopScript])
        defer { _ = server.stop(signal: SIGKILL) }  // python inherits an ignored SIGTERM from the test runner
        let config = host.folder.appending(path: "l3afd.json")
        try #"{"allow_unsigned": ["\#(repoURL)"]}"#.write(to: config, atomically: true, encoding: .utf8)
        let daemon = try DaemonHarness(host: host, extra: ["--config", config.path])
        defer { daemon.stop() }

        let entry = #"{"name": "legacy-counter", "seq_id": 1, "version": "1.0", "artifact": "l3af_legacy-counter.tar.gz", "ebpf_package_repo_url": "\#(repoURL)", "#
            + #""object_file": "xdp_counter.bpf.o", "entry_function_name": "xdp_counter", "map_name": "xdp_counter_next_prog", "#
            + #""cmd_start": "legacy-counter", "cmd_stop": "legacy-counter-stop", "user_program_daemon": true, "start_args": {"verbose": "1", "mode": "fast"}, "#
            + #""stop_args": {"graceful": "1"}, "rules_file": "rules.txt", "rules": "deny 10.0.0.0/8\n", "cpu": 100, "memory": 1073741824, "#
            + #""admin_status": "enabled"}"#
        let reply = try await daemon.request("POST", "/l3af/configs/v1/add", #"[{"host_name": "node-1", "iface": "\#(host.port)", "bpf_programs": {"xdp_ingress": [\#(entry)]}}]"#)
        #expect(reply.status == 200, "\(reply.text)")
        #expect(try host.chain().map(\.spec) == ["legacy-counter@1.0"])
        #expect(try host.network.ping(3) == 3)

        let artifact = "\(host.folder.path)/repo/legacy-counter/1.0/l3af_legacy-counter"
        func lines() -> [String] { ((try? String(contentsOfFile: "\(artifact)/argv.log", encoding: .utf8)) ?? "").split(separator: "\n").map(String.init) }
        func pid() -> Int32? { (try? String(contentsOfFile: "\(artifact)/pid", encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) } }
        func wait(for count: Int) async throws {
            for _ in 0..<100 where lines().count < count { try await Task.sleep(for: .milliseconds(100)) }
        }
        try await wait(for: 1)
        let rules = "\(host.state)/user-programs/\(host.port)/xdpingress/legacy-counter/rules.txt"
        #expect(lines() == ["--iface=\(host.port) --direction=xdpingress --version=1_0 --rules-file=\(rules) --mode=fast --verbose=1"], "l3afd's argv, start_args sorted")
        #expect((try? String(contentsOfFile: rules, encoding: .utf8)) == "deny 10.0.0.0/8\n", "the rules file holds the payload's rules")
        let limits = try String(contentsOfFile: "/proc/\(try #require(pid()))/limits", encoding: .utf8)
        #expect(limits.split(separator: "\n").contains { $0.hasPrefix("Max cpu time") && $0.contains("100") }, "\(limits)")
        #expect(limits.split(separator: "\n").contains { $0.hasPrefix("Max address space") && $0.contains("1073741824") }, "\(limits)")

        // Killed: restarted, three times, then left down.
        for round in 1...5 {
            let running = try #require(pid())
            kill(running, SIGKILL)
            try await Task.sleep(for: .milliseconds(1500))
            #expect(lines().count == min(round + 1, 4), "round \(round): \(lines().count) starts")
            if round == 4 { break }
        }
        #expect(pid().map { kill($0, 0) != 0 } ?? false, "given up on: not running")
        // Disabled and enabled again through /update: started anew; disabled again: stopped with its cmd_stop.
        let disabled = entry.replacingOccurrences(of: #""admin_status": "enabled""#, with: #""admin_status": "disabled""#)
        func update(_ program: String) async throws -> Int {
            try await daemon.request("POST", "/l3af/configs/v1/update", #"[{"host_name": "node-1", "iface": "\#(host.port)", "bpf_programs": {"xdp_ingress": [\#(program)]}}]"#).status
        }
        #expect(try await update(disabled) == 200)
        #expect(try host.chain().isEmpty)
        #expect(try await update(entry) == 200)
        try await wait(for: 5)
        #expect(lines().count == 5, "started again once enabled")
        #expect(try await update(disabled) == 200)
        let stopLog = "\(artifact)/stop.log"
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: stopLog) { try await Task.sleep(for: .milliseconds(100)) }
        #expect((try? String(contentsOfFile: stopLog, encoding: .utf8)) == "--iface=\(host.port) --direction=xdpingress --graceful=1\n")
        func gone() -> Bool { pid().map { kill($0, 0) != 0 } ?? false }
        for _ in 0..<50 where !gone() { try await Task.sleep(for: .milliseconds(100)) }
        #expect(gone(), "stopped by its cmd_stop: \((try? String(contentsOfFile: "/proc/\(pid() ?? 0)/stat", encoding: .utf8)) ?? "no stat")")

        // What l3afd would run but isn't run here (cmd_config), a command outside the artifact or missing, and a negative
        // limit are refused, naming the field, and change nothing.
        for (field, bad) in [
            ("cmd_config", entry.replacingOccurrences(of: #""admin_status": "enabled""#, with: #""cmd_config": "legacy-counter", "admin_status": "enabled""#)),
            ("cmd_status", entry.replacingOccurrences(of: #""admin_status": "enabled""#, with: #""cmd_status": "../../bin/sh", "admin_status": "enabled""#)),
            ("cmd_update", entry.replacingOccurrences(of: #""admin_status": "enabled""#, with: #""cmd_update": "missing-program", "admin_status": "enabled""#)),
            ("cpu", entry.replacingOccurrences(of: #""cpu": 100"#, with: #""cpu": -1"#)),
        ] {
            let refused = try await daemon.request("POST", "/l3af/configs/v1/update", #"[{"host_name": "node-1", "iface": "\#(host.port)", "bpf_programs": {"xdp_ingress": [\#(bad)]}}]"#)
            #expect(refused.status == 400 && refused.text.contains(field), "\(field): \(refused.status) \(refused.text)")
        }
        let probes = try await daemon.request("POST", "/l3af/configs/v1/add", #"[{"host_name": "node-1", "iface": "\#(host.port)", "bpf_programs": {"probes": [{"name": "p", "prog_type": "kprobe"}]}}]"#)
        #expect(probes.status == 400 && probes.text.contains("probes[0]: a probe needs object_file and entry_function_name"), "\(probes.text)")
        let notAProbe = try await daemon.request("POST", "/l3af/configs/v1/add", #"[{"host_name": "node-1", "iface": "\#(host.port)", "bpf_programs": {"probes": [{"name": "p", "prog_type": "xdp"}]}}]"#)
        #expect(notAProbe.status == 400 && notAProbe.text.contains("probes[0].prog_type: 'xdp' is not a probe type"), "\(notAProbe.text)")
        #expect(try host.chain().isEmpty)
    }

    /// A first-party package of probes (`registry/syscall-counter`: two tracepoints): `l3af install` with no interface
    /// attaches both host-wide (bpftool sees their links), they count real system calls and a retransmitted SYN, `l3af status` and
    /// the daemon's metrics show them, a daemon restart keeps the same links, no payload lists them, and `l3af remove`
    /// detaches them.
    @Test func aProbePackageInstallsHostWideCountsAndIsRemoved() async throws {
        let host = try HostHarness()
        defer { host.remove() }
        try host.publish("syscall-counter", version: "1.0.0")
        let installed = try host.l3af(["install", "syscall-counter@1.0.0"])
        #expect(installed.status == 0 && installed.stdout.contains("install syscall-counter@1.0.0 on the host (2 probes)"), "\(installed.stdout) \(installed.stderr)")
        func probes() throws -> [[String: Any]] { (try host.status()["probes"] as? [[String: Any]]) ?? [] }
        #expect(try probes().map { $0["entry_function"] as? String } == ["count_syscalls", "count_retransmits"])
        let listed = try probes()
        #expect(listed.allSatisfy { $0["program_id"] is NSNumber && $0["interface"] == nil }, "\(listed)")

        let base = "\(host.pinRoot)/probes/host-wide-probes/syscall-counter/1_0_0/syscall_counter_bpf_o"
        func link(_ entry: String) throws -> String { try Executable.run("/usr/sbin/bpftool", ["link", "show", "pinned", "\(base)/\(entry)/link"]).stdout }
        let links = (try link("count_syscalls"), try link("count_retransmits"))
        #expect(FileManager.default.fileExists(atPath: "\(base)/maps/syscall_total") && FileManager.default.fileExists(atPath: "\(base)/maps/tcp_retransmit_total"),
                "one load of the object: its maps pinned once, shared by both probes")
        #expect(links.0.contains("tracepoint") || links.0.contains("perf_event"), "\(links.0)")
        #expect(links.1.contains("tracepoint") || links.1.contains("perf_event"), "\(links.1)")

        func total() throws -> UInt64 {
            (try probes().first { $0["entry_function"] as? String == "count_syscalls" }?["counters"] as? [String: Any])?["syscall_total[0]"].flatMap { ($0 as? NSNumber)?.uint64Value } ?? 0
        }
        let before = try total()
        #expect(try Executable.run("/usr/bin/env", ["python3", "-c", "import os\nfor _ in range(500): os.getppid()"]).status == 0)
        #expect(try total() >= before + 500, "every system call counted")
        // A connection to an address nobody answers in the test's own network: its SYN is retransmitted after 1 s.
        let unanswered = host.network.receiverAddress.split(separator: ".").dropLast().joined(separator: ".") + ".3"
        _ = try Executable.run("/usr/sbin/ip", ["netns", "exec", host.network.sender, "python3", "-c",
                                                "import socket\ntry: socket.create_connection(('\(unanswered)', 9), timeout=2.5)\nexcept OSError: pass"])
        let retransmits = (try probes().first { $0["entry_function"] as? String == "count_retransmits" }?["counters"] as? [String: Any])?["tcp_retransmit_total[0]"]
        #expect(((retransmits as? NSNumber)?.uint64Value ?? 0) >= 1, "the retransmitted SYN counted: \(String(describing: retransmits))")
        let text = try host.l3af(["status"]).stdout
        #expect(text.contains("syscall-counter@1.0.0 count_syscalls (host-wide)  id "), "\(text)")

        // The daemon shows them in its metrics, lists them in no payload, and keeps the same links across a restart.
        let daemon = try DaemonHarness(host: host)
        defer { daemon.stop() }
        var metrics = ""
        for _ in 0..<50 where !metrics.contains("syscall_total_0_max-rate") {
            try await Task.sleep(for: .milliseconds(100))
            metrics = try await daemon.metrics()
        }
        #expect(metrics.contains(#"l3afd_BPFRunning{host="node-1",ebpf_program="syscall-counter_count_syscalls",version="1.0.0",direction="",interface_name="",ipv4_address=""} 1"#), "\(metrics)")
        #expect(metrics.contains(#"l3afd_BPFRunning{host="node-1",ebpf_program="syscall-counter_count_retransmits",version="1.0.0",direction="",interface_name="",ipv4_address=""} 1"#))
        #expect(metrics.contains(#"l3afd_BPFMonitorMap{host="node-1",ebpf_program="syscall-counter",map_name="syscall_total_0_max-rate",interface_name="",ipv4_address=""}"#))
        #expect(try await daemon.request("GET", "/l3af/configs/v1").text.filter { !$0.isWhitespace } == "[]", "no interface's payload")
        try daemon.restart()
        #expect((try link("count_syscalls"), try link("count_retransmits")) == links, "the same links after a restart")

        // Refusals that change nothing: a second install, a package with chain programs and no interface.
        let again = try host.l3af(["install", "syscall-counter@1.0.0"])
        #expect(again.status != 0 && again.stderr.contains("already attached"), "\(again.stderr)")
        let noInterface = try host.l3af(["install", "packet-counter@1.0.0"])
        #expect(noInterface.status != 0 && noInterface.stderr.contains("they need an interface") && noInterface.stderr.contains("--iface"), "\(noInterface.stderr)")

        let removed = try host.l3af(["remove", "syscall-counter"])
        #expect(removed.status == 0, "\(removed.stderr)")
        #expect(try probes().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: "\(host.pinRoot)/probes/host-wide-probes"), "unpinned")
        #expect(try host.l3af(["status"]).stdout.contains("the kernel runs exactly this"))
    }

    /// A user program in the style of L3AF's that loads its own eBPF program (a `cmd_start` and no `object_file`): it
    /// parses l3afd's argv, loads the counter with bpftool, pins its maps where l3afd pins them (`<root>/<iface>/<name>/<version_>`)
    /// and writes its program into slot 0 of the prog array at `--map-name`.
    static let selfLoadingProgram = """
        #!/bin/sh
        PATH="$PATH:/usr/sbin:/sbin"
        dir=$(dirname "$0")
        for argument in "$@"; do
          case "$argument" in
            --iface=*) iface=${argument#--iface=} ;;
            --version=*) version=${argument#--version=} ;;
            --map-name=*) inlet=${argument#--map-name=} ;;
            --bpf-root=*) root=${argument#--bpf-root=} ;;
            --fail=*) echo "asked to fail"; exit 3 ;;
          esac
        done
        echo "$*" >> "$dir/argv.log"
        pins="$root/$iface/legacy-counter/$version"
        mkdir -p "$pins" && rm -f "$pins"/*
        bpftool prog load "$dir/xdp_counter.bpf.o" "$pins/prog" type xdp pinmaps "$pins" || exit 1
        bpftool map update pinned "$inlet" key 0 0 0 0 value pinned "$pins/prog" || exit 1
        rm -f "$pins/prog"
        echo $$ > "$dir/pid"
        exec sleep 600
        """

    /// A user program that loads its own eBPF program joins the chain as l3afd runs one (`--map-name` after
    /// `--version`), in one flip: its program is linked to the next (packets pass through both counters), it is
    /// listed and counted like the others, a restarted one (killed, or l3afd restarted) has the program it loads joined in
    /// place of the old, one that puts nothing into `--map-name` is refused with a 422 that changes nothing, and delete
    /// stops it and unpins it.
    @Test func aUserProgramThatLoadsItselfJoinsTheChain() async throws {
        let host = try HostHarness()
        defer { host.remove() }
        let (repoURL, server) = try Self.legacyRepository(host, scripts: ["loader": Self.selfLoadingProgram])
        defer { _ = server.stop(signal: SIGKILL) }
        let mapRoot = "\(host.pinRoot)-maps"
        defer { try? FileManager.default.removeItem(atPath: mapRoot) }
        let config = host.folder.appending(path: "l3afd.json")
        try #"{"allow_unsigned": ["\#(repoURL)"]}"#.write(to: config, atomically: true, encoding: .utf8)
        let daemon = try DaemonHarness(host: host, extra: ["--config", config.path])
        defer { daemon.stop() }
        func payload(_ startArgs: String) -> String {
            let loader = #"{"name": "legacy-counter", "seq_id": 1, "version": "1.0", "artifact": "l3af_legacy-counter.tar.gz", "ebpf_package_repo_url": "\#(repoURL)", "#
                + #""map_name": "xdp_counter_next_prog", "cmd_start": "loader", "user_program_daemon": true, "start_args": {\#(startArgs)}, "#
                + #""monitor_maps": [{"name": "xdp_counter_map", "key": 6, "aggregator": "scalar"}], "admin_status": "enabled"}"#
            let counter = #"{"name": "packet-counter", "seq_id": 2, "version": "latest", "admin_status": "enabled", "prog_type": "xdp"}"#
            return #"[{"host_name": "node-1", "iface": "\#(host.port)", "bpf_programs": {"xdp_ingress": [\#(loader), \#(counter)]}}]"#
        }
        let artifact = "\(host.folder.path)/repo/legacy-counter/1.0/l3af_legacy-counter"
        func lines() -> [String] { ((try? String(contentsOfFile: "\(artifact)/argv.log", encoding: .utf8)) ?? "").split(separator: "\n").map(String.init) }
        func pid() -> Int32? { (try? String(contentsOfFile: "\(artifact)/pid", encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) } }

        // One that exits without putting a program there: refused, naming why; nothing runs.
        let refused = try await daemon.request("POST", "/l3af/configs/v1/add", payload(#""fail": "1""#))
        #expect(refused.status == 422 && refused.text.contains("exited without putting a program into --map-name"), "\(refused.status) \(refused.text)")
        #expect(try host.chain().isEmpty)
        #expect(try await daemon.json("/l3af/configs/v1/\(host.port)") as? [String: Any] != nil)

        // map_args: l3afd writes the maps of objects it loads, not those of a program its user program loads.
        let mapArgs = payload(#""bpf-root": "\#(mapRoot)""#).replacingOccurrences(of: #""cmd_start": "loader""#, with: #""cmd_start": "loader", "map_args": [{"name": "xdp_counter_map", "args": [{"key": 1, "value": 1}]}]"#)
        let refusedArgs = try await daemon.request("POST", "/l3af/configs/v1/add", mapArgs)
        #expect(refusedArgs.status == 400 && refusedArgs.text.contains("map_args"), "\(refusedArgs.status) \(refusedArgs.text)")
        #expect(lines().isEmpty, "nothing started")

        let reply = try await daemon.request("POST", "/l3af/configs/v1/add", payload(#""bpf-root": "\#(mapRoot)""#))
        #expect(reply.status == 200, "\(reply.text)")
        #expect(try host.chain().map(\.spec) == ["legacy-counter@1.0", "packet-counter@1.0.0"])
        let inlet = "\(host.pinRoot)/inlets/\(host.port)/xdp_ingress/legacy-counter/1_0"
        #expect(lines() == ["--iface=\(host.port) --direction=xdpingress --version=1_0 --map-name=\(inlet) --bpf-root=\(mapRoot)"], "l3afd's argv: \(lines())")
        #expect(FileManager.default.fileExists(atPath: "\(mapRoot)/\(host.port)/legacy-counter/1_0/xdp_counter_next_prog"), "its maps where l3afd pins them")
        #expect(try host.l3af(["status"]).stdout.contains("the kernel runs exactly this"))

        // Packets pass through its program and on to the next.
        _ = try host.network.connect(5, port: 9)
        var chain = try host.chain()
        #expect((chain[0].counters["xdp_counter_map[6]"] ?? 0) >= 5 && (chain[1].counters["xdp_counter_map[6]"] ?? 0) >= 5, "\(chain)")

        // Killed: restarted, and the program the new process loads replaces the old one in the chain.
        let first = try #require(chain[0].programID)
        kill(try #require(pid()), SIGKILL)
        for _ in 0..<100 where (try host.chain().first?.programID).map({ $0 == first }) ?? true { try await Task.sleep(for: .milliseconds(100)) }
        chain = try host.chain()
        #expect(chain.map(\.spec) == ["legacy-counter@1.0", "packet-counter@1.0.0"] && chain[0].programID != first, "\(chain) \(daemon.process.printed)")
        #expect(lines().count == 2)
        #expect(try host.l3af(["status"]).stdout.contains("the kernel runs exactly this"))
        _ = try host.network.connect(5, port: 9)
        let after = try host.chain()
        #expect((after[0].counters["xdp_counter_map[6]"] ?? 0) >= 5 && (after[1].counters["xdp_counter_map[6]"] ?? 0) >= chain[1].counters["xdp_counter_map[6]"]! + 5, "\(after)")

        // l3afd restarted: the user program is started again, and the program it loads joins the chain in place.
        let beforeRestart = try #require(after[0].programID)
        try daemon.restart()
        for _ in 0..<100 where (try host.chain().first?.programID).map({ $0 == beforeRestart }) ?? true { try await Task.sleep(for: .milliseconds(100)) }
        chain = try host.chain()
        #expect(chain.map(\.spec) == ["legacy-counter@1.0", "packet-counter@1.0.0"] && chain[0].programID != beforeRestart, "\(chain) \(daemon.process.printed)")
        #expect(try host.l3af(["status"]).stdout.contains("the kernel runs exactly this"))

        // Deleted: out of the chain, its user program stopped, its inlet and map pins gone.
        let deleted = try await daemon.request("POST", "/l3af/configs/v1/delete", #"[{"host_name": "node-1", "iface": "\#(host.port)", "bpf_programs": {"xdp_ingress": ["legacy-counter"]}}]"#)
        #expect(deleted.status == 200, "\(deleted.text)")
        #expect(try host.chain().map(\.spec) == ["packet-counter@1.0.0"])
        func gone() -> Bool { pid().map { kill($0, 0) != 0 } ?? false }
        for _ in 0..<50 where !gone() { try await Task.sleep(for: .milliseconds(100)) }
        #expect(gone(), "its user program stopped")
        #expect(!FileManager.default.fileExists(atPath: inlet))
    }

    /// `cmd_update` runs with l3afd's argv once the program runs and, instead of a restart, when only `update_args`
    /// change; `cmd_status` is asked every status interval, and a program that doesn't answer RUNNING is restarted.
    @Test func userProgramStatusAndUpdateAsL3afdRunsThem() async throws {
        let host = try HostHarness()
        defer { host.remove() }
        let status = """
            #!/bin/sh
            cat "$(dirname "$0")/health" 2>/dev/null || echo RUNNING
            """
        let update = """
            #!/bin/sh
            echo "$*" >> "$(dirname "$0")/update.log"
            """
        let (repoURL, server) = try Self.legacyRepository(host, scripts: ["legacy-counter": Self.recordingProgram, "status": status, "update": update])
        defer { _ = server.stop(signal: SIGKILL) }
        let config = host.folder.appending(path: "l3afd.json")
        try #"{"allow_unsigned": ["\#(repoURL)"], "status_interval_seconds": 0.5}"#.write(to: config, atomically: true, encoding: .utf8)
        let daemon = try DaemonHarness(host: host, extra: ["--config", config.path])
        defer { daemon.stop() }
        func payload(level: String) -> String {
            let entry = #"{"name": "legacy-counter", "seq_id": 1, "version": "1.0", "ebpf_package_repo_url": "\#(repoURL)", "object_file": "xdp_counter.bpf.o", "#
                + #""entry_function_name": "xdp_counter", "map_name": "xdp_counter_next_prog", "cmd_start": "legacy-counter", "cmd_status": "status", "#
                + #""cmd_update": "update", "update_args": {"level": "\#(level)"}, "user_program_daemon": true, "admin_status": "enabled"}"#
            return #"[{"host_name": "node-1", "iface": "\#(host.port)", "bpf_programs": {"xdp_ingress": [\#(entry)]}}]"#
        }
        let artifact = "\(host.folder.path)/repo/legacy-counter/1.0/l3af_legacy-counter"
        func lines(_ file: String) -> [String] { ((try? String(contentsOfFile: "\(artifact)/\(file)", encoding: .utf8)) ?? "").split(separator: "\n").map(String.init) }
        func wait(_ file: String, for count: Int) async throws {
            for _ in 0..<100 where lines(file).count < count { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(try await daemon.request("POST", "/l3af/configs/v1/add", payload(level: "1")).status == 200)
        try await wait("update.log", for: 1)
        #expect(lines("update.log") == ["--iface=\(host.port) --direction=xdpingress --cmd=update --version=1_0 --level=1"], "l3afd's cmd_update argv")

        // Only update_args change: cmd_update runs, the program is not restarted.
        #expect(try await daemon.request("POST", "/l3af/configs/v1/update", payload(level: "2")).status == 200)
        try await wait("update.log", for: 2)
        #expect(lines("update.log").last == "--iface=\(host.port) --direction=xdpingress --cmd=update --version=1_0 --level=2")
        #expect(lines("argv.log").count == 1, "not restarted for update args")

        // cmd_status stops answering RUNNING: the program is restarted.
        try "BROKEN\n".write(toFile: "\(artifact)/health", atomically: true, encoding: .utf8)
        try await wait("argv.log", for: 2)
        #expect(lines("argv.log").count >= 2, "restarted when unhealthy")
        try FileManager.default.removeItem(atPath: "\(artifact)/health")
    }
}
