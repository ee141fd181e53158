import Foundation
import L3AFBPF
import L3AFModel
import L3AFRuntime
import L3AFTestSupport
import Testing

/// Each first-party program's logic, in the kernel, with BPF_PROG_TEST_RUN: no interface involved.
@Suite(.enabled(if: bpfUnavailable == nil, "\(bpfUnavailable ?? "")"))
struct ProgramLogicTests {
    /// Loads `member` and writes its parameters, as the chain engine does.
    func load(_ member: ChainMember) throws -> LoadedProgram {
        let loaded = try BPFLoader.load(objectAt: member.objectPath, entry: member.program.entryFunction)
        for write in try member.parameterWrites() { try write.apply(to: loaded) }
        return loaded
    }

    @Test func everyProgramFallsThroughWhenItsNextSlotIsEmpty() throws {
        for (package, index) in [("xdp-root", 0), ("ratelimiting", 0), ("ip-denylist", 0), ("packet-counter", 0)] {
            let loaded = try load(try Packages.member(package, program: index))
            #expect(try BPFTestRun.run(loaded.program, packet: udpPacket()).verdict == XDP_PASS, "\(package)")
        }
        for (package, index) in [("tc-root", 0), ("tc-root", 1), ("packet-counter", 1)] {
            let loaded = try load(try Packages.member(package, program: index))
            #expect(try BPFTestRun.run(loaded.program, packet: udpPacket()).verdict == 0, "\(package) returns TC_ACT_OK")
        }
    }

    @Test func rootRunsWhatSitsInItsSlot() throws {
        let root = try load(try Packages.member("xdp-root"))
        let denylist = try load(try Packages.member("ip-denylist", parameters: ["ipv4": "192.0.2.0/24"]))
        #expect(try BPFTestRun.run(root.program, packet: udpPacket()).verdict == XDP_PASS)
        try root.map("xdp_root_array").setProgram(denylist.program)
        #expect(try BPFTestRun.run(root.program, packet: udpPacket()).verdict == XDP_DROP, "the tail call reached the deny list")
        try root.map("xdp_root_array").clearProgram()
        #expect(try BPFTestRun.run(root.program, packet: udpPacket()).verdict == XDP_PASS)
    }

    @Test func rateLimitingDropsSynsOverTheRateWithinTheWindow() throws {
        let loaded = try load(try Packages.member("ratelimiting", parameters: ["rate": "3", "ports": "80,443"]))
        let verdicts = try (0..<6).map { _ in try BPFTestRun.run(loaded.program, packet: tcpPacket(port: 80, flags: 0x02)).verdict }
        #expect(verdicts == [XDP_PASS, XDP_PASS, XDP_PASS, XDP_DROP, XDP_DROP, XDP_DROP])
        #expect(try BPFTestRun.run(loaded.program, packet: tcpPacket(port: 443, flags: 0x02)).verdict == XDP_PASS, "each port has its own window")
        #expect(try BPFTestRun.run(loaded.program, packet: tcpPacket(port: 8080, flags: 0x02)).verdict == XDP_PASS, "an unlisted port")
        #expect(try BPFTestRun.run(loaded.program, packet: tcpPacket(port: 80, flags: 0x12)).verdict == XDP_PASS, "SYN-ACK is no new connection")
        #expect(try BPFTestRun.run(loaded.program, packet: tcpPacket(port: 80, flags: 0x10)).verdict == XDP_PASS, "established traffic")
        #expect(try BPFTestRun.run(loaded.program, packet: udpPacket(port: 80)).verdict == XDP_PASS)
        let drops = try loaded.map("rl_drop_count_map").lookup(key: UInt32(0).bytes, valueSize: 8)
        #expect(drops?.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } == 3)
        // The window slides: after a second the older bucket weighs less, after two it is gone.
        Thread.sleep(forTimeInterval: 2.1)
        #expect(try BPFTestRun.run(loaded.program, packet: tcpPacket(port: 80, flags: 0x02)).verdict == XDP_PASS)
    }

    @Test func denyListDropsListedNetworksOfBothFamilies() throws {
        let loaded = try load(try Packages.member("ip-denylist", parameters: ["ipv4": "10.0.0.0/8, 192.0.2.7", "ipv6": "2001:db8:1::/48"]))
        #expect(try BPFTestRun.run(loaded.program, packet: udpPacket(from: "10.1.2.3")).verdict == XDP_DROP)
        #expect(try BPFTestRun.run(loaded.program, packet: udpPacket(from: "192.0.2.7")).verdict == XDP_DROP)
        #expect(try BPFTestRun.run(loaded.program, packet: udpPacket(from: "192.0.2.8")).verdict == XDP_PASS)
        #expect(try BPFTestRun.run(loaded.program, packet: udpPacket(from: "11.0.0.1")).verdict == XDP_PASS)
        #expect(try BPFTestRun.run(loaded.program, packet: ipv6Packet(from: "2001:db8:1:ffff::1")).verdict == XDP_DROP)
        #expect(try BPFTestRun.run(loaded.program, packet: ipv6Packet(from: "2001:db8:2::1")).verdict == XDP_PASS)
    }

    @Test func countersCountPacketsPerProtocol() throws {
        let loaded = try load(try Packages.member("packet-counter"))
        _ = try BPFTestRun.run(loaded.program, packet: udpPacket(), repeat: 10)
        _ = try BPFTestRun.run(loaded.program, packet: tcpPacket(port: 80, flags: 0x10), repeat: 4)
        #expect(try countedPackets(loaded.map("xdp_counter_map"), protocol: 17) == 10)
        #expect(try countedPackets(loaded.map("xdp_counter_map"), protocol: 6) == 4)
    }

    @Test(arguments: [("rate", "abc", "'abc' is not an unsigned 32-bit integer"), ("ports", "80,70000", "'70000' is not a port"),
                      ("colour", "red", "has no parameter 'colour'")])
    func badParametersAreRefusedBeforeLoading(_ name: String, _ value: String, _ problem: String) throws {
        let member = try Packages.member("ratelimiting", parameters: [name: value])
        #expect(throws: ChainError.self) { try member.parameterWrites() }
        do { _ = try member.parameterWrites() } catch { #expect(error.description.contains(problem), "\(error.description)") }
    }
}
