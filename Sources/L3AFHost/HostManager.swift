import Foundation
import L3AFBPF
import L3AFClient
import L3AFModel
import L3AFRuntime
import L3AFSystem
import Synchronization

/// How a host is run: where packages come from and go, where its state and pins live, who is acting.
public struct HostOptions: Sendable {
    public var client: ClientConfiguration
    /// bpffs folder the chains are pinned under.
    public var pinRoot: String
    /// How long a writer waits for another to finish.
    public var lockTimeout: Double
    /// Who makes the changes, for history (`$SUDO_USER`, `$USER`, or `l3afd`).
    public var actor: String
    /// The packages whose programs are the roots of each hook.
    public var rootPackages: [Hook: PackageName]
    /// l3afd's default repository (`[ebpf-repo] url`): a plain one, for payload programs that name no repository.
    /// `nil`: those come from the signed registry.
    public var plainRepository: String?
    /// Roots described as l3afd's `[xdp-root]` and `[tc-root]` describe them, fetched from ``plainRepository``; a
    /// hook not listed here takes its root from ``rootPackages``.
    public var plainRoots: [Hook: PlainRoot] = [:]
    /// `false` (l3afd's `bpf-chaining-enabled: false`): each hook runs at most one program, attached without a root.
    public var chaining = true
    /// Maps also pinned where l3afd pins them (`<BpfMapDefaultPath>/<iface>/<name>/<version_>/`): an L3AF deployment.
    public var l3afdMapPins = false
    /// l3afd's `bpf-log-dir`: passed to user programs as `--log-dir` when set.
    public var userProgramLogDir: String?
    /// Revisions kept; older ones are pruned after each change.
    public var historyLimit = 1000
    /// The name payloads' `host_name` must match, when not the system's host name (l3afd's `host_name` setting).
    public var hostName: String?
    /// Progress messages for a person (waiting for the lock, a skipped pin, a watch sample).
    public var notify: @Sendable (String) -> Void
    /// What starts the user programs that load their own eBPF program (l3afd's supervisor); without it (the CLI) a
    /// change that needs one started is refused.
    public var userPrograms: (any UserProgramRunner)?

    public init(client: ClientConfiguration, pinRoot: String = "/sys/fs/bpf/l3af", lockTimeout: Double = 60,
                actor: String? = nil, notify: @escaping @Sendable (String) -> Void = { _ in }) {
        self.client = client
        self.pinRoot = pinRoot
        self.lockTimeout = lockTimeout
        let environment = ProcessInfo.processInfo.environment
        self.actor = actor ?? environment["SUDO_USER"] ?? environment["USER"] ?? "root"
        self.rootPackages = [.xdpIngress: "xdp-root", .tcIngress: "tc-root", .tcEgress: "tc-root"]
        self.notify = notify
    }

    /// The host database: `state.db` in the state folder.
    public var databasePath: String { "\(client.state)/state.db" }
}

/// A root program as l3afd's configuration describes it: a manifest-less artifact in the plain repository.
public struct PlainRoot: Sendable, Hashable, Codable {
    public var package: PackageName
    public var version: String
    public var artifact: String
    public var objectFile: String
    public var entryFunction: String
    /// The root's prog array (`xdp_root_array`, `tc_ingress_root_array`, `tc_egress_root_array`).
    public var rootMap: String

    enum CodingKeys: String, CodingKey {
        case package, version, artifact
        case objectFile = "object_file"
        case entryFunction = "entry_function"
        case rootMap = "root_map"
    }

    public init(package: PackageName, version: String, artifact: String, objectFile: String, entryFunction: String, rootMap: String) {
        self.package = package
        self.version = version
        self.artifact = artifact
        self.objectFile = objectFile
        self.entryFunction = entryFunction
        self.rootMap = rootMap
    }
}

/// What `install` is asked to do.
public struct InstallRequest: Sendable {
    public var spec: PackageSpec
    /// Where its chain programs go; `nil` for a package of probes only (probes attach host-wide).
    public var interface: String?
    /// `nil`: every hook the package has a program for.
    public var hook: Hook?
    /// `nil`: after the last program of the chain (its seq_id + 10).
    public var seqID: Int?
    public var parameters: [String: String]

    public init(spec: PackageSpec, interface: String?, hook: Hook? = nil, seqID: Int? = nil, parameters: [String: String] = [:]) {
        self.spec = spec
        self.interface = interface
        self.hook = hook
        self.seqID = seqID
        self.parameters = parameters
    }
}

/// The one owner of a host's state: its chains as recorded revisions, changed one atomic step at a time under one
/// lock. Every change and every repair goes through it; observers (`status`, `/metrics`, the user-program supervisor,
/// `GET` routes) read snapshots it records and chains it reads without changing anything.
///
/// A change runs in two halves: first what it needs is fetched and verified (``PackageSource``; the network, no lock
/// held), then, on a thread of its own (never the cooperative pool), the host lock is taken, whatever an interrupted
/// change left is finished or undone, and the change is decided from the state under the lock, made real
/// (``ChainBackend``) and recorded. A change that finds under the lock that it needs a package not fetched yet lets
/// go of the lock, fetches it, and runs again. When any step fails, nothing is recorded and the chains are as they were.
public final class HostManager: Sendable {
    public let options: HostOptions
    public let database: HostDatabase
    public let source: any PackageSource
    public let chains: any ChainBackend
    public let clock: any HostClock

    /// Who asked for the change being made, when it is not ``HostOptions/actor``: the daemon sets it per request
    /// (`uid 1000` from a Unix socket's peer credentials, a certificate's name), and revisions record it.
    @TaskLocal public static var requestActor: String?
    /// Set while a dry run plans (``plan(_:)``): changes fetch into its folder and stop at the revision they would record.
    @TaskLocal public static var planning: PlanRecorder?
    /// The dry run whose change holds the lock now (the lock serializes changes, so one at a time).
    let activePlan = Mutex<PlanRecorder?>(nil)

