import Foundation
import L3AFModel

/// A rollout of one package version over a group, in waves. Each wave's hosts get a rollout step in their own
/// documents (the version, and how long to watch it); the rollout waits until every one of them reports the step
/// healthy (its l3afd applied it and its health rules held for the watch), then goes on. A host that rolled the step
/// back, failed to apply it, or left the live list halts the rollout, and the steps already written are taken back,
/// so the finished waves return to the group's version. When the last wave is healthy the group's document takes the
/// version and the steps are removed.
public struct FleetRollout: Sendable {
    public let store: FleetStore
    public let package: PackageName
    public let version: PackageVersion
    public let group: FleetName
    public let waves: [String]
    public let watchSeconds: Double
    /// Seconds a wave may take beyond its watch before the rollout gives up on it.
    public let graceSeconds: Double
    /// Seconds between looks at the wave's statuses.
    public let pollSeconds: Double

    public init(store: FleetStore, package: PackageName, version: PackageVersion, group: FleetName, waves: [String], watchSeconds: Double,
                graceSeconds: Double = 120, pollSeconds: Double = 0.5) {
        self.store = store
        self.package = package
        self.version = version
        self.group = group
        self.waves = waves
        self.watchSeconds = watchSeconds
        self.graceSeconds = graceSeconds
        self.pollSeconds = pollSeconds
    }

    public struct Outcome: Codable, Sendable {
        public var id: String
        public var package: String
        public var version: String
        public var group: String
        public var waves: [[String]]
        /// Hosts a pin of their own holds back.
        public var heldBack: [String]
        /// The group document's revision with the new version.
        public var revision: Int64
    }

    /// Runs the rollout; `progress` hears each step in words. Throws ``FleetError/Kind/halted`` when a host fails.
    public func run(progress: @Sendable (String) -> Void) async throws -> Outcome {
        let (groupDocument, groupRevision) = try await store.read(.group(group))
        guard let groupDocument else { throw FleetError(.notFound, "@\(group) has no desired state", hint: "l3af fleet install \(package)@\(version) --group \(group) --iface IFACE first") }
        guard groupDocument.programs.contains(where: { $0.everyProgram.contains { $0.program.name == package.rawValue } }) else {
            throw FleetError(.notFound, "@\(group) doesn't run \(package)", hint: "install it first: l3af fleet install \(package)@\(version) --group \(group) --iface IFACE")
        }
        if let pinned = groupDocument.pins[package.rawValue] {
            throw FleetError(.badInput, "@\(group) pins \(package) at \(pinned)", hint: "l3af fleet unpin @\(group) \(package) first")
        }
        let statuses = try await store.statuses().filter { $0.groups.contains(group.rawValue) }
        let documents = try await store.documents()
        var members: [FleetName] = []
        var heldBack: [String] = []
        // The longest watch a host will run for the step: the step's, or its groups' or its own if longer.
        var longestWatch = watchSeconds
        for status in statuses {
            guard let name = try? FleetName(status.host, what: "host") else { continue }
            // Held back by a pin in its own document or in any of its groups' (a pin wins over the step in the fold).
            let layers = [documents[.host(name)]?.0] + status.groups.compactMap { try? FleetName($0, what: "group") }.map { documents[.group($0)]?.0 }
            if layers.contains(where: { $0?.pins[package.rawValue] != nil }) { heldBack.append(name.rawValue) } else { members.append(name) }
            longestWatch = max(longestWatch, layers.compactMap { $0?.watchSeconds }.max() ?? 0)
        }
        guard !members.isEmpty else {
            throw FleetError(.notFound, "no live host of @\(group) can take the rollout" + (heldBack.isEmpty ? "" : " (pinned: \(heldBack.joined(separator: ", ")))"),
                             hint: "l3af fleet hosts lists the live hosts and their groups")
        }
        let id = "\(package)@\(version)-r\(groupRevision)-\(UInt32.random(in: 0...UInt32.max) % 100_000)"
        let step = FleetDesired.RolloutStep(id: id, package: package.rawValue, version: version.rawValue, watchSeconds: watchSeconds)
        let split = RolloutWaves.split(members, waves: waves)
        if !heldBack.isEmpty { progress("held back by their pins: \(heldBack.joined(separator: ", "))") }
        var touched: [FleetName] = []
        do {
            for (number, wave) in split.enumerated() {
                progress("wave \(number + 1)/\(split.count): \(wave.count) host(s): \(wave.map(\.rawValue).joined(separator: ", "))")
                for host in wave {
                    touched.append(host)
                    _ = try await store.modify(.host(host), cause: "rollout \(id): wave \(number + 1)") { $0.rollout = step }
                }
                if let failure = try await waitForWave(wave, id: id, deadline: longestWatch + graceSeconds, progress: progress) {
                    progress("halted: \(failure); taking back the steps of \(touched.count) host(s)")
                    let left = await takeBack(touched)
                    throw FleetError(.halted, "the rollout of \(package)@\(version) to @\(group) stopped in wave \(number + 1): \(failure)"
                                     + (left.isEmpty ? "" : "; the steps of \(left.joined(separator: ", ")) could not be taken back"),
                                     hint: left.isEmpty ? "the finished waves were put back on @\(group)'s version; fix the release, then roll out again"
                                                        : "take them back with l3af fleet get/set on those hosts, or run the rollout again")
                }
                progress("wave \(number + 1)/\(split.count) healthy")
            }
        } catch let error as FleetError where error.kind == .halted {
            throw error
        } catch {
            // Any other failure (etcd gone, a document that can't be read): the steps written so far are taken back
            // as far as etcd lets, and the error says which hosts may still carry one.
            let left = await takeBack(touched)
            throw FleetError(.halted, "the rollout \(id) of \(package)@\(version) to @\(group) stopped: \(error)"
                             + (left.isEmpty ? "; the steps written were taken back" : "; hosts that may still carry its step: \(left.joined(separator: ", "))"),
                             hint: "run the rollout again when etcd answers (it replaces any step of \(package) left behind), or take the steps back with l3af fleet rollback on those hosts")
        }
        let revision = try await store.modify(.group(group), cause: "rollout \(id) finished") { desired in
            for i in desired.programs.indices {
                desired.programs[i].updateEveryProgram { if $0.name == package.rawValue { $0.version = "=\(version.rawValue)" } }
            }
        }
        let left = await takeBack(touched)
        if !left.isEmpty { progress("the steps of \(left.joined(separator: ", ")) could not be removed (they ask for the version the group now runs)") }
        progress("@\(group) runs \(package)@\(version) (revision \(revision))")
        return Outcome(id: id, package: package.rawValue, version: version.rawValue, group: group.rawValue, waves: split.map { $0.map(\.rawValue) },
                       heldBack: heldBack, revision: revision)
    }

