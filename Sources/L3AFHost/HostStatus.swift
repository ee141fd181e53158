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

    public var revision: Int?
    public var cause: String?
    /// `nil` when the kernel runs exactly what the revision records; else the first difference.
    public var difference: String?
    public var chains: [Chain]
    public var pins: [HostDatabase.Pin]
}

extension HostManager {
    /// The recorded chains (of `interface`, or all) with what the kernel runs: program ids, monitor map values.
    public func status(interface: String? = nil) throws(HostError) -> HostStatus {
        let current = try database.current()
        let snapshot = current?.snapshot ?? HostSnapshot()
        let kernel = try kernelChains(snapshot)
        let engine = engine(snapshot)
        let pins = try database.pins()
        var chains: [HostStatus.Chain] = []
        let keys = Set(snapshot.keys + kernel.keys).sorted().filter { interface == nil || $0.interface == interface }
        for key in keys {
            let running = kernel[key] ?? []
            var programs: [HostStatus.Program] = []
            let placedPrograms = snapshot.programs.filter { $0.key == key }.sorted { ($0.seqID, $0.package) < ($1.seqID, $1.package) }
            for placed in placedPrograms {
                let entry = running.first { $0.package == placed.package && $0.version == placed.version }
                var counters: [String: UInt64] = [:]
                if entry != nil {
                    for monitor in placed.program.monitorMaps {
                        if let access = try? engine.map(monitor.name, of: placed.package, interface: key.interface, hook: key.hook),
                           let value = try? access.counter(key: monitor.key) {
                            counters["\(monitor.name)[\(monitor.key)]"] = value
                        }
                    }
                }
                let pin = pins.first { $0.package == placed.package && $0.interface == placed.interface } ?? pins.first { $0.package == placed.package && $0.interface == nil }
                programs.append(HostStatus.Program(
                    seqID: placed.seqID, package: placed.package, version: placed.version, requirement: placed.requirement,
                    parameters: placed.parameters, enabled: placed.enabled, programID: entry?.programID, pinned: pin?.version, counters: counters))
            }
            for entry in running where !placedPrograms.contains(where: { $0.package == entry.package }) {
                programs.append(HostStatus.Program(seqID: entry.seqID, package: entry.package, version: entry.version, requirement: "", parameters: [:],
                                                   enabled: true, programID: entry.programID, pinned: nil, counters: [:]))
            }
            let root = snapshot.roots[key.hook.rawValue].map { "\($0.package)@\($0.version)" }
            let rootID = try? engine.rootProgramID(interface: key.interface, hook: key.hook)
            chains.append(HostStatus.Chain(interface: key.interface, hook: key.hook, root: root, rootProgramID: rootID ?? nil, programs: programs))
        }
        return HostStatus(revision: current?.number, cause: current?.cause, difference: try difference(snapshot, kernel: kernel), chains: chains, pins: pins)
    }
}
