import Foundation
import L3AFTestSupport
import Testing

/// `kill -9` during upgrades and rollbacks, at random moments. After each kill `l3af status` (a read: it repairs
/// nothing) answers and either agrees with the kernel or says a change is in flight; `l3af restore` (a writer) then
/// finishes or undoes what the killed process left, after which status and the kernel agree, the chain is whole, and
/// traffic runs through every program of it. Also: one writer at a time. Rounds: $L3AF_HOST_KILL_ROUNDS (default 20;
/// scripts/host-kill-soak runs 100).
@Suite(.serialized, .enabled(if: bpfUnavailable == nil, "\(bpfUnavailable ?? "")"))
struct HostCrashTests {
    @Test func killDuringUpgradesAndRollbacksLeavesTheOldStateOrTheNew() throws {
        let rounds = Int(ProcessInfo.processInfo.environment["L3AF_HOST_KILL_ROUNDS"] ?? "") ?? 20
        let host = try HostHarness()
        defer { host.remove() }
        #expect(try host.l3af(["install", "packet-counter", "--iface", host.port, "--hook", "xdp_ingress", "--seq", "5"]).status == 0)
        #expect(try host.l3af(["install", "ratelimiting", "--iface", host.port, "--set", "rate=100000", "--set", "ports=8080"]).status == 0)
        try host.publish("ratelimiting", version: "1.1.0")

        // Upgrade (1.0.0 → 1.1.0) and roll back, in turn; the first run of each, uncut, measures how long one takes.
        let operations = [["upgrade"], ["rollback", "ratelimiting"], ["rollback"]]
        func start(_ arguments: [String]) throws -> RunningProcess { try RunningProcess("l3af", arguments + host.settings) }
        let clock = ContinuousClock()
        var span = 1
        for operation in operations {
            let running = try start(operation)
            let whole = clock.measure { _ = running.wait() }
            span = max(span, Int(whole / .microseconds(1)))
        }
        var interrupted = 0, seen = Set<String>()
        for round in 1...rounds {
            let running = try start(operations[round % operations.count])
            usleep(UInt32(Int.random(in: 0...span)))  // blocking: Task.sleep overshoots on a busy pool
            if running.stop(signal: SIGKILL) != 0 { interrupted += 1 }

            let read = try host.status()
            #expect(read["difference"] == nil || read["changing"] != nil, "round \(round): \(read["difference"] ?? "")")
            let restored = try host.l3af(["restore"])
            #expect(restored.status == 0, "round \(round): \(restored.stderr)")
            let status = try host.status()
            #expect(status["difference"] == nil && status["changing"] == nil, "round \(round): \(status["difference"] ?? status["changing"] ?? "")")
            let chain = try host.chain()
            #expect(chain.count == 2 && chain.allSatisfy { $0.programID != nil }, "round \(round): \(chain.map(\.spec))")
            guard chain.count == 2 else { continue }
            #expect(chain[0].spec == "packet-counter@1.0.0")
            #expect(["ratelimiting@1.0.0", "ratelimiting@1.1.0"].contains(chain[1].spec), "round \(round): \(chain[1].spec)")
            seen.insert(chain[1].spec)
            // Traffic through the whole chain: the first program counts it, the last one sees the SYNs.
            let tcp = chain[0].counters["xdp_counter_map[6]", default: 0], syns = chain[1].counters["rl_recv_count_map[0]", default: 0]
            _ = try host.network.connect(2, port: 8080)
            let after = try host.chain()
            #expect(after[0].counters["xdp_counter_map[6]", default: 0] > tcp, "round \(round): the first program ran")
            #expect(after[1].counters["rl_recv_count_map[0]", default: 0] == syns + 2, "round \(round): the last program ran")
        }
        // Nothing half-done on bpffs: only the root and the two packages' current versions.
        let folders = (try? FileManager.default.contentsOfDirectory(atPath: "\(host.pinRoot)/\(host.port)/xdp_ingress"))?.sorted() ?? []
        #expect(folders == ["packet-counter", "ratelimiting", "root"], "\(folders)")
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "\(host.pinRoot)/\(host.port)/xdp_ingress/ratelimiting")) ?? []
        #expect(versions.count == 1, "\(versions)")
        print("host kill rounds: \(rounds), interrupted by the kill: \(interrupted), versions seen after kills: \(seen.sorted())")
    }

    @Test func aSecondWriterWaitsForTheLockOrGivesUp() throws {
        let host = try HostHarness()
        defer { host.remove() }
        #expect(try host.l3af(["install", "ratelimiting", "--iface", host.port, "--set", "rate=100", "--set", "ports=8080"]).status == 0)
        try host.publish("ratelimiting", version: "1.1.0")
        // Hold the lock the way another l3af would (flock on <state>/lock).
        let holder = try RunningProcess("/usr/bin/flock", ["\(host.state)/lock", "sleep", "3"])
        usleep(300_000)
        let refused = try host.l3af(["upgrade", "--lock-timeout", "0.5"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("another l3af") && refused.stderr.contains("--lock-timeout"), "\(refused.stderr)")
        #expect(try host.history().count == 1)
        let waited = try host.l3af(["upgrade", "--lock-timeout", "30"])
        #expect(waited.status == 0, "\(waited.stderr)")
        #expect(waited.stderr.contains("waiting for another l3af"), "\(waited.stderr)")
        #expect(try host.chain().map(\.spec) == ["ratelimiting@1.1.0"])
        _ = holder.wait()
    }
}
