/// The bodies of the daemon's own routes (`/l3af/v1/…`): decoded by `l3afd`, sent by `l3af --host`.
public enum HostRequest {
    public struct Install: Codable, Sendable {
        public var spec: String
        public var iface: String
        public var hook: String?
        public var seqID: Int?
        public var parameters: [String: String]?
        enum CodingKeys: String, CodingKey { case spec, iface, hook, seqID = "seq_id", parameters }
        public init(spec: String, iface: String, hook: String?, seqID: Int?, parameters: [String: String]?) {
            self.spec = spec; self.iface = iface; self.hook = hook; self.seqID = seqID; self.parameters = parameters
        }
    }

    public struct Upgrade: Codable, Sendable {
        public var package: String?
        public var iface: String?
        public var watchSeconds: Double?
        public var intervalSeconds: Double?
        enum CodingKeys: String, CodingKey { case package, iface, watchSeconds = "watch_seconds", intervalSeconds = "interval_seconds" }
        public init(package: String?, iface: String?, watchSeconds: Double?, intervalSeconds: Double?) {
            self.package = package; self.iface = iface; self.watchSeconds = watchSeconds; self.intervalSeconds = intervalSeconds
        }
    }

    public struct Remove: Codable, Sendable {
        public var package: String
        public var iface: String
        public init(package: String, iface: String) { self.package = package; self.iface = iface }
    }

    /// Empty: the previous revision; `revision`: that one; `package`: its previous version.
    public struct Rollback: Codable, Sendable {
        public var revision: Int?
        public var package: String?
        public init(revision: Int?, package: String?) { self.revision = revision; self.package = package }
    }

    public struct Pin: Codable, Sendable {
        public var package: String
        public var version: String
        public var iface: String?
        public init(package: String, version: String, iface: String?) { self.package = package; self.version = version; self.iface = iface }
    }

    public struct Unpin: Codable, Sendable {
        public var package: String
        public var iface: String?
        public init(package: String, iface: String?) { self.package = package; self.iface = iface }
    }

    /// What a change answers: the revision it recorded, or none when nothing needed to change.
    public struct Changed: Codable, Sendable {
        public var revision: Revision?
        public init(revision: Revision?) { self.revision = revision }
    }

    public struct Unpinned: Codable, Sendable {
        public var removed: Int
        public init(removed: Int) { self.removed = removed }
    }
}
