import Foundation
import Synchronization

/// Why the kernel tests can't run here, or `nil` when they can (root, and a bpf file system at /sys/fs/bpf,
/// mounted now if it wasn't).
public let bpfUnavailable: String? = {
    guard getuid() == 0 else { return "needs root to load BPF programs and make network namespaces" }
    let mounts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
    if !mounts.split(separator: "\n").contains(where: { $0.hasPrefix("bpf /sys/fs/bpf ") || $0.contains(" /sys/fs/bpf bpf ") }) {
        let mounted = try? Executable.run("/usr/bin/mount", ["-t", "bpf", "bpf", "/sys/fs/bpf"])
        guard mounted?.status == 0 else { return "no bpf file system at /sys/fs/bpf and mounting one failed: \(mounted?.stderr ?? "")" }
    }
    return nil
}()

/// A test's own network: a sender and a receiver namespace, each joined by a veth pair to a bridge in the root
/// namespace. Programs go on `senderPort` (the root-side end of the sender's pair); traffic goes from the
/// sender to `receiverAddress`. Removed, with everything attached, by `remove()`.
public final class TestNetwork: Sendable {
    private static let counter = Atomic<Int>(0)
    public let id: String
    public let sender: String
    public let receiver: String
    public let bridge: String
    public let senderPort: String
    public let receiverPort: String
    public let senderAddress: String
    public let receiverAddress: String
    /// This network's folder on bpffs, removed with it: l3afd's map pins go here (the pin root's parent).
    public let mapRoot: String
    /// Where chains on this network are pinned.
    public let pinRoot: String

    public init() throws {
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
        mapRoot = "/sys/fs/bpf/l3af-test-\(tag)"
        pinRoot = "\(mapRoot)/l3af"
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

    public func remove() throws {
        _ = try Executable.run("/usr/sbin/ip", ["netns", "del", sender])
        _ = try Executable.run("/usr/sbin/ip", ["netns", "del", receiver])
        _ = try Executable.run("/usr/sbin/ip", ["link", "del", bridge])
        _ = try Executable.run("/usr/sbin/ip", ["link", "del", senderPort])
        try? FileManager.default.removeItem(atPath: mapRoot)
    }

    /// Sends `count` pings from the sender to the receiver; how many were answered.
    public func ping(_ count: Int) throws -> Int {
        let run = try Executable.run("/usr/sbin/ip", ["netns", "exec", sender, "ping", "-c", "\(count)", "-i", "0.01", "-W", "1", "-q", receiverAddress])
        let line = run.stdout.split(separator: "\n").first { $0.contains("received") } ?? ""
        let parts = line.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        return parts.first { $0.hasSuffix("received") }.flatMap { Int($0.split(separator: " ")[0]) } ?? 0
    }

    /// Opens `count` TCP connections (SYNs) from the sender to `port` of the receiver, each given up after a
    /// short wait; nothing listens, so each SYN that arrives is answered with a reset. `perSecond` paces them.
    public func connect(_ count: Int, port: Int, perSecond: Double = 0) throws -> Int {
        let script = """
            import socket, time
            refused = 0
            for _ in range(\(count)):
                s = socket.socket(); s.settimeout(0.2)
                try: s.connect(("\(receiverAddress)", \(port)))
                except ConnectionRefusedError: refused += 1
                except OSError: pass
                s.close()
                if \(perSecond) > 0: time.sleep(1.0 / \(perSecond))
            print(refused)
            """
        let run = try Executable.run("/usr/sbin/ip", ["netns", "exec", sender, "python3", "-c", script])
        return Int(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }
}

