import Foundation

/// l3afd's `L3afBPFPrograms`: the programs one host should run on one interface. The add and update
/// routes take an array of them.
public typealias L3afBPFPrograms = HostPayload<BPFProgram>

/// l3afd's `L3afBPFProgramNames`: which programs to remove from one interface (the delete route).
public typealias L3afBPFProgramNames = HostPayload<String>

/// The shape l3afd's two payloads share: a host, an interface, and per hook a list of programs (full
/// descriptions for add/update, names for delete). As in l3afd, missing fields and `null` lists decode
/// as empty, and unknown fields are ignored.
public struct HostPayload<Element: Codable & Hashable & Sendable>: Hashable, Sendable, Codable {
    public var hostName: String
    public var iface: String
    public var ipv4Address: String
    public var bpfPrograms: HookLists<Element>

    public init(hostName: String, iface: String, ipv4Address: String = "", bpfPrograms: HookLists<Element> = HookLists()) {
        self.hostName = hostName
        self.iface = iface
        self.ipv4Address = ipv4Address
        self.bpfPrograms = bpfPrograms
    }

    enum CodingKeys: String, CodingKey {
        case hostName = "host_name"
        case iface
        case ipv4Address = "ipv4_address"
        case bpfPrograms = "bpf_programs"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        hostName = try c.decodeIfPresent(String.self, forKey: .hostName) ?? ""
        iface = try c.decodeIfPresent(String.self, forKey: .iface) ?? ""
        ipv4Address = try c.decodeIfPresent(String.self, forKey: .ipv4Address) ?? ""
        bpfPrograms = try c.decodeIfPresent(HookLists<Element>.self, forKey: .bpfPrograms) ?? HookLists()
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(hostName, forKey: .hostName)
        try c.encode(iface, forKey: .iface)
        if !ipv4Address.isEmpty { try c.encode(ipv4Address, forKey: .ipv4Address) }
        try c.encode(bpfPrograms, forKey: .bpfPrograms)
    }
}

/// Per hook (`xdp_ingress`, `tc_ingress`, `tc_egress`) and `probes`, a list of elements.
public struct HookLists<Element: Codable & Hashable & Sendable>: Hashable, Sendable, Codable {
    public var xdpIngress: [Element]
    public var tcIngress: [Element]
    public var tcEgress: [Element]
    public var probes: [Element]

    public init(xdpIngress: [Element] = [], tcIngress: [Element] = [], tcEgress: [Element] = [], probes: [Element] = []) {
        self.xdpIngress = xdpIngress
        self.tcIngress = tcIngress
        self.tcEgress = tcEgress
        self.probes = probes
    }

    /// The list for `hook`.
    public subscript(hook: Hook) -> [Element] {
        get {
            switch hook {
            case .xdpIngress: xdpIngress
            case .tcIngress: tcIngress
            case .tcEgress: tcEgress
            }
        }
        set {
            switch hook {
            case .xdpIngress: xdpIngress = newValue
            case .tcIngress: tcIngress = newValue
            case .tcEgress: tcEgress = newValue
            }
        }
    }

    enum CodingKeys: String, CodingKey {
        case xdpIngress = "xdp_ingress"
        case tcIngress = "tc_ingress"
        case tcEgress = "tc_egress"
        case probes
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        xdpIngress = try c.decodeIfPresent([Element].self, forKey: .xdpIngress) ?? []
        tcIngress = try c.decodeIfPresent([Element].self, forKey: .tcIngress) ?? []
        tcEgress = try c.decodeIfPresent([Element].self, forKey: .tcEgress) ?? []
        probes = try c.decodeIfPresent([Element].self, forKey: .probes) ?? []
    }

    /// An empty list is written `null`, as l3afd's Go encoder writes a nil slice (and reads back as empty).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        for (list, key) in [(xdpIngress, CodingKeys.xdpIngress), (tcIngress, .tcIngress), (tcEgress, .tcEgress), (probes, .probes)] {
            if list.isEmpty { try c.encodeNil(forKey: key) } else { try c.encode(list, forKey: key) }
        }
    }
}

extension HostPayload where Element == BPFProgram {
    /// What is wrong with the payload beyond its shape, each with the field's path: an empty
    /// interface, a program without a name, a duplicate name or `seq_id` in a chain, a negative
    /// `seq_id`, an unknown `admin_status`, a `prog_type` that doesn't fit its hook.
    public func problems(at prefix: String = "") -> [PayloadProblem] {
        var problems: [PayloadProblem] = []
        if iface.isEmpty { problems.append(PayloadProblem(path: prefix + "iface", message: "is empty")) }
        for hook in Hook.allCases {
            var names = Set<String>()
            var seqIDs: [Int: String] = [:]
            for (index, program) in bpfPrograms[hook].enumerated() {
                let path = "\(prefix)bpf_programs.\(hook.rawValue)[\(index)]"
                if program.name.isEmpty {
                    problems.append(PayloadProblem(path: path + ".name", message: "is empty"))
                } else if !names.insert(program.name).inserted {
                    problems.append(PayloadProblem(path: path + ".name", message: "'\(program.name)' appears twice in \(hook.rawValue)"))
                }
                if program.seqID < 0 {
                    problems.append(PayloadProblem(path: path + ".seq_id", message: "is \(program.seqID); it must be 0 or more"))
                } else if let other = seqIDs[program.seqID] {
                    problems.append(PayloadProblem(
                        path: path + ".seq_id", message: "\(program.seqID) is also the seq_id of '\(other)' in \(hook.rawValue)"))
                } else {
                    seqIDs[program.seqID] = program.name
                }
                if !["", "enabled", "disabled"].contains(program.adminStatus.lowercased()) {
                    problems.append(PayloadProblem(
                        path: path + ".admin_status", message: "'\(program.adminStatus)' is neither 'enabled' nor 'disabled'"))
                }
                if !program.progType.isEmpty, program.progType.lowercased() != hook.programType {
                    problems.append(PayloadProblem(
                        path: path + ".prog_type",
                        message: "'\(program.progType)' does not fit \(hook.rawValue) (expected '\(hook.programType)')"))
                }
                problems += program.pathProblems(at: path)
            }
        }
        for hook in Hook.allCases {
            for (index, program) in bpfPrograms[hook].enumerated() where program.seqID > BPFProgram.maximumSeqID {
                problems.append(PayloadProblem(
                    path: "\(prefix)bpf_programs.\(hook.rawValue)[\(index)].seq_id",
                    message: "is \(program.seqID); it must be at most \(BPFProgram.maximumSeqID)"))
            }
        }
        if !iface.isEmpty, let problem = FileName.problem(in: iface) ?? (iface.utf8.count > 15 ? "it is longer than an interface name can be (15)" : nil) {
            problems.append(PayloadProblem(path: prefix + "iface", message: "'\(iface)' is not an interface name: \(problem)"))
        }
        return problems
    }
}

