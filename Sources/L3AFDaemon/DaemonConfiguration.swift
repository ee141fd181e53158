import Foundation
import L3AFClient
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

        enum CodingKeys: String, CodingKey {
            case certificate, key
            case clientCA = "client_ca"
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
    public var sampleIntervalSeconds: Double = 5
    /// How many samples `max-rate` and `avg` look back over.
    public var samples: Int = 10
    /// Seconds a change waits for another writer (an `l3af` command) before failing.
    public var lockTimeoutSeconds: Double = 30

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
