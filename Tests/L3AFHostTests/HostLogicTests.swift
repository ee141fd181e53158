import Foundation
import L3AFHost
import L3AFHostTesting
import L3AFModel
import L3AFRuntime
import L3AFSystem
import Synchronization
import Testing

/// Every command's decisions, on fakes of the package source, the chains and the clock: no root, no registry, no
/// kernel, milliseconds each. The real-kernel tests (L3AFCLITests) run the same paths end to end.
@Suite struct HostLogicTests {
    let xdp = ChainKey(interface: "eth0", hook: .xdpIngress)

    func install(_ fake: FakeHost, _ spec: String, iface: String = "eth0", hook: Hook? = nil, seq: Int? = nil,
                 parameters: [String: String] = [:]) async throws -> Revision {
        try await fake.host.install(InstallRequest(spec: try PackageSpec(parsing: spec), interface: iface, hook: hook, seqID: seq, parameters: parameters))
    }

    @Test func installPlacesAfterTheLastProgramBehindTheRootAndRecordsWhoAndWhy() async throws {
        let fake = try FakeHost()
        defer { fake.remove() }
        try fake.packages.publish("counter", "1.0.0")
        try fake.packages.publish("limiter", "1.0.0")
        let first = try await install(fake, "counter")
        let second = try await install(fake, "limiter@^1")
        #expect(first.kind == .install && first.actor == "tester" && first.cause == "install counter@1.0.0 on eth0 (xdp_ingress)")
        #expect(second.snapshot.chain(xdp).map(\.seqID) == [10, 20])
        #expect(second.snapshot.roots["xdp_ingress"]?.package == "xdp-root")
        #expect(fake.chains.running(xdp) == ["counter@1.0.0", "limiter@1.0.0"])
        #expect(try fake.host.database.history().count == 2)
        let actor = try await HostManager.$requestActor.withValue("uid 1000 (ops)") { try await fake.host.remove(package: "limiter", interface: "eth0") }
        #expect(actor.actor == "uid 1000 (ops)", "the caller the daemon names is recorded, though the change runs on a thread of its own")
    }

    @Test func refusedInstallsChangeNothing() async throws {
        let fake = try FakeHost()
        defer { fake.remove() }
        try fake.packages.publish("counter", "1.0.0")
        try fake.packages.publish("tconly", "1.0.0", hooks: [.tcIngress])
        _ = try await install(fake, "counter", seq: 10)
        let before = (try fake.host.database.history().count, fake.chains.running(xdp))
        for (attempt, expected) in [
            ({ try await install(fake, "counter", iface: "nope0") }, "there is no network interface 'nope0'"),
            ({ try await install(fake, "counter") }, "is already installed on eth0/xdp_ingress"),
            ({ try await install(fake, "tconly", hook: .xdpIngress) }, "has no program for xdp_ingress"),
            ({ try await install(fake, "missing") }, "missing"),
            ({ try await install(fake, "counter", seq: 2_000_000_000) }, "out of range"),
        ] as [(() async throws -> Revision, String)] {
            let error = await #expect(throws: (any Error).self) { _ = try await attempt() }
            #expect("\(error!)".contains(expected), "\(error!)")
        }
        try fake.packages.publish("other", "1.0.0")
        await #expect(throws: HostError.self) { _ = try await install(fake, "other", seq: 10) }
        #expect((try fake.host.database.history().count, fake.chains.running(xdp)) == before)
    }

