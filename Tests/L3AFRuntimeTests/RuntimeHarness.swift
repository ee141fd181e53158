import Foundation
import L3AFBPF
import L3AFModel
import L3AFRuntime
import L3AFTestSupport
import Synchronization

/// The first-party packages' programs, compiled, as chain members.
enum Packages {
    static let folder = try! Fixtures.temporaryFolder("runtime-objects")
    private static let written = Mutex<[String: String]>([:])

    /// The compiled object of `source` (relative to the repository), written once to a file.
    static func object(_ source: String) throws -> String {
        if let path = written.withLock({ $0[source] }) { return path }
        let path = folder.appending(path: (source as NSString).lastPathComponent + ".o").path
        try Data(try Fixtures.compileBPF(source)).write(to: URL(fileURLWithPath: path))
        written.withLock { $0[source] = path }
        return path
    }

    static func manifest(_ package: String) throws -> Manifest {
        let data = try Data(contentsOf: Fixtures.repositoryRoot.appending(path: "registry/\(package)/l3af.json"))
        return try DocumentDecoder.decode(Manifest.self, from: Array(data), document: "registry/\(package)/l3af.json")
    }

    /// Program `index` of first-party `package`, under another package name when `as` is given.
    static func member(_ package: String, program index: Int = 0, as name: String? = nil, version: String = "1.0.0",
                       parameters: [String: String] = [:], seq: Int = 0) throws -> ChainMember {
        let program = try manifest(package).programs[index]
        let source = "registry/\(package)/\(program.objectFile.replacingOccurrences(of: ".o", with: ".c"))"
        return ChainMember(package: name ?? package, version: version, program: program, objectPath: try object(source),
                           parameters: parameters, seqID: seq)
    }

    static var roots: [Hook: ChainMember] {
        get throws {
            [.xdpIngress: try member("xdp-root"), .tcIngress: try member("tc-root"), .tcEgress: try member("tc-root", program: 1)]
        }
    }
}

/// A UDP/IPv4 packet from `source` to `destination` (dotted quads) on an Ethernet frame, for BPF_PROG_TEST_RUN.
func udpPacket(from source: String = "192.0.2.1", to destination: String = "192.0.2.2", port: UInt16 = 9) -> [UInt8] {
    ipv4Packet(from: source, to: destination, protocol: 17, payload: [0, 9, UInt8(port >> 8), UInt8(port & 0xff), 0, 8, 0, 0])
}

/// A TCP segment with the given flags (0x02 SYN, 0x10 ACK) to `port`.
func tcpPacket(from source: String = "192.0.2.1", to destination: String = "192.0.2.2", port: UInt16, flags: UInt8) -> [UInt8] {
    var tcp = [UInt8](repeating: 0, count: 20)
    tcp[0] = 0x30; tcp[1] = 0x39
    tcp[2] = UInt8(port >> 8); tcp[3] = UInt8(port & 0xff)
    tcp[12] = 5 << 4
    tcp[13] = flags
    return ipv4Packet(from: source, to: destination, protocol: 6, payload: tcp)
}

func ipv4Packet(from source: String, to destination: String, protocol: UInt8, payload: [UInt8]) -> [UInt8] {
    let ethernet: [UInt8] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]
    let length = UInt16(20 + payload.count)
    var ip: [UInt8] = [0x45, 0, UInt8(length >> 8), UInt8(length & 0xff), 0, 0, 0, 0, 64, `protocol`, 0, 0]
    ip += IPAddressText.ipv4(source)! + IPAddressText.ipv4(destination)!
    return ethernet + ip + payload
}

func ipv6Packet(from source: String) -> [UInt8] {
    let ethernet: [UInt8] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd]
    var ip: [UInt8] = [0x60, 0, 0, 0, 0, 8, 17, 64]
    ip += IPAddressText.ipv6(source)! + IPAddressText.ipv6("2001:db8::2")!
    return ethernet + ip + [0, 9, 0, 9, 0, 8, 0, 0]
}

/// The packets a counter (xdp_counter/tc_egress_counter) counted for `protocol`, summed over CPUs.
func countedPackets(_ map: BPFMapAccess, protocol: UInt32 = 17) throws -> UInt64 {
    let cpus = BPFMapAccess.possibleCPUs
    guard let bytes = try map.lookup(key: `protocol`.bytes, valueSize: 16 * cpus) else { return 0 }
    return (0..<cpus).reduce(0) { sum, cpu in sum + bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: cpu * 16, as: UInt64.self) } }
}

let XDP_DROP: UInt32 = 1
let XDP_PASS: UInt32 = 2