    /// `nil` once every host of the wave reports the step healthy; else why the rollout must stop.
    func waitForWave(_ wave: [FleetName], id: String, deadline seconds: Double, progress: @Sendable (String) -> Void) async throws -> String? {
        let deadline = Date().addingTimeInterval(seconds)
        var healthy: Set<FleetName> = []
        while Date() < deadline {
            let (kvs, _) = try await store.client.read(wave.map { .key(store.layout.status($0)) })
            let statuses = Dictionary(kvs.compactMap { kv in (try? DocumentDecoder.decode(FleetStatus.self, from: kv.value, document: kv.key)).map { ($0.host, $0) } },
                                      uniquingKeysWith: { a, _ in a })
            for host in wave where !healthy.contains(host) {
                guard let status = statuses[host.rawValue] else { return "\(host) left the live list (its l3afd stopped or lost etcd)" }
                guard let report = status.rollout, report.id == id else { continue }
                if report.outcome == "healthy" {
                    healthy.insert(host)
                    progress("  \(host): \(report.package)@\(report.version) healthy")
                } else if report.outcome != "watching" {
                    return "\(host): \(report.outcome)"
                }
            }
            if healthy.count == wave.count { return nil }
            try await Task.sleep(for: .milliseconds(Int(pollSeconds * 1000)))
        }
        let waiting = wave.filter { !healthy.contains($0) }.map(\.rawValue)
        return "\(waiting.joined(separator: ", ")) did not report the step healthy within \(Int(seconds)) s"
    }

    /// Removes the step of a rollout of this package (this one's, or one an interrupted run left) from `hosts`'
    /// documents, as far as etcd lets; the hosts whose step could not be removed.
    func takeBack(_ hosts: [FleetName]) async -> [String] {
        var left: [String] = []
        for host in hosts {
            do {
                _ = try await store.modify(.host(host), cause: "rollout of \(package)@\(version): step taken back") { desired in
                    if desired.rollout?.package == package.rawValue { desired.rollout = nil }
                }
            } catch {
                left.append(host.rawValue)
            }
        }
        return left
    }
}
