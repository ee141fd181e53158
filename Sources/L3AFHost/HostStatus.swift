import Foundation
import L3AFModel
import L3AFRuntime

/// What `l3af status` shows: every chain as recorded and as the kernel runs it.
public struct HostStatus: Sendable, Codable {
    public struct Program: Sendable, Codable {
        public var seqID: Int
        public var package: String
        public var version: String
        public var requirement: String
        public var parameters: [String: String]
        public var enabled: Bool
        /// The kernel's id for it; `nil` when it isn't running (disabled, or the kernel disagrees).
        public var programID: UInt32?
        /// The version it is pinned at, if it is.
        public var pinned: String?
        /// Each monitor map entry: `map[key]` → value (summed over CPUs).
        public var counters: [String: UInt64]

        enum CodingKeys: String, CodingKey {
            case seqID = "seq_id", package, version, requirement, parameters, enabled
            case programID = "program_id", pinned, counters
        }
    }

    public struct Chain: Sendable, Codable {
        public var interface: String
        public var hook: Hook
        public var root: String?
        public var rootProgramID: UInt32?
        public var programs: [Program]

        enum CodingKeys: String, CodingKey {
            case interface, hook, root
            case rootProgramID = "root_program_id"
            case programs
        }
    }

    /// A tracing program attached on its own (l3afd's `probes`, or a package's manifest probes).
    public struct Probe: Sendable, Codable {
        /// The interface whose payload carried it; `nil` for a host-wide probe.
        public var interface: String?
        public var package: String
        public var version: String
        public var entryFunction: String
        public var enabled: Bool
        /// The kernel's id for it; `nil` when it isn't attached (disabled, or the kernel disagrees).
        public var programID: UInt32?
        /// Each monitor map entry: `map[key]` → value (summed over CPUs).
        public var counters: [String: UInt64]

        enum CodingKeys: String, CodingKey {
            case interface, package, version, enabled, counters
            case entryFunction = "entry_function"
            case programID = "program_id"
        }
    }

    public var revision: Int?
    public var cause: String?
    /// `nil` when the kernel runs exactly what the revision records; else the first difference.
    public var difference: String?
    /// A change begun and not yet committed (in progress now, or left by a process that was killed): its revision
    /// number and cause. The next change, or `l3af restore`, finishes or undoes it.
    public var changing: String?
    public var chains: [Chain]
    /// Absent when the host has none.
    public var probes: [Probe]?
    public var pins: [HostDatabase.Pin]
}

extension HostManager {
    /// How often `status` reads the kernel again when a writer changed the database while it read.
    static let statusAttempts = 5

    /// The recorded chains (of `interface`, or all) with what the kernel runs: program ids, monitor map values. A read:
    /// takes no lock and changes nothing, so it answers while a change is in progress (and says so).
    public func status(interface: String? = nil) throws(HostError) -> HostStatus {
        // The kernel is read between two reads of the database: when a writer recorded or committed a change in
        // between, the kernel may have been caught between two revisions, so it is read again (a few times at most).
        var current = try database.current(), pending = try database.pending()
        var kernel = try kernelChains(current?.snapshot ?? HostSnapshot())
        for _ in 0..<Self.statusAttempts {
            // Only the numbers are read to see whether a writer moved on; the revisions only when one did.
            let after = try database.revisionNumbers()
            if after.current == current?.number, after.pending == pending?.number { break }
            (current, pending) = (try database.current(), try database.pending())
            kernel = try kernelChains(current?.snapshot ?? HostSnapshot())
        }
        let snapshot = current?.snapshot ?? HostSnapshot()
        let pins = try database.pins()
        var result: [HostStatus.Chain] = []
        let keys = Set(snapshot.keys + kernel.keys).sorted().filter { interface == nil || $0.interface == interface }
        for key in keys {
            let running = kernel[key] ?? []
            var programs: [HostStatus.Program] = []
            let placedPrograms = snapshot.programs.filter { $0.key == key }.sorted { ($0.seqID, $0.package) < ($1.seqID, $1.package) }
            for placed in placedPrograms {
                let entry = running.first(where: placed.runs(as:))
                let counters = entry == nil ? [:] : chains.counters(placed.program.monitorMaps, of: placed.package, on: key)
                let pin = HostDatabase.pin(in: pins, for: placed.package, interface: placed.interface)
                programs.append(HostStatus.Program(
                    seqID: placed.seqID, package: placed.package.rawValue, version: placed.version.rawValue, requirement: placed.requirement,
                    parameters: placed.parameters, enabled: placed.enabled, programID: entry?.programID, pinned: pin?.version.rawValue, counters: counters))
            }
            for entry in running where !placedPrograms.contains(where: { $0.package.rawValue == entry.package }) {
                programs.append(HostStatus.Program(seqID: entry.seqID, package: entry.package, version: entry.version, requirement: "", parameters: [:],
                                                   enabled: true, programID: entry.programID, pinned: nil, counters: [:]))
            }
            let root = snapshot.roots[key.hook.rawValue].map { "\($0.package)@\($0.version)" }
            result.append(HostStatus.Chain(interface: key.interface, hook: key.hook, root: root, rootProgramID: chains.rootProgramID(on: key), programs: programs))
        }
        // While a change is in flight the kernel runs the last revision or the one in flight (each chain changes in one
        // flip): a difference is reported only when it runs neither.
        let attached = chains.runningProbes()
        var difference = try difference(snapshot, kernel: kernel, probes: attached)
        if difference != nil, let pending, try self.difference(pending.snapshot, kernel: kernel, probes: attached) == nil { difference = nil }
        var probes: [HostStatus.Probe]?
        if let placed = snapshot.probes, !placed.isEmpty {
            probes = placed.filter { interface == nil || $0.interface == interface }.map { probe in
                let id = attached[probe.member.folderName]
                var counters: [String: UInt64] = [:]
                if id != nil {
                    for monitor in probe.payload.monitorMaps {
                        if let value = try? chains.counter(monitor.name, index: monitor.key, of: probe.member) { counters[monitor.label] = value }
                    }
                }
                return HostStatus.Probe(interface: probe.hostWide ? nil : probe.interface, package: probe.package.rawValue, version: probe.version.rawValue,
                                        entryFunction: probe.entryFunction, enabled: probe.enabled, programID: id, counters: counters)
            }
        }
        return HostStatus(revision: current?.number, cause: current?.cause, difference: difference,
                          changing: pending.map { "revision \($0.number): \($0.cause)" }, chains: result, probes: probes, pins: pins)
    }
}
