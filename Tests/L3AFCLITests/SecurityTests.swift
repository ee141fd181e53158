import Foundation
import L3AFClient
import L3AFModel
import L3AFTestSupport
import Testing

/// The attacks a review found, each tried for real against the registry and the client: refused with a clear error,
/// nothing changed, the server still serving.
@Suite(.serialized) struct RegistrySecurityTests {
    @Test func aRangeNearIntMaxIsAnsweredAndTheServerKeepsServing() async throws {
        let registry = try RegistryHarness()
        _ = try registry.publish(try Fixtures.xdpRootPackage(version: "1.0.0"))
        let path = "/xdp-root/1.0.0/any/l3af_xdp-root.tar.gz"
        let whole = try await registry.http(path)
        let ranged = try await registry.http(path, headers: [("Range", "bytes=0-9223372036854775807")])
        #expect(ranged.status == 206 && ranged.body == whole.body)
        #expect(try await registry.http(path, headers: [("Range", "bytes=99999999999999999999999-")]).status == 200, "malformed: ignored")
        #expect(try await registry.http("/api/v1/health").status == 200, "still serving")
    }

    @Test func anUploadIsAuthorizedFromItsHeadersBeforeItsBodyIsRead() async throws {
        let registry = try RegistryHarness(packages: "xdp-root")
        let body = [UInt8](repeating: 0x42, count: 8 << 20)
        let stranger = try await registry.http("PUT", "/api/v1/packages/xdp-root/1.0.0", headers: [("Authorization", "Bearer l3af_nope")], body: body)
        #expect(stranger.status == 401 && stranger.text.contains("token-invalid"), "\(stranger.text)")
        let outOfScope = try await registry.http("PUT", "/api/v1/packages/ratelimiting/1.0.0", headers: [("Authorization", "Bearer \(registry.token)")], body: body)
        #expect(outOfScope.status == 403, "a token's scope is checked before the body: \(outOfScope.text)")
        // An over-limit length with a bad token is a 401, not a 413: who asks is settled first.
        let oversized = try await registry.http("PUT", "/api/v1/packages/xdp-root/1.0.0", headers: [("Content-Length", "99999999999"), ("Authorization", "Bearer x")], body: [])
        #expect(oversized.status == 401, "\(oversized.status) \(oversized.text)")
        #expect(try await registry.verifiedIndex().shards.isEmpty, "nothing was published")
    }

    @Test func aSecondServerOnTheSameRootIsRefused() throws {
        let registry = try RegistryHarness()
        let second = try Executable.run("l3af-registry", ["serve", "--root", registry.root.appending(path: "data").path, "--key", registry.keyFile.path,
                                                          "--listen", "127.0.0.1:0"])
        #expect(second.status != 0 && second.stderr.contains("already serves"), "\(second.stderr)")
    }

