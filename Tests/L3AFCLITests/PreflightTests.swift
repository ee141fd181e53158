import Foundation
import L3AFTestSupport
import Testing

/// Preflight, dry runs and diffs, all against the real kernel, registry and CLI: a package this kernel can't run is
/// refused by `l3af check` and by every change before anything changes, naming what is missing; a dry run changes
/// nothing (kernel, bpffs, state.db, repo) and names exactly the flips and pins the real run then makes.
@Suite(.serialized) struct PreflightTests {
    /// Publishes `packet-counter` as `name`, its manifest and XDP source edited.
    static func publishVariant(_ host: HostHarness, _ name: String, manifest: (String) -> String = { $0 }, source: (String) -> String = { $0 }) throws {
        let folder = host.folder.appending(path: "src/\(name)")
        try FileManager.default.createDirectory(at: folder.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Fixtures.repositoryRoot.appending(path: "registry/packet-counter"), to: folder)
        let manifestFile = folder.appending(path: "l3af.json"), sourceFile = folder.appending(path: "xdp_counter.bpf.c")
        try manifest(try String(contentsOf: manifestFile, encoding: .utf8).replacingOccurrences(of: "\"name\": \"packet-counter\"", with: "\"name\": \"\(name)\""))
            .write(to: manifestFile, atomically: true, encoding: .utf8)
        try source(try String(contentsOf: sourceFile, encoding: .utf8)).write(to: sourceFile, atomically: true, encoding: .utf8)
        let packed = try Executable.run("l3af", ["pack", folder.path, "-o", host.folder.appending(path: "dist").path])
        guard packed.status == 0 else { throw FixtureError("pack \(name): \(packed.stderr)") }
        let published = try host.registry.l3af(["publish", host.folder.appending(path: "dist/l3af_\(name)-1.0.0.tar.gz").path])
        guard published.status == 0 else { throw FixtureError("publish \(name): \(published.stderr)") }
    }

    /// Everything a dry run must leave as it was: the programs the kernel runs, every pin, state.db, the repo.
    static func fingerprint(_ host: HostHarness) throws -> [String] {
        func files(_ root: String) -> [String] {
            (FileManager.default.enumerator(atPath: root)?.allObjects as? [String] ?? []).sorted()
        }
        // The ids of the programs this host's chains run, as the kernel reports them (root included).
        let chains = (try host.status()["chains"] as? [[String: Any]]) ?? []
        let ids = chains.flatMap { chain in
            [(chain["root_program_id"] as? Int).map { "root \($0)" } ?? ""] + ((chain["programs"] as? [[String: Any]]) ?? []).map { "\($0["package"]!) \($0["program_id"] ?? "none")" }
        }
        let database = (try? Data(contentsOf: URL(fileURLWithPath: "\(host.state)/state.db"))).map { "state.db \($0.base64EncodedString())" } ?? "no state.db"
        let trust = ["registries.json", "plain-artifacts.json"].map { file in
            "\(file) " + ((try? String(contentsOfFile: "\(host.state)/\(file)", encoding: .utf8)) ?? "absent")
        }
        return ["ids: " + ids.joined(separator: ",")] + trust + files(host.pinRoot).map { "pin \($0)" } + [database]
            + files(host.folder.appending(path: "repo").path).map { "repo \($0)" }
    }

