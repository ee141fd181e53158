import Foundation
import L3AFBPF
import L3AFClient
import L3AFModel
import L3AFRuntime
import L3AFSystem
import Synchronization

/// A package version fetched and verified (or found installed) in the repo: its folder, and its manifest when it has
/// one (a legacy l3afd artifact has none; the payload then says what to load).
public struct FetchedPackage: Sendable, Hashable {
    public var name: PackageName
    public var version: PackageVersion
    /// The artifact folder in the repo.
    public var path: String
    public var manifest: Manifest?
    /// The registry or plain repository it came from.
    public var source: String?
    /// The artifact's size, when known.
    public var bytes: Int?

    public init(name: PackageName, version: PackageVersion, path: String, manifest: Manifest?, source: String?, bytes: Int? = nil) {
        self.name = name
        self.version = version
        self.path = path
        self.manifest = manifest
        self.source = source
        self.bytes = bytes
    }
}

/// Where the host's packages come from: the install pipeline (``InstallerSource``), or a fake in unit tests.
/// Every call may block or go to the network; the host calls it before taking its lock, never under it.
public protocol PackageSource: Sendable {
    /// Resolves `spec` in `registry` (`nil`: the configured one), fetches and verifies it unless it is installed.
    func fetch(_ spec: PackageSpec, registry: String?) async throws -> FetchedPackage
    /// An artifact of a plain l3afd repository, unsigned: only for repositories `allowsUnsigned` names.
    func fetchUnsigned(name: PackageName, version: String, artifact: String, from repository: String) async throws -> FetchedPackage
    /// Whether the configuration lists `repository` in `allow_unsigned`.
    func allowsUnsigned(_ repository: String) -> Bool
    /// Whether `repository` is a signed registry (it serves a signed index) rather than a plain l3afd repository.
    func servesSignedIndex(_ repository: String) async throws -> Bool
    /// Re-hashes an installed version's files against its install marker (before a restore or rollback loads them).
    func verifyInstalled(_ package: PackageName, version: PackageVersion) throws
    /// The same source fetching into `folder` (a repo and cache of its own) rather than the host's repo: for a dry run
    /// or a check, which change nothing.
    func scratch(in folder: String) -> any PackageSource
}

extension PackageSource {
    /// A source without a repo of its own (the fakes) is its own scratch.
    public func scratch(in folder: String) -> any PackageSource { self }
}

/// What runs the chains: the kernel through ``ChainEngine`` (``KernelChains``), or a fake in unit tests. Reads never
/// change anything; `apply` and `repair` are called only by the host's owner, under the host lock.
public protocol ChainBackend: Sendable {
    /// Whether `interface` exists on this host, and the ones that do (for the error).
    func interfaceExists(_ interface: String) -> Bool
    func interfaces() -> [String]
    /// Makes the chain on `key` exactly `members` behind `roots[key.hook]`, each step one flip.
    /// Returns the steps it made.
    func apply(_ members: [ChainMember], on key: ChainKey, roots: [Hook: ChainMember]) throws(ChainError) -> [ChainStep]
    /// The steps `apply` would make, changing nothing.
    func plan(_ members: [ChainMember], on key: ChainKey, roots: [Hook: ChainMember]) throws(ChainError) -> [ChainStep]
    /// Finishes or clears what interrupted changes left on every chain it can; returns what it couldn't, in words.
    func repair() -> [String]
    /// The chains the kernel runs: `keys` and every other one with pins.
    func chains(including keys: [ChainKey]) throws(ChainError) -> [ChainKey: [ChainEntry]]
    /// Entry `index` of `map` of `package` on `key`, summed over CPUs.
    func counter(_ map: String, index: Int, of package: PackageName, on key: ChainKey) throws(ChainError) -> UInt64
    /// The monitor maps' entries of `package` on `key` (`name[index]` → value; one that can't be read is left out).
    func counters(_ monitors: [MonitorMap], of package: PackageName, on key: ChainKey) -> [String: UInt64]
    /// The root program's id on `key`, `nil` when there is no chain.
    func rootProgramID(on key: ChainKey) -> UInt32?
    /// Makes the probes attached exactly `probes`.
    func applyProbes(_ probes: [ProbeMember]) throws(ChainError)
    /// The probes attached (``ProbeMember/folderName``) and the id of the program each runs.
    func runningProbes() -> [String: UInt32]
    /// Entry `index` of the probe's map `map`, summed over CPUs.
    func counter(_ map: String, index: Int, of probe: ProbeMember) throws(ChainError) -> UInt64
    /// Joins the program the user program of `member` put into its inlet in place of the one its chain runs; whether
    /// there was one.
    func adopt(_ member: ChainMember, on key: ChainKey, roots: [Hook: ChainMember]) throws(ChainError) -> Bool
    /// What the object at `path` needs for `entries` that this kernel lacks (``ObjectPreflight``).
    func preflight(objectAt path: String, entries: [ObjectPreflight.Entry], subject: String) -> [PreflightProblem]
    /// The problem when `minimum` (a `min_kernel`) is newer than this kernel.
    func preflight(minimumKernel minimum: KernelVersion?, subject: String) -> PreflightProblem?
}