    @Test func keysAreMadePrivateAndAReadableKeyIsRefused() throws {
        let registry = try RegistryHarness()
        let mode = try FileManager.default.attributesOfItem(atPath: registry.keyFile.path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        chmod(registry.keyFile.path, 0o644)
        let exposed = try Executable.run("l3af-registry", ["serve", "--root", registry.root.appending(path: "other").path, "--key", registry.keyFile.path,
                                                           "--listen", "127.0.0.1:0"])
        #expect(exposed.status != 0 && exposed.stderr.contains("can be read by others"), "\(exposed.stderr)")
    }

    @Test func tokensCanBeListedAndRevoked() throws {
        let registry = try RegistryHarness()
        let root = registry.root.appending(path: "data").path
        let listed = try Executable.run("l3af-registry", ["token", "list", "--root", root, "--json"])
        let tokens = try JSONDecoder().decode([TokenRow].self, from: Data(listed.stdout.utf8))
        #expect(tokens.count == 1 && tokens[0].owner == "netops")
        #expect(!listed.stdout.contains(registry.token), "never the token itself")
        #expect(try registry.publish(try Fixtures.xdpRootPackage(version: "1.0.0")).status == 0)
        let revoked = try Executable.run("l3af-registry", ["token", "revoke", "--root", root, tokens[0].id])
        #expect(revoked.status == 0, "\(revoked.stderr)")
        let refused = try registry.publish(try Fixtures.xdpRootPackage(version: "1.1.0"))
        #expect(refused.status != 0 && refused.stderr.contains("not known"), "a revoked token is refused at once: \(refused.stderr)")
        let unknown = try Executable.run("l3af-registry", ["token", "revoke", "--root", root, "nope"])
        #expect(unknown.status != 0 && unknown.stderr.contains("no token has the id"))
    }

    struct TokenRow: Decodable { let id: String; let owner: String }

    @Test func aWriteThatFailsHalfwayIsUndone() async throws {
        let registry = try RegistryHarness()
        #expect(try registry.publish(try Fixtures.xdpRootPackage(version: "1.0.0")).status == 0)
        let document = registry.tree.appending(path: "packages/xdp-root.json").path
        let before = try Data(contentsOf: URL(fileURLWithPath: document))
        // The index can't be replaced (a folder that isn't empty stands where it goes): the write fails after the
        // artifact and the document were written.
        let index = registry.tree.appending(path: "index.json").path
        let saved = try Data(contentsOf: URL(fileURLWithPath: index))
        try FileManager.default.removeItem(atPath: index)
        try FileManager.default.createDirectory(atPath: "\(index)/blocker", withIntermediateDirectories: true)
        let failed = try registry.publish(try Fixtures.xdpRootPackage(version: "1.1.0"))
        #expect(failed.status != 0, "\(failed.stdout)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: document)) == before, "the document is as the signed index has it")
        #expect(!FileManager.default.fileExists(atPath: registry.tree.appending(path: "xdp-root/1.1.0").path), "the new artifact is gone")
        try FileManager.default.removeItem(atPath: index)
        try saved.write(to: URL(fileURLWithPath: index))
        #expect(try await registry.http("/api/v1/health").status == 200, "still serving")
        #expect(try registry.publish(try Fixtures.xdpRootPackage(version: "1.2.0")).status == 0, "later writes work")
        let signed = try await registry.verifiedIndex()
        let current = try Data(contentsOf: URL(fileURLWithPath: document))
        #expect(try await registry.listed("xdp-root", in: signed)?.sha256 == SHA256Digest(of: Array(current)), "the index signs the document on disk")
        #expect(!String(decoding: current, as: UTF8.self).contains("1.1.0"))
    }
}

/// The client against hostile repositories and neighbours.
@Suite(.serialized) struct ClientSecurityTests {
    @Test func redirectsToFileOrDowngradesAreNotFollowed() async throws {
        let registry = try RegistryHarness()
        _ = try registry.publish(try Fixtures.xdpRootPackage(version: "1.0.0"))
        let fault = try FaultServer(root: registry.tree.path)
        let client = try ClientHarness(registry: registry)
        defer { client.remove() }
        let artifact = "/xdp-root/1.0.0/any/l3af_xdp-root.tar.gz"
        fault.script(artifact, [.redirect("file:///etc/shadow")])
        let result = try client.l3af(["fetch", "xdp-root@1.0.0"], registryURL: fault.url, config: ["attempts": 1])
        #expect(result.status != 0, "\(result.stdout)")
        let cached = (try? FileManager.default.subpathsOfDirectory(atPath: client.cache)) ?? []
        for file in cached where !file.hasSuffix("/") {
            let text = (try? String(contentsOfFile: "\(client.cache)/\(file)", encoding: .utf8)) ?? ""
            #expect(!text.contains("root:"), "/etc/shadow was not fetched into \(file)")
        }
        #expect(client.repoSnapshot().keys.filter { $0.hasPrefix("xdp-root/") }.isEmpty)
    }

    @Test func aNonsenseRetryAfterIsIgnoredNotATrap() throws {
        let registry = try RegistryHarness()
        _ = try registry.publish(try Fixtures.xdpRootPackage(version: "1.0.0"))
        let fault = try FaultServer(root: registry.tree.path)
        let client = try ClientHarness(registry: registry)
        defer { client.remove() }
        fault.script("/index.json", [.status(503, retryAfter: "nan"), .status(503, retryAfter: "-1"), .status(503, retryAfter: "1e999")])
        fault.script("/xdp-root/1.0.0/any/l3af_xdp-root.tar.gz", [.status(503, retryAfter: "nan")])
        let result = try client.l3af(["fetch", "xdp-root@1.0.0"], registryURL: fault.url, config: ["attempts": 4])
        #expect(result.status == 0, "\(result.stderr)")
    }

    @Test func aCorruptRecordOfAcceptedIndexesStopsTheFetch() throws {
        let registry = try RegistryHarness()
        _ = try registry.publish(try Fixtures.xdpRootPackage(version: "1.0.0"))
        let client = try ClientHarness(registry: registry)
        defer { client.remove() }
        let state = client.folder.appending(path: "state").path
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        try "{not json".write(toFile: "\(state)/registries.json", atomically: true, encoding: .utf8)
        let result = try client.l3af(["fetch", "xdp-root@1.0.0"])
        #expect(result.status != 0 && result.stderr.contains("rollback protection can't be checked"), "\(result.stderr)")
        #expect(client.repoSnapshot().isEmpty, "nothing installed")
    }