    /// l3afd's `bpf-chaining-enabled: false`: no root is fetched, and a second program on a hook is refused before
    /// anything is recorded or changed; another hook or interface takes its own one.
    @Test func withoutChainingEachHookTakesOneProgramAndNoRoot() async throws {
        let fake = try FakeHost { $0.chaining = false }
        defer { fake.remove() }
        try fake.packages.publish("counter", "1.0.0")
        try fake.packages.publish("limiter", "1.0.0")
        let first = try await install(fake, "counter")
        #expect(first.snapshot.roots.isEmpty, "no root without chaining")
        #expect(fake.chains.running(xdp) == ["counter@1.0.0"])
        let refused = await #expect(throws: HostError.self) { _ = try await install(fake, "limiter") }
        #expect(refused?.description.contains("bpf-chaining-enabled is false, so eth0/xdp_ingress runs one program, not 2") == true, "\(refused!)")
        #expect(try fake.host.database.history().count == 1 && fake.chains.running(xdp) == ["counter@1.0.0"])
        _ = try await install(fake, "limiter", iface: "eth1")
        #expect(fake.chains.running(ChainKey(interface: "eth1", hook: .xdpIngress)) == ["limiter@1.0.0"])
    }

    @Test func aChangeTheKernelRefusesIsNotRecordedAndTheChainsStayAsTheyWere() async throws {
        let fake = try FakeHost()
        defer { fake.remove() }
        try fake.packages.publish("counter", "1.0.0")
        _ = try await install(fake, "counter")
        fake.chains.state.withLock { $0.failing = ["counter@1.1.0"] }
        try fake.packages.publish("counter", "1.1.0")
        let outcome = await #expect(throws: HostError.self) { _ = try await fake.host.pin(package: "counter", version: "1.1.0") }
        #expect(outcome?.kind == .chain)
        #expect(fake.chains.running(xdp) == ["counter@1.0.0"])
        #expect(try fake.host.database.history().count == 1 && fake.host.database.pending() == nil && fake.host.database.pins().isEmpty)
    }

    @Test func upgradeMovesWithinTheRequirementAndPassesPinsBy() async throws {
        let fake = try FakeHost()
        defer { fake.remove() }
        for version in ["1.0.0", "1.2.0", "2.0.0"] { try fake.packages.publish("counter", version) }
        try fake.packages.publish("limiter", "1.0.0")
        _ = try await install(fake, "counter@^1")
        _ = try await install(fake, "limiter")
        try fake.host.database.setPin(.init(package: "limiter", interface: nil, version: "1.0.0"))
        try fake.packages.publish("limiter", "1.5.0")
        // Put counter back on 1.0.0 by pin/unpin, then upgrade: ^1 picks 1.2.0, never 2.0.0; limiter is pinned.
        _ = try await fake.host.pin(package: "counter", version: "1.0.0")
        _ = try await fake.host.unpin(package: "counter")
        let outcome = try await fake.host.upgrade()
        #expect(outcome.changed == ["counter 1.0.0 → 1.2.0 on eth0/xdp_ingress"])
        #expect(outcome.skipped == ["limiter on eth0/xdp_ingress is pinned at 1.0.0"])
        #expect(outcome.revision?.kind == .upgrade)
        #expect(fake.chains.running(xdp) == ["counter@1.2.0", "limiter@1.0.0"])
        let again = try await fake.host.upgrade()
        #expect(again.revision == nil && again.changed.isEmpty)
        await #expect(throws: HostError.self) { _ = try await fake.host.upgrade(package: "absent") }
        await #expect(throws: HostError.self) { _ = try await fake.host.upgrade(watch: 5000) }
    }

    @Test func pinMovesNowAndUnpinNeedsAPin() async throws {
        let fake = try FakeHost()
        defer { fake.remove() }
        try fake.packages.publish("counter", "1.0.0")
        try fake.packages.publish("counter", "1.1.0")
        _ = try await install(fake, "counter")
        let moved = try await fake.host.pin(package: "counter", version: "1.0.0", interface: "eth0")
        #expect(moved?.kind == .pin && fake.chains.running(xdp) == ["counter@1.0.0"])
        #expect(try fake.host.database.pins() == [.init(package: "counter", interface: "eth0", version: "1.0.0")])
        let fetches = fake.packages.fetches.count
        #expect(try await fake.host.pin(package: "counter", version: "1.0.0", interface: "eth0") == nil, "already there: no revision")
        #expect(fake.packages.fetches.count == fetches, "holding a package where it is fetches nothing (the registry may be down)")
        await #expect(throws: (any Error).self) { _ = try await fake.host.pin(package: "counter", version: "9.9.9") }
        #expect(try await fake.host.unpin(package: "counter") == 1)
        let error = await #expect(throws: HostError.self) { _ = try await fake.host.unpin(package: "counter") }
        #expect(error?.description.contains("is not pinned") == true)
    }

