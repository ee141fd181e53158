/// `l3af.json`, inside every package tarball: what the package is and how each of its programs is
/// wired into a chain.
///
/// Decoding checks more than shapes: names and versions follow their rules, every parameter
/// writes to exactly one map, defaults parse as their type, no two programs share a hook, and
/// file names can't climb out of the package folder. Errors name the field's path.
public struct Manifest: Hashable, Sendable, Codable {
    /// The manifest format this code writes and reads.
    public static let formatVersion = 1
    /// The file name inside a package.
    public static let fileName = "l3af.json"

    public var manifestVersion: Int
    public var name: PackageName
    public var version: SemanticVersion
    public var description: String
    public var license: String
    /// The oldest kernel the programs load on, if any.
    public var minKernel: KernelVersion?
    /// The platforms (l3afd's segment, e.g. `focal`) the objects are built for; `nil` means portable
    /// (CO-RE), served for any platform.
    public var platforms: [String]?
    public var programs: [Program]
    /// Tracing programs (kprobe, kretprobe, tracepoint, uprobe, uretprobe) that attach on their own, host-wide, where
    /// their ELF section says; `nil` (left out) when the package has none.
    public var probes: [Probe]?

    public init(
        name: PackageName, version: SemanticVersion, description: String = "", license: String = "",
        minKernel: KernelVersion? = nil, platforms: [String]? = nil, programs: [Program], probes: [Probe]? = nil
    ) {
        self.manifestVersion = Self.formatVersion
        self.name = name
        self.version = version
        self.description = description
        self.license = license
        self.minKernel = minKernel
        self.platforms = platforms
        self.programs = programs
        self.probes = probes
    }

    /// The program this package runs on `hook`, if any.
    public func program(for hook: Hook) -> Program? { programs.first { $0.hook == hook } }

    /// Every parameter of every program, by name.
    public var parameters: [Parameter] { programs.flatMap(\.parameters) }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case manifestVersion = "manifest_version"
        case name, version, description, license
        case minKernel = "min_kernel"
        case platforms, programs, probes
        /// The JSON Schema an editor validates the file with (the registry serves it at `/schemas/manifest.schema.json`):
        /// accepted so that editors can check a manifest as it is written, and not kept.
        case schema = "$schema"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        _ = try c.decodeIfPresent(String.self, forKey: .schema)
        manifestVersion = try c.decodeIfPresent(Int.self, forKey: .manifestVersion) ?? Self.formatVersion
        guard manifestVersion == Self.formatVersion else {
            throw DecodingError.dataCorruptedError(
                forKey: .manifestVersion, in: c,
                debugDescription: "manifest_version \(manifestVersion) is not supported; this l3af reads \(Self.formatVersion)")
        }
        name = try c.decode(PackageName.self, forKey: .name)
        version = try c.decode(SemanticVersion.self, forKey: .version)
        description = try c.decodeIfPresent(String.self, forKey: .description) ?? ""
        license = try c.decodeIfPresent(String.self, forKey: .license) ?? ""
        minKernel = try c.decodeIfPresent(KernelVersion.self, forKey: .minKernel)
        platforms = try c.decodeIfPresent([String].self, forKey: .platforms)
        if let platforms, platforms.isEmpty || platforms.contains(where: { !FileName.isPlain($0) }) || Set(platforms).count != platforms.count {
            throw DecodingError.dataCorruptedError(
                forKey: .platforms, in: c,
                debugDescription: "platforms must be a non-empty list of distinct plain names (or left out for a portable package)")
        }
        programs = try c.decodeIfPresent([Program].self, forKey: .programs) ?? []
        probes = try c.decodeIfPresent([Probe].self, forKey: .probes)
        if programs.isEmpty, probes?.isEmpty ?? true {
            throw DecodingError.dataCorruptedError(
                forKey: .programs, in: c, debugDescription: "a package needs at least one program (in programs, or in probes)")
        }
        if let probes, Set(probes.map(\.entryFunction)).count != probes.count {
            throw DecodingError.dataCorruptedError(
                forKey: .probes, in: c, debugDescription: "two probes name the same entry_function; each probe is one function")
        }
        var hooks = Set<Hook>()
        var parameterNames = Set<String>()
        for program in programs {
            if !hooks.insert(program.hook).inserted {
                throw DecodingError.dataCorruptedError(
                    forKey: .programs, in: c,
                    debugDescription: "two programs use the hook \(program.hook.rawValue); a package has one program per hook")
            }
            for parameter in program.parameters where !parameterNames.insert(parameter.name).inserted {
                throw DecodingError.dataCorruptedError(
                    forKey: .programs, in: c,
                    debugDescription: "the parameter '\(parameter.name)' is declared twice; parameter names are unique in a package")
            }
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(manifestVersion, forKey: .manifestVersion)
        try c.encode(name, forKey: .name)
        try c.encode(version, forKey: .version)
        try c.encode(description, forKey: .description)
        try c.encode(license, forKey: .license)
        try c.encodeIfPresent(minKernel, forKey: .minKernel)
        try c.encodeIfPresent(platforms, forKey: .platforms)
        try c.encode(programs, forKey: .programs)
        try c.encodeIfPresent(probes, forKey: .probes)
    }
}

