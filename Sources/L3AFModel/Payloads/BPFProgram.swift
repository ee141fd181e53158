/// l3afd's `BPFProgram`: one program of a chain as l3afd's REST API and its users describe it.
///
/// Field names on the wire are l3afd's exactly. As in l3afd (Go), a missing field decodes to its zero
/// value; unknown fields are ignored; a field of the wrong type is an error naming its path.
public struct BPFProgram: Hashable, Sendable, Codable {
    public var id: Int = 0
    public var name: String = ""
    public var seqID: Int = 0
    public var artifact: String = ""
    public var mapName: String = ""
    public var cmdStart: String = ""
    public var cmdStop: String = ""
    public var cmdStatus: String = ""
    public var cmdConfig: String = ""
    public var cmdUpdate: String = ""
    public var version: String = ""
    public var userProgramDaemon: Bool = false
    public var isPlugin: Bool = false
    public var cpu: Int = 0
    public var memory: Int = 0
    public var adminStatus: String = ""
    public var progType: String = ""
    public var rulesFile: String = ""
    public var rules: String = ""
    public var configFilePath: String = ""
    public var cfgVersion: Int = 0
    public var startArgs: [String: JSONValue] = [:]
    public var stopArgs: [String: JSONValue] = [:]
    public var statusArgs: [String: JSONValue] = [:]
    public var updateArgs: [String: JSONValue] = [:]
    public var mapArgs: [MapArg] = []
    public var configArgs: [String: JSONValue] = [:]
    public var monitorMaps: [MonitorMap] = []
    public var ebpfPackageRepoURL: String = ""
    public var objectFile: String = ""
    public var entryFunctionName: String = ""

    public init(name: String, seqID: Int = 0) {
        self.name = name
        self.seqID = seqID
    }

    /// Whether l3afd would run it: `admin_status` is `enabled` (l3afd treats anything else as disabled).
    public var isEnabled: Bool { adminStatus.lowercased() == "enabled" }

    /// `start_args` as `key=value` parameter text, scalars only, sorted by key.
    public var startParameters: [(name: String, value: String)] { Self.parameters(startArgs) }

    /// `args` (`start_args`, `stop_args`…) as `key=value` parameter text, scalars only, sorted by key.
    public static func parameters(_ args: [String: JSONValue]) -> [(name: String, value: String)] {
        args.keys.sorted().compactMap { key in args[key]!.scalarText.map { (key, $0) } }
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, name
        case seqID = "seq_id"
        case artifact
        case mapName = "map_name"
        case cmdStart = "cmd_start"
        case cmdStop = "cmd_stop"
        case cmdStatus = "cmd_status"
        case cmdConfig = "cmd_config"
        case cmdUpdate = "cmd_update"
        case version
        case userProgramDaemon = "user_program_daemon"
        case isPlugin = "is_plugin"
        case cpu, memory
        case adminStatus = "admin_status"
        case progType = "prog_type"
        case rulesFile = "rules_file"
        case rules
        case configFilePath = "config_file_path"
        case cfgVersion = "cfg_version"
        case startArgs = "start_args"
        case stopArgs = "stop_args"
        case statusArgs = "status_args"
        case updateArgs = "update_args"
        case mapArgs = "map_args"
        case configArgs = "config_args"
        case monitorMaps = "monitor_maps"
        case ebpfPackageRepoURL = "ebpf_package_repo_url"
        case objectFile = "object_file"
        case entryFunctionName = "entry_function_name"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func value<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T {
            try c.decodeIfPresent(T.self, forKey: key) ?? fallback
        }
        id = try value(.id, 0)
        name = try value(.name, "")
        seqID = try value(.seqID, 0)
        artifact = try value(.artifact, "")
        mapName = try value(.mapName, "")
        cmdStart = try value(.cmdStart, "")
        cmdStop = try value(.cmdStop, "")
        cmdStatus = try value(.cmdStatus, "")
        cmdConfig = try value(.cmdConfig, "")
        cmdUpdate = try value(.cmdUpdate, "")
        version = try value(.version, "")
        userProgramDaemon = try value(.userProgramDaemon, false)
        isPlugin = try value(.isPlugin, false)
        cpu = try value(.cpu, 0)
        memory = try value(.memory, 0)
        adminStatus = try value(.adminStatus, "")
        progType = try value(.progType, "")
        rulesFile = try value(.rulesFile, "")
        rules = try value(.rules, "")
        configFilePath = try value(.configFilePath, "")
        cfgVersion = try value(.cfgVersion, 0)
        startArgs = try value(.startArgs, [:])
        stopArgs = try value(.stopArgs, [:])
        statusArgs = try value(.statusArgs, [:])
        updateArgs = try value(.updateArgs, [:])
        mapArgs = try value(.mapArgs, MapArgList(items: [])).items
        configArgs = try value(.configArgs, [:])
        monitorMaps = try value(.monitorMaps, [])
        ebpfPackageRepoURL = try value(.ebpfPackageRepoURL, "")
        objectFile = try value(.objectFile, "")
        entryFunctionName = try value(.entryFunctionName, "")
    }
}

/// One entry of `map_args`: values to write into a BPF map.
///
/// Current l3afd sends `[{"name": map, "args": [{"key": k, "value": v}]}]`; older releases sent an
/// object `{map: value}`. Both decode; the older form keeps its value in ``legacyValue``.
public struct MapArg: Hashable, Sendable, Codable {
    public struct KeyValue: Hashable, Sendable, Codable {
        public var key: Int
        public var value: Int

        public init(key: Int, value: Int) {
            self.key = key
            self.value = value
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            key = try c.decodeIfPresent(Int.self, forKey: .key) ?? 0
            value = try c.decodeIfPresent(Int.self, forKey: .value) ?? 0
        }
    }

    public var name: String
    public var args: [KeyValue]
    /// The value of an older, object-form `map_args` entry.
    public var legacyValue: JSONValue?

    public init(name: String, args: [KeyValue] = [], legacyValue: JSONValue? = nil) {
        self.name = name
        self.args = args
        self.legacyValue = legacyValue
    }

    enum CodingKeys: String, CodingKey {
        case name, args
        case legacyValue = "value"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name) ?? ""
        args = try c.decodeIfPresent([KeyValue].self, forKey: .args) ?? []
        legacyValue = try c.decodeIfPresent(JSONValue.self, forKey: .legacyValue)
    }
}

/// `map_args` in either of its wire forms.
struct MapArgList: Decodable {
    let items: [MapArg]

    init(items: [MapArg]) { self.items = items }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let list = try? container.decode([MapArg].self) {
            items = list
        } else if let object = try? container.decode([String: JSONValue].self) {
            items = object.keys.sorted().map { MapArg(name: $0, legacyValue: object[$0]) }
        } else {
            // Decode once more as a list so the error names the element and field at fault.
            items = try container.decode([MapArg].self)
        }
    }
}

/// The scheme of a URL from outside (`https` of `https://repo/x`), lowercased; `nil` when it has no `scheme://`.
public func urlScheme(of url: String) -> String? {
    guard let separator = url.range(of: "://") else { return nil }
    let scheme = url[..<separator.lowerBound]
    guard let first = scheme.unicodeScalars.first, ("a"..."z").contains(first) || ("A"..."Z").contains(first) else { return nil }
    return scheme.lowercased()
}
