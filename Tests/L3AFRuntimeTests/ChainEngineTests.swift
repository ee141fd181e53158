import Foundation
import L3AFBPF
import L3AFModel
import L3AFRuntime
import L3AFTestSupport
import Synchronization
import Testing

/// The chain engine on real interfaces: veth pairs in namespaces this suite makes, real traffic, and
/// BPF_PROG_TEST_RUN through the root for exact counts while the chain changes.
@Suite(.serialized, .enabled(if: bpfUnavailable == nil, "\(bpfUnavailable ?? "")"))
struct ChainEngineTests {
    func engine(_ network: TestNetwork) throws -> ChainEngine {
        ChainEngine(pinRoot: network.pinRoot, roots: try Packages.roots)
    }

    func root(_ engine: ChainEngine, _ network: TestNetwork) throws -> BPFDescriptor {
        let id = try #require(try engine.rootProgramID(interface: network.senderPort, hook: .xdpIngress))
        return try BPFDescriptor.program(id: id)
    }

    @Test func chainOnAnInterfaceWithRealTraffic() throws {
        let network = try TestNetwork()
        defer { try? network.remove() }
        let engine = try engine(network)
        let port = network.senderPort
        #expect(try network.ping(3) == 3, "the network works before anything is attached")

        try engine.insert(try Packages.member("packet-counter", seq: 10), interface: port, hook: .xdpIngress)
        try engine.insert(try Packages.member("ratelimiting", parameters: ["rate": "5", "ports": "8080"], seq: 30), interface: port, hook: .xdpIngress)
        try engine.insert(try Packages.member("ip-denylist", parameters: ["ipv4": "198.51.100.0/24"], seq: 20), interface: port, hook: .xdpIngress)
        #expect(try engine.chain(interface: port, hook: .xdpIngress).map(\.package) == ["packet-counter", "ip-denylist", "ratelimiting"])
        let link = try Executable.run("/usr/sbin/ip", ["link", "show", port])
        #expect(link.stdout.contains("xdp"), "the root is attached: \(link.stdout)")

        #expect(try network.ping(20) == 20, "pings pass the whole chain")
        let counter = try engine.map("xdp_counter_map", of: "packet-counter", interface: port, hook: .xdpIngress)
        #expect(try countedPackets(counter, protocol: 1) >= 20, "the counter saw the ICMP echo requests")

        // 20 SYNs to a port limited to 5 per second: most are dropped, so most connects time out instead of being refused.
        let refused = try network.connect(20, port: 8080)
        #expect(refused >= 1 && refused <= 10, "refused \(refused) of 20")
        let drops = try engine.map("rl_drop_count_map", of: "ratelimiting", interface: port, hook: .xdpIngress)
        #expect((try drops.lookup(key: UInt32(0).bytes, valueSize: 8)?.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } ?? 0) >= 10)

        // Deny the sender itself: pings stop; the deny list's counter says why.
        try engine.replace(package: "ip-denylist", with: try Packages.member("ip-denylist", version: "1.0.1", parameters: ["ipv4": "\(network.senderAddress)/32"], seq: 20),
                           interface: port, hook: .xdpIngress)
        #expect(try network.ping(5) == 0)
        #expect(try engine.chain(interface: port, hook: .xdpIngress).map { "\($0.package)@\($0.version)" } == ["packet-counter@1.0.0", "ip-denylist@1.0.1", "ratelimiting@1.0.0"])

        // Reorder: the deny list first; then take it out of the middle.
        try engine.apply([try Packages.member("ip-denylist", version: "1.0.1", parameters: ["ipv4": "\(network.senderAddress)/32"], seq: 5),
                          try Packages.member("packet-counter", seq: 10), try Packages.member("ratelimiting", parameters: ["rate": "5", "ports": "8080"], seq: 30)],
                         interface: port, hook: .xdpIngress)
        #expect(try engine.chain(interface: port, hook: .xdpIngress).map(\.package) == ["ip-denylist", "packet-counter", "ratelimiting"])
        try engine.remove(package: "ip-denylist", interface: port, hook: .xdpIngress)
        #expect(try network.ping(5) == 5)

        // A reorder that also moves an earlier member to another version does both (the plan foretold it step by step).
        let rl = try Packages.member("ratelimiting", parameters: ["rate": "5", "ports": "8080"], seq: 30)
        try engine.apply([try Packages.member("packet-counter", seq: 10), rl, try Packages.member("ip-denylist", parameters: ["ipv4": "198.51.100.0/24"], seq: 40)],
                         interface: port, hook: .xdpIngress)
        let swapped = [try Packages.member("packet-counter", version: "1.0.1", seq: 10), try Packages.member("ip-denylist", parameters: ["ipv4": "198.51.100.0/24"], seq: 20), rl]
        let planned = try engine.plan(swapped, interface: port, hook: .xdpIngress)
        let made = Mutex<[ChainStep]>([])
        var journaled = engine
        journaled.journal = { step in made.withLock { $0.append(step) } }
        try journaled.apply(swapped, interface: port, hook: .xdpIngress)
        #expect(try engine.chain(interface: port, hook: .xdpIngress).map { "\($0.package)@\($0.version)" } == ["packet-counter@1.0.1", "ip-denylist@1.0.0", "ratelimiting@1.0.0"])
        #expect(made.withLock { $0 } == planned && planned.map(\.action) == [.reorder, .replace], "\(planned)")
        try engine.apply([try Packages.member("packet-counter", seq: 10), rl], interface: port, hook: .xdpIngress)
        #expect(try network.ping(5) == 5)

        // A new engine (a new process) adopts the chain from the pins.
        let again = ChainEngine(pinRoot: network.pinRoot, roots: try Packages.roots)
        #expect(try again.chain(interface: port, hook: .xdpIngress).map(\.package) == ["packet-counter", "ratelimiting"])

        try again.remove(package: "packet-counter", interface: port, hook: .xdpIngress)
        try again.remove(package: "ratelimiting", interface: port, hook: .xdpIngress)
        #expect(try again.rootProgramID(interface: port, hook: .xdpIngress) == nil)
        #expect(!(try Executable.run("/usr/sbin/ip", ["link", "show", port])).stdout.contains("xdp"), "the root is detached")
        #expect(!FileManager.default.fileExists(atPath: "\(network.pinRoot)/\(port)/xdp_ingress"), "no pins left")
        #expect(try network.ping(3) == 3)
    }