extension ChainBackend {
    public func counters(_ monitors: [MonitorMap], of package: PackageName, on key: ChainKey) -> [String: UInt64] {
        Dictionary(monitors.compactMap { monitor in
            (try? counter(monitor.name, index: monitor.key, of: package, on: key)).map { (monitor.label, $0) }
        }, uniquingKeysWith: { a, _ in a })
    }

    /// A backend without probes (the fakes): nothing to attach, nothing attached.
    public func applyProbes(_ probes: [ProbeMember]) throws(ChainError) {}
    public func runningProbes() -> [String: UInt32] { [:] }
    public func counter(_ map: String, index: Int, of probe: ProbeMember) throws(ChainError) -> UInt64 {
        throw ChainError(.notInChain, "\(probe.package) is not attached")
    }
    /// A fake kernel runs everything.
    public func preflight(objectAt path: String, entries: [ObjectPreflight.Entry], subject: String) -> [PreflightProblem] { [] }
    public func preflight(minimumKernel minimum: KernelVersion?, subject: String) -> PreflightProblem? { nil }
    /// A fake foretells nothing.
    public func plan(_ members: [ChainMember], on key: ChainKey, roots: [Hook: ChainMember]) throws(ChainError) -> [ChainStep] { [] }
    /// No user programs: nothing to join.
    public func adopt(_ member: ChainMember, on key: ChainKey, roots: [Hook: ChainMember]) throws(ChainError) -> Bool { false }
}

/// Starts the user programs that load their own eBPF program, when a chain change needs one (l3afd's supervisor).
public protocol UserProgramRunner: Sendable {
    /// Starts the user program of `placed` (stopping one running for it) and supervises it from then on; returns
    /// whether it still runs.
    func start(_ placed: PlacedProgram) throws -> @Sendable () -> Bool
    /// Stops the user program started for a change that failed.
    func abandon(_ placed: PlacedProgram)
    /// The change that started programs is over: `committed`, the ones the recorded revision wants (exactly) take over
    /// from the instances they replace; the others are stopped.
    func settle(committed: Bool)
}

/// Time for the health watch: the wall clock, or a fake that runs an hour's watch in a millisecond.
public protocol HostClock: Sendable {
    func now() -> Date
    /// Blocks the calling thread (the writer's own, never the cooperative pool's) for `seconds`.
    func sleep(_ seconds: Double)
}

public struct SystemClock: HostClock {
    public init() {}
    public func now() -> Date { Date() }
    public func sleep(_ seconds: Double) { Thread.sleep(forTimeInterval: seconds) }
}

/// Packages through ``PackageInstaller``: the signed registry, or a plain l3afd repository when allowed.
public struct InstallerSource: PackageSource {
    public let configuration: ClientConfiguration
    /// Bytes received and expected of the downloads under way (a progress bar on a terminal), if anyone watches.
    public let progress: (@Sendable (UInt64, UInt64) -> Void)?

    public init(configuration: ClientConfiguration, progress: (@Sendable (UInt64, UInt64) -> Void)? = nil) {
        self.configuration = configuration
        self.progress = progress
    }

    func installer(_ registry: String?) throws(HostError) -> PackageInstaller {
        var configuration = configuration
        if let registry { configuration.registry = registry }
        do { return try PackageInstaller(configuration: configuration) } catch {
            throw HostError(.fetch, "\(error)", hint: "check --trusted-key")
        }
    }

    public func fetch(_ spec: PackageSpec, registry: String?) async throws -> FetchedPackage {
        let installer = try installer(registry)
        // A finished download's bar is cleared (reported as complete) whether or not its last bytes were reported.
        defer { progress?(1, 1) }
        let installed = try await installer.fetch([spec], progress: progress)[0]
        let size = (try? FileManager.default.attributesOfItem(atPath: installer.cachePath(installed.sha256))[.size] as? Int) ?? nil
        return FetchedPackage(name: try PackageName(installed.name), version: try PackageVersion(installed.version), path: installed.path,
                              manifest: try Self.manifest(at: installed.path), source: registry ?? configuration.registry, bytes: size)
    }

    public func fetchUnsigned(name: PackageName, version: String, artifact: String, from repository: String) async throws -> FetchedPackage {
        let installed = try await installer(repository).fetchUnsigned(name: name, version: version, artifact: artifact, from: repository, allowed: true)
        return FetchedPackage(name: try PackageName(installed.name), version: try PackageVersion(installed.version), path: installed.path,
                              manifest: try Self.manifest(at: installed.path), source: repository)
    }

