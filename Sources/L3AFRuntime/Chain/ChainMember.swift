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
    /// Set when the program is loaded by its user program rather than from `objectPath` (an l3afd `cmd_start` without an
    /// `object_file`).
    public var selfLoad: SelfLoad?

    public init(package: String, version: String, program: Manifest.Program, objectPath: String, parameters: [String: String] = [:], seqID: Int = 0,
                mapArguments: [MapArg] = [], selfLoad: SelfLoad? = nil) {
        self.package = package
        self.version = version
        self.program = program
        self.objectPath = objectPath
        self.parameters = parameters
        self.seqID = seqID
        self.mapArguments = mapArguments
        self.selfLoad = selfLoad
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

/// How a program that loads itself joins a chain, as l3afd runs such a user program: it is started with `--map-name=`
/// the path of a prog array (its *inlet*), loads its object, pins its maps where l3afd pins them and writes its
/// program into slot 0 of the inlet. l3afd hands it the previous program's live map; here the inlet is a one-slot
/// prog array of its own, so the engine takes the program from it, links the program's next map (`program.nextMap`,
/// found among the maps the program uses) to its successor, and joins it to the chain with the one flip every other
/// change makes. A restarted user program that puts a new program in the inlet is joined the same way. The inlet is
/// pinned at ``ChainEngine/inletPath(pinRoot:interface:hook:package:)``.
public struct SelfLoad: Hashable, Sendable {
    /// Starts the user program (stopping one already running for the member); returns whether it still runs, asked
    /// while waiting for its program. Compared by `identity` only.
    public var start: @Sendable () throws -> @Sendable () -> Bool
    /// Stops the user program started for a change that failed.
    public var abandon: @Sendable () -> Void
    /// What the user program is (its argv): two self-loads are the same when this is.
    public var identity: String

    public init(identity: String, start: @escaping @Sendable () throws -> @Sendable () -> Bool, abandon: @escaping @Sendable () -> Void) {
        self.identity = identity
        self.start = start
        self.abandon = abandon
    }

    public static func == (a: SelfLoad, b: SelfLoad) -> Bool { a.identity == b.identity }
    public func hash(into hasher: inout Hasher) { hasher.combine(identity) }

    /// How long a started user program has to put its program into the inlet (l3afd waits 10 × 1 s).
    public static let timeoutSeconds = 10.0
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
