import Foundation
import L3AFBPF
import L3AFModel
import L3AFRuntime
import L3AFTestSupport
import Synchronization

/// Why the kernel tests can't run here, or `nil` when they can (root, and a bpf file system at /sys/fs/bpf,
/// mounted now if it wasn't).
let bpfUnavailable: String? = {
    guard getuid() == 0 else { return "needs root to load BPF programs and make network namespaces" }
    let mounts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
    if !mounts.split(separator: "\n").contains(where: { $0.hasPrefix("bpf /sys/fs/bpf ") || $0.contains(" /sys/fs/bpf bpf ") }) {
        let mounted = try? Executable.run("/usr/bin/mount", ["-t", "bpf", "bpf", "/sys/fs/bpf"])
        guard mounted?.status == 0 else { return "no bpf file system at /sys/fs/bpf and mounting one failed: \(mounted?.stderr ?? "")" }
    }
    return nil
}()

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

/// A test's own network: a sender and a receiver namespace, each joined by a veth pair to a bridge in the root
/// namespace. Programs go on `senderPort` (the root-side end of the sender's pair); traffic goes from the
/// sender to `receiverAddress`. Removed, with everything attached, by `remove()`.
final class TestNetwork {
    private static let counter = Atomic<Int>(0)
    let id: String
    let sender: String
    let receiver: String
    let bridge: String
    let senderPort: String
    let receiverPort: String
    let senderAddress: String
    let receiverAddress: String
    let pinRoot: String

    init() throws {
        let n = Self.counter.add(1, ordering: .relaxed).newValue
        let tag = "\(getpid() % 10000)\(n)"
        id = tag
        sender = "l3af-\(tag)-s"
        receiver = "l3af-\(tag)-r"
        bridge = "l3b\(tag)"
        senderPort = "l3s\(tag)"
        receiverPort = "l3r\(tag)"
        let subnet = 10 + (Int(tag) ?? 0) % 200
        senderAddress = "10.213.\(subnet).1"
        receiverAddress = "10.213.\(subnet).2"
        pinRoot = "/sys/fs/bpf/l3af-test-\(tag)"
        try? remove()
        for command in [
            ["netns", "add", sender], ["netns", "add", receiver],
            ["link", "add", bridge, "type", "bridge"], ["link", "set", bridge, "up"],
            ["link", "add", senderPort, "type", "veth", "peer", "name", "eth0", "netns", sender],
            ["link", "add", receiverPort, "type", "veth", "peer", "name", "eth0", "netns", receiver],
            ["link", "set", senderPort, "master", bridge], ["link", "set", receiverPort, "master", bridge],
            ["link", "set", senderPort, "up"], ["link", "set", receiverPort, "up"],
            ["-n", sender, "addr", "add", "\(senderAddress)/24", "dev", "eth0"], ["-n", sender, "link", "set", "eth0", "up"],
            ["-n", sender, "link", "set", "lo", "up"],
            ["-n", receiver, "addr", "add", "\(receiverAddress)/24", "dev", "eth0"], ["-n", receiver, "link", "set", "eth0", "up"],
            ["-n", receiver, "link", "set", "lo", "up"],
        ] {
            let run = try Executable.run("/usr/sbin/ip", command)
            guard run.status == 0 else { throw FixtureError("ip \(command.joined(separator: " ")): \(run.stderr)") }
        }
    }

    func remove() throws {
        _ = try Executable.run("/usr/sbin/ip", ["netns", "del", sender])
        _ = try Executable.run("/usr/sbin/ip", ["netns", "del", receiver])
        _ = try Executable.run("/usr/sbin/ip", ["link", "del", bridge])
        _ = try Executable.run("/usr/sbin/ip", ["link", "del", senderPort])
        try? FileManager.default.removeItem(atPath: pinRoot)
    }

    /// Sends `count` pings from the sender to the receiver; how many were answered.
    func ping(_ count: Int) throws -> Int {
        let run = try Executable.run("/usr/sbin/ip", ["netns", "exec", sender, "ping", "-c", "\(count)", "-i", "0.01", "-W", "1", "-q", receiverAddress])
        let line = run.stdout.split(separator: "\n").first { $0.contains("received") } ?? ""
        let parts = line.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        return parts.first { $0.hasSuffix("received") }.flatMap { Int($0.split(separator: " ")[0]) } ?? 0
    }

    /// Opens `count` TCP connections (SYNs) from the sender to `port` of the receiver, each given up after a
    /// short wait; nothing listens, so each SYN that arrives is answered with a reset.
    func connect(_ count: Int, port: Int) throws -> Int {
        let script = """
            import socket
            refused = 0
            for _ in range(\(count)):
                s = socket.socket(); s.settimeout(0.2)
                try: s.connect(("\(receiverAddress)", \(port)))
                except ConnectionRefusedError: refused += 1
                except OSError: pass
                s.close()
            print(refused)
            """
        let run = try Executable.run("/usr/sbin/ip", ["netns", "exec", sender, "python3", "-c", script])
        return Int(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
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