    public func scratch(in folder: String) -> any PackageSource {
        var configuration = configuration
        configuration.repo = "\(folder)/repo"
        configuration.cache = "\(folder)/cache"
        configuration.state = "\(folder)/state"
        // The same trust as the real change (index versions accepted, plain artifacts' first digests, registries seen
        // signed), from copies: what the dry run learns is dropped with its folder.
        let fm = FileManager.default
        try? fm.createDirectory(atPath: configuration.state, withIntermediateDirectories: true)
        try? fm.createDirectory(atPath: configuration.cache, withIntermediateDirectories: true)
        for file in ["registries.json", "plain-artifacts.json"] {
            try? fm.copyItem(atPath: "\(self.configuration.state)/\(file)", toPath: "\(configuration.state)/\(file)")
        }
        try? fm.copyItem(atPath: "\(self.configuration.cache)/metadata", toPath: "\(configuration.cache)/metadata")
        return InstallerSource(configuration: configuration, progress: progress)
    }

    public func servesSignedIndex(_ repository: String) async throws -> Bool {
        try await installer(nil).servesSignedIndex(repository)
    }

    public func allowsUnsigned(_ repository: String) -> Bool {
        configuration.allowUnsigned.contains { $0 == repository || $0 == repository + "/" || $0 + "/" == repository }
    }

    public func verifyInstalled(_ package: PackageName, version: PackageVersion) throws {
        do { _ = try Unpacker.check(repo: configuration.repo, name: package.rawValue, version: version.rawValue) } catch let error as any L3AFError {
            throw HostError(.badInput, error.description, hint: error.hint)
        } catch {
            throw HostError(.badInput, "\(package)@\(version): \(error)")
        }
    }

    /// The manifest in `folder`, `nil` when there is none (a legacy artifact).
    static func manifest(at folder: String) throws(HostError) -> Manifest? {
        guard let bytes = AtomicFile.read("\(folder)/\(Manifest.fileName)") else { return nil }
        do { return try DocumentDecoder.decode(Manifest.self, from: bytes, document: "\(folder)/\(Manifest.fileName)") } catch {
            throw HostError(.badInput, error.description, hint: error.hint)
        }
    }
}

/// The chains in the kernel, through ``ChainEngine`` and the pins under `pinRoot`.
public struct KernelChains: ChainBackend {
    public let pinRoot: String
    /// `false`: one program per hook, attached without a root (l3afd's `bpf-chaining-enabled: false`).
    public let chaining: Bool
    /// Maps pinned again where l3afd pins them (``ChainEngine/l3afdMapPins``).
    public let l3afdMapPins: Bool

    public init(pinRoot: String, chaining: Bool = true, l3afdMapPins: Bool = false) {
        self.pinRoot = pinRoot
        self.chaining = chaining
        self.l3afdMapPins = l3afdMapPins
    }

    func engine(_ roots: [Hook: ChainMember] = [:]) -> ChainEngine {
        ChainEngine(pinRoot: pinRoot, roots: roots, chaining: chaining, l3afdMapPins: l3afdMapPins)
    }

    public func interfaceExists(_ interface: String) -> Bool { if_nametoindex(interface) != 0 }

    public func interfaces() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net")) ?? []).sorted() }

    public func apply(_ members: [ChainMember], on key: ChainKey, roots: [Hook: ChainMember]) throws(ChainError) -> [ChainStep] {
        let steps = Mutex<[ChainStep]>([])
        var engine = engine(roots)
        engine.journal = { step in steps.withLock { $0.append(step) } }
        try engine.apply(members, interface: key.interface, hook: key.hook)
        return steps.withLock { $0 }
    }

    public func plan(_ members: [ChainMember], on key: ChainKey, roots: [Hook: ChainMember]) throws(ChainError) -> [ChainStep] {
        try engine(roots).plan(members, interface: key.interface, hook: key.hook)
    }

    public func repair() -> [String] {
        let engine = engine()
        var problems: [String] = []
        for (interface, hook) in engine.pinnedHooks() {
            do { try engine.repair(interface: interface, hook: hook) } catch { problems.append(error.description) }
        }
        return problems
    }

    public func chains(including keys: [ChainKey]) throws(ChainError) -> [ChainKey: [ChainEntry]] {
        let engine = engine()
        var all = Set(keys)
        for (interface, hook) in engine.pinnedHooks() { all.insert(ChainKey(interface: interface, hook: hook)) }
        var chains: [ChainKey: [ChainEntry]] = [:]
        for key in all { chains[key] = try engine.chain(interface: key.interface, hook: key.hook) }
        return chains
    }

