/// A setting of a program, written into one of its maps before it joins a chain, so that no
/// user-space loader is needed.
///
/// A *scalar* parameter is one typed value at `key` of `config_map` (an array map); a *set*
/// parameter is a comma-separated list whose elements become the keys of `set_map` (a hash map,
/// value 1).
public struct Parameter: Hashable, Sendable, Codable {
    /// Where the value is written.
    public enum Destination: Hashable, Sendable {
        case config(map: String, key: UInt32)
        case set(map: String)

        /// The map written to.
        public var map: String {
            switch self {
            case .config(let map, _), .set(let map): map
            }
        }
    }

    public var name: String
    public var type: ParameterType
    public var destination: Destination
    /// The value used when none is given, as text in the parameter's syntax.
    public var defaultValue: String?
    /// Whether installing without a value (and without a default) is refused.
    public var required: Bool
    public var description: String

    public init(
        name: String, type: ParameterType, destination: Destination, defaultValue: String? = nil,
        required: Bool = false, description: String = ""
    ) {
        self.name = name
        self.type = type
        self.destination = destination
        self.defaultValue = defaultValue
        self.required = required
        self.description = description
    }

    /// Whether the parameter takes a comma-separated list.
    public var isSet: Bool {
        if case .set = destination { return true }
        return false
    }

    /// Parses a value given for this parameter: one value, or for a set each comma-separated element
    /// (duplicates folded). An empty set is allowed and clears the map.
    public func parse(_ text: String) throws(ParameterError) -> [ParameterValue] {
        if !isSet {
            do {
                return [try type.parse(text.trimmingASCIISpaces())]
            } catch {
                throw ParameterError(parameter: name, value: text, problem: error.problem)
            }
        }
        var values: [ParameterValue] = []
        for element in text.split(separator: ",", omittingEmptySubsequences: false) {
            let trimmed = element.trimmingASCIISpaces()
            if trimmed.isEmpty {
                if text.trimmingASCIISpaces().isEmpty { break }
                throw ParameterError(parameter: name, value: text, problem: "it has an empty element between commas")
            }
            do {
                let value = try type.parse(trimmed)
                if !values.contains(value) { values.append(value) }
            } catch {
                throw ParameterError(parameter: name, value: text, problem: "element '\(trimmed)': \(error.problem)")
            }
        }
        return values
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, type
        case configMap = "config_map"
        case key
        case setMap = "set_map"
        case defaultValue = "default"
        case required, description
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        guard Identifier.isValid(name) else {
            throw DecodingError.dataCorruptedError(
                forKey: .name, in: c, debugDescription: "'\(name)' is not a valid parameter name ([A-Za-z_][A-Za-z0-9_]*)")
        }
        type = try c.decode(ParameterType.self, forKey: .type)
        let configMap = try c.decodeIfPresent(String.self, forKey: .configMap)
        let setMap = try c.decodeIfPresent(String.self, forKey: .setMap)
        switch (configMap, setMap) {
        case (let map?, nil):
            guard Identifier.isValid(map) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .configMap, in: c, debugDescription: "'\(map)' is not a valid map name")
            }
            destination = .config(map: map, key: try c.decodeIfPresent(UInt32.self, forKey: .key) ?? 0)
        case (nil, let map?):
            guard Identifier.isValid(map) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .setMap, in: c, debugDescription: "'\(map)' is not a valid map name")
            }
            if c.contains(.key) {
                throw DecodingError.dataCorruptedError(
                    forKey: .key, in: c, debugDescription: "a set parameter has no key: its elements are the keys")
            }
            destination = .set(map: map)
        default:
            throw DecodingError.dataCorruptedError(
                forKey: .configMap, in: c,
                debugDescription: "parameter '\(name)' needs exactly one of config_map (with key) or set_map")
        }
        defaultValue = try c.decodeIfPresent(String.self, forKey: .defaultValue)
        required = try c.decodeIfPresent(Bool.self, forKey: .required) ?? false
        description = try c.decodeIfPresent(String.self, forKey: .description) ?? ""
        if let defaultValue {
            do {
                _ = try parse(defaultValue)
            } catch {
                throw DecodingError.dataCorruptedError(forKey: .defaultValue, in: c, debugDescription: error.description)
            }
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(type, forKey: .type)
        switch destination {
        case .config(let map, let key):
            try c.encode(map, forKey: .configMap)
            try c.encode(key, forKey: .key)
        case .set(let map):
            try c.encode(map, forKey: .setMap)
        }
        try c.encodeIfPresent(defaultValue, forKey: .defaultValue)
        if required { try c.encode(required, forKey: .required) }
        if !description.isEmpty { try c.encode(description, forKey: .description) }
    }
}

