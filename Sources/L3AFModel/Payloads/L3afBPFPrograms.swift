/// l3afd's `L3afBPFPrograms`: the programs one host should run on one interface. The add and update
/// routes take an array of them.
public struct L3afBPFPrograms: Hashable, Sendable, Codable {
    public var hostName: String
    public var iface: String
    public var ipv4Address: String
    public var bpfPrograms: Chains

    public init(hostName: String, iface: String, ipv4Address: String = "", bpfPrograms: Chains = Chains()) {
        self.hostName = hostName
        self.iface = iface
        self.ipv4Address = ipv4Address
        self.bpfPrograms = bpfPrograms
    }

    /// The programs per hook (`xdp_ingress`, `tc_ingress`, `tc_egress`) and `probes`.
    public struct Chains: Hashable, Sendable, Codable {
        public var xdpIngress: [BPFProgram]
        public var tcIngress: [BPFProgram]
        public var tcEgress: [BPFProgram]
        public var probes: [BPFProgram]

        public init(
            xdpIngress: [BPFProgram] = [], tcIngress: [BPFProgram] = [], tcEgress: [BPFProgram] = [],
            probes: [BPFProgram] = []
        ) {
            self.xdpIngress = xdpIngress
            self.tcIngress = tcIngress
            self.tcEgress = tcEgress
            self.probes = probes
        }

        /// The programs for `hook`.
        public subscript(hook: Hook) -> [BPFProgram] {
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
            xdpIngress = try c.decodeIfPresent([BPFProgram].self, forKey: .xdpIngress) ?? []
            tcIngress = try c.decodeIfPresent([BPFProgram].self, forKey: .tcIngress) ?? []
            tcEgress = try c.decodeIfPresent([BPFProgram].self, forKey: .tcEgress) ?? []
            probes = try c.decodeIfPresent([BPFProgram].self, forKey: .probes) ?? []
        }
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
        bpfPrograms = try c.decodeIfPresent(Chains.self, forKey: .bpfPrograms) ?? Chains()
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(hostName, forKey: .hostName)
        try c.encode(iface, forKey: .iface)
        if !ipv4Address.isEmpty { try c.encode(ipv4Address, forKey: .ipv4Address) }
        try c.encode(bpfPrograms, forKey: .bpfPrograms)
    }

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

/// l3afd's `L3afBPFProgramNames`: which programs to remove from one interface (the delete route).
public struct L3afBPFProgramNames: Hashable, Sendable, Codable {
    public var hostName: String
    public var iface: String
    public var ipv4Address: String
    public var bpfPrograms: Names

    /// Program names per hook.
    public struct Names: Hashable, Sendable, Codable {
        public var xdpIngress: [String]
        public var tcIngress: [String]
        public var tcEgress: [String]
        public var probes: [String]

        public init(xdpIngress: [String] = [], tcIngress: [String] = [], tcEgress: [String] = [], probes: [String] = []) {
            self.xdpIngress = xdpIngress
            self.tcIngress = tcIngress
            self.tcEgress = tcEgress
            self.probes = probes
        }

        /// The names for `hook`.
        public subscript(hook: Hook) -> [String] {
            switch hook {
            case .xdpIngress: xdpIngress
            case .tcIngress: tcIngress
            case .tcEgress: tcEgress
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
            xdpIngress = try c.decodeIfPresent([String].self, forKey: .xdpIngress) ?? []
            tcIngress = try c.decodeIfPresent([String].self, forKey: .tcIngress) ?? []
            tcEgress = try c.decodeIfPresent([String].self, forKey: .tcEgress) ?? []
            probes = try c.decodeIfPresent([String].self, forKey: .probes) ?? []
        }
    }

    public init(hostName: String, iface: String, ipv4Address: String = "", bpfPrograms: Names = Names()) {
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
        bpfPrograms = try c.decodeIfPresent(Names.self, forKey: .bpfPrograms) ?? Names()
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(hostName, forKey: .hostName)
        try c.encode(iface, forKey: .iface)
        if !ipv4Address.isEmpty { try c.encode(ipv4Address, forKey: .ipv4Address) }
        try c.encode(bpfPrograms, forKey: .bpfPrograms)
    }
}

/// A semantic problem in a payload, at a field path.
public struct PayloadProblem: Hashable, Sendable, CustomStringConvertible {
    public let path: String
    public let message: String

    public var description: String { "\(path) \(message)" }
}