/// Where in the network stack a chain runs.
public enum Hook: String, Hashable, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case xdpIngress = "xdp_ingress"
    case tcIngress = "tc_ingress"
    case tcEgress = "tc_egress"

    public var description: String { rawValue }

    /// l3afd's `prog_type` for this hook.
    public var programType: String { self == .xdpIngress ? "xdp" : "tc" }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let hook = Hook(rawValue: text) else {
            throw DecodingError.dataCorruptedError(
                in: container,
                debugDescription: "'\(text)' is not a hook; use one of \(Hook.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self = hook
    }
}

extension Manifest {
    /// One eBPF program of a package and how it joins a chain.
    public struct Program: Hashable, Sendable, Codable {
        public var hook: Hook
        /// The object file, a plain file name inside the package's artifact folder.
        public var objectFile: String
        /// The function (ELF section symbol) to load.
        public var entryFunction: String
        /// The prog array whose slot 0 holds the next program in the chain.
        public var nextMap: String
        public var parameters: [Parameter]
        public var monitorMaps: [MonitorMap]
        /// Maps whose contents carry over to the new version on upgrade or rollback.
        public var stateMaps: [String]
        /// What a healthy program's maps show; `--watch` rolls a change back when one fails.
        public var health: [HealthRule]

        public init(
            hook: Hook, objectFile: String, entryFunction: String, nextMap: String,
            parameters: [Parameter] = [], monitorMaps: [MonitorMap] = [], stateMaps: [String] = [], health: [HealthRule] = []
        ) {
            self.hook = hook
            self.objectFile = objectFile
            self.entryFunction = entryFunction
            self.nextMap = nextMap
            self.parameters = parameters
            self.monitorMaps = monitorMaps
            self.stateMaps = stateMaps
            self.health = health
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case hook
            case objectFile = "object_file"
            case entryFunction = "entry_function"
            case nextMap = "next_map"
            case parameters
            case monitorMaps = "monitor_maps"
            case stateMaps = "state_maps"
            case health
        }

        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            hook = try c.decode(Hook.self, forKey: .hook)
            objectFile = try ManifestField.objectFile(c, .objectFile)
            entryFunction = try ManifestField.identifier(c, .entryFunction)
            nextMap = try ManifestField.identifier(c, .nextMap)
            parameters = try c.decodeIfPresent([Parameter].self, forKey: .parameters) ?? []
            monitorMaps = try c.decodeIfPresent([MonitorMap].self, forKey: .monitorMaps) ?? []
            stateMaps = try c.decodeIfPresent([String].self, forKey: .stateMaps) ?? []
            for map in stateMaps { try ManifestField.requireIdentifier(map, .stateMaps, in: c) }
            health = try c.decodeIfPresent([HealthRule].self, forKey: .health) ?? []
            if stateMaps.contains(nextMap) {
                throw DecodingError.dataCorruptedError(
                    forKey: .stateMaps, in: c,
                    debugDescription: "the next map '\(nextMap)' can't be a state map: it links the chain")
            }
        }
    }
}

/// Checks shared by a manifest's programs and probes.
enum ManifestField {
    /// A file name inside the package's folder: no '/', no '..', not empty.
    static func objectFile<Key: CodingKey>(_ c: KeyedDecodingContainer<Key>, _ key: Key) throws -> String {
        let name = try c.decode(String.self, forKey: key)
        guard FileName.isPlain(name) else {
            throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "'\(name)' is not a plain file name (no '/', no '..', not empty)")
        }
        return name
    }

    /// A C identifier (a function or map name).
    static func identifier<Key: CodingKey>(_ c: KeyedDecodingContainer<Key>, _ key: Key) throws -> String {
        let name = try c.decode(String.self, forKey: key)
        try requireIdentifier(name, key, in: c)
        return name
    }

    static func requireIdentifier<Key: CodingKey>(_ value: String, _ key: Key, in c: KeyedDecodingContainer<Key>) throws {
        guard Identifier.isValid(value) else {
            throw DecodingError.dataCorruptedError(
                forKey: key, in: c,
                debugDescription: "'\(value)' is not a C identifier of at most 64 characters ([A-Za-z_][A-Za-z0-9_]*)")
        }
    }
}

extension Manifest {
    /// A tracing program of a package: attached on its own (no chain, no interface) where its ELF section says
    /// (`kprobe/<function>`, `kretprobe/<function>`, `tracepoint/<category>/<name>`, `uprobe/…`, `uretprobe/…`).
    public struct Probe: Hashable, Sendable, Codable {
        /// The object file, a plain file name inside the package's artifact folder.
        public var objectFile: String
        /// The function (ELF section symbol) to load and attach.
        public var entryFunction: String
        /// Maps exported as metrics (`l3afd_BPFMonitorMap`) and shown by `l3af status`.
        public var monitorMaps: [MonitorMap]

