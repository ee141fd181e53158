import Foundation
import L3AFModel

/// Two states of the host chain by chain (`l3af diff`): revisions, or a revision and what the kernel runs.
public struct HostDiff: Codable, Sendable {
    public struct Chain: Codable, Sendable, Hashable {
        public var interface: String
        public var hook: Hook
        public var from: [String]
        public var to: [String]
        /// Packages only in `to`, only in `from`, and at another version (`name: 1.0.0 → 1.1.0`).
        public var added: [String]
        public var removed: [String]
        public var changed: [String]
    }

    /// `revision N`, or `the kernel`.
    public var from: String
    public var to: String
    public var chains: [Chain]
    public var probesAdded: [String]
    public var probesRemoved: [String]

    enum CodingKeys: String, CodingKey { case from, to, chains, probesAdded = "probes_added", probesRemoved = "probes_removed" }

    public var isEmpty: Bool { chains.isEmpty && probesAdded.isEmpty && probesRemoved.isEmpty }

    public var text: String {
        var lines = ["\(from) → \(to)"]
        if isEmpty { lines.append("no difference") }
        for chain in chains {
            lines.append("\(chain.interface) \(chain.hook): [\(chain.from.joined(separator: ", "))] → [\(chain.to.joined(separator: ", "))]")
            lines += chain.added.map { "  + \($0)" } + chain.removed.map { "  - \($0)" } + chain.changed.map { "  ~ \($0)" }
        }
        lines += probesAdded.map { "  + probe \($0)" } + probesRemoved.map { "  - probe \($0)" }
        return lines.joined(separator: "\n")
    }
}

extension HostManager {
    /// Revision `a` against revision `b`; without `b`, against what the kernel runs now; without either, the last
    /// revision against the kernel. Reads only.
    public func diff(_ a: Int?, _ b: Int?) throws(HostError) -> HostDiff {
        func revision(_ number: Int?) throws(HostError) -> (String, HostSnapshot) {
            if let number {
                guard let revision = try database.revision(number) else {
                    throw HostError(.badInput, "there is no revision \(number)", hint: "`l3af history` lists them")
                }
                return ("revision \(number)", revision.snapshot)
            }
            guard let current = try database.current() else { return ("no revision", HostSnapshot()) }
            return ("revision \(current.number)", current.snapshot)
        }
        let (fromName, fromSnapshot) = try revision(a)
        var left: [ChainKey: [String]] = [:], right: [ChainKey: [String]] = [:]
        for key in fromSnapshot.keys { left[key] = fromSnapshot.chain(key).map(\.spec) }
        let leftProbes = fromSnapshot.attachedProbes
        var rightProbes = Set<String>()
        let toName: String
        if let b {
            let (name, snapshot) = try revision(b)
            toName = name
            for key in snapshot.keys { right[key] = snapshot.chain(key).map(\.spec) }
            rightProbes = snapshot.attachedProbes
        } else {
            toName = "the kernel"
            for (key, entries) in try kernelChains(fromSnapshot) where !entries.isEmpty { right[key] = entries.map { "\($0.package)@\($0.version)" } }
            rightProbes = Set(chains.runningProbes().keys)
        }
        var diff = HostDiff(from: fromName, to: toName, chains: [], probesAdded: rightProbes.subtracting(leftProbes).sorted(),
                            probesRemoved: leftProbes.subtracting(rightProbes).sorted())
        for key in Set(left.keys).union(right.keys).sorted() {
            let was = left[key] ?? [], now = right[key] ?? []
            guard was != now else { continue }
            func split(_ spec: String) -> (String, String) {
                let parts = spec.split(separator: "@", maxSplits: 1).map(String.init)
                return (parts[0], parts.count > 1 ? parts[1] : "")
            }
            let wasVersions = Dictionary(was.map(split), uniquingKeysWith: { a, _ in a }), nowVersions = Dictionary(now.map(split), uniquingKeysWith: { a, _ in a })
            diff.chains.append(HostDiff.Chain(
                interface: key.interface, hook: key.hook, from: was, to: now,
                added: now.filter { wasVersions[split($0).0] == nil }, removed: was.filter { nowVersions[split($0).0] == nil },
                changed: was.compactMap { spec in
                    let (name, version) = split(spec)
                    guard let other = nowVersions[name], other != version else { return nil }
                    return "\(name): \(version) → \(other)"
                }))
        }
        return diff
    }
}
