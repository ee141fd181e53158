import Foundation
import L3AFModel
import L3AFSystem

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
    /// Publish tokens by registry URL (`l3af login` writes them into the user's config file, mode 0600). A config
    /// file that holds tokens and can be read by others is refused.
    public var tokens: [String: String]

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
        tokens = [:]
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
        case tokens
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
        tokens = try c.decodeIfPresent([String: String].self, forKey: .tokens) ?? [:]
    }

    /// The user's own config file: `$L3AF_USER_CONFIG`, else `$XDG_CONFIG_HOME/l3af/config.json`, else
    /// `~/.config/l3af/config.json`; nil without a home.
    public static func userFile(environment: [String: String]) -> String? {
        if let path = environment["L3AF_USER_CONFIG"], !path.isEmpty { return path }
        if let base = environment["XDG_CONFIG_HOME"], base.hasPrefix("/") { return "\(base)/l3af/config.json" }
        guard let home = environment["HOME"], home.hasPrefix("/") else { return nil }
        return "\(home)/.config/l3af/config.json"
    }

    /// Reads the configuration every command uses: a named file (`--config`, `$L3AF_CONFIG`) alone; otherwise
    /// `/etc/l3af/config.json` with the user's file (``userFile(environment:)``) over it, key by key. A missing
    /// default file is an empty configuration, a missing named one an error. Then the environment variables.
    public static func load(file: String?, environment: [String: String]) throws -> ClientConfiguration {
        var members: [String: JSONValue] = [:]
        var sources: [String] = []
        if let named = file ?? environment["L3AF_CONFIG"] {
            guard let read = try Self.members(of: named) else {
                throw ConfigurationError(description: "the config file \(named) can't be read", hint: "check the path given to --config or $L3AF_CONFIG")
            }
            members = read
            sources = [named]
        } else {
            for path in [defaultFile, userFile(environment: environment)].compactMap({ $0 }) {
                // The user's file counts only when it is this user's: root running with another user's HOME
                // (`sudo -E`) doesn't take trusted keys or folders from a file that user can change.
                if path != defaultFile, !Self.ownedByThisUser(path) { continue }
                guard let read = try Self.members(of: path) else { continue }
                members.merge(read) { $1 }
                sources.append(path)
            }
        }
        var config = ClientConfiguration()
        if !members.isEmpty {
            let data = Data(try JSONValue.object(members).canonicalBytes())
            config = try DocumentDecoder.decode(ClientConfiguration.self, from: data, document: "config \(sources.joined(separator: " + "))")
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

    /// A config file's members, or nil when there is no such file. One that holds tokens must be the user's alone.
    static func members(of path: String) throws -> [String: JSONValue]? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let value = try DocumentDecoder.decode(JSONValue.self, from: data, document: "config \(path)")
        guard case .object(let members) = value else {
            throw ConfigurationError(description: "the config file \(path) is not a JSON object", hint: "write it as {\"registry\": \"https://…\", …}")
        }
        if let tokens = members["tokens"], tokens != .object([:]) {
            var info = stat()
            if stat(path, &info) == 0, info.st_mode & 0o077 != 0 {
                throw ConfigurationError(description: "the config file \(path) holds publish tokens but others can read it (mode \(String(info.st_mode & 0o777, radix: 8)))",
                                         hint: "chmod 600 \(path), and replace the tokens if others may have read them")
            }
        }
        return members
    }

    static func ownedByThisUser(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) != 0 || info.st_uid == geteuid()
    }

    /// The token kept for `registry` (by URL, a trailing slash ignored).
    public func token(for registry: String) -> String? {
        tokens[Self.registryKey(registry)]
    }

    /// How a registry URL is written as a key of `tokens`.
    public static func registryKey(_ url: String) -> String {
        var key = url
        while key.hasSuffix("/") { key.removeLast() }
        return key
    }

    /// Writes `token` for `registry` into the user's config file (made 0600 in a 0700 folder; its other settings
    /// kept), or removes it when `token` is nil. Returns the file's path.
    @discardableResult
    public static func storeToken(_ token: String?, for registry: String, environment: [String: String]) throws -> String {
        guard let path = userFile(environment: environment) else {
            throw ConfigurationError(description: "there is no user config file to keep the token in ($HOME is not set)", hint: "set HOME or L3AF_USER_CONFIG")
        }
        var members = try Self.members(of: path) ?? [:]
        var tokens: [String: JSONValue] = if case .object(let existing) = members["tokens"] { existing } else { [:] }
        tokens[registryKey(registry)] = token.map(JSONValue.string)
        members["tokens"] = tokens.isEmpty ? nil : .object(tokens)
        let folder = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var bytes = try JSONValue.object(members).canonicalBytes()
        bytes.append(UInt8(ascii: "\n"))
        try AtomicFile.write(bytes, to: path, mode: 0o600)
        return path
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
