import L3AFBPF
import L3AFModel

/// A program as a chain holds it: which package and version it comes from, its manifest entry, the object
/// file on disk, its parameters, and where it goes (`seq_id`: lower runs first).
public struct ChainMember: Hashable, Sendable {
    public var package: String
    public var version: String
    public var program: Manifest.Program
    public var objectPath: String
    public var parameters: [String: String]
    public var seqID: Int
    /// l3afd's `map_args`: integer values written into named maps after the parameters.
    public var mapArguments: [MapArg]

    public init(package: String, version: String, program: Manifest.Program, objectPath: String, parameters: [String: String] = [:], seqID: Int = 0,
                mapArguments: [MapArg] = []) {
        self.package = package
        self.version = version
        self.program = program
        self.objectPath = objectPath
        self.parameters = parameters
        self.seqID = seqID
        self.mapArguments = mapArguments
    }

    /// A short digest of the parameters as given (sorted `name=value` lines), pinned with the program so a later
    /// `apply` can tell whether they changed.
    public var parametersDigest: String {
        var text = parameters.keys.sorted().map { "\($0)=\(parameters[$0]!)\n" }.joined()
        for argument in mapArguments { text += "map \(argument.name): " + argument.args.map { "\($0.key)=\($0.value)" }.joined(separator: ",") + "\n" }
        return String(SHA256Digest(of: Array(text.utf8)).hex.prefix(16))
    }

    /// The map updates the parameters ask for, checked against the manifest: an unknown name, a missing required
    /// value or a bad value is refused here, before anything loads.
    public func parameterWrites() throws(ChainError) -> [MapWrite] {
        let known = Set(program.parameters.map(\.name))
        if let unknown = parameters.keys.sorted().first(where: { !known.contains($0) }) {
            throw ChainError(.badParameter, "\(package)@\(version) has no parameter '\(unknown)'",
                             hint: known.isEmpty ? "it takes no parameters" : "it takes: \(known.sorted().joined(separator: ", "))")
        }
        var writes: [MapWrite] = []
        for parameter in program.parameters {
            guard let text = parameters[parameter.name] ?? parameter.defaultValue else {
                if parameter.required {
                    throw ChainError(.badParameter, "\(package)@\(version) needs a value for '\(parameter.name)'", hint: "pass \(parameter.name)=VALUE")
                }
                continue
            }
            let values: [ParameterValue]
            do { values = try parameter.parse(text) } catch {
                throw ChainError(.badParameter, "\(package)@\(version): \(error.description)", hint: error.hint)
            }
            switch parameter.destination {
            case .config(let map, let key): writes.append(MapWrite(map: map, entries: values.map { (key.bytes, $0.bytes) }))
            case .set(let map): writes.append(MapWrite(map: map, entries: values.map { ($0.bytes, [1]) }))
            }
        }
        for argument in mapArguments where !argument.args.isEmpty {
            func littleEndian(_ value: Int) -> [UInt8] { withUnsafeBytes(of: Int64(value).littleEndian) { Array($0) } }
            writes.append(MapWrite(map: argument.name, entries: argument.args.map { (littleEndian($0.key), littleEndian($0.value)) }))
        }
        return writes
    }
}

/// Entries to write into one map of a loaded program: a parameter's value, or the elements of a set.
public struct MapWrite: Sendable {
    public let map: String
    public let entries: [(key: [UInt8], value: [UInt8])]

    /// Writes the entries into `loaded`'s map, keys and values fitted to the map's sizes (zero-padded, or cut: they
    /// are little-endian integers or exactly sized already).
    public func apply(to loaded: LoadedProgram) throws(BPFError) {
        let access = try loaded.map(map)
        let info = loaded.maps[map]!.info
        func fit(_ bytes: [UInt8], _ size: UInt32) -> [UInt8] {
            Array(bytes.prefix(Int(size))) + [UInt8](repeating: 0, count: max(0, Int(size) - bytes.count))
        }
        for (key, value) in entries {
            try access.update(key: fit(key, info.keySize), value: fit(value, info.valueSize))
        }
    }
}

/// A member found in a chain on the kernel side: what it is and the kernel id of its program.
public struct ChainEntry: Hashable, Sendable {
    public let package: String
    public let version: String
    public let seqID: Int
    public let programID: UInt32
    /// `ChainMember.parametersDigest` of the parameters it was loaded with.
    public let parametersDigest: String

    public init(package: String, version: String, seqID: Int, programID: UInt32, parametersDigest: String = "") {
        self.package = package
        self.version = version
        self.seqID = seqID
        self.programID = programID
        self.parametersDigest = parametersDigest
    }
}

/// A chain change that could not be made; the chain is as it was.
public struct ChainError: L3AFError {
    public enum Kind: String, Sendable {
        case badParameter = "bad-parameter", load = "load-failed", notInChain = "not-in-chain", alreadyInChain = "already-in-chain"
        case tooLong = "chain-too-long", inconsistent = "inconsistent-pins", kernel = "kernel-call-failed", wrongHook = "wrong-hook"
        case unknownInterface = "unknown-interface"
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