    /// The host as it runs: packages through the install pipeline, chains in the kernel, the wall clock.
    /// `progress` hears the bytes of each download (a progress bar).
    public convenience init(options: HostOptions, progress: (@Sendable (UInt64, UInt64) -> Void)? = nil) throws(HostError) {
        try self.init(options: options, source: InstallerSource(configuration: options.client, progress: progress),
                      chains: KernelChains(pinRoot: options.pinRoot, chaining: options.chaining, l3afdMapPins: options.l3afdMapPins),
                      clock: SystemClock())
    }

    public init(options: HostOptions, source: any PackageSource, chains: any ChainBackend, clock: any HostClock) throws(HostError) {
        self.options = options
        self.source = source
        self.chains = chains
        self.clock = clock
        database = try HostDatabase(path: options.databasePath)
    }

    // MARK: Reading (never changes anything, never waits for the lock)

    /// The last recorded revision's snapshot (empty before the first change).
    public func snapshot() throws(HostError) -> HostSnapshot { try database.current()?.snapshot ?? HostSnapshot() }

    /// Runs a read on a thread of its own, off the cooperative pool (SQLite and libbpf block).
    public func observe<T: Sendable>(_ read: @escaping @Sendable (HostManager) throws -> T) async throws -> T {
        try await OffPool.run { try read(self) }
    }

    /// The chains the kernel runs, by (interface, hook): the snapshot's and every other pinned one.
    public func kernelChains(_ snapshot: HostSnapshot) throws(HostError) -> [ChainKey: [ChainEntry]] {
        do { return try chains.chains(including: snapshot.keys) } catch { throw HostError(.chain, error.description, hint: error.hint) }
    }

    /// Whether the kernel runs exactly what `snapshot` says, and if not, the first difference in words.
    /// `kernel` and `probes`: what the kernel runs, when the caller read it already.
    public func difference(_ snapshot: HostSnapshot, kernel: [ChainKey: [ChainEntry]]? = nil, probes: [String: UInt32]? = nil) throws(HostError) -> String? {
        let chains: [ChainKey: [ChainEntry]]
        if let kernel { chains = kernel } else { chains = try kernelChains(snapshot) }
        for (key, entries) in chains.sorted(by: { $0.key < $1.key }) {
            let want = snapshot.chain(key).map(\.spec)
            let have = entries.map { "\($0.package)@\($0.version)" }
            if want != have {
                return "\(key) runs [\(have.joined(separator: ", "))] but revision says [\(want.joined(separator: ", "))]"
            }
        }
        // Every wanted function attached, and nothing attached from an object no probe wants (a payload's probe brings
        // every tracing program of its object).
        let wanted = (snapshot.probes ?? []).filter(\.enabled).map(\.member), have = Set((probes ?? self.chains.runningProbes()).keys)
        let wantedObjects = Set(wanted.map(\.objectFolder))
        if wanted.contains(where: { !have.contains($0.folderName) }) || have.contains(where: { !wantedObjects.contains(($0 as NSString).deletingLastPathComponent) }) {
            return "the probes attached are [\(have.sorted().joined(separator: ", "))] but revision says [\(wanted.map(\.folderName).sorted().joined(separator: ", "))]"
        }
        return nil
    }

    // MARK: Changing

    /// What a change needs fetched.
    enum Wanted: Hashable, Sendable, CustomStringConvertible {
        /// `spec` (as text) from `registry` (`nil`: the configured one).
        case signed(String, registry: String?)
        /// A plain l3afd repository's artifact.
        case unsigned(name: String, version: String, artifact: String, repository: String)
        /// From a repository a payload names: as `.signed` when it serves a signed index, else as `.unsigned`.
        case either(name: String, version: String, artifact: String, repository: String)

        var description: String {
            switch self {
            case .signed(let spec, _): spec
            case .unsigned(let name, let version, _, let repository), .either(let name, let version, _, let repository): "\(name)@\(version) from \(repository)"
            }
        }
    }

    /// The packages a change fetched before taking the lock.
    struct Transaction: Sendable {
        let fetched: [Wanted: FetchedPackage]
        /// Who makes the change (read from the task before the change left it for its own thread).
        let actor: String

        /// `wanted`, fetched; ``Missing`` when it wasn't, so the change runs again after fetching it.
        func package(_ wanted: Wanted) throws(Missing) -> FetchedPackage {
            guard let package = fetched[wanted] else { throw Missing(wanted: wanted) }
            return package
        }
    }

    /// A change needs a package it didn't fetch before taking the lock.
    struct Missing: Error { let wanted: Wanted }

    /// How often a change may find it needs one more package (a root, an upgrade target) before it is refused.
    static let maximumFetchRounds = 6

    /// Runs a change: fetches `prefetch`, then runs `body` under the host lock on a thread of its own. When `body`
    /// needs a package it wasn't given, the lock is let go, the package fetched, and `body` runs again from the start.
    func change<T: Sendable>(prefetch: [Wanted] = [], _ body: @escaping @Sendable (Transaction) throws -> T) async throws -> T {
        let actor = Self.requestActor ?? options.actor
        let planning = Self.planning
        var fetched: [Wanted: FetchedPackage] = [:]
        var wanted = prefetch
        var round = 1
        // A dry run fetches into its own folder, never the repo.
        let fetchSource = planning.map { source.scratch(in: $0.folder) } ?? source
        while true {
            for item in wanted where fetched[item] == nil {
                let package = try await fetch(item, from: fetchSource)
                if let planning { noteFetched(package, by: planning) }
                fetched[item] = package
            }
            let transaction = Transaction(fetched: fetched, actor: actor)
            do {
                return try await OffPool.run { () throws in try self.locked(planning: planning) { try body(transaction) } }
            } catch let missing as Missing {
                guard round < Self.maximumFetchRounds else {
                    throw HostError(.fetch, "the change still needed \(missing.wanted) after \(round) rounds of fetching", hint: "try again")
                }
                wanted = [missing.wanted]
                round += 1
            }
        }
    }

