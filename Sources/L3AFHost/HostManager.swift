import Foundation
import L3AFArchive
import L3AFBPF
import L3AFClient
import L3AFModel
import L3AFRuntime

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
    public var rootPackages: [Hook: String]
    /// Revisions kept; older ones are pruned after each change.
    public var historyLimit = 1000
    /// Progress messages for a person (waiting for the lock, a skipped pin, a watch sample).
    public var notify: @Sendable (String) -> Void

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

/// What `install` is asked to do.
public struct InstallRequest: Sendable {
    public var spec: PackageSpec
    public var interface: String
    /// `nil`: every hook the package has a program for.
    public var hook: Hook?
    /// `nil`: after the last program of the chain (its seq_id + 10).
    public var seqID: Int?
    public var parameters: [String: String]

    public init(spec: PackageSpec, interface: String, hook: Hook? = nil, seqID: Int? = nil, parameters: [String: String] = [:]) {
        self.spec = spec
        self.interface = interface
        self.hook = hook
        self.seqID = seqID
        self.parameters = parameters
    }
}

/// The operator's view of one host: its chains as recorded revisions, changed one atomic step at a time under
/// one lock. Every change goes: resolve → fetch and verify (the install pipeline) → engine change → revision.
/// When any step fails, nothing is recorded and the chains are as they were.
public final class HostManager: Sendable {
    public let options: HostOptions
    public let database: HostDatabase

    /// Who asked for the change being made, when it is not ``HostOptions/actor``: the daemon sets it per request
    /// (`uid 1000` from a Unix socket's peer credentials, a certificate's name), and revisions record it.
    @TaskLocal public static var requestActor: String?

    public init(options: HostOptions) throws(HostError) {
        self.options = options
        database = try HostDatabase(path: options.databasePath)
    }

    // MARK: Reading

    /// The last recorded revision's snapshot (empty before the first change).
    public func snapshot() throws(HostError) -> HostSnapshot { try database.current()?.snapshot ?? HostSnapshot() }

    public func engine(_ snapshot: HostSnapshot) -> ChainEngine {
        var roots: [Hook: ChainMember] = [:]
        for (hook, root) in snapshot.roots { if let hook = Hook(rawValue: hook) { roots[hook] = root.member } }
        return ChainEngine(pinRoot: options.pinRoot, roots: roots)
    }

    /// The chains the kernel runs, by (interface, hook), as pinned under the pin root.
    public func kernelChains(_ snapshot: HostSnapshot) throws(HostError) -> [ChainKey: [ChainEntry]] {
        let engine = engine(snapshot)
        var keys = Set(snapshot.keys)
        for interface in (try? FileManager.default.contentsOfDirectory(atPath: options.pinRoot)) ?? [] {
            for hook in Hook.allCases where FileManager.default.fileExists(atPath: "\(options.pinRoot)/\(interface)/\(hook.rawValue)") {
                keys.insert(ChainKey(interface: interface, hook: hook))
            }
        }
        var chains: [ChainKey: [ChainEntry]] = [:]
        for key in keys {
            do { chains[key] = try engine.chain(interface: key.interface, hook: key.hook) } catch { throw HostError(.chain, error.description, hint: error.hint) }
        }
        return chains
    }

    /// Whether the kernel runs exactly what `snapshot` says, and if not, the first difference in words.
    public func difference(_ snapshot: HostSnapshot, kernel: [ChainKey: [ChainEntry]]? = nil) throws(HostError) -> String? {
        let chains: [ChainKey: [ChainEntry]]
        if let kernel { chains = kernel } else { chains = try kernelChains(snapshot) }
        for (key, entries) in chains.sorted(by: { $0.key < $1.key }) {
            let want = snapshot.chain(key).map { "\($0.package)@\($0.version)" }
            let have = entries.map { "\($0.package)@\($0.version)" }
            if want != have {
                return "\(key) runs [\(have.joined(separator: ", "))] but revision says [\(want.joined(separator: ", "))]"
            }
        }
        return nil
    }

    // MARK: Changing

    /// Runs `body` holding the host lock, after finishing whatever change an earlier process left in flight.
    public func withLock<T>(_ body: () async throws -> T) async throws -> T {
        let lock = try HostLock(path: "\(options.client.state)/lock", timeout: options.lockTimeout, notify: options.notify)
        defer { withExtendedLifetime(lock) {} }
        try repair()
        return try await body()
    }