    /// A rollback to a revision made since this kernel booted doesn't load its objects again to check them (the kernel
    /// ran them); one made before the boot, or a mix of versions from several, is checked like any change.
    @Test func aRollbackToWhatRanSinceBootSkipsTheObjectPreflight() async throws {
        for (start, sinceBoot) in [(Date(timeIntervalSince1970: 1_800_000_000), true), (Date(timeIntervalSince1970: 100_000), false)] {
            let fake = try FakeHost(clock: FakeClock(start: start))
            defer { fake.remove() }
            try fake.packages.publish("counter", "1.0.0")
            _ = try await install(fake, "counter")
            try fake.packages.publish("counter", "1.1.0")
            _ = try await fake.host.upgrade()
            let before = fake.chains.state.withLock { $0.objectPreflights }
            _ = try await fake.host.rollback(.previous)
            #expect(fake.chains.running(xdp) == ["counter@1.0.0"])
            let loaded = fake.chains.state.withLock { $0.objectPreflights } - before
            #expect(loaded == (sinceBoot ? 0 : 1), "revisions made \(sinceBoot ? "after" : "before") boot: \(loaded) object(s) checked")
            _ = try await fake.host.rollback(.package(try PackageName("counter")))
            #expect(fake.chains.state.withLock { $0.objectPreflights } - before > loaded, "a per-package rollback is checked")
        }
    }

    @Test func rollbackTargetsThePreviousRevisionARevisionOrAPackagesLowerVersion() async throws {
        let fake = try FakeHost()
        defer { fake.remove() }
        try fake.packages.publish("counter", "1.0.0")
        try fake.packages.publish("limiter", "1.0.0")
        _ = try await install(fake, "counter@^1")                      // 1: counter 1.0.0
        for version in ["1.1.0", "1.2.0"] { try fake.packages.publish("counter", version) }
        _ = try await fake.host.pin(package: "counter", version: "1.2.0") // 2: 1.2.0
        _ = try await fake.host.unpin(package: "counter")
        _ = try await install(fake, "limiter")                          // 3
        let back = try await fake.host.rollback(.previous)              // 4: = 2
        #expect(back.kind == .rollback && back.cause.hasPrefix("rollback to revision 2") && fake.chains.running(xdp) == ["counter@1.2.0"])
        let toOne = try await fake.host.rollback(.revision(1))          // 5: = 1
        #expect(fake.chains.running(xdp) == ["counter@1.0.0"] && toOne.number == 5)
        _ = try await fake.host.pin(package: "counter", version: "1.1.0")
        _ = try await fake.host.unpin(package: "counter")
        _ = try await fake.host.pin(package: "counter", version: "1.2.0")
        let pinned = await #expect(throws: HostError.self) { _ = try await fake.host.rollback(.package("counter")) }
        #expect(pinned?.description.contains("is pinned at 1.2.0") == true)
        _ = try await fake.host.unpin(package: "counter")
        _ = try await fake.host.rollback(.package("counter"))
        #expect(fake.chains.running(xdp) == ["counter@1.1.0"], "the newest earlier revision with a lower version")
        await #expect(throws: HostError.self) { _ = try await fake.host.rollback(.revision(99)) }
        fake.packages.tamper("counter", "1.0.0")
        let tampered = await #expect(throws: HostError.self) { _ = try await fake.host.rollback(.revision(1)) }
        #expect(tampered?.description.contains("changed since it was verified") == true)
        #expect(fake.chains.running(xdp) == ["counter@1.1.0"])
    }