    func fetch(_ wanted: Wanted, from source: any PackageSource) async throws -> FetchedPackage {
        switch wanted {
        case .signed(let text, let registry): return try await source.fetch(try Self.spec(text), registry: registry)
        case .unsigned(let name, let version, let artifact, let repository):
            return try await source.fetchUnsigned(name: try PackageName(name), version: version, artifact: artifact, from: repository)
        case .either(let name, let version, let artifact, let repository):
            if try await source.servesSignedIndex(repository) {
                return try await source.fetch(try Self.spec("\(name)@\(version)"), registry: repository)
            }
            return try await source.fetchUnsigned(name: try PackageName(name), version: version, artifact: artifact, from: repository)
        }
    }

    /// Runs `body` holding the host lock (blocking this thread while another process holds it, up to the lock
    /// timeout), after finishing whatever an earlier process left in flight.
    func locked<T>(planning: PlanRecorder? = nil, _ body: () throws -> T) throws -> T {
        let timeout = options.lockTimeout, notify = options.notify
        let lock: FileLock
        do {
            lock = try FileLock(path: "\(options.client.state)/lock", wait: .seconds(timeout, notify: { holder in
                notify("waiting for another l3af (pid \(holder)) that is changing this host…")
            }))
        } catch let held as FileLock.Held {
            throw HostError(.locked, "another l3af (pid \(held.pid)) is changing this host, and it still held \(held.path) after \(timeout) s",
                            hint: "wait for it to finish, or pass a longer --lock-timeout")
        } catch {
            throw HostError(.storage, "\(error)", hint: "check the state folder's permissions (--state)")
        }
        defer { withExtendedLifetime(lock) {} }
        if let planning {
            // A dry run reads under the lock and leaves everything as it is, an interrupted change included.
            activePlan.withLock { $0 = planning }
            defer { activePlan.withLock { $0 = nil } }
            return try body()
        }
        // User programs a change started are kept only when the revision it recorded wants them.
        do {
            try repair()
            let result = try body()
            options.userPrograms?.settle(committed: true)
            return result
        } catch {
            options.userPrograms?.settle(committed: false)
            throw error
        }
    }

    /// What an earlier process began and didn't finish (killed between recording its intent and committing):
    /// staging pins are finished or cleared, then the kernel is made to match the intent and it is committed; if that
    /// can't be done, the kernel goes back to the last committed revision and the intent is dropped. Either way the
    /// database and the kernel agree afterwards. Only under the lock.
    func repair() throws(HostError) {
        // Best effort: a broken chain on one interface must not block changes (the one that would fix it included).
        for problem in chains.repair() { options.notify("could not repair: \(problem)") }
        guard let pending = try database.pending() else { return }
        let committed = try snapshot()
        do {
            try realize(pending.snapshot, previous: committed)
            try database.commit(pending.number)
            options.notify("finished revision \(pending.number) (\(pending.cause)), which an interrupted l3af had begun")
        } catch {
            _ = try? realize(committed, previous: pending.snapshot)
            try database.abandon(pending.number)
            options.notify("undid the unfinished change '\(pending.cause)' of an interrupted l3af: \(error)")
        }
    }

    /// `placed` as the chain engine takes it: a program its user program loads comes with the means to start that
    /// program (the daemon's supervisor; the CLI has none and refuses).
    func member(_ placed: PlacedProgram) -> ChainMember {
        var member = placed.member
        guard let program = placed.userProgram, program.loadsItself else { return member }
        let runner = options.userPrograms
        member.selfLoad = SelfLoad(identity: program.arguments.joined(separator: "\u{0}"), start: {
            guard let runner else {
                throw HostError(.badInput, "\(placed.spec) is loaded by its user program (cmd_start), which only l3afd starts",
                                hint: "make this change through l3afd's API")
            }
            return try runner.start(placed)
        }, abandon: { runner?.abandon(placed) })
        return member
    }

    /// The root of each hook the snapshots name, a later snapshot's winning (a change goes from the first to the last).
    static func roots(_ snapshots: HostSnapshot...) -> [Hook: ChainMember] {
        var roots: [Hook: ChainMember] = [:]
        for snapshot in snapshots {
            for (hook, root) in snapshot.roots { if let hook = Hook(rawValue: hook) { roots[hook] = root.member } }
        }
        return roots
    }

    /// Makes the kernel's chains match `snapshot`, chain by chain (each step one flip).
    @discardableResult
    func realize(_ snapshot: HostSnapshot, previous: HostSnapshot) throws(HostError) -> [ChainStep] {
        var steps: [ChainStep] = []
        let roots = Self.roots(previous, snapshot)
        for key in Set(snapshot.keys + previous.keys).sorted() {
            do {
                steps += try chains.apply(snapshot.chain(key).map(member), on: key, roots: roots)
            } catch {
                throw HostError(error.kind == .unknownInterface ? .badInput : .chain, error.description, hint: error.hint)
            }
        }
        if snapshot.probes != nil || previous.probes != nil {
            // `admin_status: disabled` keeps a probe configured but detached, as for chain programs.
            let enabled = (snapshot.probes ?? []).filter(\.enabled)
            do { try chains.applyProbes(enabled.map(\.member)) } catch {
                throw HostError(.chain, error.description, hint: error.hint)
            }
        }
        return steps
    }

