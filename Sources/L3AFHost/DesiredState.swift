import Foundation
import L3AFModel
import L3AFRuntime

/// Where a program runs: an interface and a hook.
public struct ChainKey: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    public var interface: String
    public var hook: Hook

    public init(interface: String, hook: Hook) {
        self.interface = interface
        self.hook = hook
    }

    public var description: String { "\(interface)/\(hook)" }
    public static func < (a: ChainKey, b: ChainKey) -> Bool { (a.interface, a.hook.rawValue) < (b.interface, b.hook.rawValue) }
}

/// One program the host should run: which package version, where, in what order, with which parameters.
/// Holds everything needed to load it again (the manifest entry and the object's path in the repo), so a
/// rollback or a restore needs no registry.
public struct PlacedProgram: Hashable, Sendable, Codable {
    public var interface: String
    public var hook: Hook
    public var package: String
    public var version: String
    /// What `upgrade` may move within: `latest`, `^1.2`, `=1.0.0`…
    public var requirement: String
    public var seqID: Int
    public var parameters: [String: String]
    /// `admin_status: disabled` keeps a program in the configuration but out of the chain.
    public var enabled: Bool
    public var program: Manifest.Program
    public var objectPath: String
    /// The registry (or unsigned l3afd repository) it came from.
    public var source: String?
    /// The l3afd payload entry it came from, when it came from one (`apply`), so `GET` can give it back.
    public var payload: BPFProgram?
    /// l3afd's `map_args`, written into maps after the parameters.
    public var mapArguments: [MapArg] = []
    /// A legacy package's user program (`cmd_start`), which `l3afd` runs and supervises.
    public var userProgram: UserProgram?

    public init(interface: String, hook: Hook, package: String, version: String, requirement: String, seqID: Int,
                parameters: [String: String], enabled: Bool = true, program: Manifest.Program, objectPath: String,
                source: String? = nil, payload: BPFProgram? = nil) {
        self.interface = interface
        self.hook = hook
        self.package = package
        self.version = version
        self.requirement = requirement
        self.seqID = seqID
        self.parameters = parameters
        self.enabled = enabled
        self.program = program
        self.objectPath = objectPath
        self.source = source
        self.payload = payload
    }

    public var key: ChainKey { ChainKey(interface: interface, hook: hook) }

    /// Runs `version` instead: its manifest entry `program`, from the artifact folder `folder`.
    mutating func move(to version: String, program: Manifest.Program, folder: String) {
        self.version = version
        self.program = program
        objectPath = "\(folder)/\(program.objectFile)"
    }

    /// Runs the version `earlier` ran (as a revision recorded it).
    mutating func move(to earlier: PlacedProgram) {
        version = earlier.version
        program = earlier.program
        objectPath = earlier.objectPath
    }
    public var spec: String { "\(package)@\(version)" }

    var member: ChainMember {
        ChainMember(package: package, version: version, program: program, objectPath: objectPath, parameters: parameters, seqID: seqID,
                    mapArguments: mapArguments)
    }
}

/// A legacy l3afd package's user-space program: run by `l3afd` as a child process (argv, never through a shell) once
/// its eBPF program is in the chain; supervised and restarted a bounded number of times when `daemon` is set.
public struct UserProgram: Hashable, Sendable, Codable {
    /// The executable, inside the package's artifact folder.
    public var path: String
    /// `--iface=…`, `--direction=ingress|egress`, `--map-name=<pinned next map>`, then `--key=value` per start arg.
    public var arguments: [String]
    /// `user_program_daemon`: keep it running; else it runs once.
    public var daemon: Bool

    public init(path: String, arguments: [String], daemon: Bool) {
        self.path = path
        self.arguments = arguments
        self.daemon = daemon
    }
}

/// The root program of a hook, as installed in the repo.
public struct RootProgram: Hashable, Sendable, Codable {
    public var package: String
    public var version: String
    public var program: Manifest.Program
    public var objectPath: String

    var member: ChainMember { ChainMember(package: package, version: version, program: program, objectPath: objectPath) }
}

/// Everything a revision records: every program on every chain of the host, and the roots they run behind.
public struct HostSnapshot: Hashable, Sendable, Codable {
    public var programs: [PlacedProgram]
    public var roots: [String: RootProgram]

    public init(programs: [PlacedProgram] = [], roots: [String: RootProgram] = [:]) {
        self.programs = programs
        self.roots = roots
    }

    /// Every chain with at least one program, enabled or not.
    public var keys: [ChainKey] { Set(programs.map(\.key)).sorted() }

    /// The programs that run on `key`, first to last.
    public func chain(_ key: ChainKey) -> [PlacedProgram] {
        programs.filter { $0.key == key && $0.enabled }.sorted { ($0.seqID, $0.package) < ($1.seqID, $1.package) }
    }

    /// Programs in a stable order: by chain, then seq_id.
    public var sorted: [PlacedProgram] {
        programs.sorted { $0.key != $1.key ? $0.key < $1.key : ($0.seqID, $0.package) < ($1.seqID, $1.package) }
    }

    public func program(_ package: String, on key: ChainKey) -> PlacedProgram? {
        programs.first { $0.package == package && $0.key == key }
    }
}


/// A numbered change to the host's chains: when, why, who, and the whole snapshot after it.
public struct Revision: Sendable, Codable, Hashable {
    public var number: Int
    public var time: Date
    /// `install`, `upgrade`, `remove`, `pin`, `rollback`, `auto-rollback`, `apply`, `restore`.
    public var kind: String
    /// In words: `install ratelimiting@1.1.0 on eth0/xdp_ingress`.
    public var cause: String
    public var actor: String
    public var snapshot: HostSnapshot
}