/// The type of a parameter value, which fixes its text syntax and its bytes in the map.
public enum ParameterType: String, Hashable, Sendable, Codable, CaseIterable {
    case u8, u16, u32, u64, bool, port, ipv4, ipv6
    /// An IPv4 network `10.0.0.0/8`, as an LPM-trie key.
    case ipv4Prefix = "ipv4_prefix"
    /// An IPv6 network `2001:db8::/32`, as an LPM-trie key.
    case ipv6Prefix = "ipv6_prefix"

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let value = ParameterType(rawValue: text) else {
            throw DecodingError.dataCorruptedError(
                in: container,
                debugDescription: "'\(text)' is not a parameter type; use one of \(Self.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self = value
    }

    struct Problem: Error { let problem: String }

    func parse(_ text: String) throws(Problem) -> ParameterValue {
        func unsigned(_ bits: Int) throws(Problem) -> UInt64 {
            let max: UInt64 = bits == 64 ? .max : (1 << UInt64(bits)) - 1
            guard !text.isEmpty, text.allSatisfy(\.isASCIIDigit), let n = UInt64(text), n <= max else {
                throw Problem(problem: "'\(text)' is not an unsigned \(bits)-bit integer (0 to \(max))")
            }
            return n
        }
        switch self {
        case .u8: return .unsigned(try unsigned(8), bytes: 1)
        case .u16: return .unsigned(try unsigned(16), bytes: 2)
        case .u32: return .unsigned(try unsigned(32), bytes: 4)
        case .u64: return .unsigned(try unsigned(64), bytes: 8)
        case .port:
            guard let n = UInt16(text), text.allSatisfy(\.isASCIIDigit), n > 0 else {
                throw Problem(problem: "'\(text)' is not a port (1 to 65535)")
            }
            return .unsigned(UInt64(n), bytes: 2)
        case .bool:
            switch text.lowercased() {
            case "true", "1", "yes", "on": return .bool(true)
            case "false", "0", "no", "off": return .bool(false)
            default: throw Problem(problem: "'\(text)' is not a boolean (true or false)")
            }
        case .ipv4:
            guard let bytes = IPAddressText.ipv4(text) else {
                throw Problem(problem: "'\(text)' is not an IPv4 address (a.b.c.d)")
            }
            return .address(bytes)
        case .ipv6:
            guard let bytes = IPAddressText.ipv6(text) else {
                throw Problem(problem: "'\(text)' is not an IPv6 address")
            }
            return .address(bytes)
        case .ipv4Prefix, .ipv6Prefix:
            let isV4 = self == .ipv4Prefix
            let family = isV4 ? "IPv4" : "IPv6"
            let maxLength = isV4 ? 32 : 128
            let parts = text.split(separator: "/", omittingEmptySubsequences: false)
            let address = parts.first.flatMap { isV4 ? IPAddressText.ipv4(String($0)) : IPAddressText.ipv6(String($0)) }
            let length: Int? =
                parts.count == 1 ? maxLength : (parts.count == 2 && parts[1].allSatisfy(\.isASCIIDigit) ? Int(parts[1]) : nil)
            guard let address, let length, length <= maxLength else {
                throw Problem(problem: "'\(text)' is not an \(family) network (address/length, length 0 to \(maxLength))")
            }
            return .prefix(length: UInt32(length), address: IPAddressText.masked(address, to: length))
        }
    }
}

/// A parsed parameter value, ready to be written into a map.
public enum ParameterValue: Hashable, Sendable, CustomStringConvertible {
    /// An unsigned integer stored in `bytes` bytes, host byte order.
    case unsigned(UInt64, bytes: Int)
    case bool(Bool)
    /// An address in network byte order (4 or 16 bytes).
    case address([UInt8])
    /// An LPM-trie key: a 32-bit prefix length in host order, then the masked address.
    case prefix(length: UInt32, address: [UInt8])

    /// The bytes as a BPF map key or value holds them (this machine's byte order where it matters).
    public var bytes: [UInt8] {
        switch self {
        case .unsigned(let n, let count):
            return withUnsafeBytes(of: n.littleEndian) { Array($0.prefix(count)) }.hostOrderFromLittleEndian()
        case .bool(let b): return [b ? 1 : 0]
        case .address(let a): return a
        case .prefix(let length, let address):
            return withUnsafeBytes(of: length) { Array($0) } + address
        }
    }

    public var description: String {
        switch self {
        case .unsigned(let n, _): String(n)
        case .bool(let b): String(b)
        case .address(let a): IPAddressText.format(a)
        case .prefix(let length, let a): "\(IPAddressText.format(a))/\(length)"
        }
    }
}

extension Array where Element == UInt8 {
    /// Little-endian bytes turned into this machine's order.
    fileprivate func hostOrderFromLittleEndian() -> [UInt8] {
        1.littleEndian == 1 ? self : reversed()
    }
}

/// A value refused for a parameter, or a parameter the package doesn't have.
public struct ParameterError: L3AFError, Equatable {
    public let parameter: String
    public let value: String
    public let problem: String

    public var code: String { "invalid-parameter" }
    public var description: String { "parameter \(parameter)=\(value): \(problem)" }
}