        public init(objectFile: String, entryFunction: String, monitorMaps: [MonitorMap] = []) {
            self.objectFile = objectFile
            self.entryFunction = entryFunction
            self.monitorMaps = monitorMaps
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case objectFile = "object_file"
            case entryFunction = "entry_function"
            case monitorMaps = "monitor_maps"
        }

        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            objectFile = try ManifestField.objectFile(c, .objectFile)
            entryFunction = try ManifestField.identifier(c, .entryFunction)
            monitorMaps = try c.decodeIfPresent([MonitorMap].self, forKey: .monitorMaps) ?? []
            for monitor in monitorMaps { try ManifestField.requireIdentifier(monitor.name, .monitorMaps, in: c) }
        }
    }
}

/// A condition on a program's maps that holds while it is healthy, checked on each sample during `--watch`: the
/// increase of `map[key]` since the watch began divided by the increase of `per`'s map (`max_ratio`; judged once `per`
/// grew by `min_count`), or its increase per second over the last interval (`max_per_second`), stays at or under the
/// limit. Per-CPU maps are summed over CPUs. A program that is gone from its chain fails every rule.
public struct HealthRule: Hashable, Sendable, Codable {
    public struct MapKey: Hashable, Sendable, Codable {
        public var map: String
        public var key: Int
        public init(map: String, key: Int = 0) {
            self.map = map
            self.key = key
        }
        enum CodingKeys: String, CodingKey, CaseIterable { case map, key }
        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            map = try c.decode(String.self, forKey: .map)
            key = try c.decodeIfPresent(Int.self, forKey: .key) ?? 0
        }
    }

    /// What the rule says, in words, for messages (`"drops stay under half of the limited SYNs"`).
    public var name: String
    public var map: String
    public var key: Int
    public var per: MapKey?
    public var maxRatio: Double?
    public var maxPerSecond: Double?
    public var minCount: UInt64

    public init(name: String, map: String, key: Int = 0, per: MapKey? = nil, maxRatio: Double? = nil, maxPerSecond: Double? = nil, minCount: UInt64 = 1) {
        self.name = name
        self.map = map
        self.key = key
        self.per = per
        self.maxRatio = maxRatio
        self.maxPerSecond = maxPerSecond
        self.minCount = minCount
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, map, key, per
        case maxRatio = "max_ratio"
        case maxPerSecond = "max_per_second"
        case minCount = "min_count"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        map = try c.decode(String.self, forKey: .map)
        key = try c.decodeIfPresent(Int.self, forKey: .key) ?? 0
        per = try c.decodeIfPresent(MapKey.self, forKey: .per)
        maxRatio = try c.decodeIfPresent(Double.self, forKey: .maxRatio)
        maxPerSecond = try c.decodeIfPresent(Double.self, forKey: .maxPerSecond)
        minCount = try c.decodeIfPresent(UInt64.self, forKey: .minCount) ?? 1
        switch (per, maxRatio, maxPerSecond) {
        case (.some, .some, nil), (nil, nil, .some): break
        default:
            throw DecodingError.dataCorruptedError(
                forKey: .maxRatio, in: c,
                debugDescription: "a health rule takes either 'per' with 'max_ratio', or 'max_per_second' alone")
        }
    }

    /// The maps the rule reads.
    public var maps: [String] { [map] + (per.map { [$0.map] } ?? []) }
}

/// A map the runtime exports as a metric: l3afd's `monitor_maps` entry.
public struct MonitorMap: Hashable, Sendable, Codable {
    /// How successive samples of a map value become one metric.
    public enum Aggregator: String, Hashable, Sendable, Codable, CaseIterable {
        /// The value itself.
        case scalar
        /// The largest per-second increase over the recent samples.
        case maxRate = "max-rate"
        /// The mean of the recent samples.
        case avg

        public init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let value = Aggregator(rawValue: text) else {
                throw DecodingError.dataCorruptedError(
                    in: container,
                    debugDescription: "'\(text)' is not an aggregator; use one of \(Self.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            self = value
        }
    }

    public var name: String
    public var key: Int
    public var aggregator: Aggregator

    public init(name: String, key: Int = 0, aggregator: Aggregator = .scalar) {
        self.name = name
        self.key = key
        self.aggregator = aggregator
    }

    enum CodingKeys: String, CodingKey { case name, key, aggregator }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        guard !name.isEmpty else {
            throw DecodingError.dataCorruptedError(forKey: .name, in: c, debugDescription: "the map name is empty")
        }
        key = try c.decodeIfPresent(Int.self, forKey: .key) ?? 0
        aggregator = try c.decodeIfPresent(Aggregator.self, forKey: .aggregator) ?? .scalar
    }
}

enum Identifier {
    /// A C identifier of at most 64 characters.
    static func isValid(_ name: String) -> Bool {
        guard let first = name.first, first.isASCIILetter || first == "_", name.utf8.count <= 64 else { return false }
        return name.allSatisfy { $0.isASCIILetter || $0.isASCIIDigit || $0 == "_" }
    }
}