    @Test func theHealthWatchRollsBackABadReleaseOnItsOwnClock() async throws {
        let chainsBox = Mutex<FakeChains?>(nil)
        // Traffic: every second 10 packets reach the limiter; the bad release drops all of them.
        let clock = FakeClock { seconds in
            guard let chains = chainsBox.withLock({ $0 }) else { return }
            chains.state.withLock { state in
                let key = "limiter/eth0/xdp_ingress"
                let version = state.chains[ChainKey(interface: "eth0", hook: .xdpIngress)]?.first { $0.package == "limiter" }?.version
                state.counters["\(key)/seen/0", default: 0] += 10
                if version == "1.1.0" { state.counters["\(key)/drops/0", default: 0] += 10 }
            }
        }
        let fake = try FakeHost(clock: clock)
        defer { fake.remove() }
        chainsBox.withLock { $0 = fake.chains }
        let rule = #""health": [{"name": "drops stay under half", "map": "drops", "key": 0, "per": {"map": "seen", "key": 0}, "max_ratio": 0.5, "min_count": 5}]"#
        try fake.packages.publish("limiter", "1.0.0", program: rule)
        _ = try await install(fake, "limiter@^1")
        try fake.packages.publish("limiter", "1.1.0", program: rule)
        let started = clock.now()
        let outcome = try await fake.host.upgrade(watch: 3600, interval: 1)
        #expect(outcome.rolledBack?.kind == .autoRollback)
        #expect(outcome.rolledBack?.cause.contains("broke 'drops stay under half'") == true)
        #expect(fake.chains.running(xdp) == ["limiter@1.0.0"])
        #expect(clock.now().timeIntervalSince(started) < 10, "judged within seconds of fake time, not the hour")
        // A good release survives the whole watch.
        try fake.packages.publish("limiter", "1.2.0", program: rule)
        let good = try await fake.host.upgrade(watch: 30, interval: 1)
        #expect(good.rolledBack == nil && fake.chains.running(xdp) == ["limiter@1.2.0"])
    }