    /// Records `new` as a revision after making it real; on failure puts `old` back and records nothing.
    @discardableResult
    func record(_ kind: RevisionKind, cause: String, from old: HostSnapshot, to new: HostSnapshot, by actor: String,
                loadedSinceBoot: HostSnapshot? = nil) throws -> Revision {
        let time = clock.now()
        if !options.chaining, let crowded = new.keys.first(where: { new.chain($0).count > 1 }) {
            throw HostError(.badInput, "bpf-chaining-enabled is false, so \(crowded) runs one program, not \(new.chain(crowded).count) (\(new.chain(crowded).map(\.spec).joined(separator: ", ")))",
                            hint: "keep one program per hook, or set bpf-chaining-enabled: true to chain them behind a root")
        }
        try stopIfPlanning(kind, cause: cause, from: old, to: new)
        let preflightStart = Date()
        // Flipping back a release that broke its health rules goes to what ran a moment ago: nothing may hold it up.
        if kind != .autoRollback { try requirePreflight(new, from: old, loadedSinceBoot: loadedSinceBoot) }
        let preflightMilliseconds = Date().timeIntervalSince(preflightStart) * 1000
        let number = try database.begin(kind: kind, cause: cause, actor: actor, snapshot: new, time: time)
        let steps: [ChainStep]
        do {
            steps = try realize(new, previous: old)
        } catch {
            _ = try? realize(old, previous: new)
            try? database.abandon(number)
            throw error
        }
        try database.commit(number)
        try? database.prune(keeping: options.historyLimit)
        var revision = Revision(number: number, time: time, kind: kind, cause: cause, actor: actor, snapshot: new)
        revision.steps = steps
        revision.preflightMilliseconds = preflightMilliseconds
        return revision
    }

    // MARK: Packages

    /// The package's manifest; a legacy artifact (none) can only come from a payload that says what to load.
    static func manifest(of package: FetchedPackage) throws(HostError) -> Manifest {
        guard let manifest = package.manifest else {
            throw HostError(.badInput, "\(package.path) has no \(Manifest.fileName)",
                            hint: "it is a legacy l3afd artifact: install it with `l3af apply` and a payload naming its object file")
        }
        return manifest
    }

    /// The root for `hook`, from the snapshot or else fetched (`xdp-root@latest`).
    func ensureRoot(_ hook: Hook, in snapshot: inout HostSnapshot, _ transaction: Transaction) throws {
        if snapshot.roots[hook.rawValue] != nil || !options.chaining { return }
        if let plain = options.plainRoots[hook] {
            guard let repository = options.plainRepository else {
                throw HostError(.badInput, "the \(hook) root \(plain.package) is described for a plain repository, but none is configured",
                                hint: "set [ebpf-repo] url in l3afd.cfg")
            }
            let package = try transaction.package(.unsigned(name: plain.package.rawValue, version: plain.version, artifact: plain.artifact, repository: repository))
            let program = Manifest.Program(hook: hook, objectFile: plain.objectFile, entryFunction: plain.entryFunction, nextMap: plain.rootMap)
            let objectPath: String
            do {
                objectPath = try ContainedPath.resolve(RelativePath(plain.objectFile, field: "[\(hook == .xdpIngress ? "xdp" : "tc")-root] object-file"), in: package.path,
                                                       field: "the \(hook) root's object file")
            } catch { throw HostError(.badInput, "\(plain.package)@\(package.version): \(error.description)", hint: error.hint) }
            snapshot.roots[hook.rawValue] = RootProgram(package: plain.package, version: package.version, program: program, objectPath: objectPath)
            return
        }
        let name = options.rootPackages[hook] ?? "xdp-root"
        let package = try transaction.package(.signed(name.rawValue, registry: nil))
        guard let program = try Self.manifest(of: package).programs.first(where: { $0.hook == hook }) else {
            throw HostError(.badInput, "\(name)@\(package.version) has no program for \(hook)", hint: "the root package of \(hook) must have one")
        }
        snapshot.roots[hook.rawValue] = RootProgram(package: name, version: package.version, program: program,
                                                    objectPath: "\(package.path)/\(program.objectFile)")
    }

    public static func spec(_ text: String) throws(HostError) -> PackageSpec {
        do { return try PackageSpec(parsing: text) } catch { throw HostError(.badInput, error.description, hint: error.hint) }
    }

    func checkInterface(_ interface: String) throws(HostError) {
        guard chains.interfaceExists(interface) else {
            throw HostError(.badInput, "there is no network interface '\(interface)' on this host", hint: "interfaces here: \(chains.interfaces().joined(separator: ", "))")
        }
    }

    static func checkParameters(_ placed: PlacedProgram) throws(HostError) {
        do { _ = try placed.member.parameterWrites() } catch { throw HostError(.badInput, error.description, hint: error.hint) }
    }

    // MARK: Operations