    @Test func concurrentFetchesShareTheRepoSafely() throws {
        let registry = try RegistryHarness()
        for version in ["1.0.0", "1.1.0", "1.2.0"] { _ = try registry.publish(try Fixtures.xdpRootPackage(version: version)) }
        let client = try ClientHarness(registry: registry)
        defer { client.remove() }
        for round in 0..<5 {
            try? FileManager.default.removeItem(atPath: client.repo)
            let results = try ["1.0.0", "1.1.0", "1.2.0"].map { version in
                try RunningProcess("l3af", ["fetch", "xdp-root@=\(version)", "--registry", registry.url, "--trusted-key", registry.publicKey,
                                            "--repo", client.repo, "--cache", client.cache, "--state", client.folder.appending(path: "state").path])
            }.map { $0.wait() }
            #expect(results == [0, 0, 0], "round \(round)")
            for version in ["1.0.0", "1.1.0", "1.2.0"] {
                #expect(throws: Never.self) { try Unpacker.check(repo: client.repo, name: "xdp-root", version: version) }
            }
        }
        let mode = try FileManager.default.attributesOfItem(atPath: client.cache)[.posixPermissions] as? Int ?? 0o777
        #expect(mode & 0o007 == 0, "the cache is not world-readable: \(String(mode, radix: 8))")
    }
}

/// l3afd against its neighbours: local users, web pages, hostile payloads and repositories.
@Suite(.serialized, .enabled(if: bpfUnavailable == nil, "\(bpfUnavailable ?? "")"))
struct DaemonSecurityTests {
    /// A payload for packet-counter with `fields` added; `seq_id` and `version` may be given in `fields` instead.
    static func entry(_ fields: String) -> String {
        var defaults = ""
        if !fields.contains(#""seq_id""#) { defaults += #", "seq_id": 1"# }
        if !fields.contains(#""version""#) { defaults += #", "version": "1.0.0""# }
        return #"[{"host_name": "node-1", "iface": "IFACE", "bpf_programs": {"xdp_ingress": [{"name": "packet-counter", "admin_status": "enabled""#
            + defaults + fields + "}]}}]"
    }

    @Test func writesNeedJSONAndAHostHeaderNamingTheDaemon() async throws {
        let host = try HostHarness()
        defer { host.remove() }
        let daemon = try DaemonHarness(host: host)
        defer { daemon.stop() }
        let url = daemon.url + "/l3af/configs/v1/update"
        // What a web page can send without a preflight: a text/plain form post.
        let plain = try await HTTPClient().send(HTTPRequest(method: "POST", url: url, headers: [("Content-Type", "text/plain")], body: Array("[]".utf8)))
        #expect(plain.status == 415 && plain.text.contains("json-required"), "\(plain.text)")
        let rebound = try await HTTPClient().send(HTTPRequest(method: "POST", url: url, headers: [("Content-Type", "application/json"), ("Host", "evil.example:7080")],
                                                               body: Array("[]".utf8)))
        #expect(rebound.status == 403 && rebound.text.contains("host-not-allowed"), "\(rebound.text)")
        #expect(try await daemon.request("GET", "/l3af/configs/v1").status == 200, "still serving")
    }

    @Test func aTokenFileGuardsTheAPIAndOurClientSendsIt() async throws {
        let host = try HostHarness()
        defer { host.remove() }
        let tokenFile = host.folder.appending(path: "token").path
        try "s3cret-token\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        chmod(tokenFile, 0o644)
        let exposed = try Executable.run("l3afd", DaemonHarness.arguments(host) + ["--listen", "127.0.0.1:0", "--token-file", tokenFile])
        #expect(exposed.status != 0 && exposed.stderr.contains("chmod 600"), "\(exposed.stderr)")
        chmod(tokenFile, 0o600)
        let daemon = try DaemonHarness(host: host, extra: ["--token-file", tokenFile])
        defer { daemon.stop() }
        #expect(try await daemon.request("GET", "/l3af/configs/v1").status == 401)
        #expect(try await daemon.request("GET", "/healthz").status == 200, "probes need no token")
        let bad = try Executable.run("l3af", ["status", "--host", daemon.url, "--token", "wrong"])
        #expect(bad.status != 0 && bad.stderr.contains("bearer token"), "\(bad.stderr)")
        let good = try Executable.run("l3af", ["install", "packet-counter@1.0.0", "--iface", host.port, "--host", daemon.url, "--token", "@\(tokenFile)"])
        #expect(good.status == 0, "\(good.stderr)")
        let history = try Executable.run("l3af", ["history", "--json", "--host", daemon.url, "--token", "s3cret-token"])
        #expect(history.stdout.contains("\"actor\" : \"token\"") || history.stdout.contains("\"actor\":\"token\""), "\(history.stdout)")
    }

    @Test func aListenAddressOthersCanReachNeedsMutualTLS() throws {
        let host = try HostHarness()
        defer { host.remove() }
        let open = try Executable.run("l3afd", DaemonHarness.arguments(host) + ["--listen", "0.0.0.0:0"])
        #expect(open.status != 0 && open.stderr.contains("reachable from other machines"), "\(open.stderr)")
    }

    @Test func theUnixSocketIsPrivateAndRecordsTheCallersUID() async throws {
        let host = try HostHarness()
        defer { host.remove() }
        let socket = host.folder.appending(path: "run/l3afd.sock").path
        let daemon = try DaemonHarness(host: host, extra: ["--socket", socket])
        defer { daemon.stop() }
        for _ in 0..<50 where !FileManager.default.fileExists(atPath: socket) { try await Task.sleep(for: .milliseconds(100)) }
        let mode = try FileManager.default.attributesOfItem(atPath: socket)[.posixPermissions] as? Int ?? 0o777
        #expect(mode & 0o077 == 0, "from the moment it exists, only its owner may connect: mode \(String(mode, radix: 8))")
        let installed = try Executable.run("l3af", ["install", "packet-counter@1.0.0", "--iface", host.port, "--host", "unix:\(socket)"])
        #expect(installed.status == 0, "\(installed.stderr)")
        let history = try Executable.run("l3af", ["history", "--json", "--host", "unix:\(socket)"])
        #expect(history.stdout.contains("uid \(getuid())"), "the caller's uid is the actor: \(history.stdout)")
    }

    @Test func payloadNamesThatWouldLeaveTheRepoAreRefusedAndChangeNothing() async throws {
        let host = try HostHarness()
        defer { host.remove() }
        let daemon = try DaemonHarness(host: host)
        defer { daemon.stop() }
        let attacks = [
            (#", "artifact": "../../../../tmp/l3af-escape", "ebpf_package_repo_url": "file:///tmp""#, "artifact"),
            (#", "cmd_start": "../../../../bin/sh""#, "cmd_start"),
            (#", "object_file": "../../../etc/passwd""#, "object_file"),
            (#", "version": "../1.0.0""#, "version"),
            (#", "map_args": [{"name": "../x", "args": []}]"#, "map_args"),
            (#", "seq_id": 9223372036854775807"#, "seq_id"),
            (#", "cmd_start": "x", "start_args": {"iface": "lo"}"#, "start_args.iface"),
        ]
        for (fields, field) in attacks {
            let body = Self.entry(fields).replacingOccurrences(of: "IFACE", with: host.port)
            let reply = try await daemon.request("POST", "/l3af/configs/v1/add", body)
            #expect(reply.status == 400 && reply.text.contains(field), "\(field): \(reply.status) \(reply.text)")
        }
        #expect(!FileManager.default.fileExists(atPath: "/tmp/l3af-escape"))
        #expect(try host.chain().isEmpty, "nothing changed")
        // A map the manifest doesn't name can't be written through map_args.
        let reply = try await daemon.request("POST", "/l3af/configs/v1/add",
                                             Self.entry(#", "map_args": [{"name": "xdp_counter_next_prog", "args": [{"key": 0, "value": 1}]}]"#).replacingOccurrences(of: "IFACE", with: host.port))
        #expect(reply.status == 400 && reply.text.contains("names no map 'xdp_counter_next_prog'"), "\(reply.text)")
        #expect(try host.chain().isEmpty)
    }

    @Test func failedRequestsCannotGrowTheMetricsWithoutBound() async throws {
        let host = try HostHarness()
        defer { host.remove() }
        let daemon = try DaemonHarness(host: host)
        defer { daemon.stop() }
        for i in 0..<300 {
            let body = #"[{"host_name": "node-1", "iface": "\#(host.port)", "bpf_programs": {"xdp_ingress": [{"name": "nope\#(i)", "seq_id": 1}]}}]"#
            _ = try await daemon.request("POST", "/l3af/configs/v1/add", body)
        }
        let text = try await daemon.metrics()
        // Programs that weren't there: deploy failures, as l3afd counts them.
        let series = text.split(separator: "\n").filter { $0.hasPrefix("l3afd_BPFDeployFailedCount{") || $0.hasPrefix("l3afd_BPFUpdateFailedCount{") }
        #expect(series.count <= 257, "\(series.count) series")
        #expect(series.contains { $0.contains("ebpf_program=\"_other\"") })
    }
}
