import Foundation
import L3AFBPF
import L3AFClient
import L3AFHost
import L3AFModel
import L3AFRuntime
import Synchronization

/// A registry in memory for the host's unit tests: every version published here is "fetched" into a folder under
/// `repo` (its manifest and an empty object file, so paths resolve), and every fetch is counted.
public final class FakePackages: PackageSource {
    public let repo: String
    private let state = Mutex<(manifests: [String: [SemanticVersion: String]], fetches: [String], tampered: Set<String>)>(([:], [], []))

    public init(repo: String) { self.repo = repo }

    /// Publishes `name@version` with a program on each of `hooks`; `program` adds members to each program's manifest
    /// entry (JSON text, e.g. a `health` rule or `parameters`).
    public func publish(_ name: String, _ version: String, hooks: [Hook] = [.xdpIngress], program extra: String = "") throws {
        let programs = hooks.map { hook in
            #"{"hook": "\#(hook.rawValue)", "object_file": "\#(hook.rawValue).o", "entry_function": "f", "next_map": "next"\#(extra.isEmpty ? "" : ", " + extra)}"#
        }
        let manifest = #"{"name": "\#(name)", "version": "\#(version)", "programs": [\#(programs.joined(separator: ", "))]}"#
        _ = try DocumentDecoder.decode(Manifest.self, from: Array(manifest.utf8), document: "fake \(name)@\(version)")
        let parsed = try SemanticVersion(parsing: version)
        state.withLock { $0.manifests[name, default: [:]][parsed] = manifest }
    }

    /// Every fetch so far, as `name@requirement`.
    public var fetches: [String] { state.withLock { $0.fetches } }

    /// `verifyInstalled` refuses `name@version` from now on (its files changed since they were verified).
    public func tamper(_ name: String, _ version: String) { state.withLock { _ = $0.tampered.insert("\(name)@\(version)") } }

    public func fetch(_ spec: PackageSpec, registry: String?) async throws -> FetchedPackage {
        let versions = state.withLock { state in
            state.fetches.append(spec.description)
            return state.manifests[spec.name.rawValue] ?? [:]
        }
        let candidates = versions.keys.map { VersionCandidate($0) }
        let latest = try DistTag("latest")
        let distTags: [DistTag: SemanticVersion] = versions.keys.max().map { [latest: $0] } ?? [:]
        let version = try spec.requirement.pick(from: candidates, distTags: distTags, package: spec.name.rawValue)
        let text = versions.first { $0.key.hasSamePrecedence(as: version) }!.value
        let manifest = try DocumentDecoder.decode(Manifest.self, from: Array(text.utf8), document: "fake")
        let folder = "\(repo)/\(spec.name)/\(version)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: "\(folder)/\(Manifest.fileName)"))
        for program in manifest.programs { FileManager.default.createFile(atPath: "\(folder)/\(program.objectFile)", contents: Data()) }
        return FetchedPackage(name: spec.name, version: PackageVersion(version), path: folder, manifest: manifest, source: registry ?? "fake")
    }

    public func fetchUnsigned(name: PackageName, version: String, artifact: String, from repository: String) async throws -> FetchedPackage {
        throw HostError(.fetch, "the fake registry has no plain repositories")
    }

    public func allowsUnsigned(_ repository: String) -> Bool { false }

    /// Every repository is the fake registry.
    public func servesSignedIndex(_ repository: String) async throws -> Bool { true }

    public func verifyInstalled(_ package: PackageName, version: PackageVersion) throws {
        if state.withLock({ $0.tampered.contains("\(package)@\(version)") }) {
            throw HostError(.badInput, "\(package)@\(version) changed since it was verified")
        }
    }
}

/// Chains in memory: what `apply` was told is what runs. Interfaces are a set; a package version can be made to fail
/// to load; counters are set by the test (or by a ``FakeClock``'s tick, as traffic).
public final class FakeChains: ChainBackend {
    public struct State: Sendable {
        public var chains: [ChainKey: [ChainMember]] = [:]
        public var interfaces: Set<String> = ["eth0", "eth1"]
        /// `package@version`s whose load fails.
        public var failing: Set<String> = []
        /// By `package/interface/hook/map/index`.
        public var counters: [String: UInt64] = [:]
        public var applies = 0
        public var repairs = 0
        /// Objects the preflight loaded to check (``ChainBackend/preflight(objectAt:entries:subject:)``).
        public var objectPreflights = 0
        /// What `repair` reports it couldn't repair.
        public var repairProblems: [String] = []
    }

    public let state = Mutex(State())
    /// `false`: one program per hook, no root (as ``KernelChains`` with chaining off).
    public let chaining: Bool

    public init(chaining: Bool = true) { self.chaining = chaining }

