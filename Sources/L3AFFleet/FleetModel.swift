import Foundation
import L3AFHost
import L3AFModel

/// A fleet failure, with what to do about it.
public struct FleetError: L3AFError {
    public enum Kind: String, Sendable {
        case badInput = "bad-input"
        case badConfiguration = "bad-configuration"
        /// etcd didn't answer (down, unreachable, refused).
        case unavailable = "etcd-unavailable"
        /// A watch's revision was compacted away: read everything again.
        case compacted = "etcd-compacted"
        /// Someone else wrote the key since it was read.
        case conflict
        case notFound = "not-found"
        /// A rollout stopped itself: a host failed its wave.
        case halted = "rollout-halted"
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

/// Where the fleet lives in etcd, under one prefix (`/l3af/fleet` by default):
/// - `<prefix>/desired/groups/<group>`: what every host of a group runs (a ``FleetDesired``);
/// - `<prefix>/desired/hosts/<host>`: one host's own additions, pins and rollout step, which win over its groups';
/// - `<prefix>/status/<host>`: what the host runs and how it is (a ``FleetStatus``), under the host's lease, so a
///   host that stops renewing it drops out of the live list.
public struct FleetLayout: Sendable, Equatable {
    public let prefix: String

    public static let defaultPrefix = "/l3af/fleet"

    public init(prefix: String = FleetLayout.defaultPrefix) throws(FleetError) {
        guard prefix.hasPrefix("/"), !prefix.hasSuffix("/"), !prefix.contains("//"), prefix.count <= 200,
              prefix.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f })
        else {
            throw FleetError(.badConfiguration, "the fleet prefix '\(prefix)' is not a key prefix", hint: "an absolute path without a trailing slash, e.g. /l3af/fleet")
        }
        self.prefix = prefix
    }

    public var groups: String { "\(prefix)/desired/groups/" }
    public var hosts: String { "\(prefix)/desired/hosts/" }
    public var statuses: String { "\(prefix)/status/" }
    public func group(_ name: FleetName) -> String { groups + name.rawValue }
    public func host(_ name: FleetName) -> String { hosts + name.rawValue }
    public func status(_ name: FleetName) -> String { statuses + name.rawValue }

    /// The target a key belongs to: a group, a host or a host's status.
    public func target(ofKey key: String) -> FleetTarget? {
        for (folder, make) in [(groups, FleetTarget.group), (hosts, FleetTarget.host)] where key.hasPrefix(folder) {
            return (try? FleetName(String(key.dropFirst(folder.count)), what: "name")).map(make)
        }
        return nil
    }

    public func key(_ target: FleetTarget) -> String {
        switch target {
        case .group(let name): group(name)
        case .host(let name): host(name)
        }
    }
}

/// A host or group name: letters, digits, `.`, `_` and `-`, 1 to 63 of them, not starting with `.` or `-`. It
/// becomes the last part of an etcd key, so nothing else gets through.
public struct FleetName: RawRepresentable, Hashable, Sendable, Comparable, Codable, CustomStringConvertible {
    public let rawValue: String

    public init?(rawValue: String) { try? self.init(rawValue, what: "name") }

    public init(_ text: String, what: String) throws(FleetError) {
        guard (1...63).contains(text.count), let first = text.unicodeScalars.first, first != ".", first != "-",
              text.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "._-".unicodeScalars.contains($0)) })
        else {
            throw FleetError(.badInput, "the \(what) '\(text)' can't name a fleet member", hint: "use 1 to 63 letters, digits, '.', '_' or '-', not starting with '.' or '-'")
        }
        rawValue = text
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { try self.init(text, what: "name") } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }

    public var description: String { rawValue }
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// What a command changes: `HOST` or `@GROUP`.
public enum FleetTarget: Hashable, Sendable, CustomStringConvertible {
    case group(FleetName)
    case host(FleetName)

    public init(_ text: String) throws(FleetError) {
        if text.hasPrefix("@") { self = .group(try FleetName(String(text.dropFirst()), what: "group")) } else { self = .host(try FleetName(text, what: "host")) }
    }

    public var description: String {
        switch self {
        case .group(let name): "@\(name)"
        case .host(let name): name.rawValue
        }
    }
}

/// What a group or a host should run: l3afd payloads (one per interface, `host_name` empty), pins (a package held at
/// one version wherever the payloads put it) and, on a host, the step of a rollout it takes part in. Who changed it,
/// when and why ride along, for `l3af fleet history`.
public struct FleetDesired: Codable, Sendable, Equatable {
    public var programs: [L3afBPFPrograms] = []
    /// Package name → exact version.
    public var pins: [String: String] = [:]
    /// On a host: the version a rollout moves it to, and how long it watches health after the change.
    public var rollout: RolloutStep?
    /// Seconds each change is watched against the packages' health rules (rolled back when one fails); `nil`: not watched.
    public var watchSeconds: Double?
    public var changedBy: String?
    public var changedAt: String?
    public var cause: String?

