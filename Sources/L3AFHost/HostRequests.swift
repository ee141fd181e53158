import Foundation
import L3AFModel
import L3AFRuntime

/// One operation on a host, as one type used on both paths: `l3af` performs it on this host (``LocalHost``) or sends it
/// to `l3afd` (`l3af --host`), whose route decodes the same type and performs it on its host. A `POST` route takes the
/// operation as its JSON body; a `GET` route takes it as query items.
public protocol HostOperation: Codable, Sendable {
    associatedtype Reply: Codable & Sendable
    /// `GET` or `POST`.
    static var method: String { get }
    /// The daemon's route, e.g. `/l3af/v1/install`.
    static var path: String { get }
    /// A `GET` operation's query items.
    var query: [String: String] { get }
    /// A `GET` operation from its query items.
    init(query: [String: String]) throws(HostError)
    func perform(on host: HostManager) async throws -> Reply
    /// The programs it changes, for l3afd's failure counters when it fails.
    var programs: [(package: String, interface: String, hook: Hook)] { get }
}

extension HostOperation {
    public static var method: String { "POST" }
    public var query: [String: String] { [:] }
    public init(query: [String: String]) throws(HostError) {
        throw HostError(.badInput, "\(Self.path) takes a JSON body", hint: "POST it")
    }
    public var programs: [(package: String, interface: String, hook: Hook)] { [] }
}

/// Where an operation is performed: this host, or a remote `l3afd`.
public protocol HostClient: Sendable {
    func send<Operation: HostOperation>(_ operation: Operation) async throws -> Operation.Reply
    /// What `operation` would do, changing nothing (a dry run).
    func plan<Operation: HostOperation>(_ operation: Operation) async throws -> ChangePlan
}

/// This host: the operation is performed here, by this process.
public struct LocalHost: HostClient {
    public let host: HostManager
    public init(host: HostManager) { self.host = host }
    public func send<Operation: HostOperation>(_ operation: Operation) async throws -> Operation.Reply { try await operation.perform(on: host) }
    public func plan<Operation: HostOperation>(_ operation: Operation) async throws -> ChangePlan {
        let host = host
        return try await host.plan { _ = try await operation.perform(on: host) }
    }
}

/// The operations, by route (`/l3af/v1/…`), and what they answer.
public enum HostRequest {
    /// The operations the daemon serves, for its routes and the OpenAPI check.
    public static let all: [any HostOperation.Type] = [
        Install.self, Remove.self, Upgrade.self, Pin.self, Unpin.self, Rollback.self, Restore.self, Apply.self, Status.self, History.self,
    ]

    static func name(_ text: String, field: String = "package") throws(HostError) -> PackageName {
        do { return try PackageName(text) } catch { throw HostError(.badInput, "\(field): \(error.description)", hint: error.hint) }
    }

    static func version(_ text: String, field: String = "version") throws(HostError) -> PackageVersion {
        do { return try PackageVersion(text, field: field) } catch { throw HostError(.badInput, error.description, hint: error.hint) }
    }