    public func counter(_ map: String, index: Int, of package: PackageName, on key: ChainKey) throws(ChainError) -> UInt64 {
        let access = try engine().map(map, of: package.rawValue, interface: key.interface, hook: key.hook)
        do { return try access.counter(key: index) } catch { throw ChainError(.kernel, error.description) }
    }

    /// One walk of the chain for all the monitor maps of `package`.
    public func counters(_ monitors: [MonitorMap], of package: PackageName, on key: ChainKey) -> [String: UInt64] {
        guard !monitors.isEmpty,
              let maps = try? engine().maps(Array(Set(monitors.map(\.name))), of: package.rawValue, interface: key.interface, hook: key.hook)
        else { return [:] }
        return Dictionary(monitors.compactMap { monitor in
            guard case .success(let access)? = maps[monitor.name], let value = try? access.counter(key: monitor.key) else { return nil }
            return (monitor.label, value)
        }, uniquingKeysWith: { a, _ in a })
    }

    public func rootProgramID(on key: ChainKey) -> UInt32? { (try? engine().rootProgramID(interface: key.interface, hook: key.hook)) ?? nil }

    public func applyProbes(_ probes: [ProbeMember]) throws(ChainError) { try ProbeEngine(pinRoot: pinRoot).apply(probes) }

    public func adopt(_ member: ChainMember, on key: ChainKey, roots: [Hook: ChainMember]) throws(ChainError) -> Bool {
        try engine(roots).adopt(member, interface: key.interface, hook: key.hook)
    }

    public func preflight(objectAt path: String, entries: [ObjectPreflight.Entry], subject: String) -> [PreflightProblem] {
        ObjectPreflight.check(objectAt: path, entries: entries, subject: subject)
    }

    public func preflight(minimumKernel minimum: KernelVersion?, subject: String) -> PreflightProblem? {
        ObjectPreflight.kernel(minimum, subject: subject)
    }

    public func runningProbes() -> [String: UInt32] { ProbeEngine(pinRoot: pinRoot).running() }

    public func counter(_ map: String, index: Int, of probe: ProbeMember) throws(ChainError) -> UInt64 {
        try ProbeEngine(pinRoot: pinRoot).counter(map, index: index, of: probe)
    }
}

/// How `l3afd` runs this host, beyond what the client configuration says: chaining on or off, l3afd's default plain
/// repository and roots. `l3afd` writes it to `<state>/host-settings.json` when it starts, and `l3af` on the same state
/// adopts it, so a change made with the CLI follows the same rules as one made through the daemon (no chain put behind
/// a root on a host that runs programs alone, the same roots).
public struct HostSettings: Codable, Sendable, Equatable {
    public var chaining: Bool
    public var l3afdMapPins: Bool
    public var plainRepository: String?
    /// By hook name (`xdp_ingress`, `tc_ingress`, `tc_egress`).
    public var plainRoots: [String: PlainRoot]

    enum CodingKeys: String, CodingKey {
        case chaining
        case l3afdMapPins = "l3afd_map_pins"
        case plainRepository = "plain_repository"
        case plainRoots = "plain_roots"
    }

    public init(_ options: HostOptions) {
        chaining = options.chaining
        l3afdMapPins = options.l3afdMapPins
        plainRepository = options.plainRepository
        plainRoots = Dictionary(uniqueKeysWithValues: options.plainRoots.map { ($0.key.rawValue, $0.value) })
    }

    public static func path(state: String) -> String { "\(state)/host-settings.json" }

    /// The settings `l3afd` wrote for `state`, `nil` when it never ran there.
    public static func read(state: String) throws(HostError) -> HostSettings? {
        guard let bytes = AtomicFile.read(path(state: state)) else { return nil }
        do { return try DocumentDecoder.decode(HostSettings.self, from: bytes, document: path(state: state)) } catch {
            throw HostError(.badInput, error.description, hint: "l3afd rewrites it when it starts; remove it if no l3afd runs on this state")
        }
    }

    public func write(state: String) throws {
        try AtomicFile.write(Array(try DocumentDecoder.encode(self)), to: Self.path(state: state), mode: 0o644)
    }
}

extension HostOptions {
    /// Takes the daemon's settings for this host.
    public mutating func adopt(_ settings: HostSettings) {
        chaining = settings.chaining
        l3afdMapPins = settings.l3afdMapPins
        plainRepository = settings.plainRepository
        plainRoots = Dictionary(uniqueKeysWithValues: settings.plainRoots.compactMap { key, root in Hook(rawValue: key).map { ($0, root) } })
    }
}

extension MonitorMap {
    /// How status and metrics name one entry of the map: `name[key]`.
    var label: String { "\(name)[\(key)]" }
}