extension BPFProgram {
    /// The largest `seq_id` accepted: room to count past it (`seq_id + 10`) without overflow, and more positions
    /// than any chain has.
    public static let maximumSeqID = 1_000_000_000
    /// `start_args` keys l3afd itself passes to a user program; a payload may not set them.
    public static let reservedArguments: Set<String> = ["iface", "direction", "map-name", "map_name", "version", "log-dir", "rules-file"]
    /// The protocols an `ebpf_package_repo_url` may use.
    public static let repositorySchemes: Set<String> = ["file", "http", "https"]

    /// Fields that become paths or argv, each checked as what it may be: a plain name (artifact, version,
    /// commands, map names, rules file) or a relative path that stays in the artifact's folder (`object_file`).
    /// `start_args` keys must be plain option names, and not the ones l3afd passes itself.
    public func pathProblems(at path: String) -> [PayloadProblem] {
        var problems: [PayloadProblem] = []
        func plain(_ field: String, _ value: String) {
            guard !value.isEmpty, let problem = FileName.problem(in: value) else { return }
            problems.append(PayloadProblem(path: "\(path).\(field)", message: "'\(Self.shown(value))' is not a plain file name: \(problem)"))
        }
        if !name.isEmpty, let problem = FileName.problem(in: name) {
            problems.append(PayloadProblem(path: "\(path).name", message: "'\(Self.shown(name))' is not a plain name: \(problem)"))
        }
        plain("artifact", artifact)
        plain("version", version)
        plain("map_name", mapName)
        plain("rules_file", rulesFile)
        for (field, command) in [("cmd_start", cmdStart), ("cmd_stop", cmdStop), ("cmd_status", cmdStatus), ("cmd_config", cmdConfig), ("cmd_update", cmdUpdate)] {
            plain(field, command.trimmingCharacters(in: .whitespaces))
        }
        if !objectFile.isEmpty {
            do { _ = try RelativePath(objectFile, field: "\(path).object_file") } catch {
                problems.append(PayloadProblem(path: "\(path).object_file", message: "'\(Self.shown(objectFile))' is not a path inside the artifact: \(error.problem)"))
            }
        }
        for (index, monitor) in monitorMaps.enumerated() { plain("monitor_maps[\(index)].name", monitor.name) }
        for (index, argument) in mapArgs.enumerated() {
            if argument.name.isEmpty {
                problems.append(PayloadProblem(path: "\(path).map_args[\(index)].name", message: "is empty"))
            } else {
                plain("map_args[\(index)].name", argument.name)
            }
        }
        for (field, arguments) in [("start_args", startArgs), ("stop_args", stopArgs), ("status_args", statusArgs), ("update_args", updateArgs)] {
            for key in arguments.keys.sorted() {
                if !key.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_" })
                    || key.isEmpty || key.hasPrefix("-") || key.utf8.count > 64 {
                    problems.append(PayloadProblem(path: "\(path).\(field).\(Self.shown(key))",
                                                   message: "is not an option name: use 1 to 64 letters, digits, '-' and '_', not starting with '-'"))
                } else if !cmdStart.isEmpty, Self.reservedArguments.contains(key) {
                    problems.append(PayloadProblem(path: "\(path).\(field).\(key)", message: "is passed by l3afd itself and can't be set by a payload"))
                }
            }
        }
        let repository = ebpfPackageRepoURL.trimmingCharacters(in: .whitespaces)
        if !repository.isEmpty {
            if !Self.repositorySchemes.contains(urlScheme(of: repository) ?? "") {
                problems.append(PayloadProblem(path: "\(path).ebpf_package_repo_url", message: "'\(Self.shown(repository))' is not a file, http or https URL"))
            }
        }
        if cpu < 0 { problems.append(PayloadProblem(path: "\(path).cpu", message: "is \(cpu); it must be 0 or more")) }
        if memory < 0 { problems.append(PayloadProblem(path: "\(path).memory", message: "is \(memory); it must be 0 or more")) }
        return problems
    }

    /// A value as it may be shown in a message: control characters escaped, at most 80 characters.
    static func shown(_ value: String) -> String {
        let escaped = value.unicodeScalars.map { $0.escaped(asASCII: false) }.joined()
        return escaped.count > 80 ? String(escaped.prefix(80)) + "…" : escaped
    }
}

/// A semantic problem in a payload, at a field path.
public struct PayloadProblem: Hashable, Sendable, CustomStringConvertible {
    public let path: String
    public let message: String

    public var description: String { "\(path) \(message)" }
}