    static func hook(_ text: String?) throws(HostError) -> Hook? {
        guard let text else { return nil }
        guard let hook = Hook(rawValue: text) else {
            throw HostError(.badInput, "hook: '\(text)' is not \(Hook.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return hook
    }

    /// What a change answers: the revision it recorded, or none when nothing needed to change.
    public struct Changed: Codable, Sendable {
        public var revision: Revision?
        public init(revision: Revision?) { self.revision = revision }
    }

    public struct Install: HostOperation {
        public static let path = "/l3af/v1/install"
        public var spec: String
        /// Absent for a package of probes only.
        public var iface: String?
        public var hook: String?
        public var seqID: Int?
        public var parameters: [String: String]?
        enum CodingKeys: String, CodingKey { case spec, iface, hook, seqID = "seq_id", parameters }
        public init(spec: String, iface: String?, hook: String?, seqID: Int?, parameters: [String: String]?) {
            self.spec = spec; self.iface = iface; self.hook = hook; self.seqID = seqID; self.parameters = parameters
        }

        public func perform(on host: HostManager) async throws -> Changed {
            let request = InstallRequest(spec: try HostManager.spec(spec), interface: iface, hook: try HostRequest.hook(hook), seqID: seqID,
                                         parameters: parameters ?? [:])
            return Changed(revision: try await host.install(request))
        }

        public var programs: [(package: String, interface: String, hook: Hook)] {
            [((try? PackageSpec(parsing: spec))?.name.rawValue ?? spec, iface ?? "", hook.flatMap(Hook.init(rawValue:)) ?? .xdpIngress)]
        }
    }

    public struct Remove: HostOperation {
        public static let path = "/l3af/v1/remove"
        public var package: String
        /// Absent: the package's host-wide probes.
        public var iface: String?
        /// Only this hook; every hook when absent.
        public var hook: String?
        public init(package: String, iface: String?, hook: String? = nil) { self.package = package; self.iface = iface; self.hook = hook }

        public func perform(on host: HostManager) async throws -> Changed {
            Changed(revision: try await host.remove(package: try HostRequest.name(package), interface: iface, hook: try HostRequest.hook(hook)))
        }
    }

    public struct Upgrade: HostOperation {
        public static let path = "/l3af/v1/upgrade"
        public var package: String?
        public var iface: String?
        public var watchSeconds: Double?
        public var intervalSeconds: Double?
        enum CodingKeys: String, CodingKey { case package, iface, watchSeconds = "watch_seconds", intervalSeconds = "interval_seconds" }
        public init(package: String?, iface: String?, watchSeconds: Double?, intervalSeconds: Double?) {
            self.package = package; self.iface = iface; self.watchSeconds = watchSeconds; self.intervalSeconds = intervalSeconds
        }

        public func perform(on host: HostManager) async throws -> HostManager.UpgradeOutcome {
            try await host.upgrade(package: try package.map { text throws(HostError) in try HostRequest.name(text) }, interface: iface, watch: watchSeconds,
                                   interval: intervalSeconds ?? 1)
        }
    }

    /// Empty: the previous revision; `revision`: that one; `package`: its previous version.
    public struct Rollback: HostOperation {
        public static let path = "/l3af/v1/rollback"
        public var revision: Int?
        public var package: String?
        public init(revision: Int? = nil, package: String? = nil) { self.revision = revision; self.package = package }
        public init(_ target: HostManager.RollbackTarget) {
            switch target {
            case .previous: self.init()
            case .revision(let number): self.init(revision: number)
            case .package(let name): self.init(package: name.rawValue)
            }
        }

        public func perform(on host: HostManager) async throws -> Changed {
            let target: HostManager.RollbackTarget = if let revision { .revision(revision) } else if let package { .package(try HostRequest.name(package)) } else { .previous }
            return Changed(revision: try await host.rollback(target))
        }
    }

    public struct Pin: HostOperation {
        public static let path = "/l3af/v1/pin"
        public var package: String
        public var version: String
        public var iface: String?
        public init(package: String, version: String, iface: String?) { self.package = package; self.version = version; self.iface = iface }

        public func perform(on host: HostManager) async throws -> Changed {
            Changed(revision: try await host.pin(package: try HostRequest.name(package), version: try HostRequest.version(version), interface: iface))
        }
    }

    public struct Unpinned: Codable, Sendable {
        public var removed: Int
        public init(removed: Int) { self.removed = removed }
    }

    public struct Unpin: HostOperation {
        public static let path = "/l3af/v1/unpin"
        public var package: String
        public var iface: String?
        public init(package: String, iface: String?) { self.package = package; self.iface = iface }

        public func perform(on host: HostManager) async throws -> Unpinned {
            Unpinned(removed: try await host.unpin(package: try HostRequest.name(package), interface: iface))
        }
    }

    public struct Restored: Codable, Sendable {
        /// Whether the kernel had to be changed.
        public var changed: Bool
        /// The revision the kernel runs now.
        public var revision: Int?
        /// The steps the restore made (one flip each).
        public var steps: [ChainStep]?
    }

    /// Makes the kernel run the last revision again (after finishing or undoing an interrupted change).
    public struct Restore: HostOperation {
        public static let path = "/l3af/v1/restore"
        public init() {}

        public func perform(on host: HostManager) async throws -> Restored {
            let steps = try await host.restoreSteps()
            return Restored(changed: steps != nil, revision: try await host.observe { try $0.database.current()?.number }, steps: steps)
        }
    }

    /// An l3afd payload, applied as one revision: `replace` (each interface named gets exactly its programs), `add`
    /// (others stay), `host` (interfaces not named are emptied too), or `delete` (`names`: the programs to remove).
    public struct Apply: HostOperation {
        public static let path = "/l3af/v1/apply"
        public var mode: String
        public var payloads: [L3afBPFPrograms]?
        public var names: [L3afBPFProgramNames]?
        /// The name payloads' `host_name` must match (default: the host's own).
        public var hostName: String?
        enum CodingKeys: String, CodingKey { case mode, payloads, names, hostName = "host_name" }
        public init(mode: String, payloads: [L3afBPFPrograms]? = nil, names: [L3afBPFProgramNames]? = nil, hostName: String? = nil) {
            self.mode = mode; self.payloads = payloads; self.names = names; self.hostName = hostName
        }

        public func perform(on host: HostManager) async throws -> Changed {
            if mode == "delete" {
                guard let names else { throw HostError(.badInput, "names: a delete needs the programs' names (L3afBPFProgramNames)") }
                return Changed(revision: try await host.delete(names, hostName: hostName))
            }
            guard let mode = HostManager.PayloadMode(rawValue: mode) else {
                throw HostError(.badInput, "mode: '\(mode)' is not replace, add, host or delete")
            }
            guard let payloads else { throw HostError(.badInput, "payloads: an apply needs L3afBPFPrograms payloads") }
            return Changed(revision: try await host.apply(payloads, mode: mode, hostName: hostName))
        }

        public var programs: [(package: String, interface: String, hook: Hook)] {
            (payloads ?? []).flatMap { payload in Hook.allCases.flatMap { hook in payload.bpfPrograms[hook].map { ($0.name, payload.iface, hook) } } }
                + (names ?? []).flatMap { payload in Hook.allCases.flatMap { hook in payload.bpfPrograms[hook].map { ($0, payload.iface, hook) } } }
        }
    }

    public struct Status: HostOperation {
        public static let method = "GET"
        public static let path = "/l3af/v1/status"
        public var iface: String?
        public init(iface: String? = nil) { self.iface = iface }
        public init(query: [String: String]) throws(HostError) { iface = query["iface"] }
        public var query: [String: String] { iface.map { ["iface": $0] } ?? [:] }

        public func perform(on host: HostManager) async throws -> HostStatus {
            try await host.observe { [iface] host in try host.status(interface: iface) }
        }
    }

    /// Committed revisions, newest first.
    public struct History: HostOperation {
        public static let method = "GET"
        public static let path = "/l3af/v1/history"
        public static let maximumLimit = 10_000
        public var limit: Int
        public init(limit: Int = 1000) { self.limit = limit }
        public init(query: [String: String]) throws(HostError) {
            guard let text = query["limit"] else { limit = 1000; return }
            guard let value = Int(text), (1...Self.maximumLimit).contains(value) else {
                throw HostError(.badInput, "limit: '\(text)' is not a number from 1 to \(Self.maximumLimit)")
            }
            limit = value
        }
        public var query: [String: String] { ["limit": String(limit)] }

        public func perform(on host: HostManager) async throws -> [Revision] {
            try await host.observe { [limit] host in try host.database.history(limit: limit) }
        }
    }
}