    /// A change an earlier process began and didn't finish (killed between recording its intent and committing):
    /// make the kernel match the intent and commit it; if that can't be done, put the kernel back on the last
    /// committed revision and drop the intent. Either way the database and the kernel agree afterwards. Stray pins
    /// and programs no chain reaches are removed by the engine's reads.
    func repair() throws(HostError) {
        guard let pending = try database.pending() else { return }
        let committed = try snapshot()
        do {
            try realize(pending.snapshot, previous: committed)
            try database.commit(pending.number)
            options.notify("finished revision \(pending.number) (\(pending.cause)), which an interrupted l3af had begun")
        } catch {
            try? realize(committed, previous: pending.snapshot)
            try database.abandon(pending.number)
            options.notify("undid the unfinished change '\(pending.cause)' of an interrupted l3af: \(error)")
        }
    }

    /// Makes the kernel's chains match `snapshot`, chain by chain (each step one flip).
    func realize(_ snapshot: HostSnapshot, previous: HostSnapshot) throws(HostError) {
        var merged = snapshot
        for (hook, root) in previous.roots where merged.roots[hook] == nil { merged.roots[hook] = root }
        let engine = engine(merged)
        for key in Set(snapshot.keys + previous.keys).sorted() {
            do {
                try engine.apply(snapshot.chain(key).map(\.member), interface: key.interface, hook: key.hook)
            } catch {
                throw HostError(error.kind == .unknownInterface ? .badInput : .chain, error.description, hint: error.hint)
            }
        }
    }

    /// Records `new` as a revision after making it real; on failure puts `old` back and records nothing.
    @discardableResult
    func change(kind: String, cause: String, from old: HostSnapshot, to new: HostSnapshot) throws(HostError) -> Revision {
        let actor = Self.requestActor ?? options.actor
        let number = try database.begin(kind: kind, cause: cause, actor: actor, snapshot: new)
        do {
            try realize(new, previous: old)
        } catch {
            try? realize(old, previous: new)
            try? database.abandon(number)
            throw error
        }
        try database.commit(number)
        try? database.prune(keeping: options.historyLimit)
        return Revision(number: number, time: Date(), kind: kind, cause: cause, actor: actor, snapshot: new)
    }

    // MARK: Packages

    var installer: PackageInstaller {
        get throws(HostError) {
            do { return try PackageInstaller(configuration: options.client) } catch {
                throw HostError(.fetch, "\(error)", hint: "check --trusted-key")
            }
        }
    }

    /// Fetches (or finds installed) `spec` and reads its manifest.
    func fetch(_ spec: PackageSpec) async throws -> (installed: InstalledPackage, manifest: Manifest) {
        let installed = try await installer.fetch([spec])[0]
        return (installed, try Self.manifest(at: installed.path))
    }

    static func manifest(at folder: String) throws(HostError) -> Manifest {
        guard let bytes = AtomicFile.read("\(folder)/\(Manifest.fileName)") else {
            throw HostError(.badInput, "\(folder) has no \(Manifest.fileName)", hint: "it is a legacy l3afd artifact: install it with `l3af apply` and a payload naming its object file")
        }
        do { return try DocumentDecoder.decode(Manifest.self, from: bytes, document: "\(folder)/\(Manifest.fileName)") } catch {
            throw HostError(.badInput, error.description, hint: error.hint)
        }
    }

    /// The root for `hook`, from the snapshot or else fetched (`xdp-root@latest`).
    func ensureRoot(_ hook: Hook, in snapshot: inout HostSnapshot) async throws {
        if snapshot.roots[hook.rawValue] != nil { return }
        let name = options.rootPackages[hook] ?? "xdp-root"
        let (installed, manifest) = try await fetch(PackageSpec(name: try PackageName(name)))
        guard let program = manifest.programs.first(where: { $0.hook == hook }) else {
            throw HostError(.badInput, "\(name)@\(installed.version) has no program for \(hook)", hint: "the root package of \(hook) must have one")
        }
        snapshot.roots[hook.rawValue] = RootProgram(package: name, version: installed.version, program: program,
                                                    objectPath: "\(installed.path)/\(program.objectFile)")
    }

    public static func spec(_ text: String) throws(HostError) -> PackageSpec {
        do { return try PackageSpec(parsing: text) } catch { throw HostError(.badInput, error.description, hint: error.hint) }
    }