    /// What runs on `key`: `package@version`, first to last.
    public func running(_ key: ChainKey) -> [String] { state.withLock { $0.chains[key] ?? [] }.map { "\($0.package)@\($0.version)" } }

    public func interfaceExists(_ interface: String) -> Bool { state.withLock { $0.interfaces.contains(interface) } }

    /// Counts the objects a preflight would load; a fake kernel runs everything.
    public func preflight(objectAt path: String, entries: [ObjectPreflight.Entry], subject: String) -> [PreflightProblem] {
        state.withLock { $0.objectPreflights += 1 }
        return []
    }

    public func interfaces() -> [String] { state.withLock { $0.interfaces.sorted() } }

    public func apply(_ members: [ChainMember], on key: ChainKey, roots: [Hook: ChainMember]) throws(ChainError) -> [ChainStep] {
        try state.withLock { state throws(ChainError) in
            state.applies += 1
            if let bad = members.first(where: { state.failing.contains("\($0.package)@\($0.version)") }) {
                throw ChainError(.load, "\(bad.package)@\(bad.version) did not load (fake)")
            }
            if chaining {
                if !members.isEmpty, roots[key.hook] == nil { throw ChainError(.kernel, "no root program is configured for \(key.hook)") }
            } else if members.count > 1 {
                throw ChainError(.tooLong, "without chaining \(key) runs one program (fake)")
            }
            state.chains[key] = members.isEmpty ? nil : members.sorted { $0.seqID < $1.seqID }
            return []
        }
    }

    public func repair() -> [String] {
        state.withLock { state in
            state.repairs += 1
            return state.repairProblems
        }
    }

    public func chains(including keys: [ChainKey]) throws(ChainError) -> [ChainKey: [ChainEntry]] {
        state.withLock { state in
            var result: [ChainKey: [ChainEntry]] = [:]
            for key in Set(keys).union(state.chains.keys) {
                result[key] = (state.chains[key] ?? []).enumerated().map { i, member in
                    ChainEntry(package: member.package, version: member.version, seqID: member.seqID, programID: UInt32(i + 100),
                               parametersDigest: member.parametersDigest)
                }
            }
            return result
        }
    }

    public func counter(_ map: String, index: Int, of package: PackageName, on key: ChainKey) throws(ChainError) -> UInt64 {
        try state.withLock { state throws(ChainError) in
            guard state.chains[key]?.contains(where: { $0.package == package.rawValue }) == true else {
                throw ChainError(.notInChain, "\(package) is not in the \(key.hook) chain of \(key.interface)")
            }
            return state.counters["\(package)/\(key)/\(map)/\(index)"] ?? 0
        }
    }

    public func rootProgramID(on key: ChainKey) -> UInt32? { state.withLock { $0.chains[key] == nil ? nil : 1 } }
}

/// Time that passes only when the host sleeps: an hour's health watch takes no time. `tick` runs at every sleep,
/// with the seconds passed so far (to make traffic).
public final class FakeClock: HostClock {
    private let elapsed = Mutex<Double>(0)
    private let start: Date
    private let tick: @Sendable (Double) -> Void

    /// `start`: the clock's first reading (by default in 2027, after this machine booted).
    public init(start: Date = Date(timeIntervalSince1970: 1_800_000_000), tick: @escaping @Sendable (Double) -> Void = { _ in }) {
        self.start = start
        self.tick = tick
    }

    public func now() -> Date { start.addingTimeInterval(elapsed.withLock { $0 }) }

    public func sleep(_ seconds: Double) {
        let now = elapsed.withLock { value in
            value += seconds
            return value
        }
        tick(now)
    }
}

/// A host over the fakes, its state in a fresh temporary folder.
public struct FakeHost: Sendable {
    public let host: HostManager
    public let packages: FakePackages
    public let chains: FakeChains
    public let folder: String

    public init(clock: FakeClock = FakeClock(), lockTimeout: Double = 5, configure: (inout HostOptions) -> Void = { _ in }) throws {
        folder = NSTemporaryDirectory() + "l3af-fake-\(UUID().uuidString)"
        var client = ClientConfiguration()
        client.registry = "http://fake.invalid"
        client.repo = "\(folder)/repo"
        client.cache = "\(folder)/cache"
        client.state = "\(folder)/state"
        var options = HostOptions(client: client, pinRoot: "\(folder)/pins", lockTimeout: lockTimeout, actor: "tester")
        configure(&options)
        packages = FakePackages(repo: "\(folder)/repo")
        chains = FakeChains(chaining: options.chaining)
        host = try HostManager(options: options, source: packages, chains: chains, clock: clock)
        try packages.publish("xdp-root", "1.0.0", hooks: [.xdpIngress])
        try packages.publish("tc-root", "1.0.0", hooks: [.tcIngress, .tcEgress])
    }

    public func remove() { try? FileManager.default.removeItem(atPath: folder) }
}