    @Test func tcChainsOnBothDirections() throws {
        let network = try TestNetwork()
        defer { try? network.remove() }
        let engine = try engine(network)
        let port = network.senderPort
        try engine.insert(try Packages.member("packet-counter", program: 1), interface: port, hook: .tcEgress)
        #expect(try BPFAttachment.tcProgramID(interface: port, hook: .tcEgress) != nil)
        #expect(try network.ping(5) == 5)
        let counter = try engine.map("tc_egress_counter_map", of: "packet-counter", interface: port, hook: .tcEgress)
        #expect(try countedPackets(counter, protocol: 1) >= 5, "echo replies leave the bridge through the sender's port")
        try engine.remove(package: "packet-counter", interface: port, hook: .tcEgress)
        #expect(try BPFAttachment.tcProgramID(interface: port, hook: .tcEgress) == nil)
    }

    /// Without chaining (l3afd's `bpf-chaining-enabled: false`) a hook runs one program attached directly: a new one
    /// replaces it in one step (XDP: `bpf_link_update` on the same link), a second is refused, and switching chaining
    /// back on takes the lone program down and chains behind a root.
    @Test func withoutChainingAHookRunsOneProgramAlone() throws {
        let network = try TestNetwork()
        defer { try? network.remove() }
        let alone = ChainEngine(pinRoot: network.pinRoot, roots: [:], chaining: false)
        let port = network.senderPort
        try alone.apply([try Packages.member("packet-counter", seq: 1)], interface: port, hook: .xdpIngress)
        #expect(try Executable.run("/usr/sbin/ip", ["link", "show", port]).stdout.contains("xdp"))
        #expect(try alone.rootProgramID(interface: port, hook: .xdpIngress) == nil, "no root")
        let first = try #require(try alone.chain(interface: port, hook: .xdpIngress).first)
        #expect(first.package == "packet-counter")
        #expect(BPFAttachment.linkProgramID(pin: "\(network.pinRoot)/\(port)/xdp_ingress/link") == first.programID)
        #expect(try network.ping(5) == 5)
        #expect(try countedPackets(try alone.map("xdp_counter_map", of: "packet-counter", interface: port, hook: .xdpIngress), protocol: 1) >= 5)

        // Deny the sender: the lone program is swapped on the same link, and pings stop.
        try alone.apply([try Packages.member("ip-denylist", parameters: ["ipv4": "\(network.senderAddress)/32"], seq: 1)], interface: port, hook: .xdpIngress)
        #expect(try alone.chain(interface: port, hook: .xdpIngress).map(\.package) == ["ip-denylist"])
        #expect(try network.ping(3) == 0)
        #expect(!FileManager.default.fileExists(atPath: "\(network.pinRoot)/\(port)/xdp_ingress/packet-counter"), "the replaced program's pins are gone")

        // Two programs are refused; nothing changes.
        let refused = #expect(throws: ChainError.self) {
            try alone.apply([try Packages.member("packet-counter", seq: 1), try Packages.member("ratelimiting", seq: 2)], interface: port, hook: .xdpIngress)
        }
        #expect(refused?.kind == .tooLong && refused?.description.contains("bpf-chaining-enabled is false") == true)
        #expect(try alone.chain(interface: port, hook: .xdpIngress).map(\.package) == ["ip-denylist"])

