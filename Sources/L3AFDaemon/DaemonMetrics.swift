import Foundation
import L3AFHost
import L3AFModel
import L3AFRuntime
import Prometheus
import Synchronization

/// The daemon's metrics in Prometheus text format, named as l3afd names them: per program `l3afd_BPFRunning`
/// (1 while it runs, with its version), `l3afd_BPFStartCount`, `l3afd_BPFStopCount`, `l3afd_BPFUpdateCount` and
/// `l3afd_BPFUpdateFailedCount`, and every `monitor_maps` entry as `l3afd_BPFMonitorMap` through its aggregator:
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

    public init(samples: Int) {
        self.samples = max(2, samples)
    }

    static func labels(_ placed: PlacedProgram) -> [(String, String)] {
        [("ebpf_program", placed.package.rawValue), ("direction", placed.hook.rawValue), ("interface_name", placed.interface)]
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
                                registry.makeCounter(name: "l3afd_BPFUpdateCount", labels: Self.labels(placed)).increment()
                            }
                        } else {
                            registry.makeCounter(name: "l3afd_BPFStartCount", labels: Self.labels(placed)).increment()
                        }
                    }
                    for placed in old where !new.contains(where: { $0.package == placed.package && $0.key == placed.key }) {
                        registry.makeCounter(name: "l3afd_BPFStopCount", labels: Self.labels(placed)).increment()
                    }
                } else {
                    for placed in new { registry.makeCounter(name: "l3afd_BPFStartCount", labels: Self.labels(placed)).increment() }
                }
                state.revision = revision.number
                state.snapshot = revision.snapshot
            }
            var seenRunning = Set<String>(), seenMonitors = Set<String>()
            for placed in current.snapshot.programs {
                let runningLabels = [("ebpf_program", placed.package.rawValue), ("version", placed.version.rawValue), ("direction", placed.hook.rawValue),
                                     ("interface_name", placed.interface)]
                let runningKey = runningLabels.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
                let isRunning = kernel[placed.key]?.contains(where: placed.runs(as:)) ?? false
                let gauge = state.running[runningKey] ?? registry.makeGauge(name: "l3afd_BPFRunning", labels: runningLabels)
                state.running[runningKey] = gauge
                gauge.set(Double(isRunning ? 1 : 0))
                seenRunning.insert(runningKey)
                guard isRunning else { continue }
                for monitor in placed.program.monitorMaps {
                    let labels = [("ebpf_program", placed.package.rawValue), ("map_name", monitor.name), ("key", String(monitor.key)),
                                  ("interface_name", placed.interface), ("direction", placed.hook.rawValue)]
                    let key = labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
                    guard let value = reading.counters["\(placed.package)/\(placed.key)/\(monitor.name)/\(monitor.key)"] else { continue }
                    var history = state.history[key, default: []]
                    history.append((now, value))
                    if history.count > samples { history.removeFirst(history.count - samples) }
                    state.history[key] = history
                    let gauge = state.monitors[key] ?? registry.makeGauge(name: "l3afd_BPFMonitorMap", labels: labels)
                    state.monitors[key] = gauge
                    gauge.set(Self.aggregate(monitor.aggregator, history))
                    seenMonitors.insert(key)
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
        return Reading(revisions: revisions, current: current, kernel: kernel, counters: counters)
    }

    /// A failed change of `programs` (names), counted as l3afd does.
    /// Names from a refused request are not trusted: a name that is not a package name, or a new series past
    /// ``maximumFailedSeries``, is counted as `_other` on `_other`, so no request can grow the metrics without bound.
    public func failed(_ programs: [(package: String, interface: String, hook: Hook)]) {
        for program in programs {
            var labels = [("ebpf_program", program.package), ("direction", program.hook.rawValue), ("interface_name", program.interface)]
            let plausible = (try? PackageName(program.package)) != nil && program.interface.utf8.count <= 15 && FileName.isPlain(program.interface)
            let key = labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
            let admitted = plausible && state.withLock { state in
                if state.failedSeries.contains(key) { return true }
                guard state.failedSeries.count < Self.maximumFailedSeries else { return false }
                state.failedSeries.insert(key)
                return true
            }
            if !admitted { labels = [("ebpf_program", "_other"), ("direction", program.hook.rawValue), ("interface_name", "_other")] }
            registry.makeCounter(name: "l3afd_BPFUpdateFailedCount", labels: labels).increment()
        }
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

    /// The text `/metrics` serves.
    public func text() -> [UInt8] {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }
}