    /// Installs a package onto an interface: each of its programs (or the one for `hook`) joins that hook's chain.
    public func install(_ request: InstallRequest) async throws -> Revision {
        if let interface = request.interface { try checkInterface(interface) }
        if let seq = request.seqID, !(0...BPFProgram.maximumSeqID).contains(seq) {
            throw HostError(.badInput, "seq_id \(seq) is out of range", hint: "use 0 to \(BPFProgram.maximumSeqID)")
        }
        let wanted = Wanted.signed(request.spec.description, registry: nil)
        return try await change(prefetch: [wanted]) { transaction in
            let old = try self.snapshot()
            var new = old
            let package = try transaction.package(wanted)
            let manifest = try Self.manifest(of: package)
            let programs = manifest.programs.filter { request.hook == nil || $0.hook == request.hook }
            // Probes attach host-wide: with the package's other programs, or alone; not when one hook is asked for.
            let probes = request.hook == nil ? manifest.probes ?? [] : []
            guard !programs.isEmpty || !probes.isEmpty else {
                throw HostError(.badInput, "\(package.name)@\(package.version) has no program for \(request.hook.map(\.rawValue) ?? "any hook")",
                                hint: "it has: \(manifest.programs.map(\.hook.rawValue).joined(separator: ", "))")
            }
            guard programs.isEmpty || request.interface != nil else {
                throw HostError(.badInput, "\(package.name)@\(package.version) has programs for \(programs.map(\.hook.rawValue).joined(separator: ", ")): they need an interface",
                                hint: "add --iface <interface>")
            }
            let attached = new.probes?.first(where: { $0.hostWide && $0.package == package.name })
            if let attached, attached.version != package.version {
                throw HostError(.badInput, "\(package.name)@\(attached.version)'s probes are attached; this is \(package.version)",
                                hint: "`l3af remove \(package.name)` first to attach another version's probes")
            }
            if let attached, programs.isEmpty {
                throw HostError(.badInput, "\(package.name)@\(attached.version)'s probes are already attached", hint: "`l3af status` lists them")
            }
            // Probes are the host's, not an interface's: the same version put on another interface leaves them as they are.
            if !probes.isEmpty, attached == nil {
                new.probes = (new.probes ?? []) + probes.map { probe in
                    var payload = BPFProgram(name: package.name.rawValue)
                    payload.version = package.version.rawValue
                    payload.objectFile = probe.objectFile
                    payload.entryFunctionName = probe.entryFunction
                    payload.monitorMaps = probe.monitorMaps
                    payload.adminStatus = "enabled"
                    return PlacedProbe(interface: "", package: package.name, version: package.version, objectPath: "\(package.path)/\(probe.objectFile)",
                                       entryFunction: probe.entryFunction, payload: payload)
                }
            }
            for program in programs {
                guard let interface = request.interface else { break }
                let key = ChainKey(interface: interface, hook: program.hook)
                if let existing = new.program(package.name, on: key) {
                    throw HostError(.badInput, "\(package.name)@\(existing.version) is already installed on \(key)",
                                    hint: "use `l3af upgrade \(package.name)` or `l3af pin \(package.name)@VERSION` to change its version")
                }
                let chain = new.programs.filter { $0.key == key }
                // Stored seq_ids are at most BPFProgram.maximumSeqID, so this can't overflow.
                let seq = request.seqID ?? min((chain.map(\.seqID).max() ?? 0) + 10, BPFProgram.maximumSeqID)
                if let taken = chain.first(where: { $0.seqID == seq }) {
                    throw HostError(.badInput, "seq_id \(seq) on \(key) is taken by \(taken.spec)", hint: "pick another --seq")
                }
                let placed = PlacedProgram(
                    interface: interface, hook: program.hook, package: package.name, version: package.version,
                    requirement: request.spec.requirement.description, seqID: seq, parameters: request.parameters, program: program,
                    objectPath: "\(package.path)/\(program.objectFile)", source: package.source)
                try Self.checkParameters(placed)
                try self.ensureRoot(program.hook, in: &new, transaction)
                new.programs.append(placed)
            }
            let hooks = programs.map(\.hook.rawValue) + (probes.isEmpty ? [] : ["\(probes.count) probe\(probes.count == 1 ? "" : "s")"])
            return try self.record(.install, cause: "install \(package.name)@\(package.version) on \(request.interface ?? "the host") (\(hooks.joined(separator: ", ")))",
                                   from: old, to: new, by: transaction.actor)
        }
    }

    /// Removes a package from an interface (from one hook, or all); without an interface, its host-wide probes.
    public func remove(package: PackageName, interface: String?, hook: Hook? = nil) async throws -> Revision {
        try await change { transaction in
            let old = try self.snapshot()
            var new = old
            guard let interface else {
                guard old.probes?.contains(where: { $0.hostWide && $0.package == package }) == true else {
                    throw HostError(.badInput, "\(package) has no probes attached host-wide",
                                    hint: "give --iface to take its programs out of an interface's chains; `l3af status` lists what is installed")
                }
                new.probes?.removeAll { $0.hostWide && $0.package == package }
                return try self.record(.remove, cause: "remove \(package)'s probes from the host", from: old, to: new, by: transaction.actor)
            }
            let matching = old.programs.filter { $0.package == package && $0.interface == interface && (hook == nil || $0.hook == hook) }
            guard !matching.isEmpty else {
                throw HostError(.badInput, "\(package) is not installed on \(interface)\(hook.map { "/\($0)" } ?? "")",
                                hint: "`l3af status` lists what is installed")
            }
            new.programs.removeAll { matching.contains($0) }
            return try self.record(.remove, cause: "remove \(package) from \(interface)\(hook.map { "/\($0)" } ?? "")", from: old, to: new, by: transaction.actor)
        }
    }

    /// What `upgrade` did per program.
    public struct UpgradeOutcome: Sendable, Codable {
        public var changed: [String]
        public var skipped: [String]
        public var revision: Revision?
        public var rolledBack: Revision?
    }

