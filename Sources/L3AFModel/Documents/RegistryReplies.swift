/// What the registry's API answers; the server encodes these and the client decodes them.

/// The answer to a publish.
public struct PublishReceipt: Codable, Sendable, Equatable {
    public let name: String
    public let version: String
    public let sha256: String
    public let size: UInt64
    /// Tags that now point at this version.
    public let tags: [String]
    /// False when the same bytes were already published (a no-op).
    public let created: Bool
    /// The artifact's URL path at l3afd's layout.
    public let artifactPath: String

    public init(name: String, version: String, sha256: String, size: UInt64, tags: [String], created: Bool, artifactPath: String) {
        self.name = name
        self.version = version
        self.sha256 = sha256
        self.size = size
        self.tags = tags
        self.created = created
        self.artifactPath = artifactPath
    }

    enum CodingKeys: String, CodingKey {
        case name, version, sha256, size, tags, created
        case artifactPath = "artifact_path"
    }
}

/// One package in a search answer.
public struct SearchResult: Codable, Sendable, Equatable {
    public let name: String
    public let description: String
    public let latest: String?
    public let versions: Int
    public let deprecated: String?

    public init(name: String, description: String, latest: String?, versions: Int, deprecated: String?) {
        self.name = name
        self.description = description
        self.latest = latest
        self.versions = versions
        self.deprecated = deprecated
    }
}

/// The body of every 4xx and 5xx: `{"error": {"code", "message", "hint"}}`.
public struct APIErrorBody: Codable, Sendable, Equatable {
    public struct Detail: Codable, Sendable, Equatable {
        public let code: String
        public let message: String
        public let hint: String?
    }

    public let error: Detail

    public init(code: String, message: String, hint: String?) {
        error = Detail(code: code, message: message, hint: hint)
    }
}
