import Foundation

/// Why the fleet tests can't run here, or `nil` when they can: Debian's etcd-server (`etcd`) must be installed.
public let etcdUnavailable: String? = FileManager.default.isExecutableFile(atPath: EtcdHarness.executable)
    ? nil : "needs etcd (Debian's etcd-server) at \(EtcdHarness.executable); scripts/setup installs it"

/// A real single-member etcd on loopback ports of its own, with its data in a temporary folder: killed, restarted
/// on the same data and ports, or stopped and removed by the test.
public final class EtcdHarness: @unchecked Sendable {
    public static let executable = "/usr/bin/etcd"
    public let folder: URL
    public let clientPort: Int
    public let peerPort: Int
    public private(set) var process: RunningProcess
    public let secure: Bool
    public var endpoint: String { "\(secure ? "https" : "http")://127.0.0.1:\(clientPort)" }

    /// `tls`: etcd serves its clients over TLS with `certificate` and `key` and asks each for a certificate from `ca`.
    public init(tls: (certificate: String, key: String, ca: String)? = nil) throws {
        folder = try Fixtures.temporaryFolder("etcd")
        clientPort = try Self.freePort()
        peerPort = try Self.freePort()
        secure = tls != nil
        extra = tls.map { ["--cert-file", $0.certificate, "--key-file", $0.key, "--client-cert-auth", "--trusted-ca-file", $0.ca] } ?? []
        process = try Self.start(folder: folder, clientPort: clientPort, peerPort: peerPort, secure: secure, extra: extra)
    }

    let extra: [String]

    static func start(folder: URL, clientPort: Int, peerPort: Int, secure: Bool, extra: [String]) throws -> RunningProcess {
        let client = "\(secure ? "https" : "http")://127.0.0.1:\(clientPort)", peer = "http://127.0.0.1:\(peerPort)"
        let process = try RunningProcess(executable, [
            "--name", "test", "--data-dir", folder.appending(path: "data").path,
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "test=\(peer)",
        ] + extra)
        _ = try process.waitForLine(containing: "ready to serve client requests", seconds: 30)
        return process
    }

    /// SIGKILL: etcd gone at once, as in a crash.
    public func kill() { process.stop(signal: SIGKILL) }

    /// Starts it again on the same data and ports.
    public func restart() throws {
        if process.isRunning { process.stop(signal: SIGKILL) }
        process = try Self.start(folder: folder, clientPort: clientPort, peerPort: peerPort, secure: secure, extra: extra)
    }

    /// `etcdctl` against it, for what the tests do behind the fleet's back (a compaction).
    public func etcdctl(_ arguments: [String]) throws -> Executable.Result {
        try Executable.run("/usr/bin/etcdctl", ["--endpoints", endpoint] + arguments, environment: ["ETCDCTL_API": "3"])
    }

    public func remove() {
        process.stop(signal: SIGKILL)
        try? FileManager.default.removeItem(at: folder)
    }

    /// A TCP port on loopback nobody listens on now.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw FixtureError("no free port: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
