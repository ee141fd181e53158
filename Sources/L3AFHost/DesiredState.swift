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
    public var package: PackageName
    public var version: PackageVersion
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

    public init(interface: String, hook: Hook, package: PackageName, version: PackageVersion, requirement: String, seqID: Int,
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
    mutating func move(to version: PackageVersion, program: Manifest.Program, folder: String) {
        self.version = version
        self.program = program
        objectPath = "\(folder)/\(program.objectFile)"
    }

    /// Runs the version `earlier` ran (as a revision recorded it), with the user program, payload entry and map
    /// arguments it had.
    mutating func move(to earlier: PlacedProgram) {
        version = earlier.version
        program = earlier.program
        objectPath = earlier.objectPath
        userProgram = earlier.userProgram
        payload = earlier.payload ?? payload
        mapArguments = earlier.mapArguments
    }
    public var spec: String { "\(package)@\(version)" }

    /// Whether the kernel's `entry` is this program (the same package at the same version).
    public func runs(as entry: ChainEntry) -> Bool { entry.package == package.rawValue && entry.version == version.rawValue }

    var member: ChainMember {
        ChainMember(package: package.rawValue, version: version.rawValue, program: program, objectPath: objectPath, parameters: parameters,
                    seqID: seqID, mapArguments: mapArguments)
    }
}

/// A legacy l3afd package's user-space program: run by `l3afd` as a child process (argv, never through a shell) once
/// its eBPF program is in the chain; supervised and restarted a bounded number of times when `daemon` is set.
public struct UserProgram: Hashable, Sendable, Codable {
    /// The executable, inside the package's artifact folder.
    public var path: String
    /// As l3afd passes them: `--iface=…`, `--direction=xdpingress|ingress|egress`, `--version=…` (dots as underscores),
    /// `--log-dir=…` when configured,
    /// `--rules-file=…` when the payload has rules, then `--key=value` per start arg.
    public var arguments: [String]
    /// `user_program_daemon`: keep it running; else it runs once.
    public var daemon: Bool
    /// `cmd_stop` with its argv (`--iface`, `--direction`, then `stop_args`): run to stop the program, before SIGTERM.
    public var stop: Command?
    /// `cmd_status` with `status_args`: the program is healthy while it prints `RUNNING`.
    public var status: Command?
    /// `cmd_update` with `--iface`, `--direction`, `--cmd=update`, `--version`, `--log-dir`, then `update_args`: run after the start
    /// when there are update args, and instead of a restart when a change touches only those.
    public var update: Command?
    /// `cpu` (seconds of CPU time, RLIMIT_CPU) and `memory` (bytes of address space, RLIMIT_AS); 0: no limit.
    public var cpuSeconds: Int?
    public var memoryBytes: Int?
    /// `rules` written to `rules_file` before the program starts (its path is in `--rules-file`).
    public var rules: Rules?
    /// Set when it loads its eBPF program itself (l3afd's `cmd_start` without an `object_file`): it is then given
    /// `--map-name`, the prog array to put its program into.
    public var selfLoading: Bool?

    /// Whether it loads its eBPF program itself (``selfLoading``).
    public var loadsItself: Bool { selfLoading == true }

    /// This program with another `cmd_update`: what a change of update args alone looks like.
    public func updated(_ update: Command?) -> UserProgram {
        var copy = self
        copy.update = update
        return copy
    }

    public struct Rules: Hashable, Sendable, Codable {
        public var path: String
        public var content: String

        public init(path: String, content: String) {
            self.path = path
            self.content = content
        }
    }

    /// A program of the artifact and its argv.
    public struct Command: Hashable, Sendable, Codable {
        public var path: String
        public var arguments: [String]

        public init(path: String, arguments: [String]) {
            self.path = path
            self.arguments = arguments
        }
    }

    public init(path: String, arguments: [String], daemon: Bool, stop: Command? = nil, status: Command? = nil, update: Command? = nil,
                cpuSeconds: Int? = nil, memoryBytes: Int? = nil, rules: Rules? = nil, selfLoading: Bool = false) {
        self.path = path
        self.arguments = arguments
        self.daemon = daemon
        self.stop = stop
        self.status = status
        self.update = update
        self.cpuSeconds = cpuSeconds
        self.memoryBytes = memoryBytes
        self.rules = rules
        self.selfLoading = selfLoading ? true : nil
    }
}

/// A tracing program (kprobe, kretprobe, tracepoint, uprobe, uretprobe) attached on its own: as a payload placed it
/// under `bpf_programs.probes` of an interface, or host-wide from a package's manifest (`l3af install`).
public struct PlacedProbe: Hashable, Sendable, Codable {
    /// The interface whose payload carried it; empty for a host-wide probe.
    public var interface: String
    public var package: PackageName
    public var version: PackageVersion
    public var objectPath: String
    public var entryFunction: String
    /// The payload entry, for `GET` as sent.
    public var payload: BPFProgram