    /// Runs `arguments` with `--dry-run --json`, then for real with `--json`, and checks that the dry run changed
    /// nothing and foretold exactly the real run's steps (flips and pins). Returns the plan.
    @discardableResult
    static func planThenRun(_ host: HostHarness, _ arguments: [String], expectSteps: Int? = nil) throws -> [String: Any] {
        let before = try fingerprint(host)
        let dry = try host.l3af(arguments + ["--dry-run", "--json"])
        #expect(dry.status == 0, "\(arguments): \(dry.stderr)")
        let plan = try JSONSerialization.jsonObject(with: Data(dry.stdout.utf8)) as? [String: Any] ?? [:]
        let after = try fingerprint(host)
        #expect(after == before, "\(arguments): the dry run changed \(after.filter { !before.contains($0) }.map { $0.prefix(80) })")
        let real = try host.l3af(arguments + ["--json"])
        #expect(real.status == 0, "\(arguments): \(real.stderr)")
        let reply = try JSONSerialization.jsonObject(with: Data(real.stdout.utf8)) as? [String: Any] ?? [:]
        // The revision itself (install, remove, rollback, apply), under `revision` (pin, upgrade), or a restore's reply.
        var revision = reply["number"] != nil ? reply : reply["revision"] as? [String: Any] ?? [:]
        if let number = reply["revision"] as? Int { revision = ["steps": reply["steps"] ?? [], "number": number] }
        let planned = plan["steps"] as? [[String: Any]] ?? [], made = revision["steps"] as? [[String: Any]] ?? []
        #expect(NSArray(array: planned).isEqual(to: made), "\(arguments): planned \(planned) made \(made)")
        if let expectSteps { #expect(made.count == expectSteps, "\(arguments): \(made)") }
        #expect((plan["revision"] as? [String: Any])?["number"] as? Int == revision["number"] as? Int, "\(arguments): the revision foretold")
        return plan
    }

    @Test func preflightRefusesWhatThisKernelLacksBeforeAnythingChanges() throws {
        let host = try HostHarness()
        defer { host.remove() }
        try Self.publishVariant(host, "future-kernel", manifest: { $0.replacingOccurrences(of: "\"min_kernel\": \"5.10\"", with: "\"min_kernel\": \"99.0\"") })
        try Self.publishVariant(host, "future-helper", source: {
            $0.replacingOccurrences(of: "SEC(\"xdp\")", with: "static long (*bpf_future_helper)(void) = (void *) 250;\n\nSEC(\"xdp\")")
                .replacingOccurrences(of: "    bpf_tail_call(ctx, &xdp_counter_next_prog, 0);", with: "    bpf_future_helper();\n    bpf_tail_call(ctx, &xdp_counter_next_prog, 0);")
        })
        try Self.publishVariant(host, "odd-map", source: {
            $0.replacingOccurrences(of: "SEC(\"xdp\")", with: "struct {\n    __uint(type, 99);\n    __uint(max_entries, 1);\n    __type(key, __u32);\n    __type(value, __u32);\n} odd_map SEC(\".maps\");\n\nSEC(\"xdp\")")
        })
        try Self.publishVariant(host, "unchecked-read", source: {
            $0.replacingOccurrences(of: "    bpf_tail_call(ctx, &xdp_counter_next_prog, 0);",
                                    with: "    if (*(volatile __u32 *)(long)ctx->data == 7) return XDP_DROP;\n    bpf_tail_call(ctx, &xdp_counter_next_prog, 0);")
        })
        #expect(try host.l3af(["status"]).status == 0, "state.db made")
        let before = try Self.fingerprint(host)
        for (package, check, reason) in [
            ("future-kernel", "kernel", "needs Linux 99.0 or later"),
            ("future-helper", "helper", "calls helper 250"),
            ("odd-map", "map-type", "map type #99 is not supported"),
            ("unchecked-read", "verifier", "invalid access to packet"),
        ] {
            let checked = try host.l3af(["check", "\(package)@1.0.0", "--iface", host.port, "--hook", "xdp_ingress"])
            #expect(checked.status == 1 && checked.stdout.contains("[\(check)]") && checked.stdout.contains(reason), "\(package): \(checked.stdout) \(checked.stderr)")
            let json = try host.l3af(["check", "\(package)@1.0.0", "--hook", "xdp_ingress", "--json"])
            let problems = (try? JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])?["problems"] as? [[String: Any]] ?? []
            #expect(problems.first?["check"] as? String == check, "\(package): \(json.stdout)")
            let installed = try host.l3af(["install", "\(package)@1.0.0", "--iface", host.port, "--hook", "xdp_ingress"])
            #expect(installed.status != 0 && installed.stderr.contains("preflight") && installed.stderr.contains(reason), "\(package): \(installed.stderr)")
            let dry = try host.l3af(["install", "\(package)@1.0.0", "--iface", host.port, "--hook", "xdp_ingress", "--dry-run"])
            #expect(dry.status == 1 && dry.stdout.contains("preflight: this host can't run it") && dry.stdout.contains(reason), "\(package): \(dry.stdout)")
        }
        // Nothing changed: no program, no pin, no revision (the refused packages were fetched into the repo only by
        // the installs that preflight then refused).
        // (The refused installs did fetch: the repo and the registry's accepted index version may differ.)
        func kept(_ lines: [String]) -> [String] { lines.filter { !$0.hasPrefix("repo ") && !$0.hasPrefix("registries.json ") } }
        let after = kept(try Self.fingerprint(host)), earlier = kept(before)
        #expect(after == earlier, "\(after.filter { !earlier.contains($0) }.map { $0.prefix(80) })")
        #expect(try host.history().isEmpty)

        let good = try host.l3af(["check", "packet-counter@1.0.0", "--iface", host.port])
        #expect(good.status == 0 && good.stdout.contains("it would load here"), "\(good.stdout) \(good.stderr)")
        #expect(try host.l3af(["install", "packet-counter@1.0.0", "--iface", host.port]).status == 0)
    }

