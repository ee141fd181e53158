import Foundation
import L3AFFleet
import L3AFClient
import L3AFHost
import L3AFModel

/// How `l3afd` runs: from a JSON file (`--config`), then flags. Everything the client takes (registry, trusted keys,
/// repo, cache, state folder) plus where to listen, TLS, and metrics sampling.
public struct DaemonConfiguration: Codable, Sendable, Equatable {
    public struct TLS: Codable, Sendable, Equatable {
        /// PEM certificate chain and key the server presents.
        public var certificate: String
        public var key: String
        /// PEM CA that client certificates must chain to; when set, clients without one are refused (mTLS).
        public var clientCA: String?
        /// The lowest TLS version accepted: `1.2` (default) or `1.3`.
        public var minimumVersion: String?
        /// With a client CA: literals and regular expressions, one of which a client certificate's SAN must match.
        public var sanMatchRules: [String]

        public init(certificate: String, key: String, clientCA: String? = nil, minimumVersion: String? = nil, sanMatchRules: [String] = []) {
            self.certificate = certificate
            self.key = key
            self.clientCA = clientCA
            self.minimumVersion = minimumVersion
            self.sanMatchRules = sanMatchRules
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case certificate, key
            case clientCA = "client_ca"
            case minimumVersion = "min_version"
            case sanMatchRules = "san_match_rules"
        }

        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            certificate = try c.decode(String.self, forKey: .certificate)
            key = try c.decode(String.self, forKey: .key)
            clientCA = try c.decodeIfPresent(String.self, forKey: .clientCA)
            minimumVersion = try c.decodeIfPresent(String.self, forKey: .minimumVersion)
            sanMatchRules = try c.decodeIfPresent([String].self, forKey: .sanMatchRules) ?? []
        }
    }

    /// l3afd's graceful restart (`[graceful-restart]`): where `PUT /l3af/configs/v1/restart` fetches a new build of
    /// l3afd, where it unpacks it, how long the new process has to come up, and which versions may be asked for.
    public struct GracefulRestart: Codable, Sendable, Equatable {
        /// `restart-artifacts-url`: the build of version V is `<url>/<V>/l3afd.tar.gz` (file, http or https).
        public var artifactsURL: String
        /// `basepath`: builds unpack under `<basepath>/<V>/l3afd/`, and `<basepath>/latest/` links the one running.
        public var basePath: String
        /// `time-to-restart`: seconds the new process has to serve; else the old build runs again.
        public var timeToRestartSeconds: Double
        /// `version-limit`: versions are `vX.Y.Z` with X, Y and Z at most this.
        public var versionLimit: Int

        public static let artifact = "l3afd.tar.gz"

        public init(artifactsURL: String, basePath: String = "/usr/local/l3afd", timeToRestartSeconds: Double = 7, versionLimit: Int = 100) {
            self.artifactsURL = artifactsURL
            self.basePath = basePath
            self.timeToRestartSeconds = timeToRestartSeconds
            self.versionLimit = versionLimit
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case artifactsURL = "artifacts_url"
            case basePath = "base_path"
            case timeToRestartSeconds = "time_to_restart_seconds"
            case versionLimit = "version_limit"
        }

        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let defaults = GracefulRestart(artifactsURL: "")
            artifactsURL = try c.decode(String.self, forKey: .artifactsURL)
            basePath = try c.decodeIfPresent(String.self, forKey: .basePath) ?? defaults.basePath
            timeToRestartSeconds = try c.decodeIfPresent(Double.self, forKey: .timeToRestartSeconds) ?? defaults.timeToRestartSeconds
            versionLimit = try c.decodeIfPresent(Int.self, forKey: .versionLimit) ?? defaults.versionLimit
        }

        func validate() throws(DaemonError) {
            guard BPFProgram.repositorySchemes.contains(urlScheme(of: artifactsURL) ?? "") else {
                throw DaemonError(.badConfiguration, "the restart artifacts URL '\(artifactsURL)' is not a file, http or https URL", hint: "e.g. file:///srv/l3afd")
            }
            guard basePath.hasPrefix("/"), basePath.count > 1 else {
                throw DaemonError(.badConfiguration, "the restart base path '\(basePath)' is not an absolute path", hint: "e.g. /usr/local/l3afd")
            }
            guard timeToRestartSeconds.isFinite, (1...600).contains(timeToRestartSeconds) else {
                throw DaemonError(.badConfiguration, "time to restart is \(timeToRestartSeconds) s; it must be 1 to 600")
            }
            guard (0...10_000).contains(versionLimit) else { throw DaemonError(.badConfiguration, "version limit is \(versionLimit); it must be 0 to 10000") }
        }
    }

    /// `host:port` of the API (l3afd's default port is 7080).
    public var listen: String = "127.0.0.1:7080"
    /// `host:port` for `/metrics` alone; `nil`: `/metrics` is served on the API's address.
    public var metricsListen: String?
    public var client: ClientConfiguration = ClientConfiguration()
    public var pinRoot: String = "/sys/fs/bpf/l3af"
    /// The name payloads' `host_name` must match (default: this system's host name).
    public var hostName: String?
    public var tls: TLS?
    /// Seconds between samples of the monitor maps.
    public var sampleIntervalSeconds: Double = 1
    /// How many samples `max-rate` and `avg` look back over.
    public var samples: Int = 10
    /// Seconds a change waits for another writer (an `l3af` command) before failing.
    public var lockTimeoutSeconds: Double = 30
    /// A Unix socket to serve the API on as well (mode 0600; the caller's uid is recorded on each revision).
    public var socket: String?
    /// A file holding the bearer token every API request must carry (not `/metrics`, `/healthz`); mode 0600 or stricter.
    public var tokenFile: String?
    /// Names the Host header may carry besides IP literals, `localhost` and the host name.
    public var allowedHosts: [String] = []
    /// Serve plain HTTP on a non-loopback address anyway (refused by default without mTLS).
    public var insecureListen = false
    /// Open connections at most, per server; more wait to be accepted.
    public var maximumConnections = 64
    /// Seconds an idle connection is kept open.
    public var idleTimeoutSeconds = 60
    /// Revisions kept in state.db; older ones are pruned after each change.
    public var historyLimit = 1000
    /// What reading the configuration has to say (an l3afd.cfg key with no effect here, and why); logged at start.
    public var notices: [String] = []
    /// l3afd's default repository (`[ebpf-repo] url`): plain, trusted on first use.
    public var plainRepository: String?
    /// The roots as `[xdp-root]` / `[tc-root]` describe them, from ``plainRepository``.
    public var plainRoots: [Hook: PlainRoot] = [:]
    /// l3afd's `max-ebpf-restart-count`: how often a user program that exits is started again.
    public var maximumRestarts = 3
    /// l3afd's `ebpf-poll-interval`: how often a user program's `cmd_status` is asked whether it is healthy.
    public var statusIntervalSeconds: Double = 30
    /// l3afd's `bpf-log-dir`: passed to user programs as `--log-dir`.
    public var userProgramLogDir: String?
    /// Maps also pinned where l3afd pins them: set for an l3afd.cfg (an L3AF deployment).
    public var l3afdMapPins = false
    /// l3afd's `bpf-chaining-enabled`: `false` runs one program per hook, attached without a root.
    public var chaining = true
    /// Where l3afd's chain debug view (`GET /bpfs/{iface}`) is served (`[ebpf-chain-debug]`); `nil`: not served.
    public var chainDebugListen: String?
    /// l3afd's config store (`[l3af-config-store] filename`): imported as the first revision when there is none yet.
    public var configStore: String?
    /// `PUT /l3af/configs/v1/restart` is served when this is set.
    public var gracefulRestart: GracefulRestart?
    /// The fleet this host joins: desired state from etcd, status under a lease.
    public var fleet: FleetConfiguration?

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case listen
        case metricsListen = "metrics_listen"
        case registry
        case trustedKeys = "trusted_keys"
        case repo, cache, state
        case allowUnsigned = "allow_unsigned"
        case pinRoot = "pin_root"
        case hostName = "host_name"
        case tls
        case sampleIntervalSeconds = "sample_interval_seconds"
        case samples
        case lockTimeoutSeconds = "lock_timeout_seconds"
        case socket
        case tokenFile = "token_file"
        case allowedHosts = "allowed_hosts"
        case insecureListen = "insecure_listen"
        case maximumConnections = "max_connections"
        case idleTimeoutSeconds = "idle_timeout_seconds"
        case historyLimit = "history_limit"
        case statusIntervalSeconds = "status_interval_seconds"
        case gracefulRestart = "graceful_restart"
        case fleet
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = DaemonConfiguration()
        listen = try c.decodeIfPresent(String.self, forKey: .listen) ?? defaults.listen
        metricsListen = try c.decodeIfPresent(String.self, forKey: .metricsListen)
        client.registry = try c.decodeIfPresent(String.self, forKey: .registry)
        client.trustedKeys = try c.decodeIfPresent([String].self, forKey: .trustedKeys) ?? []
        client.repo = try c.decodeIfPresent(String.self, forKey: .repo) ?? client.repo
        client.cache = try c.decodeIfPresent(String.self, forKey: .cache) ?? client.cache
        client.state = try c.decodeIfPresent(String.self, forKey: .state) ?? client.state
        client.allowUnsigned = try c.decodeIfPresent([String].self, forKey: .allowUnsigned) ?? []
        pinRoot = try c.decodeIfPresent(String.self, forKey: .pinRoot) ?? defaults.pinRoot
        hostName = try c.decodeIfPresent(String.self, forKey: .hostName)
        tls = try c.decodeIfPresent(TLS.self, forKey: .tls)
        sampleIntervalSeconds = try c.decodeIfPresent(Double.self, forKey: .sampleIntervalSeconds) ?? defaults.sampleIntervalSeconds
        samples = try c.decodeIfPresent(Int.self, forKey: .samples) ?? defaults.samples
        lockTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .lockTimeoutSeconds) ?? defaults.lockTimeoutSeconds
        socket = try c.decodeIfPresent(String.self, forKey: .socket)
        tokenFile = try c.decodeIfPresent(String.self, forKey: .tokenFile)
        allowedHosts = try c.decodeIfPresent([String].self, forKey: .allowedHosts) ?? []
        insecureListen = try c.decodeIfPresent(Bool.self, forKey: .insecureListen) ?? false
        maximumConnections = try c.decodeIfPresent(Int.self, forKey: .maximumConnections) ?? defaults.maximumConnections
        idleTimeoutSeconds = try c.decodeIfPresent(Int.self, forKey: .idleTimeoutSeconds) ?? defaults.idleTimeoutSeconds
        historyLimit = try c.decodeIfPresent(Int.self, forKey: .historyLimit) ?? defaults.historyLimit
        statusIntervalSeconds = try c.decodeIfPresent(Double.self, forKey: .statusIntervalSeconds) ?? defaults.statusIntervalSeconds
        gracefulRestart = try c.decodeIfPresent(GracefulRestart.self, forKey: .gracefulRestart)
        fleet = try c.decodeIfPresent(FleetConfiguration.self, forKey: .fleet)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(listen, forKey: .listen)
        try c.encodeIfPresent(metricsListen, forKey: .metricsListen)
        try c.encodeIfPresent(client.registry, forKey: .registry)
        try c.encode(client.trustedKeys, forKey: .trustedKeys)
        try c.encode(client.repo, forKey: .repo)
        try c.encode(client.cache, forKey: .cache)
        try c.encode(client.state, forKey: .state)
        try c.encode(client.allowUnsigned, forKey: .allowUnsigned)
        try c.encode(pinRoot, forKey: .pinRoot)
        try c.encodeIfPresent(hostName, forKey: .hostName)
        try c.encodeIfPresent(tls, forKey: .tls)
        try c.encode(sampleIntervalSeconds, forKey: .sampleIntervalSeconds)
        try c.encode(samples, forKey: .samples)
        try c.encode(lockTimeoutSeconds, forKey: .lockTimeoutSeconds)
        try c.encodeIfPresent(socket, forKey: .socket)
        try c.encodeIfPresent(tokenFile, forKey: .tokenFile)
        try c.encode(allowedHosts, forKey: .allowedHosts)
        try c.encode(insecureListen, forKey: .insecureListen)
        try c.encode(maximumConnections, forKey: .maximumConnections)
        try c.encode(idleTimeoutSeconds, forKey: .idleTimeoutSeconds)
        try c.encode(historyLimit, forKey: .historyLimit)
        try c.encode(statusIntervalSeconds, forKey: .statusIntervalSeconds)
        try c.encodeIfPresent(gracefulRestart, forKey: .gracefulRestart)
        try c.encodeIfPresent(fleet, forKey: .fleet)
    }

    /// Every number within bounds, and no exposure the operator didn't ask for: a non-loopback listen address needs
    /// mTLS (or `insecure_listen`), SAN rules need a client CA, the token file is private.
    func validate() throws(DaemonError) {
        func bounded<T: Comparable>(_ name: String, _ value: T, _ range: ClosedRange<T>) throws(DaemonError) {
            guard range.contains(value) else { throw DaemonError(.badConfiguration, "\(name) is \(value); it must be \(range.lowerBound) to \(range.upperBound)") }
        }
        guard sampleIntervalSeconds.isFinite, lockTimeoutSeconds.isFinite else { throw DaemonError(.badConfiguration, "sample_interval_seconds and lock_timeout_seconds must be numbers") }
        try bounded("sample_interval_seconds", sampleIntervalSeconds, 0.1...3600)
        try bounded("samples", samples, 2...10_000)
        try bounded("lock_timeout_seconds", lockTimeoutSeconds, 0...3600)
        try bounded("max_connections", maximumConnections, 1...100_000)
        try bounded("idle_timeout_seconds", idleTimeoutSeconds, 1...86_400)
        try bounded("history_limit", historyLimit, 10...10_000_000)
        guard statusIntervalSeconds.isFinite else { throw DaemonError(.badConfiguration, "status_interval_seconds must be a number") }
        try bounded("status_interval_seconds", statusIntervalSeconds, 0.1...86_400)
        try gracefulRestart?.validate()
        if let fleet {
            do { try fleet.validate() } catch { throw DaemonError(.badConfiguration, error.description, hint: error.hint) }
        }
        let api = try Self.address(listen, option: "listen")
        let mutual = tls?.clientCA != nil
        if !Self.isLoopback(api.host), !mutual, !insecureListen {
            throw DaemonError(.badConfiguration, "listen \(listen) is reachable from other machines, but clients are not authenticated",
                              hint: "set tls with client_ca (mTLS), listen on 127.0.0.1 or a Unix socket, or pass --insecure-listen if something in front authenticates")
        }
        if let tls {
            if let version = tls.minimumVersion, !["1.2", "1.3"].contains(version) {
                throw DaemonError(.badConfiguration, "tls.min_version is '\(version)'", hint: "use 1.2 or 1.3")
            }
            if !tls.sanMatchRules.isEmpty, tls.clientCA == nil {
                throw DaemonError(.badConfiguration, "tls.san_match_rules needs tls.client_ca: without client certificates there are no SANs to match")
            }
        }
        if let socket, !socket.hasPrefix("/") { throw DaemonError(.badConfiguration, "socket '\(socket)' is not an absolute path") }
    }

    /// The bearer token from `token_file`, or `nil` without one. The file must be a regular file that only its owner
    /// can read, holding one non-empty line.
    func token() throws(DaemonError) -> String? {
        guard let tokenFile else { return nil }
        var info = stat()
        guard stat(tokenFile, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw DaemonError(.badConfiguration, "can't read the token file \(tokenFile)", hint: "make it with: head -c 32 /dev/urandom | base64 > \(tokenFile); chmod 600 \(tokenFile)")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw DaemonError(.badConfiguration, "the token file \(tokenFile) can be read by others (mode \(String(info.st_mode & 0o777, radix: 8)))", hint: "chmod 600 \(tokenFile)")
        }
        guard let text = try? String(contentsOfFile: tokenFile, encoding: .utf8), !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw DaemonError(.badConfiguration, "the token file \(tokenFile) is empty or not text")
        }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" || host == "::1" { return true }
        var address = in_addr()
        return inet_pton(AF_INET, host, &address) == 1 && UInt32(bigEndian: address.s_addr) >> 24 == 127
    }

    /// `host:port` split, with a message naming the option when it isn't one.
    static func address(_ text: String, option: String) throws(DaemonError) -> (host: String, port: Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw DaemonError(.badConfiguration, "\(option) '\(text)' is not host:port", hint: "for example 127.0.0.1:7080 or 0.0.0.0:7080")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "0.0.0.0" : host, port)
    }
}

/// A daemon failure that is not a request's fault.
public struct DaemonError: L3AFError {
    public enum Kind: String, Sendable {
        case badConfiguration = "bad-configuration"
        case alreadyRunning = "already-running"
    }
    public let kind: Kind
    public let description: String
    public let hint: String?
    public var code: String { kind.rawValue }

    public init(_ kind: Kind, _ description: String, hint: String? = nil) {
        self.kind = kind
        self.description = description
        self.hint = hint
    }
}
