import Foundation
import L3AFFleet
import L3AFHost
import L3AFModel
import L3AFRuntime
import Prometheus
import Synchronization

/// The daemon's metrics in Prometheus text format, named and labelled exactly as l3afd's (every series carries `host`
/// and `ipv4_address`; `direction` is `xdpingress`, `ingress` or `egress`): per program `l3afd_BPFRunning` (1 while it
/// runs, with its version), `l3afd_BPFStartCount`, `l3afd_BPFStartTime`, `l3afd_BPFStopCount`, `l3afd_BPFUpdateCount`,
/// `l3afd_BPFUpdateFailedCount` (label `bpf_program`) and `l3afd_BPFDeployFailedCount`, and every `monitor_maps` entry
/// as `l3afd_BPFMonitorMap` with `map_name` `<map>_<key>_<aggregator>`, through its aggregator:
/// `scalar` the last value, `max-rate` the largest per-second increase between consecutive samples of the last N,
/// `avg` the mean of the last N samples. Starts, stops and updates are counted from every revision recorded since
/// the last sample, one by one (so a start and a stop between two samples both count), and changes made with the
/// `l3af` CLI while the daemon runs count too. Sampling reads the database and the kernel off the cooperative pool and
/// never takes the host lock; `/metrics` serves the last sample.
public final class DaemonMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let samples: Int

    private struct State {
        var revision: Int?
        var snapshot = HostSnapshot()
        var history: [String: [(time: Double, value: UInt64)]] = [:]
        var running: [String: Gauge] = [:]
        var monitors: [String: Gauge] = [:]
        /// Label sets of failure counters made so far: bounded, since their names come from requests.
        var failedSeries = Set<String>()
    }

    /// Distinct `l3afd_BPFUpdateFailedCount` series at most; failures past that count under `ebpf_program="_other"`.
    public static let maximumFailedSeries = 256
    private let state = Mutex(State())

    /// The `host` label of every series.
    public let hostName: String

    public init(samples: Int, hostName: String = "") {
        self.samples = max(2, samples)
        self.hostName = hostName
    }

    /// l3afd's `direction` label: `xdpingress`, `ingress`, `egress`.
    public static func direction(_ hook: Hook) -> String {
        switch hook {
        case .xdpIngress: "xdpingress"
        case .tcIngress: "ingress"
        case .tcEgress: "egress"
        }
    }

    /// l3afd's labels of a program's series: `host, <program label>, [version,] direction, interface_name, ipv4_address`.
    func labels(_ package: String, _ hook: Hook, _ interface: String, ipv4: String, version: String? = nil,
                programLabel: String = "ebpf_program") -> [(String, String)] {
        labels(package, direction: Self.direction(hook), interface, ipv4: ipv4, version: version, programLabel: programLabel)
    }

    func labels(_ package: String, direction: String, _ interface: String, ipv4: String, version: String?, programLabel: String = "ebpf_program") -> [(String, String)] {
        [("host", hostName), (programLabel, package)] + (version.map { [("version", $0)] } ?? [])
            + [("direction", direction), ("interface_name", interface), ("ipv4_address", ipv4)]
    }

    func labels(_ placed: PlacedProgram, in snapshot: HostSnapshot, version: Bool = false) -> [(String, String)] {
        labels(placed.package.rawValue, placed.hook, placed.interface, ipv4: snapshot.ipv4Addresses?[placed.interface] ?? "",
               version: version ? Self.shownVersion(placed) : nil)
    }

    /// A probe's labels: as a program's, with `ebpf_program` `<package>_<function>` (a package may have several probes;
    /// l3afd names each attached probe after its program too), the empty `direction` l3afd gives probes, and the
    /// interface whose payload carried it (empty for a host-wide one).
    func labels(_ probe: PlacedProbe, in snapshot: HostSnapshot, version: Bool = false) -> [(String, String)] {
        labels("\(probe.package)_\(probe.entryFunction)", direction: "", probe.interface, ipv4: snapshot.ipv4Addresses?[probe.interface] ?? "",
               version: version ? probe.version.rawValue : nil)
    }

    /// The version l3afd would label: a build of a moving version from a plain repository (`latest-<digest>`) shows
    /// as the version asked for (`latest`); any other as installed.
    static func shownVersion(_ placed: PlacedProgram) -> String {
        MovingVersion.requested(placed.version.rawValue) ?? placed.version.rawValue
    }

    /// One sample, off the cooperative pool.
    public func sample(_ host: HostManager) async {
        _ = try? await host.observe { host in self.sampleNow(host) }
    }

    /// What a sample reads: the revisions since the last one, the kernel's chains, the monitor maps.
    struct Reading {
        var revisions: [Revision]
        var current: Revision
        var kernel: [ChainKey: [ChainEntry]]
        var counters: [String: UInt64]
        /// The probes attached (``ProbeMember/folderName``).
        var probes: Set<String>
    }

    /// One sample, on the calling thread: every revision since the last sample is counted, running programs and
    /// monitor maps read.
    public func sampleNow(_ host: HostManager) {
        guard let reading = Self.read(host, after: state.withLock { $0.revision }) else {
            // No revision yet: from now on every revision counts, the first one included.
            state.withLock { state in if state.revision == nil { state.revision = 0 } }
            return
        }
        let current = reading.current, kernel = reading.kernel
        let now = Date().timeIntervalSince1970
        state.withLock { state in
            for revision in reading.revisions where state.revision.map({ revision.number > $0 }) ?? (revision.number == current.number) {
                let old = state.snapshot.programs.filter(\.enabled), new = revision.snapshot.programs.filter(\.enabled)
                if state.revision != nil {
                    for placed in new {
                        if let before = old.first(where: { $0.package == placed.package && $0.key == placed.key }) {
                            if before.version != placed.version || before.parameters != placed.parameters {
                                registry.makeCounter(name: "l3afd_BPFUpdateCount", labels: labels(placed, in: revision.snapshot)).increment()
                            }
                        } else {
                            started(placed, revision)
                        }
                    }
                    for placed in old where !new.contains(where: { $0.package == placed.package && $0.key == placed.key }) {
                        registry.makeCounter(name: "l3afd_BPFStopCount", labels: labels(placed, in: state.snapshot)).increment()
                    }
                    let oldProbes = (state.snapshot.probes ?? []).filter(\.enabled), newProbes = (revision.snapshot.probes ?? []).filter(\.enabled)
                    for probe in newProbes where !oldProbes.contains(where: { $0.member.folderName == probe.member.folderName }) {
                        started(labels(probe, in: revision.snapshot), revision)
                    }
                    for probe in oldProbes where !newProbes.contains(where: { $0.member.folderName == probe.member.folderName }) {
                        registry.makeCounter(name: "l3afd_BPFStopCount", labels: labels(probe, in: state.snapshot)).increment()
                    }
                } else {
                    for placed in new { started(placed, revision) }
                    for probe in (revision.snapshot.probes ?? []).filter(\.enabled) { started(labels(probe, in: revision.snapshot), revision) }
                }
                state.revision = revision.number
                state.snapshot = revision.snapshot
            }
            var seenRunning = Set<String>(), seenMonitors = Set<String>()
            func running(_ runningLabels: [(String, String)], _ isRunning: Bool) {
                let runningKey = runningLabels.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
                let gauge = state.running[runningKey] ?? registry.makeGauge(name: "l3afd_BPFRunning", labels: runningLabels)
                state.running[runningKey] = gauge
                gauge.set(Double(isRunning ? 1 : 0))
                seenRunning.insert(runningKey)
            }
            func monitor(_ monitor: MonitorMap, package: PackageName, interface: String, counter: String) {
                // l3afd's map_name: `<map>_<key>_<aggregator>`, which dashboards and alerts select on.
                let labels: [(String, String)] = [
                    ("host", hostName), ("ebpf_program", package.rawValue), ("map_name", "\(monitor.name)_\(monitor.key)_\(monitor.aggregator.rawValue)"),
                    ("interface_name", interface), ("ipv4_address", current.snapshot.ipv4Addresses?[interface] ?? ""),
                ]
                let key = labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
                // Probes of one object share its maps: one sample of each series per reading.
                guard !seenMonitors.contains(key), let value = reading.counters[counter] else { return }
                var history = state.history[key, default: []]
                history.append((now, value))
                if history.count > samples { history.removeFirst(history.count - samples) }
                state.history[key] = history
                let gauge = state.monitors[key] ?? registry.makeGauge(name: "l3afd_BPFMonitorMap", labels: labels)
                state.monitors[key] = gauge
                gauge.set(Self.aggregate(monitor.aggregator, history))
                seenMonitors.insert(key)
            }
            for placed in current.snapshot.programs {
                let isRunning = kernel[placed.key]?.contains(where: placed.runs(as:)) ?? false
                running(labels(placed, in: current.snapshot, version: true), isRunning)
                guard isRunning else { continue }
                for map in placed.program.monitorMaps {
                    monitor(map, package: placed.package, interface: placed.interface, counter: "\(placed.package)/\(placed.key)/\(map.name)/\(map.key)")
                }
            }
            for probe in current.snapshot.probes ?? [] {
                let isRunning = reading.probes.contains(probe.member.folderName)
                running(labels(probe, in: current.snapshot, version: true), isRunning)
                guard isRunning else { continue }
                for map in probe.payload.monitorMaps {
                    monitor(map, package: probe.package, interface: probe.interface, counter: "probe/\(probe.member.objectFolder)/\(map.name)/\(map.key)")
                }
            }
            for (key, gauge) in state.running where !seenRunning.contains(key) {
                registry.unregisterGauge(gauge)
                state.running[key] = nil
            }
            for (key, gauge) in state.monitors where !seenMonitors.contains(key) {
                registry.unregisterGauge(gauge)
                state.monitors[key] = nil
                state.history[key] = nil
            }
        }
    }

    /// The revisions after `last` (only the current one on the first sample: what ran before the daemon started is
    /// counted as started once), the kernel's chains, and every running program's monitor map entries.
    static func read(_ host: HostManager, after last: Int?) -> Reading? {
        guard let current = try? host.database.current() else { return nil }
        let revisions = last.map { (try? host.database.revisions(after: $0)) ?? [current] } ?? [current]
        let kernel = (try? host.kernelChains(current.snapshot)) ?? [:]
        var counters: [String: UInt64] = [:]
        for placed in current.snapshot.programs where kernel[placed.key]?.contains(where: placed.runs(as:)) == true {
            for monitor in placed.program.monitorMaps {
                if let value = try? host.chains.counter(monitor.name, index: monitor.key, of: placed.package, on: placed.key) {
                    counters["\(placed.package)/\(placed.key)/\(monitor.name)/\(monitor.key)"] = value
                }
            }
        }
        // Probes only when the host has some (the walk of their pins is a sample's cost); an object's maps are shared by
        // its probes, so each is read once.
        let probes = current.snapshot.probes?.isEmpty == false ? host.chains.runningProbes() : [:]
        for probe in current.snapshot.probes ?? [] where probes[probe.member.folderName] != nil {
            for monitor in probe.payload.monitorMaps {
                let key = "probe/\(probe.member.objectFolder)/\(monitor.name)/\(monitor.key)"
                if counters[key] == nil, let value = try? host.chains.counter(monitor.name, index: monitor.key, of: probe.member) { counters[key] = value }
            }
        }
        return Reading(revisions: revisions, current: current, kernel: kernel, counters: counters, probes: Set(probes.keys))
    }

    /// A failed change of `programs` (names), counted as l3afd does: `l3afd_BPFUpdateFailedCount` (label `bpf_program`)
    /// for one that was configured, `l3afd_BPFDeployFailedCount` for one that wasn't (`configured` says which).
    /// Names from a refused request are not trusted: a name that is not a package name, or a new series past
    /// ``maximumFailedSeries``, is counted as `_other` on `_other`, so no request can grow the metrics without bound.
    public func failed(_ programs: [(package: String, interface: String, hook: Hook)], configured: (String, String, Hook) -> Bool = { _, _, _ in true },
                       ipv4: (String) -> String = { _ in "" }) {
        for program in programs {
            let update = configured(program.package, program.interface, program.hook)
            let name = update ? "l3afd_BPFUpdateFailedCount" : "l3afd_BPFDeployFailedCount"
            let programLabel = update ? "bpf_program" : "ebpf_program"
            var labels = labels(program.package, program.hook, program.interface, ipv4: ipv4(program.interface), programLabel: programLabel)
            let plausible = (try? PackageName(program.package)) != nil && program.interface.utf8.count <= 15 && FileName.isPlain(program.interface)
            let key = name + "|" + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
            let admitted = plausible && state.withLock { state in
                if state.failedSeries.contains(key) { return true }
                guard state.failedSeries.count < Self.maximumFailedSeries else { return false }
                state.failedSeries.insert(key)
                return true
            }
            if !admitted { labels = self.labels("_other", program.hook, "_other", ipv4: "", programLabel: programLabel) }
            registry.makeCounter(name: name, labels: labels).increment()
        }
    }

    /// A start of `placed` by `revision`: counted, and its time recorded (`l3afd_BPFStartTime`, seconds since 1970).
    private func started(_ placed: PlacedProgram, _ revision: Revision) { started(labels(placed, in: revision.snapshot), revision) }

    private func started(_ labels: [(String, String)], _ revision: Revision) {
        registry.makeCounter(name: "l3afd_BPFStartCount", labels: labels).increment()
        registry.makeGauge(name: "l3afd_BPFStartTime", labels: labels).set(revision.time.timeIntervalSince1970)
    }

    /// A value of `history` (oldest first) through `aggregator`.
    public static func aggregate(_ aggregator: MonitorMap.Aggregator, _ history: [(time: Double, value: UInt64)]) -> Double {
        guard let last = history.last else { return 0 }
        switch aggregator {
        case .scalar:
            return Double(last.value)
        case .avg:
            return history.map { Double($0.value) }.reduce(0, +) / Double(history.count)
        case .maxRate:
            var best = 0.0
            for (a, b) in zip(history, history.dropFirst()) where b.time > a.time && b.value >= a.value {
                best = max(best, Double(b.value - a.value) / (b.time - a.time))
            }
            return best
        }
    }

    /// The fleet member's state: `l3afd_fleet_connected` (0 while etcd is out of reach and the host runs what it
    /// applied last), `l3afd_fleet_in_sync`, `l3afd_fleet_applied_revision` (etcd's) and `l3afd_fleet_changes_total`.
    public func fleet(_ report: FleetAgentReport) {
        let labels = [("host", hostName)]
        registry.makeGauge(name: "l3afd_fleet_connected", labels: labels).set(report.connected ? 1.0 : 0.0)
        registry.makeGauge(name: "l3afd_fleet_in_sync", labels: labels).set(report.state == .inSync ? 1.0 : 0.0)
        registry.makeGauge(name: "l3afd_fleet_applied_revision", labels: labels).set(Double(report.appliedRevision))
        registry.makeGauge(name: "l3afd_fleet_changes_total", labels: labels).set(Double(report.changes))
    }

    /// The text `/metrics` serves.
    public func text() -> [UInt8] {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }
}