    public struct RolloutStep: Codable, Sendable, Equatable {
        public var id: String
        public var package: String
        public var version: String
        public var watchSeconds: Double

        public init(id: String, package: String, version: String, watchSeconds: Double) {
            self.id = id
            self.package = package
            self.version = version
            self.watchSeconds = watchSeconds
        }

        enum CodingKeys: String, CodingKey {
            case id, package, version
            case watchSeconds = "watch_seconds"
        }
    }

    public init(programs: [L3afBPFPrograms] = [], pins: [String: String] = [:]) {
        self.programs = programs
        self.pins = pins
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case programs, pins, rollout
        case watchSeconds = "watch_seconds"
        case changedBy = "changed_by"
        case changedAt = "changed_at"
        case cause
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        programs = try c.decodeIfPresent([L3afBPFPrograms].self, forKey: .programs) ?? []
        pins = try c.decodeIfPresent([String: String].self, forKey: .pins) ?? [:]
        rollout = try c.decodeIfPresent(RolloutStep.self, forKey: .rollout)
        watchSeconds = try c.decodeIfPresent(Double.self, forKey: .watchSeconds)
        changedBy = try c.decodeIfPresent(String.self, forKey: .changedBy)
        changedAt = try c.decodeIfPresent(String.self, forKey: .changedAt)
        cause = try c.decodeIfPresent(String.self, forKey: .cause)
    }

    /// Decodes a stored document; one that isn't valid names its key.
    public static func decode(_ bytes: [UInt8], key: String) throws(FleetError) -> FleetDesired {
        do { return try DocumentDecoder.decode(FleetDesired.self, from: bytes, document: "etcd key \(key)") } catch {
            throw FleetError(.badInput, error.description, hint: "rewrite it with `l3af fleet set`")
        }
    }

    /// Compact JSON (sorted keys): what goes into etcd, whose values every watcher receives.
    public func encoded() -> [UInt8] { fleetJSON(self) }

    /// The problems that make it unusable, each naming where it is.
    public func problems() -> [String] {
        var problems = programs.enumerated().flatMap { i, payload in payload.problems(at: "programs[\(i)].").map(\.description) }
        for (i, payload) in programs.enumerated() where !payload.hostName.isEmpty {
            problems.append("programs[\(i)].host_name is '\(payload.hostName)': a fleet payload names no host (the key says whose it is)")
        }
        let interfaces = programs.map(\.iface)
        if Set(interfaces).count != interfaces.count { problems.append("programs: an interface appears twice; put its programs in one payload") }
        for (name, version) in pins {
            if (try? PackageName(name)) == nil { problems.append("pins: '\(name)' is not a package name") }
            if (try? SemanticVersion(parsing: version)) == nil { problems.append("pins.\(name): '\(version)' is not an exact version") }
        }
        let longest = HostManager.maximumWatchSeconds
        if let watch = watchSeconds, !(watch.isFinite && (0...longest).contains(watch)) { problems.append("watch_seconds is \(watch); it must be 0 to \(Int(longest))") }
        if let step = rollout {
            if !(step.watchSeconds.isFinite && (0...longest).contains(step.watchSeconds)) { problems.append("rollout.watch_seconds is \(step.watchSeconds); it must be 0 to \(Int(longest))") }
            if (try? PackageName(step.package)) == nil { problems.append("rollout.package: '\(step.package)' is not a package name") }
            if (try? SemanticVersion(parsing: step.version)) == nil { problems.append("rollout.version: '\(step.version)' is not an exact version") }
        }
        return problems
    }
}

/// A host's desired state with its groups folded in: what its l3afd applies.
public struct FleetEffective: Sendable, Equatable {
    /// One payload per interface, sorted by interface; the fleet's interface names.
    public var payloads: [L3afBPFPrograms]
    /// Seconds to watch health after applying it.
    public var watchSeconds: Double?
    /// The rollout step in it, if any.
    public var rollout: FleetDesired.RolloutStep?
    /// Which documents it came from: `@group` or `host`, with the revision each was written at.
    public var sources: [String]
    /// Whether any document says anything for this host (with none, the fleet leaves the host alone).
    public var configured: Bool