    /// Moves each program (of `package`, on `interface`, or all) to the newest version its requirement allows,
    /// passing pinned ones by. With `watch`, keeps watching the changed programs' health rules for that many
    /// seconds and flips back at once when one fails.
    public func upgrade(package: PackageName? = nil, interface: String? = nil, watch: Double? = nil, interval: Double = 1) async throws -> UpgradeOutcome {
        try Self.checkWatch(watch, interval: interval)
        // What to fetch, from the state as it is now; under the lock the change is decided again from the state then.
        let preview = try await observe { host in try host.upgradeTargets(host.snapshot(), package: package, interface: interface) }
        return try await change(prefetch: preview) { transaction in
            let old = try self.snapshot()
            var new = old
            var changed: [String] = [], skipped: [String] = []
            let pins = try self.database.pins()
            for i in try self.upgradeSelection(old, package: package, interface: interface) {
                let placed = old.programs[i]
                if let pin = HostDatabase.pin(in: pins, for: placed.package, interface: placed.interface) {
                    skipped.append("\(placed.package) on \(placed.key) is pinned at \(pin.version)")
                    self.options.notify("skipping \(placed.package) on \(placed.key): pinned at \(pin.version)")
                    continue
                }
                let fetched = try transaction.package(.signed("\(placed.package)@\(placed.requirement)", registry: nil))
                guard fetched.version.isNewer(than: placed.version) else { continue }
                guard let program = try Self.manifest(of: fetched).programs.first(where: { $0.hook == placed.hook }) else {
                    skipped.append("\(placed.package)@\(fetched.version) has no program for \(placed.hook)")
                    continue
                }
                new.programs[i].move(to: fetched.version, program: program, folder: fetched.path)
                try Self.checkParameters(new.programs[i])
                changed.append("\(placed.package) \(placed.version) → \(fetched.version) on \(placed.key)")
            }
            guard !changed.isEmpty else { return UpgradeOutcome(changed: [], skipped: skipped, revision: nil, rolledBack: nil) }
            let revision = try self.record(.upgrade, cause: "upgrade " + changed.joined(separator: "; "), from: old, to: new, by: transaction.actor)
            var outcome = UpgradeOutcome(changed: changed, skipped: skipped, revision: revision, rolledBack: nil)
            if let watch {
                outcome.rolledBack = try self.watch(revision: revision, previous: old, seconds: watch, interval: interval, by: transaction.actor)
            }
            return outcome
        }
    }

    /// The programs `upgrade` considers: of `package`, on `interface`, or all.
    func upgradeSelection(_ snapshot: HostSnapshot, package: PackageName?, interface: String?) throws(HostError) -> [Int] {
        let selected = snapshot.programs.indices.filter { i in
            (package == nil || snapshot.programs[i].package == package) && (interface == nil || snapshot.programs[i].interface == interface)
        }
        if let package, selected.isEmpty {
            throw HostError(.badInput, "\(package) is not installed\(interface.map { " on \($0)" } ?? "")", hint: "`l3af status` lists what is installed")
        }
        return selected
    }

    /// What `upgrade` resolves: each selected, unpinned program's requirement.
    func upgradeTargets(_ snapshot: HostSnapshot, package: PackageName?, interface: String?) throws(HostError) -> [Wanted] {
        let pins = try database.pins()
        var wanted: [Wanted] = []
        for i in try upgradeSelection(snapshot, package: package, interface: interface) {
            let placed = snapshot.programs[i]
            guard HostDatabase.pin(in: pins, for: placed.package, interface: placed.interface) == nil else { continue }
            let item = Wanted.signed("\(placed.package)@\(placed.requirement)", registry: nil)
            if !wanted.contains(item) { wanted.append(item) }
        }
        return wanted
    }

    /// Holds `package` at `version` (on `interface`, or everywhere): moves it there now if it runs another version,
    /// and `upgrade` passes it by from then on.
    public func pin(package: PackageName, version: PackageVersion, interface: String? = nil) async throws -> Revision? {
        let spec = try Self.spec("\(package)@=\(version)")
        let wanted = Wanted.signed(spec.description, registry: nil)
        /// The programs the pin holds; the version is fetched when one of them must move, or when none is installed
        /// (so a typo in the version is caught now), never to hold a package where it already is.
        @Sendable func held(_ snapshot: HostSnapshot) -> [Int] {
            snapshot.programs.indices.filter { snapshot.programs[$0].package == package && (interface == nil || snapshot.programs[$0].interface == interface) }
        }
        @Sendable func needsFetch(_ snapshot: HostSnapshot) -> Bool {
            let indices = held(snapshot)
            return indices.isEmpty || indices.contains { snapshot.programs[$0].version != version }
        }
        let preview = try await observe { try needsFetch($0.snapshot()) }
        return try await change(prefetch: preview ? [wanted] : []) { transaction in
            let old = try self.snapshot()
            var new = old
            var moved: [String] = []
            if needsFetch(old) { _ = try transaction.package(wanted) }
            for i in held(old) {
                let placed = old.programs[i]
                guard placed.version != version else { continue }
                let fetched = try transaction.package(wanted)
                guard let program = try Self.manifest(of: fetched).programs.first(where: { $0.hook == placed.hook }) else {
                    throw HostError(.badInput, "\(package)@\(version) has no program for \(placed.hook)")
                }
                new.programs[i].move(to: fetched.version, program: program, folder: fetched.path)
                try Self.checkParameters(new.programs[i])
                moved.append("\(placed.version) → \(version) on \(placed.key)")
            }
            let cause = "pin \(package)@\(version): " + moved.joined(separator: "; ")
            // A dry run: the plan of the move (if any), and the pin it would set.
            if let recorder = self.activePlan.withLock({ $0 }) {
                var plan = moved.isEmpty ? ChangePlan() : try self.planChange(.pin, cause: cause, from: old, to: new)
                plan.notes.append("would pin \(package)@\(version)\(interface.map { " on \($0)" } ?? "")")
                recorder.plan.withLock { $0 = plan }
                throw Planned()
            }
            var revision: Revision?
            if !moved.isEmpty {
                revision = try self.record(.pin, cause: cause, from: old, to: new, by: transaction.actor)
            }
            try self.database.setPin(.init(package: package, interface: interface, version: version))
            return revision
        }
    }

