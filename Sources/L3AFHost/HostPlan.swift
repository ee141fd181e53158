import Foundation
import L3AFBPF
import L3AFClient
import L3AFModel
import L3AFRuntime
import Synchronization

/// What a change would do, worked out without doing it (`--dry-run`, `?dry_run=true`): the packages it fetches, each
/// chain before and after, every step (one flip each) with the pins it writes and removes, the probes it attaches and
/// detaches, what preflight finds, and the revision it would record. The kernel, bpffs, state.db and the repo are
/// left as they were.
public struct ChangePlan: Codable, Sendable {
    public struct Fetch: Codable, Sendable, Hashable {
        public var package: String
        public var version: String
        /// The registry or repository it comes from.
        public var from: String?
        /// The artifact's size in bytes, when known.
        public var bytes: Int?
        /// Installed in the repo already: the real change fetches nothing.
        public var installed: Bool
    }

    public struct Chain: Codable, Sendable, Hashable {
        public var interface: String
        public var hook: Hook
        public var before: [String]
        public var after: [String]
    }

    public struct PlannedRevision: Codable, Sendable, Hashable {
        public var number: Int
        public var kind: String
        public var cause: String
    }

    public var fetched: [Fetch] = []
    public var chains: [Chain] = []
    public var steps: [ChainStep] = []
    public var probesAttached: [String] = []
    public var probesDetached: [String] = []
    public var preflight: [PreflightProblem] = []
    /// `nil`: nothing would change.
    public var revision: PlannedRevision?
    /// What else it would do: pins set or removed.
    public var notes: [String] = []

    enum CodingKeys: String, CodingKey {
        case fetched, chains, steps, preflight, revision, notes
        case probesAttached = "probes_attached", probesDetached = "probes_detached"
    }

    public init() {}

    /// The plan in words, for a person.
    public var text: String {
        var lines: [String] = []
        for fetch in fetched {
            let size = fetch.bytes.map { " (\($0) bytes)" } ?? ""
            lines.append(fetch.installed ? "use \(fetch.package)@\(fetch.version), installed already"
                                         : "fetch \(fetch.package)@\(fetch.version)\(size) from \(fetch.from ?? "the registry")")
        }
        guard let revision else {
            lines += notes.isEmpty ? ["nothing would change"] : notes + ["no chain would change"]
            return lines.joined(separator: "\n")
        }
        for chain in chains where chain.before != chain.after {
            lines.append("\(chain.interface) \(chain.hook): [\(chain.before.joined(separator: ", "))] → [\(chain.after.joined(separator: ", "))]")
        }
        for step in steps {
            lines.append("  \(step)")
            for pin in step.pinsWritten { lines.append("    pin \(pin)") }
            for pin in step.pinsRemoved { lines.append("    unpin \(pin)") }
        }
        for probe in probesAttached { lines.append("attach probe \(probe)") }
        for probe in probesDetached { lines.append("detach probe \(probe)") }
        lines += notes
        if preflight.isEmpty {
            lines.append("preflight: passed")
        } else {
            lines.append("preflight: this host can't run it, so the change would be refused:")
            lines += preflight.map { "  - [\($0.check)] \($0)" }
            return lines.joined(separator: "\n")
        }
        lines.append(revision.kind == RevisionKind.restore.rawValue ? "would make the kernel run revision \(revision.number) again (nothing is recorded)"
                                                                  : "would record revision \(revision.number) (\(revision.kind)): \(revision.cause)")
        return lines.joined(separator: "\n")
    }
}

/// Collects a dry run's plan: set for the task that plans (``HostManager/planning``), and for the change it runs.
public final class PlanRecorder: Sendable {
    /// Where packages are fetched to, instead of the repo; removed after.
    let folder: String
    let plan = Mutex<ChangePlan?>(nil)
    let fetched = Mutex<[ChangePlan.Fetch]>([])

    init(folder: String) { self.folder = folder }
}

/// Thrown by a change being planned once its plan is made, so nothing after it runs.
struct Planned: Error {}

extension HostManager {
    /// Runs `body` (an operation of this host) as a dry run: its change is worked out to the revision it would record,
    /// then stopped. Returns the plan; "nothing would change" when the operation had nothing to do.
    public func plan(_ body: @escaping @Sendable () async throws -> Void) async throws -> ChangePlan {
        let folder = FileManager.default.temporaryDirectory.appending(path: "l3af-plan-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let recorder = PlanRecorder(folder: folder)
        do { try await Self.$planning.withValue(recorder) { try await body() } } catch is Planned {}
        var plan = recorder.plan.withLock { $0 } ?? ChangePlan()
        plan.fetched = recorder.fetched.withLock { $0 }
        return plan
    }

    /// The plan of going from `old` to `new` as revision `kind`/`cause`.
    func planChange(_ kind: RevisionKind, cause: String, from old: HostSnapshot, to new: HostSnapshot) throws(HostError) -> ChangePlan {
        var plan = ChangePlan()
        let roots = Self.roots(old, new)
        for key in Set(new.keys + old.keys).sorted() {
            plan.chains.append(ChangePlan.Chain(interface: key.interface, hook: key.hook, before: old.chain(key).map(\.spec), after: new.chain(key).map(\.spec)))
            do { plan.steps += try chains.plan(new.chain(key).map(member), on: key, roots: roots) } catch {
                throw HostError(error.kind == .unknownInterface ? .badInput : .chain, error.description, hint: error.hint)
            }
        }
        let before = old.attachedProbes, after = new.attachedProbes
        plan.probesAttached = after.subtracting(before).sorted()
        plan.probesDetached = before.subtracting(after).sorted()
        plan.preflight = preflight(new, from: old)
        // A restore records nothing: it makes the kernel run the last revision again.
        let number = ((try? database.revisionNumbers())?.current ?? 0) + (kind == .restore ? 0 : 1)
        plan.revision = ChangePlan.PlannedRevision(number: number, kind: kind.rawValue, cause: cause)
        return plan
    }

    /// In a dry run (under the lock): records the plan of `old` → `new` and stops the change.
    func stopIfPlanning(_ kind: RevisionKind, cause: String, from old: HostSnapshot, to new: HostSnapshot) throws {
        guard let recorder = activePlan.withLock({ $0 }) else { return }
        let plan = try planChange(kind, cause: cause, from: old, to: new)
        recorder.plan.withLock { $0 = plan }
        throw Planned()
    }

    /// A package a dry run fetched, as the plan lists it.
    func noteFetched(_ package: FetchedPackage, by recorder: PlanRecorder) {
        let folder = Unpacker.versionFolder(repo: options.client.repo, name: package.name.rawValue, version: package.version.rawValue)
        let installed = FileManager.default.fileExists(atPath: "\(folder)/\(InstallMarker.fileName)")
        recorder.fetched.withLock {
            $0.append(ChangePlan.Fetch(package: package.name.rawValue, version: package.version.rawValue, from: package.source, bytes: package.bytes,
                                       installed: installed))
        }
    }
}