    /// A digest of what is applied (payloads and watch), to tell whether something changed.
    public var fingerprint: String {
        let bytes = fleetJSON(payloads)
        return String(SHA256Digest(of: bytes + Array("\(watchSeconds ?? -1) \(rollout?.id ?? "")".utf8)).description.prefix(16))
    }

    /// Folds the groups' documents (in the order the host lists its groups) and the host's own: a program is keyed by
    /// interface, hook and name, and a later document's entry replaces an earlier one's; pins likewise (the host's
    /// win); a rollout step moves its package unless a pin holds it.
    public static func fold(groups: [(FleetName, FleetDesired, Int64)], host: (FleetDesired, Int64)?) -> FleetEffective {
        var layers = groups.map { (name, desired, revision) in (desired, "@\(name)@\(revision)") }
        if let host { layers.append((host.0, "host@\(host.1)")) }
        var byInterface: [String: L3afBPFPrograms] = [:]
        var pins: [String: String] = [:]
        var watch: Double?
        for (desired, _) in layers {
            for payload in desired.programs {
                var merged = byInterface[payload.iface] ?? L3afBPFPrograms(hostName: "", iface: payload.iface)
                if !payload.ipv4Address.isEmpty { merged.ipv4Address = payload.ipv4Address }
                for hook in Hook.allCases {
                    for entry in payload.bpfPrograms[hook] {
                        if let at = merged.bpfPrograms[hook].firstIndex(where: { $0.name == entry.name }) {
                            merged.bpfPrograms[hook][at] = entry
                        } else {
                            merged.bpfPrograms[hook].append(entry)
                        }
                    }
                }
                for entry in payload.bpfPrograms.probes {
                    merged.bpfPrograms.probes.removeAll { $0.name == entry.name }
                    merged.bpfPrograms.probes.append(entry)
                }
                byInterface[payload.iface] = merged
            }
            pins.merge(desired.pins) { _, later in later }
            if let seconds = desired.watchSeconds { watch = seconds }
        }
        let rollout = host?.0.rollout
        // Pins and rollout steps name exact versions (`=1.2.3`; a bare `1.2.3` would mean `^1.2.3`).
        func version(of name: String, _ current: String) -> String {
            if let pinned = pins[name] { return "=\(pinned)" }
            if let rollout, rollout.package == name { return "=\(rollout.version)" }
            return current
        }
        var payloads = byInterface.values.sorted { $0.iface < $1.iface }
        for i in payloads.indices {
            payloads[i].updateEveryProgram { $0.version = version(of: $0.name, $0.version) }
        }
        if let rollout, pins[rollout.package] == nil { watch = max(watch ?? 0, rollout.watchSeconds) }
        return FleetEffective(payloads: payloads, watchSeconds: watch, rollout: rollout, sources: layers.map(\.1), configured: !layers.isEmpty)
    }

    /// Whether a host running `running` (version by `iface/hook/name`) runs what this asks for: the same programs,
    /// each at a version its requirement admits (a dist-tag is taken as met: only the registry knows what it means).
    public func isMet(by running: [String: String]) -> Bool {
        let wanted = versions
        guard Set(wanted.keys) == Set(running.keys) else { return false }
        return wanted.allSatisfy { key, requirement in Self.admits(requirement, running[key] ?? "") }
    }

    /// Whether `version` meets `requirement`.
    public static func admits(_ requirement: String, _ version: String) -> Bool {
        guard let parsed = try? VersionRequirement(parsing: requirement), let exact = try? SemanticVersion(parsing: version) else { return requirement == version }
        if case .tag = parsed { return true }
        return parsed.isSatisfied(by: exact)
    }

    /// The version each program runs, by `iface/hook/name` (`iface/probes/name` for a probe).
    public var versions: [String: String] {
        var versions: [String: String] = [:]
        for payload in payloads {
            for (slot, program) in payload.everyProgram { versions["\(payload.iface)/\(slot)/\(program.name)"] = program.version }
        }
        return versions
    }
}