    /// Lets `upgrade` move `package` again; returns how many pins were removed.
    public func unpin(package: PackageName, interface: String? = nil) async throws -> Int {
        try await change { _ in
            // A dry run of an unpin: no chain changes, and no pin is removed.
            if let recorder = self.activePlan.withLock({ $0 }) {
                let held = try self.database.pins().filter { $0.package == package && (interface == nil || $0.interface == interface) }
                guard !held.isEmpty else {
                    throw HostError(.badInput, "\(package) is not pinned\(interface.map { " on \($0)" } ?? "")", hint: "`l3af status` shows the pins")
                }
                var plan = ChangePlan()
                plan.notes = held.map { "would unpin \($0.package)@\($0.version)\($0.interface.map { " on \($0)" } ?? "")" }
                recorder.plan.withLock { $0 = plan }
                throw Planned()
            }
            let removed = try self.database.removePins(package: package, interface: interface)
            guard removed > 0 else {
                throw HostError(.badInput, "\(package) is not pinned\(interface.map { " on \($0)" } ?? "")", hint: "`l3af status` shows the pins")
            }
            return removed
        }
    }

    /// What to roll back to.
    public enum RollbackTarget: Sendable, Equatable {
        /// The revision before the current one.
        case previous
        /// Revision `n`'s chains.
        case revision(Int)
        /// `package`'s previous version, everything else as it is.
        case package(PackageName)
    }

    /// Returns the host to an earlier state, recorded as a new revision. Uses the versions already in the repo, so it
    /// works with the registry down.
    public func rollback(_ target: RollbackTarget) async throws -> Revision {
        try await change { transaction in
            guard let current = try self.database.current() else {
                throw HostError(.badInput, "there is nothing to roll back: this host has no revisions yet", hint: "`l3af history` lists revisions")
            }
            let (new, cause, committed) = try self.rollbackTarget(target, from: current)
            for placed in new.programs where !FileManager.default.fileExists(atPath: placed.objectPath) {
                throw HostError(.badInput, "\(placed.spec) is no longer in the repo (\(placed.objectPath))",
                                hint: "fetch it again with `l3af fetch \(placed.package)@=\(placed.version)`, then roll back")
            }
            try self.verifyInstalled(new)
            // A revision committed since this kernel booted ran on it: its objects aren't loaded a second time to check them.
            let ranSinceBoot = committed.map { time in BootTime.date.map { time > $0 } ?? false } ?? false
            return try self.record(.rollback, cause: cause, from: current.snapshot, to: new, by: transaction.actor,
                                   loadedSinceBoot: ranSinceBoot ? new : nil)
        }
    }

    /// The snapshot `target` names, the revision's cause, and when the revision it returns to was made (none when the
    /// snapshot mixes versions from several).
    func rollbackTarget(_ target: RollbackTarget, from current: Revision) throws(HostError) -> (HostSnapshot, String, Date?) {
        switch target {
        case .previous:
            guard let previous = try database.history(limit: 2).dropFirst().first else {
                throw HostError(.badInput, "revision \(current.number) is the first one; there is none before it to roll back to",
                                hint: "`l3af history` lists revisions")
            }
            return (previous.snapshot, "rollback to revision \(previous.number) (\(previous.cause))", previous.time)
        case .revision(let number):
            guard let revision = try database.revision(number) else {
                let numbers = try database.history(limit: 10).map { String($0.number) }.joined(separator: ", ")
                throw HostError(.badInput, "there is no revision \(number)", hint: "recent revisions: \(numbers); `l3af history` lists them all")
            }
            return (revision.snapshot, "rollback to revision \(number) (\(revision.cause))", revision.time)
        case .package(let package):
            var new = current.snapshot
            var moved: [String] = []
            if let pin = try database.pins().first(where: { $0.package == package }) {
                throw HostError(.badInput, "\(package) is pinned at \(pin.version)\(pin.interface.map { " on \($0)" } ?? ""); a rollback would move it off its pin",
                                hint: "`l3af unpin \(package)` first, or `l3af pin \(package)@VERSION` to move it")
            }
            let history = try database.history().dropFirst()
            for (i, placed) in current.snapshot.programs.enumerated() where placed.package == package {
                // The version it ran before this one: the newest earlier revision where it ran a lower version
                // (so a bad release that was already undone isn't picked), else any other version.
                let earlier = history.compactMap { $0.snapshot.program(package, on: placed.key) }
                let lower = earlier.first { placed.version.isNewer(than: $0.version) }
                guard let earlier = lower ?? earlier.first(where: { $0.version != placed.version }) else { continue }
                new.programs[i].move(to: earlier)
                moved.append("\(placed.version) → \(earlier.version) on \(placed.key)")
            }
            guard !moved.isEmpty else {
                throw HostError(.badInput, "\(package) has no earlier version in this host's history", hint: "`l3af history` lists revisions")
            }
            return (new, "rollback \(package): " + moved.joined(separator: "; "), nil)
        }
    }

    /// Joins the program the user program of `placed` put into its inlet (it was restarted) in place of the one its
    /// chain runs, in one flip; nothing is loaded from the repo. Returns whether there was one to join; `false` too when
    /// the last revision no longer runs `placed`.
    public func adoptUserProgram(of placed: PlacedProgram) async throws -> Bool {
        try await change { _ in
            let current = try self.snapshot()
            guard let now = current.programs.first(where: { $0.enabled && $0.key == placed.key && $0.package == placed.package && $0.version == placed.version }),
                  now.userProgram?.loadsItself == true
            else { return false }
            do throws(ChainError) { return try self.chains.adopt(self.member(now), on: now.key, roots: Self.roots(current)) } catch {
                throw HostError(.chain, error.description, hint: error.hint)
            }
        }
    }

    /// Makes the kernel match the last revision (after a reboot bpffs is empty), after finishing or undoing a change an
    /// interrupted l3af left. Returns whether anything changed.
    public func restore() async throws -> Bool { try await restoreSteps() != nil }