    @Test func dryRunsForetellExactlyTheFlipsAndPinsAndChangeNothing() throws {
        let host = try HostHarness(ratelimiting: ["1.0.0", "1.1.0"])
        defer { host.remove() }
        let port = host.port
        #expect(try host.l3af(["status"]).status == 0, "state.db made")
        // install (root attached, then the program), a second program, an upgrade, a pin, a rollback, a remove.
        var plan = try Self.planThenRun(host, ["install", "packet-counter@1.0.0", "--iface", port, "--hook", "xdp_ingress"], expectSteps: 2)
        #expect((plan["fetched"] as? [[String: Any]])?.first?["installed"] as? Bool == false, "\(plan)")
        #expect(((plan["fetched"] as? [[String: Any]])?.first?["bytes"] as? Int ?? 0) > 0, "\(plan)")
        try Self.planThenRun(host, ["install", "ratelimiting@^1.0", "--iface", port, "--set", "rate=100", "--set", "ports=80"], expectSteps: 1)
        #expect(try host.chain().map(\.spec) == ["packet-counter@1.0.0", "ratelimiting@1.1.0"])
        try Self.planThenRun(host, ["pin", "ratelimiting@1.0.0"], expectSteps: 1)
        #expect(try host.l3af(["unpin", "ratelimiting"]).status == 0)
        try Self.planThenRun(host, ["upgrade"], expectSteps: 1)
        try Self.planThenRun(host, ["rollback"], expectSteps: 1)
        plan = try Self.planThenRun(host, ["remove", "packet-counter", "--iface", port], expectSteps: 1)
        #expect((plan["steps"] as? [[String: Any]])?.first?["action"] as? String == "remove")
        #expect(((plan["steps"] as? [[String: Any]])?.first?["pins_removed"] as? [String])?.first?.hasSuffix("/xdp_ingress/packet-counter/1_0_0") == true, "\(plan)")

        // A payload (apply), and restore after the pins are gone (as after a reboot).
        let payload = host.folder.appending(path: "payload.json")
        try #"[{"host_name": "node-1", "iface": "\#(port)", "bpf_programs": {"xdp_ingress": [{"name": "packet-counter", "seq_id": 1, "version": "1.0.0", "admin_status": "enabled"}]}}]"#
            .write(to: payload, atomically: true, encoding: .utf8)
        // ratelimiting leaves and packet-counter joins; the root stays between the two.
        plan = try Self.planThenRun(host, ["apply", payload.path, "--host-name", "node-1"], expectSteps: 2)
        #expect((plan["steps"] as? [[String: Any]])?.map { $0["action"] as? String } == ["remove", "insert"], "\(plan)")
        try FileManager.default.removeItem(atPath: "\(host.pinRoot)/\(port)")
        let restorePlan = try Self.planThenRun(host, ["restore"], expectSteps: 2)
        #expect((restorePlan["steps"] as? [[String: Any]])?.map { $0["action"] as? String } == ["attach-root", "insert"], "\(restorePlan)")
        #expect(try host.chain().map(\.spec) == ["packet-counter@1.0.0"])

        // diff: two revisions, chain by chain; the last one against the kernel.
        let diff = try host.l3af(["diff", "1", "2"])
        #expect(diff.status == 0 && diff.stdout.contains("+ ratelimiting@1.1.0"), "\(diff.stdout) \(diff.stderr)")
        #expect(try host.l3af(["diff"]).stdout.contains("no difference"))
        try FileManager.default.removeItem(atPath: "\(host.pinRoot)/\(port)")
        let gone = try host.l3af(["diff", "--json"])
        let chains = (try? JSONSerialization.jsonObject(with: Data(gone.stdout.utf8)) as? [String: Any])?["chains"] as? [[String: Any]] ?? []
        #expect(chains.first?["removed"] as? [String] == ["packet-counter@1.0.0"], "\(gone.stdout)")
        #expect(try host.l3af(["restore"]).status == 0)
    }

    /// l3afd's routes take `?dry_run=true` too: the plan of the payload, nothing changed; the real request then makes
    /// exactly those steps. A dry run of a payload this kernel can't run shows preflight's reasons.
    @Test func theDaemonPlansAPayloadWithDryRun() async throws {
        let host = try HostHarness()
        defer { host.remove() }
        let daemon = try DaemonHarness(host: host)
        defer { daemon.stop() }
        let payload = #"[{"host_name": "node-1", "iface": "\#(host.port)", "bpf_programs": {"xdp_ingress": [{"name": "packet-counter", "seq_id": 1, "version": "1.0.0", "admin_status": "enabled"}]}}]"#
        let before = try Self.fingerprint(host)
        let dry = try await daemon.request("POST", "/l3af/configs/v1/add?dry_run=true", payload)
        #expect(dry.status == 200, "\(dry.text)")
        let plan = try JSONSerialization.jsonObject(with: Data(dry.text.utf8)) as? [String: Any] ?? [:]
        let after = try Self.fingerprint(host)
        #expect(after == before, "the dry run changed \(after.filter { !before.contains($0) }.map { $0.prefix(80) })")
        #expect(try await daemon.json("/l3af/configs/v1") as? [Any] != nil)
        let real = try await daemon.request("POST", "/l3af/configs/v1/add", payload)
        #expect(real.status == 200, "\(real.text)")
        let made = ((try JSONSerialization.jsonObject(with: Data(real.text.utf8)) as? [String: Any])?["revision"] as? [String: Any])?["steps"] as? [[String: Any]] ?? []
        #expect(NSArray(array: plan["steps"] as? [[String: Any]] ?? []).isEqual(to: made) && made.count == 2, "planned \(plan) made \(made)")
        let bad = try await daemon.request("POST", "/l3af/v1/install?dry_run=maybe", #"{"spec": "packet-counter@1.0.0", "iface": "\#(host.port)"}"#)
        #expect(bad.status == 400 && bad.text.contains("dry_run"), "\(bad.text)")
    }
}
