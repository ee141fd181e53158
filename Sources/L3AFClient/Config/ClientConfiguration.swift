import Foundation
import L3AFModel

/// Where the client fetches from, what it trusts, and where it keeps things. Each setting comes from a
/// flag, else an environment variable, else the config file (`/etc/l3af/config.json` by default), else
/// its default.
public struct ClientConfiguration: Codable, Sendable, Equatable {
    public static let defaultFile = "/etc/l3af/config.json"

    public var registry: String?
    /// Base64 ed25519 public keys, as `l3af-registry keygen` prints them.
    public var trustedKeys: [String]
    /// l3afd's repository folder.
    public var repo: String
    /// Downloaded artifacts (by sha256), package documents, partial downloads.
    public var cache: String
    /// The host's state: `state.db` (revisions, pins), `registries.json` (index versions accepted), `lock`.
    public var state: String
    /// l3afd-style repositories whose unsigned artifacts may be installed.
    public var allowUnsigned: [String]
    public var protocols: String
    public var connectTimeoutSeconds: Int
    public var lowSpeedBytesPerSecond: Int
    public var lowSpeedSeconds: Int
    public var attempts: Int

    public init() {
        registry = nil
        trustedKeys = []
        repo = "/var/l3afd/repo"
        cache = "/var/cache/l3af"
        state = "/var/l3afd"
        allowUnsigned = []
        protocols = "http,https,file"
        connectTimeoutSeconds = 10
        lowSpeedBytesPerSecond = 1024
        lowSpeedSeconds = 30
        attempts = 4
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case registry
        case trustedKeys = "trusted_keys"
        case repo, cache, state
        case allowUnsigned = "allow_unsigned"
        case protocols
        case connectTimeoutSeconds = "connect_timeout_seconds"
        case lowSpeedBytesPerSecond = "low_speed_bytes_per_second"
        case lowSpeedSeconds = "low_speed_seconds"
        case attempts
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = ClientConfiguration()
        registry = try c.decodeIfPresent(String.self, forKey: .registry)
        trustedKeys = try c.decodeIfPresent([String].self, forKey: .trustedKeys) ?? []
        repo = try c.decodeIfPresent(String.self, forKey: .repo) ?? defaults.repo
        cache = try c.decodeIfPresent(String.self, forKey: .cache) ?? defaults.cache
        state = try c.decodeIfPresent(String.self, forKey: .state) ?? defaults.state
        allowUnsigned = try c.decodeIfPresent([String].self, forKey: .allowUnsigned) ?? []
        protocols = try c.decodeIfPresent(String.self, forKey: .protocols) ?? defaults.protocols
        connectTimeoutSeconds = try c.decodeIfPresent(Int.self, forKey: .connectTimeoutSeconds) ?? defaults.connectTimeoutSeconds
        lowSpeedBytesPerSecond = try c.decodeIfPresent(Int.self, forKey: .lowSpeedBytesPerSecond) ?? defaults.lowSpeedBytesPerSecond
        lowSpeedSeconds = try c.decodeIfPresent(Int.self, forKey: .lowSpeedSeconds) ?? defaults.lowSpeedSeconds
        attempts = try c.decodeIfPresent(Int.self, forKey: .attempts) ?? defaults.attempts
    }

    /// Reads a config file; a missing default file is an empty configuration, a missing named one an error.
    public static func load(file: String?, environment: [String: String]) throws -> ClientConfiguration {
        let path = file ?? environment["L3AF_CONFIG"] ?? defaultFile
        var config = ClientConfiguration()
        if let data = FileManager.default.contents(atPath: path) {
            config = try DocumentDecoder.decode(ClientConfiguration.self, from: data, document: "config \(path)")
        } else if file != nil {
            throw ConfigurationError(description: "the config file \(path) can't be read", hint: "check the path given to --config")
        }
        if let value = environment["L3AF_REGISTRY"], !value.isEmpty { config.registry = value }
        if let value = environment["L3AF_TRUSTED_KEYS"], !value.isEmpty {
            config.trustedKeys = value.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        }
        if let value = environment["L3AF_REPO"], !value.isEmpty { config.repo = value }
        if let value = environment["L3AF_CACHE"], !value.isEmpty { config.cache = value }
        if let value = environment["L3AF_STATE"], !value.isEmpty { config.state = value }
        return config
    }

    /// The transfer policy these settings describe.
    public var transferPolicy: TransferPolicy {
        var policy = TransferPolicy()
        policy.protocols = protocols
        policy.connectTimeoutSeconds = connectTimeoutSeconds
        policy.lowSpeedBytesPerSecond = lowSpeedBytesPerSecond
        policy.lowSpeedSeconds = lowSpeedSeconds
        policy.maximumAttempts = max(1, attempts)
        return policy
    }
}

/// A configuration that can't be used.
public struct ConfigurationError: L3AFError {
    public let description: String
    public let hint: String?
    public var code: String { "invalid-configuration" }

    public init(description: String, hint: String?) {
        self.description = description
        self.hint = hint
    }
}