    /// ``restore()``, returning the steps it made; `nil` when the kernel ran the last revision already.
    public func restoreSteps() async throws -> [ChainStep]? {
        try await change { _ in
            let current = try self.snapshot()
            guard try self.difference(current) != nil else { return nil }
            try self.stopIfPlanning(.restore, cause: "restore the last revision", from: current, to: current)
            try self.verifyInstalled(current)
            return try self.realize(current, previous: current)
        }
    }

    // MARK: Health

    /// The longest health watch, in seconds.
    public static let maximumWatchSeconds = 3600.0
    /// The sampling interval's bounds, in seconds.
    public static let intervalRange = 0.1...60.0

    /// A watch of 0 to an hour, sampled every 0.1 to 60 seconds: anything else is refused before the change.
    static func checkWatch(_ watch: Double?, interval: Double) throws(HostError) {
        guard interval.isFinite, intervalRange.contains(interval) else {
            throw HostError(.badInput, "the sampling interval \(interval) s is out of range", hint: "use \(intervalRange.lowerBound) to \(Int(intervalRange.upperBound)) seconds")
        }
        if let watch {
            guard watch.isFinite, (0...maximumWatchSeconds).contains(watch) else {
                throw HostError(.badInput, "the watch of \(watch) s is out of range", hint: "use 0 to \(Int(maximumWatchSeconds)) seconds")
            }
        }
    }

    /// Re-hashes the repo files every program of `snapshot` loads from against their install markers, so a restore
    /// or rollback never loads an object changed since it was verified.
    func verifyInstalled(_ snapshot: HostSnapshot) throws {
        var seen = Set<String>()
        let packages = snapshot.programs.filter(\.enabled).map { ($0.package, $0.version) } + snapshot.roots.values.map { ($0.package, $0.version) }
        for (package, version) in packages where seen.insert("\(package)@\(version)").inserted {
            try source.verifyInstalled(package, version: version)
        }
    }

    /// Watches the programs `revision` changed for `seconds` (on the writer's thread, the lock held); when one is gone
    /// or breaks a health rule, flips back to `previous` at once and records that as an automatic rollback, which it returns.
    func watch(revision: Revision, previous: HostSnapshot, seconds: Double, interval: Double, by actor: String) throws -> Revision? {
        let watched = revision.snapshot.programs.filter { placed in
            previous.program(placed.package, on: placed.key).map { $0.version != placed.version } ?? true
        }
        let deadline = clock.now().addingTimeInterval(seconds)
        let first = try sample(watched)
        var last = first
        options.notify("watching \(watched.map(\.spec).joined(separator: ", ")) for \(seconds) s")
        while clock.now() < deadline {
            clock.sleep(interval)
            let failure: String?
            do {
                let now = try sample(watched)
                failure = Self.judge(watched, since: first, before: last, after: now, seconds: interval)
                last = now
            } catch {
                failure = "\(error)"
            }
            if let failure {
                options.notify("unhealthy: \(failure); rolling back")
                return try record(.autoRollback, cause: "automatic rollback of revision \(revision.number): \(failure)",
                                  from: revision.snapshot, to: previous, by: actor)
            }
        }
        return nil
    }

    /// The counters every health rule of `programs` reads, by "package/interface/hook/map/key".
    func sample(_ programs: [PlacedProgram]) throws -> [String: UInt64] {
        var values: [String: UInt64] = [:]
        let ruled = programs.filter { !$0.program.health.isEmpty }
        guard !ruled.isEmpty else { return values }
        let running = try chains.chains(including: ruled.map(\.key))
        for placed in ruled {
            guard running[placed.key]?.contains(where: placed.runs(as:)) == true else {
                throw HostError(.unhealthy, "\(placed.spec) is no longer running on \(placed.key)")
            }
            for rule in placed.program.health {
                for (map, key) in [(rule.map, rule.key)] + (rule.per.map { [($0.map, $0.key)] } ?? []) {
                    values["\(placed.package)/\(placed.key)/\(map)/\(key)"] = try chains.counter(map, index: key, of: placed.package, on: placed.key)
                }
            }
        }
        return values
    }

    /// The first health rule broken, in words: ratios over everything since the watch began (`since`), so a trickle
    /// of traffic is judged once it adds up to `min_count`; per-second limits over the last interval.
    public static func judge(_ programs: [PlacedProgram], since first: [String: UInt64], before: [String: UInt64], after: [String: UInt64],
                      seconds: Double) -> String? {
        for placed in programs {
            for rule in placed.program.health {
                func delta(_ map: String, _ key: Int, from start: [String: UInt64]) -> UInt64 {
                    let name = "\(placed.package)/\(placed.key)/\(map)/\(key)"
                    return (after[name] ?? 0) &- (start[name] ?? 0)
                }
                if let per = rule.per, let limit = rule.maxRatio {
                    let count = delta(rule.map, rule.key, from: first)
                    let base = delta(per.map, per.key, from: first)
                    guard base >= rule.minCount, base > 0 else { continue }
                    let ratio = Double(count) / Double(base)
                    if ratio > limit {
                        return "\(placed.spec) on \(placed.key) broke '\(rule.name)': \(rule.map) rose by \(count) while \(per.map) rose by \(base) (ratio \(String(format: "%.2f", ratio)) > \(limit))"
                    }
                } else if let limit = rule.maxPerSecond {
                    let rate = Double(delta(rule.map, rule.key, from: before)) / seconds
                    if rate > limit {
                        return "\(placed.spec) on \(placed.key) broke '\(rule.name)': \(rule.map) rose \(String(format: "%.1f", rate))/s > \(limit)/s"
                    }
                }
            }
        }
        return nil
    }
}