        // TC alone, through l3af's filter.
        try alone.apply([try Packages.member("packet-counter", program: 1)], interface: port, hook: .tcEgress)
        let tc = try #require(try alone.chain(interface: port, hook: .tcEgress).first)
        #expect(try BPFAttachment.tcProgramID(interface: port, hook: .tcEgress) == tc.programID)
        try alone.apply([], interface: port, hook: .tcEgress)
        #expect(try BPFAttachment.tcProgramID(interface: port, hook: .tcEgress) == nil)
        #expect(try alone.chain(interface: port, hook: .tcEgress).isEmpty)

        // Chaining switched on: the lone program goes, the chain comes up behind a root.
        let chained = try engine(network)
        try chained.apply([try Packages.member("packet-counter", seq: 10)], interface: port, hook: .xdpIngress)
        #expect(try chained.rootProgramID(interface: port, hook: .xdpIngress) != nil)
        #expect(try chained.chain(interface: port, hook: .xdpIngress).map(\.package) == ["packet-counter"])
        #expect(try network.ping(3) == 3)
        // And off again; then empty: nothing attached, no pins.
        try alone.apply([try Packages.member("packet-counter", seq: 10)], interface: port, hook: .xdpIngress)
        #expect(try alone.rootProgramID(interface: port, hook: .xdpIngress) == nil)
        #expect(try alone.chain(interface: port, hook: .xdpIngress).map(\.package) == ["packet-counter"])
        try alone.apply([], interface: port, hook: .xdpIngress)
        #expect(!(try Executable.run("/usr/sbin/ip", ["link", "show", port])).stdout.contains("xdp"))
        #expect(!FileManager.default.fileExists(atPath: "\(network.pinRoot)/\(port)/xdp_ingress"))
    }

    /// Chain [A, X, B] of counters; X is replaced (and taken out and put back) hundreds of times while a thread
    /// runs packets through the root without pause: A and B must count exactly the same packets.
    @Test func noPacketSkipsTheChainDuringChanges() throws {
        let network = try TestNetwork()
        defer { try? network.remove() }
        let engine = try engine(network)
        let port = network.senderPort
        try engine.insert(try Packages.member("packet-counter", as: "counter-a", seq: 10), interface: port, hook: .xdpIngress)
        try engine.insert(try Packages.member("packet-counter", as: "counter-b", seq: 30), interface: port, hook: .xdpIngress)
        let x1 = try Packages.member("ratelimiting", version: "1.0.0", seq: 20), x2 = try Packages.member("ratelimiting", version: "2.0.0", seq: 20)
        try engine.insert(x1, interface: port, hook: .xdpIngress)
        let root = try root(engine, network)
        let running = Atomic<Bool>(true)
        let verdicts = Mutex<Set<UInt32>>([])
        let traffic = Thread {
            while running.load(ordering: .relaxed) {
                if let result = try? BPFTestRun.run(root, packet: udpPacket(), repeat: 50) { verdicts.withLock { _ = $0.insert(result.verdict) } }
            }
        }
        traffic.start()
        let rounds = Int(ProcessInfo.processInfo.environment["L3AF_CHAIN_ROUNDS"] ?? "") ?? 500
        for round in 0..<rounds {
            try engine.replace(package: "ratelimiting", with: round % 2 == 0 ? x2 : x1, interface: port, hook: .xdpIngress)
        }
        for _ in 0..<(rounds / 5) {
            try engine.remove(package: "ratelimiting", interface: port, hook: .xdpIngress)
            try engine.insert(x1, interface: port, hook: .xdpIngress)
        }
        // Reorder: X and a middle counter M swap places, each swap one flip of a rebuilt suffix.
        let a = try Packages.member("packet-counter", as: "counter-a", seq: 10), b = try Packages.member("packet-counter", as: "counter-b", seq: 30)
        try engine.insert(try Packages.member("packet-counter", as: "counter-m", seq: 25), interface: port, hook: .xdpIngress)
        let idsBefore = try engine.chain(interface: port, hook: .xdpIngress).map(\.programID)
        for round in 0..<(rounds / 5) {
            let swapped = round % 2 == 0
            var x = x1, m = try Packages.member("packet-counter", as: "counter-m", seq: 25)
            x.seqID = swapped ? 25 : 20
            m.seqID = swapped ? 20 : 25
            try engine.apply([a, x, m, b], interface: port, hook: .xdpIngress)
            let order = try engine.chain(interface: port, hook: .xdpIngress).map(\.package)
            #expect(order == (swapped ? ["counter-a", "counter-m", "ratelimiting", "counter-b"] : ["counter-a", "ratelimiting", "counter-m", "counter-b"]))
        }
        let idsAfter = try engine.chain(interface: port, hook: .xdpIngress).map(\.programID)
        #expect(idsAfter.first == idsBefore.first && idsAfter.last != idsBefore.last, "the prefix stays, the suffix was rebuilt")
        running.store(false, ordering: .relaxed)
        while !traffic.isFinished { Thread.sleep(forTimeInterval: 0.01) }
        let countA = try countedPackets(engine.map("xdp_counter_map", of: "counter-a", interface: port, hook: .xdpIngress))
        let countB = try countedPackets(engine.map("xdp_counter_map", of: "counter-b", interface: port, hook: .xdpIngress))
        #expect(countA > 0 && countA == countB, "counter A saw \(countA) packets, counter B \(countB)")
        #expect(verdicts.withLock { $0 } == [XDP_PASS])
        try engine.apply([], interface: port, hook: .xdpIngress)
    }

    /// Readers (what `status`, `/metrics` and the sampler do) run without pause on two threads while a writer inserts,
    /// replaces and removes X in [A, X, B]: no read fails or sees an inconsistent chain, no read removes or renames a
    /// pin (the writer's staging folders survive, so every change finishes), and A and B count the same packets.
    @Test func readsNeverChangePinsWhileAWriterChanges() throws {
        let network = try TestNetwork()
        defer { try? network.remove() }
        let engine = try engine(network)
        let port = network.senderPort
        let a = try Packages.member("packet-counter", as: "counter-a", seq: 10), b = try Packages.member("packet-counter", as: "counter-b", seq: 30)
        let x1 = try Packages.member("ratelimiting", version: "1.0.0", seq: 20), x2 = try Packages.member("ratelimiting", version: "2.0.0", seq: 20)
        try engine.apply([a, x1, b], interface: port, hook: .xdpIngress)
        let root = try root(engine, network)
        let running = Atomic<Bool>(true)
        let readErrors = Mutex<[String]>([]), reads = Atomic<Int>(0)
        var threads = [Thread {
            while running.load(ordering: .relaxed) { _ = try? BPFTestRun.run(root, packet: udpPacket(), repeat: 20) }
        }]
        for _ in 0..<2 {
            threads.append(Thread {
                while running.load(ordering: .relaxed) {
                    do {
                        let chain = try engine.chain(interface: port, hook: .xdpIngress)
                        _ = try engine.map("xdp_counter_map", of: "counter-b", interface: port, hook: .xdpIngress).counter(key: 17)
                        _ = try engine.leftovers(interface: port, hook: .xdpIngress)
                        if chain.first?.package != "counter-a" || chain.last?.package != "counter-b" { throw ChainError(.inconsistent, "read \(chain.map(\.package))") }
                        reads.add(1, ordering: .relaxed)
                    } catch {
                        readErrors.withLock { $0.append("\(error)") }
                    }
                }
            })
        }
        for thread in threads { thread.start() }
        let rounds = Int(ProcessInfo.processInfo.environment["L3AF_CHAIN_ROUNDS"] ?? "") ?? 500
        for round in 0..<rounds {
            // x1 → x2 (replace), x2 out and back in, x2 → x1 (replace), x1 out and back in.
            if round % 2 == 0 {
                try engine.replace(package: "ratelimiting", with: round % 4 == 0 ? x2 : x1, interface: port, hook: .xdpIngress)
            } else {
                try engine.remove(package: "ratelimiting", interface: port, hook: .xdpIngress)
                try engine.insert(round % 4 == 1 ? x2 : x1, interface: port, hook: .xdpIngress)
            }
        }
        running.store(false, ordering: .relaxed)
        while threads.contains(where: { !$0.isFinished }) { Thread.sleep(forTimeInterval: 0.01) }
        #expect(readErrors.withLock { $0 }.isEmpty, "reads failed: \(readErrors.withLock { Array($0.prefix(3)) })")
        #expect(reads.load(ordering: .relaxed) > rounds / 10, "readers ran: \(reads.load(ordering: .relaxed))")
        #expect(try engine.leftovers(interface: port, hook: .xdpIngress).isEmpty, "no staging folder or stray pin is left")
        let countA = try countedPackets(engine.map("xdp_counter_map", of: "counter-a", interface: port, hook: .xdpIngress))
        let countB = try countedPackets(engine.map("xdp_counter_map", of: "counter-b", interface: port, hook: .xdpIngress))
        #expect(countA > 0 && countA == countB, "counter A saw \(countA) packets, counter B \(countB)")
        try engine.apply([], interface: port, hook: .xdpIngress)
    }

    @Test func thirtyTwoProgramsRunForEveryPacketAndTheThirtyThirdIsRefused() throws {
        let network = try TestNetwork()
        defer { try? network.remove() }
        let engine = try engine(network)
        let port = network.senderPort
        for i in 1...ChainEngine.maximumLength {
            try engine.insert(try Packages.member("packet-counter", as: "counter-\(i)", seq: i), interface: port, hook: .xdpIngress)
        }
        _ = try BPFTestRun.run(try root(engine, network), packet: udpPacket(), repeat: 7)
        for i in [1, 16, 32] {
            #expect(try countedPackets(engine.map("xdp_counter_map", of: "counter-\(i)", interface: port, hook: .xdpIngress)) == 7, "counter \(i)")
        }
        let extra = try Packages.member("packet-counter", as: "counter-33", seq: 33)
        #expect(throws: ChainError.self) { try engine.insert(extra, interface: port, hook: .xdpIngress) }
        do { try engine.insert(extra, interface: port, hook: .xdpIngress) } catch {
            #expect(error.description.contains("already has 32 programs"), "\(error.description)")
        }
        #expect(try engine.chain(interface: port, hook: .xdpIngress).count == 32)
        try engine.apply([], interface: port, hook: .xdpIngress)
    }

    @Test func aRejectedProgramLeavesTheChainExactlyAsItWas() throws {
        let network = try TestNetwork()
        defer { try? network.remove() }
        let engine = try engine(network)
        let port = network.senderPort
        try engine.insert(try Packages.member("packet-counter", seq: 10), interface: port, hook: .xdpIngress)
        try engine.insert(try Packages.member("ratelimiting", seq: 20), interface: port, hook: .xdpIngress)
        let before = try engine.chain(interface: port, hook: .xdpIngress)

        // Reads a packet byte without a bounds check: the verifier refuses it.
        let source = Packages.folder.appending(path: "bad.bpf.c")
        try """
            #include <linux/bpf.h>
            #include <bpf/bpf_helpers.h>
            struct { __uint(type, BPF_MAP_TYPE_PROG_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u32); } xdp_rl_ingress_next_prog SEC(".maps");
            struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u32); } rl_config_map SEC(".maps");
            struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 8); __type(key, __u16); __type(value, __u8); } rl_ports_map SEC(".maps");
            SEC("xdp") int ratelimiting(struct xdp_md *ctx) { unsigned char *p = (void *)(long)ctx->data; return p[100] ? XDP_DROP : XDP_PASS; }
            char LICENSE[] SEC("license") = "GPL";
            """.write(to: source, atomically: true, encoding: .utf8)
        let object = Packages.folder.appending(path: "bad.bpf.o").path
        let compiled = try Executable.run("/usr/bin/env", ["clang", "-target", "bpf", "-O2", "-g", "-I/usr/include/x86_64-linux-gnu", "-c", source.path, "-o", object])
        #expect(compiled.status == 0, "\(compiled.stderr)")
        var bad = try Packages.member("ratelimiting", version: "9.9.9", seq: 20)
        bad.objectPath = object
        bad.program.stateMaps = []
        bad.program.monitorMaps = []
        do {
            try engine.replace(package: "ratelimiting", with: bad, interface: port, hook: .xdpIngress)
            Issue.record("the replace should have failed")
        } catch {
            #expect(error.kind == .load)
            #expect(error.description.contains("verifier log") && error.description.contains("invalid access to packet"), "\(error.description)")
        }
        #expect(try engine.chain(interface: port, hook: .xdpIngress) == before, "same members, same program ids")
        try engine.apply([], interface: port, hook: .xdpIngress)
    }

    /// Pins that don't form a chain are reported, naming what is wrong, and the kernel is left alone: a program
    /// the chain runs that no pin holds, and a chain that loops back on itself.
    @Test func pinsThatDoNotFormAChainAreReportedNotGuessed() throws {
        let network = try TestNetwork()
        defer { try? network.remove() }
        let engine = try engine(network)
        let port = network.senderPort
        let hookFolder = "\(network.pinRoot)/\(port)/xdp_ingress"
        try engine.insert(try Packages.member("packet-counter", seq: 10), interface: port, hook: .xdpIngress)
        try engine.insert(try Packages.member("ratelimiting", seq: 20), interface: port, hook: .xdpIngress)
        let before = try engine.chain(interface: port, hook: .xdpIngress)
        let rootID = try engine.rootProgramID(interface: port, hook: .xdpIngress)

        // A loop: the last member's next slot names the first member again.
        let counter = try BPFDescriptor.pinned(at: "\(hookFolder)/packet-counter/1_0_0/prog")
        let lastNext = BPFMapAccess(try BPFDescriptor.pinned(at: "\(hookFolder)/ratelimiting/1_0_0/next"), name: "next")
        try lastNext.setProgram(counter)
        do {
            _ = try engine.chain(interface: port, hook: .xdpIngress)
            Issue.record("a looping chain was read as valid")
        } catch {
            #expect(error.kind == .inconsistent)
            #expect(error.description.contains("loops back to packet-counter@1.0.0"), "\(error.description)")
        }
        try lastNext.clearProgram()
        #expect(try engine.chain(interface: port, hook: .xdpIngress) == before)

        // A member whose pins were removed by hand: the chain still runs it, so it is reported, not dropped.
        let keep = try BPFDescriptor.pinned(at: "\(hookFolder)/ratelimiting/1_0_0/prog")
        try FileManager.default.removeItem(atPath: "\(hookFolder)/ratelimiting")
        do {
            _ = try engine.chain(interface: port, hook: .xdpIngress)
            Issue.record("a chain with an unpinned member was read as valid")
        } catch {
            #expect(error.kind == .inconsistent)
            #expect(error.description.contains("runs program id \(try keep.programID())"), "\(error.description)")
            #expect(error.hint?.contains("bpftool prog show id") == true)
        }
        #expect(try engine.rootProgramID(interface: port, hook: .xdpIngress) == rootID, "the kernel was left as it was")
        let counterNext = BPFMapAccess(try BPFDescriptor.pinned(at: "\(hookFolder)/packet-counter/1_0_0/next"), name: "next")
        #expect(try counterNext.programID() == (try keep.programID()))
        try counterNext.clearProgram()
        try engine.apply([], interface: port, hook: .xdpIngress)
        #expect(!FileManager.default.fileExists(atPath: hookFolder))
    }

    /// An interface that vanishes under a chain: changes name it, and removing the chain cleans the pins up.
    @Test func anInterfaceThatVanishesIsAClearErrorAndCanBeCleanedUp() throws {
        let network = try TestNetwork()
        defer { try? network.remove() }
        let engine = try engine(network)
        let port = network.senderPort
        try engine.insert(try Packages.member("packet-counter", seq: 10), interface: port, hook: .xdpIngress)
        _ = try Executable.run("/usr/sbin/ip", ["link", "del", port])
        let next = try Packages.member("ratelimiting", seq: 20)
        do {
            try engine.insert(next, interface: port, hook: .xdpIngress)
            Issue.record("insert on a vanished interface succeeded")
        } catch {
            #expect(error.kind == .unknownInterface)
            #expect(error.description.contains(port), "\(error.description)")
        }
        try engine.apply([], interface: port, hook: .xdpIngress)
        #expect(!FileManager.default.fileExists(atPath: "\(network.pinRoot)/\(port)"))
    }

    @Test func anUnknownInterfaceIsAClearError() throws {
        let engine = ChainEngine(pinRoot: "/sys/fs/bpf/l3af-test-none", roots: try Packages.roots)
        let member = try Packages.member("packet-counter")
        do {
            try engine.insert(member, interface: "nosuch0", hook: .xdpIngress)
            Issue.record("insert on a missing interface succeeded")
        } catch {
            #expect(error.kind == .unknownInterface)
            #expect(error.description.contains("nosuch0"), "\(error.description)")
        }
        #expect(!FileManager.default.fileExists(atPath: "/sys/fs/bpf/l3af-test-none/nosuch0/xdp_ingress/packet-counter"))
    }
}
