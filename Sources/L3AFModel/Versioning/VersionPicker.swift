/// One published version as resolution sees it.
public struct VersionCandidate: Hashable, Sendable {
    public let version: SemanticVersion
    public let yanked: Bool

    public init(_ version: SemanticVersion, yanked: Bool = false) {
        self.version = version
        self.yanked = yanked
    }
}

extension VersionRequirement {
    /// Picks the version this requirement resolves to among a package's published versions.
    ///
    /// - A dist-tag picks exactly the version it points at, and refuses when that is yanked.
    /// - An exact `=x.y.z` picks that version even when it is yanked (a pin keeps working).
    /// - Anything else picks the highest matching version that is not yanked.
    public func pick(
        from candidates: [VersionCandidate],
        distTags: [DistTag: SemanticVersion] = [:],
        package: String = "package"
    ) throws(ResolutionError) -> SemanticVersion {
        if candidates.isEmpty { throw ResolutionError(package: package, requirement: self, reason: .noVersions) }
        switch self {
        case .tag(let tag):
            guard let tagged = distTags[tag] else {
                throw ResolutionError(package: package, requirement: self, reason: .unknownTag(known: distTags.keys.sorted()))
            }
            guard let candidate = candidates.first(where: { $0.version.hasSamePrecedence(as: tagged) }) else {
                throw ResolutionError(package: package, requirement: self, reason: .tagPointsNowhere(tagged))
            }
            if candidate.yanked {
                throw ResolutionError(package: package, requirement: self, reason: .tagPointsAtYanked(candidate.version))
            }
            return candidate.version
        case .any, .range:
            if let exact = exactVersion {
                if let found = candidates.first(where: { $0.version.hasSamePrecedence(as: exact) }) {
                    return found.version
                }
                throw ResolutionError(
                    package: package, requirement: self, reason: .noMatch(newest: Self.newest(candidates), excluded: []))
            }
            let matching = candidates.filter { isSatisfied(by: $0.version) }
            if let best = matching.filter({ !$0.yanked }).map(\.version).max() {
                return best
            }
            var excluded: [ResolutionError.Excluded] = matching.map { .yanked($0.version) }
            if case .range(let range) = self {
                // A prerelease is worth mentioning when it and its release both fall in the range: it
                // was left out only for being a prerelease.
                let prereleases = candidates.filter { candidate in
                    candidate.version.isPrerelease
                        && range.bounds.allSatisfy { $0.admits(candidate.version) && $0.admits(candidate.version.release) }
                }
                excluded += prereleases.map { .prerelease($0.version) }
            }
            throw ResolutionError(
                package: package, requirement: self,
                reason: .noMatch(newest: Self.newest(candidates), excluded: excluded.sorted { $0.version < $1.version }))
        }
    }

    private static func newest(_ candidates: [VersionCandidate]) -> SemanticVersion? {
        candidates.filter { !$0.yanked && !$0.version.isPrerelease }.map(\.version).max()
    }
}

/// Why a requirement picked no version.
public struct ResolutionError: L3AFError, Equatable {
    /// A version that matched but was passed over, and why.
    public enum Excluded: Hashable, Sendable {
        case yanked(SemanticVersion)
        case prerelease(SemanticVersion)

        var version: SemanticVersion {
            switch self {
            case .yanked(let v), .prerelease(let v): v
            }
        }
    }

    public enum Reason: Hashable, Sendable {
        case noVersions
        case unknownTag(known: [DistTag])
        case tagPointsNowhere(SemanticVersion)
        case tagPointsAtYanked(SemanticVersion)
        case noMatch(newest: SemanticVersion?, excluded: [Excluded])
    }

    public let package: String
    public let requirement: VersionRequirement
    public let reason: Reason

    public var code: String {
        switch reason {
        case .noVersions: "no-versions"
        case .unknownTag: "unknown-dist-tag"
        case .tagPointsNowhere, .tagPointsAtYanked: "dist-tag-unusable"
        case .noMatch: "no-matching-version"
        }
    }

    public var description: String {
        let spec = "\(package)@\(requirement)"
        switch reason {
        case .noVersions:
            return "\(package) has no published versions"
        case .unknownTag(let known):
            let list = known.map(\.rawValue).joined(separator: ", ")
            return "\(package) has no dist-tag '\(requirement)'" + (known.isEmpty ? "" : " (its tags: \(list))")
        case .tagPointsNowhere(let version):
            return "\(spec): the tag points at \(version), which is not published"
        case .tagPointsAtYanked(let version):
            return "\(spec): the tag points at \(version), which has been yanked"
        case .noMatch(_, let excluded):
            var text = "no version of \(package) matches '\(requirement)'"
            let yanked = excluded.compactMap { if case .yanked(let v) = $0 { v } else { nil } }
            let pre = excluded.compactMap { if case .prerelease(let v) = $0 { v } else { nil } }
            if !yanked.isEmpty { text += "; yanked: " + yanked.map(\.description).joined(separator: ", ") }
            if !pre.isEmpty { text += "; prereleases not asked for: " + pre.map(\.description).joined(separator: ", ") }
            return text
        }
    }

    public var hint: String? {
        switch reason {
        case .noVersions: return "publish a version first, or check the package name"
        case .unknownTag: return "use one of the package's tags, or a version or range such as ^1.0"
        case .tagPointsNowhere, .tagPointsAtYanked:
            return "ask the owner to move the tag, or name a version exactly (=x.y.z)"
        case .noMatch(let newest, let excluded):
            if let pre = excluded.first(where: { if case .prerelease = $0 { true } else { false } }) {
                return "to accept a prerelease, name it: =\(pre.version)"
            }
            if let yanked = excluded.first(where: { if case .yanked = $0 { true } else { false } }) {
                return "a yanked version installs only when named exactly: =\(yanked.version)"
            }
            return newest.map { "the newest release is \($0)" }
        }
    }
}