    static func checkInterface(_ interface: String) throws(HostError) {
        guard if_nametoindex(interface) != 0 else {
            let known = ((try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net")) ?? []).sorted().joined(separator: ", ")
            throw HostError(.badInput, "there is no network interface '\(interface)' on this host", hint: "interfaces here: \(known)")
        }
    }

    static func checkParameters(_ placed: PlacedProgram) throws(HostError) {
        do { _ = try placed.member.parameterWrites() } catch { throw HostError(.badInput, error.description, hint: error.hint) }
    }

    // MARK: Operations

    /// Installs a package onto an interface: each of its programs (or the one for `hook`) joins that hook's chain.
    public func install(_ request: InstallRequest) async throws -> Revision {
        try Self.checkInterface(request.interface)
        if let seq = request.seqID, !(0...BPFProgram.maximumSeqID).contains(seq) {
            throw HostError(.badInput, "seq_id \(seq) is out of range", hint: "use 0 to \(BPFProgram.maximumSeqID)")
        }
        return try await withLock {
            let old = try snapshot()
            var new = old
            let (installed, manifest) = try await fetch(request.spec)
            let programs = manifest.programs.filter { request.hook == nil || $0.hook == request.hook }
            guard !programs.isEmpty else {
                throw HostError(.badInput, "\(installed.name)@\(installed.version) has no program for \(request.hook!)",
                                hint: "it has: \(manifest.programs.map(\.hook.rawValue).joined(separator: ", "))")
            }
            for program in programs {
                let key = ChainKey(interface: request.interface, hook: program.hook)
                if let existing = new.program(installed.name, on: key) {
                    throw HostError(.badInput, "\(installed.name)@\(existing.version) is already installed on \(key)",
                                    hint: "use `l3af upgrade \(installed.name)` or `l3af pin \(installed.name)@VERSION` to change its version")
                }
                let chain = new.programs.filter { $0.key == key }
                // Stored seq_ids are at most BPFProgram.maximumSeqID, so this can't overflow.
                let seq = request.seqID ?? min((chain.map(\.seqID).max() ?? 0) + 10, BPFProgram.maximumSeqID)
                if let taken = chain.first(where: { $0.seqID == seq }) {
                    throw HostError(.badInput, "seq_id \(seq) on \(key) is taken by \(taken.spec)", hint: "pick another --seq")
                }
                let placed = PlacedProgram(
                    interface: request.interface, hook: program.hook, package: installed.name, version: installed.version,
                    requirement: request.spec.requirement.description, seqID: seq, parameters: request.parameters, program: program,
                    objectPath: "\(installed.path)/\(program.objectFile)", source: options.client.registry)
                try Self.checkParameters(placed)
                try await ensureRoot(program.hook, in: &new)
                new.programs.append(placed)
            }
            let hooks = programs.map(\.hook.rawValue).joined(separator: ", ")
            return try change(kind: "install", cause: "install \(installed.name)@\(installed.version) on \(request.interface) (\(hooks))", from: old, to: new)
        }
    }

    /// Removes a package from an interface (from one hook, or all).
    public func remove(package: String, interface: String, hook: Hook? = nil) async throws -> Revision {
        try await withLock {
            let old = try snapshot()
            var new = old
            let matching = old.programs.filter { $0.package == package && $0.interface == interface && (hook == nil || $0.hook == hook) }
            guard !matching.isEmpty else {
                throw HostError(.badInput, "\(package) is not installed on \(interface)\(hook.map { "/\($0)" } ?? "")",
                                hint: "`l3af status` lists what is installed")
            }
            new.programs.removeAll { matching.contains($0) }
            return try change(kind: "remove", cause: "remove \(package) from \(interface)", from: old, to: new)
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
    public func upgrade(package: String? = nil, interface: String? = nil, watch: Double? = nil, interval: Double = 1) async throws -> UpgradeOutcome {
        try Self.checkWatch(watch, interval: interval)
        return try await withLock {
            let old = try snapshot()
            var new = old
            var changed: [String] = [], skipped: [String] = []
            let selected = old.programs.indices.filter { i in
                (package == nil || old.programs[i].package == package) && (interface == nil || old.programs[i].interface == interface)
            }
            if let package, selected.isEmpty {
                throw HostError(.badInput, "\(package) is not installed\(interface.map { " on \($0)" } ?? "")", hint: "`l3af status` lists what is installed")
            }
            var resolved: [String: (InstalledPackage, Manifest)] = [:]
            for i in selected {
                let placed = old.programs[i]
                if let pin = try database.pin(for: placed.package, interface: placed.interface) {
                    skipped.append("\(placed.package) on \(placed.key) is pinned at \(pin.version)")
                    options.notify("skipping \(placed.package) on \(placed.key): pinned at \(pin.version)")
                    continue
                }
                let specText = "\(placed.package)@\(placed.requirement)"
                if resolved[specText] == nil {
                    resolved[specText] = try await fetch(try Self.spec(specText))
                }
                let (installed, manifest) = resolved[specText]!
                guard installed.version != placed.version,
                      let newer = try? SemanticVersion(parsing: installed.version), let current = try? SemanticVersion(parsing: placed.version),
                      newer > current
                else { continue }
                guard let program = manifest.programs.first(where: { $0.hook == placed.hook }) else {
                    skipped.append("\(placed.package)@\(installed.version) has no program for \(placed.hook)")
                    continue
                }
                new.programs[i].move(to: installed.version, program: program, folder: installed.path)
                try Self.checkParameters(new.programs[i])
                changed.append("\(placed.package) \(placed.version) → \(installed.version) on \(placed.key)")
            }
            guard !changed.isEmpty else { return UpgradeOutcome(changed: [], skipped: skipped, revision: nil, rolledBack: nil) }
            let revision = try change(kind: "upgrade", cause: "upgrade " + changed.joined(separator: "; "), from: old, to: new)
            var outcome = UpgradeOutcome(changed: changed, skipped: skipped, revision: revision, rolledBack: nil)
            if let watch {
                outcome.rolledBack = try await self.watch(revision: revision, previous: old, seconds: watch, interval: interval)
            }
            return outcome
        }
    }

    /// Holds `package` at `version` (on `interface`, or everywhere): moves it there now if it runs another version,
    /// and `upgrade` passes it by from then on.
    public func pin(package: String, version: String, interface: String? = nil) async throws -> Revision? {
        try await withLock {
            let old = try snapshot()
            var new = old
            let spec = try Self.spec("\(package)@=\(version)")
            var moved: [String] = []
            let indices = old.programs.indices.filter { old.programs[$0].package == package && (interface == nil || old.programs[$0].interface == interface) }
            if indices.contains(where: { old.programs[$0].version != version }) {
                let (installed, manifest) = try await fetch(spec)
                for i in indices where old.programs[i].version != version {
                    guard let program = manifest.programs.first(where: { $0.hook == old.programs[i].hook }) else {
                        throw HostError(.badInput, "\(package)@\(version) has no program for \(old.programs[i].hook)")
                    }
                    new.programs[i].move(to: installed.version, program: program, folder: installed.path)
                    try Self.checkParameters(new.programs[i])
                    moved.append("\(old.programs[i].version) → \(version) on \(old.programs[i].key)")
                }
            } else if indices.isEmpty {
                // Pinning something not installed: check that the version exists, so a typo is caught now.
                _ = try await fetch(spec)
            }
            var revision: Revision?
            if !moved.isEmpty {
                revision = try change(kind: "pin", cause: "pin \(package)@\(version): " + moved.joined(separator: "; "), from: old, to: new)
            }
            try database.setPin(.init(package: package, interface: interface, version: version))
            return revision
        }
    }

    /// Lets `upgrade` move `package` again; returns how many pins were removed.
    public func unpin(package: String, interface: String? = nil) async throws -> Int {
        try await withLock {
            let removed = try database.removePins(package: package, interface: interface)
            guard removed > 0 else {
                throw HostError(.badInput, "\(package) is not pinned\(interface.map { " on \($0)" } ?? "")", hint: "`l3af status` shows the pins")
            }
            return removed
        }
    }

    /// What to roll back to.
    public enum RollbackTarget: Sendable {
        /// The revision before the current one.
        case previous
        /// Revision `n`'s chains.
        case revision(Int)
        /// `package`'s previous version, everything else as it is.
        case package(String)
    }

    /// Returns the host to an earlier state, recorded as a new revision. Uses the versions already in the repo, so it
    /// works with the registry down.
    public func rollback(_ target: RollbackTarget) async throws -> Revision {
        try await withLock {
            guard let current = try database.current() else {
                throw HostError(.badInput, "there is nothing to roll back: this host has no revisions yet", hint: "`l3af history` lists revisions")
            }
            var new: HostSnapshot
            let cause: String
            switch target {
            case .previous:
                guard let previous = try database.history(limit: 2).dropFirst().first else {
                    throw HostError(.badInput, "revision \(current.number) is the first one; there is none before it to roll back to",
                                    hint: "`l3af history` lists revisions")
                }
                new = previous.snapshot
                cause = "rollback to revision \(previous.number) (\(previous.cause))"
            case .revision(let number):
                guard let revision = try database.revision(number) else {
                    let numbers = try database.history(limit: 10).map { String($0.number) }.joined(separator: ", ")
                    throw HostError(.badInput, "there is no revision \(number)", hint: "recent revisions: \(numbers); `l3af history` lists them all")
                }
                new = revision.snapshot
                cause = "rollback to revision \(number) (\(revision.cause))"
            case .package(let package):
                new = current.snapshot
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
                    let current = try? SemanticVersion(parsing: placed.version)
                    let lower = earlier.first { candidate in
                        guard let current, let version = try? SemanticVersion(parsing: candidate.version) else { return false }
                        return version < current
                    }
                    guard let earlier = lower ?? earlier.first(where: { $0.version != placed.version }) else { continue }
                    new.programs[i].move(to: earlier)
                    moved.append("\(placed.version) → \(earlier.version) on \(placed.key)")
                }
                guard !moved.isEmpty else {
                    throw HostError(.badInput, "\(package) has no earlier version in this host's history", hint: "`l3af history` lists revisions")
                }
                cause = "rollback \(package): " + moved.joined(separator: "; ")
            }
            for placed in new.programs where !FileManager.default.fileExists(atPath: placed.objectPath) {
                throw HostError(.badInput, "\(placed.spec) is no longer in the repo (\(placed.objectPath))",
                                hint: "fetch it again with `l3af fetch \(placed.package)@=\(placed.version)`, then roll back")
            }
            try verifyInstalled(new)
            return try change(kind: "rollback", cause: cause, from: current.snapshot, to: new)
        }
    }

    /// Makes the kernel match the last revision (after a reboot bpffs is empty). Returns whether anything changed.
    public func restore() async throws -> Bool {
        try await withLock {
            let current = try snapshot()
            guard try difference(current) != nil else { return false }
            try verifyInstalled(current)
            try realize(current, previous: current)
            return true
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
    func verifyInstalled(_ snapshot: HostSnapshot) throws(HostError) {
        var seen = Set<String>()
        let packages = snapshot.programs.filter(\.enabled).map { ($0.package, $0.version) } + snapshot.roots.values.map { ($0.package, $0.version) }
        for (package, version) in packages where seen.insert("\(package)@\(version)").inserted {
            do { _ = try Unpacker.check(repo: options.client.repo, name: package, version: version) } catch let error as any L3AFError {
                throw HostError(.badInput, error.description, hint: error.hint)
            } catch {
                throw HostError(.badInput, "\(package)@\(version): \(error)")
            }
        }
    }

    /// Watches the programs `revision` changed for `seconds`; when one is gone or breaks a health rule, flips back to
    /// `previous` at once and records that as an automatic rollback, which it returns.
    func watch(revision: Revision, previous: HostSnapshot, seconds: Double, interval: Double) async throws -> Revision? {
        let watched = revision.snapshot.programs.filter { placed in
            previous.program(placed.package, on: placed.key).map { $0.version != placed.version } ?? true
        }
        let engine = engine(revision.snapshot)
        let deadline = Date().addingTimeInterval(seconds)
        let first = try Self.sample(watched, engine)
        var last = first
        options.notify("watching \(watched.map(\.spec).joined(separator: ", ")) for \(seconds) s")
        while Date() < deadline {
            try await Task.sleep(nanoseconds: UInt64(interval * 1e9))
            let failure: String?
            do {
                let now = try Self.sample(watched, engine)
                failure = Self.judge(watched, since: first, before: last, after: now, seconds: interval)
                last = now
            } catch {
                failure = "\(error)"
            }
            if let failure {
                options.notify("unhealthy: \(failure); rolling back")
                let back = try change(kind: "auto-rollback", cause: "automatic rollback of revision \(revision.number): \(failure)",
                                      from: revision.snapshot, to: previous)
                return back
            }
        }
        return nil
    }

    /// The counters every health rule of `programs` reads, by "package/interface/hook/map/key".
    static func sample(_ programs: [PlacedProgram], _ engine: ChainEngine) throws -> [String: UInt64] {
        var values: [String: UInt64] = [:]
        for placed in programs where !placed.program.health.isEmpty {
            let chain = try engine.chain(interface: placed.interface, hook: placed.hook)
            guard chain.contains(where: { $0.package == placed.package && $0.version == placed.version }) else {
                throw HostError(.unhealthy, "\(placed.spec) is no longer running on \(placed.key)")
            }
            for rule in placed.program.health {
                for (map, key) in [(rule.map, rule.key)] + (rule.per.map { [($0.map, $0.key)] } ?? []) {
                    let access = try engine.map(map, of: placed.package, interface: placed.interface, hook: placed.hook)
                    values["\(placed.package)/\(placed.key)/\(map)/\(key)"] = try access.counter(key: key)
                }
            }
        }
        return values
    }

    /// The first health rule broken, in words: ratios over everything since the watch began (`since`), so a trickle
    /// of traffic is judged once it adds up to `min_count`; per-second limits over the last interval.
    static func judge(_ programs: [PlacedProgram], since first: [String: UInt64], before: [String: UInt64], after: [String: UInt64],
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