    @Test func judgeReadsRatiosSinceTheStartAndRatesOverTheLastInterval() throws {
        let manifest = try DocumentDecoder.decode(Manifest.Program.self, from: Array(#"""
            {"hook": "xdp_ingress", "object_file": "a.o", "entry_function": "f", "next_map": "n",
             "health": [{"name": "ratio", "map": "d", "key": 0, "per": {"map": "s", "key": 0}, "max_ratio": 0.5, "min_count": 10},
                        {"name": "rate", "map": "e", "key": 1, "max_per_second": 100}]}
            """#.utf8), document: "program")
        let placed = PlacedProgram(interface: "eth0", hook: .xdpIngress, package: "p", version: "1.0.0", requirement: "latest", seqID: 1,
                                   parameters: [:], program: manifest, objectPath: "/x")
        let base = "p/eth0/xdp_ingress"
        func judge(_ after: [String: UInt64], before: [String: UInt64] = [:]) -> String? {
            HostManager.judge([placed], since: [:], before: before, after: after, seconds: 1)
        }
        #expect(judge(["\(base)/d/0": 9, "\(base)/s/0": 9]) == nil, "below min_count: not judged yet")
        #expect(judge(["\(base)/d/0": 5, "\(base)/s/0": 10]) == nil)
        #expect(judge(["\(base)/d/0": 6, "\(base)/s/0": 10])?.contains("ratio 0.60 > 0.5") == true)
        #expect(judge(["\(base)/e/1": 150], before: ["\(base)/e/1": 100]) == nil)
        #expect(judge(["\(base)/e/1": 301], before: ["\(base)/e/1": 100])?.contains("201.0/s > 100.0/s") == true)
    }

    @Test func payloadsReplaceAddFillTheHostAndDelete() async throws {
        let fake = try FakeHost()
        defer { fake.remove() }
        try fake.packages.publish("counter", "1.0.0")
        try fake.packages.publish("limiter", "1.0.0", program: #""parameters": [{"name": "rate", "type": "u32", "config_map": "cfg", "key": 0, "default": "0"}]"#)
        func payload(_ iface: String, _ programs: [(String, Int, String)]) throws -> L3afBPFPrograms {
            var payload = L3afBPFPrograms(hostName: "", iface: iface)
            for (name, seq, status) in programs {
                var entry = BPFProgram(name: name, seqID: seq)
                entry.version = "1.0.0"
                entry.adminStatus = status
                payload.bpfPrograms[.xdpIngress].append(entry)
            }
            return payload
        }
        let eth1 = ChainKey(interface: "eth1", hook: .xdpIngress)
        _ = try await fake.host.apply([try payload("eth0", [("counter", 1, "enabled"), ("limiter", 2, "disabled")]), try payload("eth1", [("counter", 5, "")])])
        #expect(fake.chains.running(xdp) == ["counter@1.0.0"], "a disabled program stays configured, out of the chain")
        #expect(fake.chains.running(eth1) == ["counter@1.0.0"], "an empty admin_status counts as enabled")
        #expect(try fake.host.snapshot().programs.count == 3)
        #expect(try await fake.host.apply([try payload("eth0", [("counter", 1, "enabled"), ("limiter", 2, "disabled")])], mode: .add) == nil, "nothing to change")
        #expect(try await fake.host.apply([try payload("eth0", [("limiter", 3, "enabled")])], mode: .add) == nil,
                "/add leaves a program already configured as it is (disabled here)")
        _ = try await fake.host.apply([try payload("eth0", [("counter", 1, "enabled"), ("limiter", 3, "enabled")])], mode: .replace)
        #expect(fake.chains.running(xdp) == ["counter@1.0.0", "limiter@1.0.0"])
        _ = try await fake.host.apply([try payload("eth0", [("limiter", 3, "enabled")])], mode: .host)
        #expect(fake.chains.running(xdp) == ["limiter@1.0.0"] && fake.chains.running(eth1).isEmpty, "host mode empties interfaces not named")
        var names = L3afBPFProgramNames(hostName: "", iface: "eth0")
        names.bpfPrograms[.xdpIngress] = ["limiter"]
        let deleted = try await fake.host.delete([names])
        #expect(deleted?.kind == .apply && fake.chains.running(xdp).isEmpty)
        #expect(try await fake.host.delete([names]) == nil, "a name that isn't there is ignored, as l3afd does")
        let wrongHost = await #expect(throws: HostError.self) {
            var other = try payload("eth0", [("counter", 1, "")])
            other.hostName = "elsewhere"
            _ = try await fake.host.apply([other], hostName: "here")
        }
        #expect(wrongHost?.description.contains("host_name is 'elsewhere'") == true)
    }

    @Test func oneRequestTypeServesBothPathsAndRemoveKeepsItsHook() async throws {
        let fake = try FakeHost()
        defer { fake.remove() }
        try fake.packages.publish("counter", "1.0.0", hooks: [.xdpIngress, .tcEgress])
        let local = LocalHost(host: fake.host)
        _ = try await local.send(HostRequest.Install(spec: "counter", iface: "eth0", hook: nil, seqID: nil, parameters: nil))
        let egress = ChainKey(interface: "eth0", hook: .tcEgress)
        #expect(fake.chains.running(xdp) == ["counter@1.0.0"] && fake.chains.running(egress) == ["counter@1.0.0"])
        // The request as l3af --host sends it and l3afd decodes it: the hook survives the trip.
        let wire = try DocumentDecoder.encode(HostRequest.Remove(package: "counter", iface: "eth0", hook: "tc_egress"))
        let decoded = try DocumentDecoder.decode(HostRequest.Remove.self, from: wire, document: "body")
        _ = try await local.send(decoded)
        #expect(fake.chains.running(xdp) == ["counter@1.0.0"] && fake.chains.running(egress).isEmpty)
        let status = try await local.send(HostRequest.Status(iface: "eth0"))
        #expect(status.chains.map(\.hook) == [.xdpIngress] && status.difference == nil && status.changing == nil)
        #expect(try await local.send(HostRequest.History(limit: 1)).map(\.kind) == [.remove])
        #expect(try await local.send(HostRequest.Restore()).changed == false)
        #expect(throws: HostError.self) { _ = try HostRequest.History(query: ["limit": "0"]) }
        let paths = HostRequest.all.map { $0.path }
        #expect(Set(paths).count == paths.count, "one route per operation")
    }

    @Test func anInterruptedChangeIsFinishedOrUndoneByTheNextWriterAndShownMeanwhile() async throws {
        let fake = try FakeHost()
        defer { fake.remove() }
        try fake.packages.publish("counter", "1.0.0")
        try fake.packages.publish("limiter", "1.0.0")
        let first = try await install(fake, "counter")
        // A process killed after recording its intent: the intent is revision 2, the kernel still runs revision 1.
        var intent = first.snapshot
        intent.programs.removeAll()
        _ = try fake.host.database.begin(kind: .remove, cause: "remove counter (killed)", actor: "other", snapshot: intent)
        let status = try await fake.host.observe { try $0.status() }
        #expect(status.changing == "revision 2: remove counter (killed)" && status.difference == nil)
        _ = try await install(fake, "limiter")
        #expect(try fake.host.database.history().map(\.cause).prefix(2) == ["install limiter@1.0.0 on eth0 (xdp_ingress)", "remove counter (killed)"])
        #expect(fake.chains.running(xdp) == ["limiter@1.0.0"])
        // One the kernel refuses is undone instead.
        var bad = try fake.host.snapshot()
        bad.programs[0].version = "6.6.6"
        fake.chains.state.withLock { $0.failing = ["limiter@6.6.6"] }
        _ = try fake.host.database.begin(kind: .upgrade, cause: "doomed", actor: "other", snapshot: bad)
        #expect(try await fake.host.restore() == false)
        #expect(try fake.host.database.pending() == nil && fake.chains.running(xdp) == ["limiter@1.0.0"])
        #expect(fake.chains.state.withLock { $0.repairs } >= 3, "every writer repairs the chains under the lock")
    }

    @Test func aChainThatCannotBeRepairedDoesNotBlockChangesElsewhere() async throws {
        let told = Mutex<[String]>([])
        let fake = try FakeHost { options in options.notify = { message in told.withLock { $0.append(message) } } }
        defer { fake.remove() }
        fake.chains.state.withLock { $0.repairProblems = ["the xdp_ingress chain of eth9 loops back to x@1.0.0"] }
        try fake.packages.publish("counter", "1.0.0")
        _ = try await install(fake, "counter")
        #expect(fake.chains.running(xdp) == ["counter@1.0.0"])
        #expect(told.withLock { $0 }.contains { $0.contains("could not repair: the xdp_ingress chain of eth9 loops") })
    }

    @Test func packagesAreFetchedBeforeTheLockAndAWriterWaitsOrTimesOut() async throws {
        let fake = try FakeHost(lockTimeout: 0.3)
        defer { fake.remove() }
        try fake.packages.publish("counter", "1.0.0")
        let held = try FileLock(path: "\(fake.host.options.client.state)/lock", wait: .never)
        let error = await #expect(throws: HostError.self) { _ = try await install(fake, "counter") }
        #expect(error?.kind == .locked && error?.description.contains("pid \(getpid())") == true)
        #expect(fake.packages.fetches == ["counter@latest"], "fetched before the lock, not under it")
        // Reads never wait for the lock.
        let took = try await fake.host.observe { host in
            let started = Date()
            _ = try host.status()
            return Date().timeIntervalSince(started)
        }
        #expect(took < 0.2, "status took \(took) s with the lock held")
        withExtendedLifetime(held) {}
    }
}