    public init(interface: String, package: PackageName, version: PackageVersion, objectPath: String, entryFunction: String, payload: BPFProgram) {
        self.interface = interface
        self.package = package
        self.version = version
        self.objectPath = objectPath
        self.entryFunction = entryFunction
        self.payload = payload
    }

    /// A payload's probe attaches every tracing program of its object, as l3afd loads one; a manifest's, its function.
    public var member: ProbeMember {
        ProbeMember(interface: interface, package: package.rawValue, version: version.rawValue, objectPath: objectPath, entryFunction: entryFunction,
                    everyProgram: !hostWide)
    }

    /// Whether it should be attached: `admin_status: disabled` keeps a probe configured but detached.
    public var enabled: Bool { payload.adminStatus.isEmpty || payload.isEnabled }

    /// Installed with `l3af install` (host-wide, from a manifest) rather than carried by a payload's interface.
    public var hostWide: Bool { interface.isEmpty }
}

/// The root program of a hook, as installed in the repo.
public struct RootProgram: Hashable, Sendable, Codable {
    public var package: PackageName
    public var version: PackageVersion
    public var program: Manifest.Program
    public var objectPath: String

    var member: ChainMember { ChainMember(package: package.rawValue, version: version.rawValue, program: program, objectPath: objectPath) }
}

/// Everything a revision records: every program on every chain of the host, and the roots they run behind.
///
/// Stored as JSON with a `format` number (``currentFormat``); read back tolerantly (fields this release doesn't know
/// are ignored), so history written by a newer release stays readable, and rows of an older format are rewritten by
/// the database's migrations.
public struct HostSnapshot: Hashable, Sendable, Codable {
    /// 1: release 0.1.0 (no `format` member); 2: the member added, every row re-validated.
    public static let currentFormat = 2
    public var programs: [PlacedProgram]
    public var roots: [String: RootProgram]
    /// l3afd payloads' `ipv4_address` per interface, echoed by `GET /l3af/configs/v1` as sent (absent before it was sent).
    public var ipv4Addresses: [String: String]?
    /// Tracing programs attached on their own (l3afd's `probes`); absent when there are none.
    public var probes: [PlacedProbe]?

    /// The probes it attaches, by ``ProbeMember/folderName``: the enabled ones.
    public var attachedProbes: Set<String> { Set((probes ?? []).filter(\.enabled).map(\.member.folderName)) }

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

    public func program(_ package: PackageName, on key: ChainKey) -> PlacedProgram? {
        programs.first { $0.package == package && $0.key == key }
    }

    /// The program a payload names (a name not yet checked as a ``PackageName``) on `key`.
    public func program(named name: String, on key: ChainKey) -> PlacedProgram? {
        programs.first { $0.package.rawValue == name && $0.key == key }
    }
}


/// What made a revision. A kind a newer release records is kept as it is written, so history stays readable.
public struct RevisionKind: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    public static let install = RevisionKind(rawValue: "install")
    public static let upgrade = RevisionKind(rawValue: "upgrade")
    public static let remove = RevisionKind(rawValue: "remove")
    public static let pin = RevisionKind(rawValue: "pin")
    public static let rollback = RevisionKind(rawValue: "rollback")
    public static let autoRollback = RevisionKind(rawValue: "auto-rollback")
    /// An l3afd payload (`l3af apply`, `/l3af/configs/v1/add|update|delete`).
    public static let apply = RevisionKind(rawValue: "apply")
    public static let restore = RevisionKind(rawValue: "restore")
    /// Every kind this release records.
    public static let known: [RevisionKind] = [.install, .upgrade, .remove, .pin, .rollback, .autoRollback, .apply, .restore]
}

/// A numbered change to the host's chains: when, why, who, and the whole snapshot after it.
public struct Revision: Sendable, Codable, Hashable {
    public var number: Int
    public var time: Date
    public var kind: RevisionKind
    /// In words: `install ratelimiting@1.1.0 on eth0/xdp_ingress`.
    public var cause: String
    public var actor: String
    public var snapshot: HostSnapshot
    /// The steps the change made (one flip each), when it was made by this process just now; not stored.
    public var steps: [ChainStep]?
    /// How long the change's preflight took, in milliseconds, when it was made by this process just now; not stored.
    public var preflightMilliseconds: Double?

    enum CodingKeys: String, CodingKey {
        case number, time, kind, cause, actor, snapshot, steps, preflightMilliseconds = "preflight_ms"
    }

    public init(number: Int, time: Date, kind: RevisionKind, cause: String, actor: String, snapshot: HostSnapshot) {
        self.number = number
        self.time = time
        self.kind = kind
        self.cause = cause
        self.actor = actor
        self.snapshot = snapshot
    }
}