/// What a host reports under its lease.
public struct FleetStatus: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        /// Runs what etcd says.
        case inSync = "in-sync"
        /// Applying a change.
        case applying
        /// Watching a change's health.
        case watching
        /// The last change failed its health watch and was rolled back; it waits for the next change.
        case rolledBack = "rolled-back"
        /// The last change could not be applied; it runs what it ran before and tries again later.
        case failed
        /// No document names this host or its groups: the fleet leaves it alone.
        case unmanaged
    }

    public var host: String
    public var groups: [String]
    public var state: State
    /// The etcd revision of the desired state it last applied (or tried to).
    public var revision: Int64
    /// ``FleetEffective/fingerprint`` of what it runs.
    public var fingerprint: String?
    /// The documents that made it (`@group@rev`, `host@rev`).
    public var sources: [String]
    /// Version per `iface/hook/name`, the fleet's interface names.
    public var versions: [String: String]
    /// The rollout step it last took and how it ended (`watching`, `healthy`, `rolled-back: why`, `failed: why`).
    public var rollout: RolloutReport?
    /// The host's own revision number (state.db) it runs.
    public var hostRevision: Int?
    public var lastError: String?
    /// The l3afd release.
    public var version: String
    public var updatedAt: String

    public struct RolloutReport: Codable, Sendable, Equatable {
        public var id: String
        public var package: String
        public var version: String
        public var outcome: String

        public init(id: String, package: String, version: String, outcome: String) {
            self.id = id
            self.package = package
            self.version = version
            self.outcome = outcome
        }
    }

    enum CodingKeys: String, CodingKey {
        case host, groups, state, revision, fingerprint, sources, versions, rollout, version
        case hostRevision = "host_revision"
        case lastError = "last_error"
        case updatedAt = "updated_at"
    }

    public init(host: String, groups: [String], state: State, revision: Int64, fingerprint: String?, sources: [String], versions: [String: String],
                rollout: RolloutReport?, hostRevision: Int?, lastError: String?, version: String, updatedAt: String) {
        self.host = host
        self.groups = groups
        self.state = state
        self.revision = revision
        self.fingerprint = fingerprint
        self.sources = sources
        self.versions = versions
        self.rollout = rollout
        self.hostRevision = hostRevision
        self.lastError = lastError
        self.version = version
        self.updatedAt = updatedAt
    }
}

/// The waves of a rollout: `1,10%,50%,100%` over `hosts` (sorted, so a rerun picks the same ones), each wave the hosts
/// that bring the total to its count. A wave that adds nobody is dropped; the last always reaches every host.
public enum RolloutWaves {
    public static func parse(_ text: String) throws(FleetError) -> [String] {
        let parts = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard !parts.isEmpty, parts.count <= 20 else { throw FleetError(.badInput, "--waves '\(text)' needs 1 to 20 waves", hint: "e.g. 1,10%,50%,100%") }
        for part in parts {
            if part.hasSuffix("%") {
                guard let percent = Int(part.dropLast()), (1...100).contains(percent) else {
                    throw FleetError(.badInput, "--waves: '\(part)' is not a percentage from 1% to 100%", hint: "e.g. 1,10%,50%,100%")
                }
            } else {
                guard let count = Int(part), (1...1_000_000).contains(count) else {
                    throw FleetError(.badInput, "--waves: '\(part)' is not a host count or a percentage", hint: "e.g. 1,10%,50%,100%")
                }
            }
        }
        return parts
    }

    public static func split(_ hosts: [FleetName], waves: [String]) -> [[FleetName]] {
        let sorted = hosts.sorted()
        var result: [[FleetName]] = []
        var done = 0
        for (i, wave) in waves.enumerated() {
            var target: Int
            if wave.hasSuffix("%") {
                let percent = Int(wave.dropLast()) ?? 100
                target = (sorted.count * percent + 99) / 100
            } else {
                target = Int(wave) ?? sorted.count
            }
            if i == waves.count - 1 { target = sorted.count }
            target = min(max(target, done), sorted.count)
            if target > done {
                result.append(Array(sorted[done..<target]))
                done = target
            }
        }
        return result
    }
}

extension HostPayload where Element == BPFProgram {
    /// Every program of the payload, each hook's and the probes', with its slot (`xdp_ingress`, …, `probes`).
    var everyProgram: [(slot: String, program: BPFProgram)] {
        Hook.allCases.flatMap { hook in bpfPrograms[hook].map { (hook.rawValue, $0) } } + bpfPrograms.probes.map { ("probes", $0) }
    }

    /// Changes every program of the payload, each hook's and the probes', in place.
    mutating func updateEveryProgram(_ change: (inout BPFProgram) -> Void) {
        for hook in Hook.allCases {
            for j in bpfPrograms[hook].indices { change(&bpfPrograms[hook][j]) }
        }
        for j in bpfPrograms.probes.indices { change(&bpfPrograms.probes[j]) }
    }
}

/// Compact JSON with sorted keys: the fleet's values in etcd.
func fleetJSON(_ value: some Encodable) -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return Array((try? encoder.encode(value)) ?? Data())
}

extension Date {
    /// RFC 3339 in UTC, for the documents' `changed_at` and `updated_at`.
    var fleetTimestamp: String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: self)
    }
}
