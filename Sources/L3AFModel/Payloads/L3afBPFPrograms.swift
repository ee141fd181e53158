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
            }
        }
        return problems
    }
}

/// A semantic problem in a payload, at a field path.
public struct PayloadProblem: Hashable, Sendable, CustomStringConvertible {
    public let path: String
    public let message: String

    public var description: String { "\(path) \(message)" }
}
