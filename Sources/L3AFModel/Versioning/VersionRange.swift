/// A conjunction of comparators, each a bound on a version: `>=1.0.0, <2.0.0`.
///
/// Every written term (`^1.2`, `~1.2.3`, `1.2.*`, `<=1.4`) expands to one or two primitive bounds
/// when parsed; the text of the terms is kept for display.
public struct VersionRange: Hashable, Sendable, CustomStringConvertible {
    /// A primitive bound.
    public struct Bound: Hashable, Sendable, CustomStringConvertible {
        public enum Operator: String, Hashable, Sendable {
            case exact = "="
            case greater = ">"
            case greaterOrEqual = ">="
            case less = "<"
            case lessOrEqual = "<="
        }

        public let op: Operator
        public let version: SemanticVersion

        public init(_ op: Operator, _ version: SemanticVersion) {
            self.op = op
            self.version = version
        }

        /// Whether `candidate` is on the right side of the bound (SemVer precedence).
        public func admits(_ candidate: SemanticVersion) -> Bool {
            let order = candidate.comparePrecedence(to: version)
            return switch op {
            case .exact: order == 0
            case .greater: order > 0
            case .greaterOrEqual: order >= 0
            case .less: order < 0
            case .lessOrEqual: order <= 0
            }
        }

        public var description: String { "\(op.rawValue)\(version)" }
    }

    /// The terms as written, normalized (`^1.2`, `>=1.0`), for display.
    public let terms: [String]
    /// The expanded bounds; all must hold.
    public let bounds: [Bound]

    /// The version an exact `=x.y.z` range names.
    public var exactVersion: SemanticVersion? {
        guard bounds.count == 1, bounds[0].op == .exact else { return nil }
        return bounds[0].version
    }

    /// Whether `version` satisfies every bound, and, when it is a prerelease, whether some bound
    /// names a prerelease at the same `MAJOR.MINOR.PATCH`.
    public func isSatisfied(by version: SemanticVersion) -> Bool {
        guard bounds.allSatisfy({ $0.admits(version) }) else { return false }
        guard version.isPrerelease else { return true }
        return bounds.contains { $0.version.isPrerelease && $0.version.hasSameCore(as: version) }
    }

    public var description: String { terms.joined(separator: ", ") }

    init(parsing text: String, original: String) throws(RequirementParseError) {
        var terms: [String] = []
        var bounds: [Bound] = []
        for rawTerm in text.split(separator: ",", omittingEmptySubsequences: false) {
            let term = rawTerm.trimmingASCIISpaces()
            if term.isEmpty {
                throw RequirementParseError(text: original, problem: "it has an empty term between commas")
            }
            let (normalized, expanded) = try Self.expand(term, original: original)
            terms.append(normalized)
            bounds += expanded
        }
        self.terms = terms
        self.bounds = bounds
    }

    private static let operators: [(String, String)] = [
        (">=", ">="), ("<=", "<="), (">", ">"), ("<", "<"), ("=", "="), ("^", "^"), ("~", "~"),
    ]

    /// Expands one term into bounds. Partial versions follow Cargo's reading: `>1.2` is `>=1.3.0`,
    /// `<=1.2` is `<1.3.0`, `=1.2` is `>=1.2.0, <1.3.0`.
    private static func expand(_ term: String, original: String) throws(RequirementParseError) -> (String, [Bound]) {
        func fail(_ problem: String) -> RequirementParseError {
            RequirementParseError(text: original, problem: problem)
        }
        var op = ""
        var rest = Substring(term)
        for (prefix, name) in operators where rest.hasPrefix(prefix) {
            op = name
            rest = rest.dropFirst(prefix.count)
            break
        }
        let versionText = rest.trimmingASCIISpaces()
        if versionText.isEmpty { throw fail("'\(term)' has an operator but no version") }
        if ["*", "x", "X"].contains(versionText) {
            guard op.isEmpty || op == ">=" else { throw fail("'\(term)' compares against a wildcard") }
            return ("*", [])
        }
        let partial: PartialVersion
        do {
            partial = try PartialVersion(parsing: versionText)
        } catch {
            throw fail("'\(term)': \(error.problem)")
        }
        let normalized = op + versionText
        let lower = partial.lowerBound
        if partial.isWildcard && !op.isEmpty {
            throw fail("'\(term)' mixes the operator '\(op)' with a wildcard; write '\(versionText)' alone")
        }
        switch op {
        case "=":
            if partial.isComplete { return (normalized, [Bound(.exact, lower)]) }
            return (normalized, [Bound(.greaterOrEqual, lower)] + partial.upperBound(bumping: partial.lastGiven))
        case ">=":
            return (normalized, [Bound(.greaterOrEqual, lower)])
        case ">":
            if partial.isComplete { return (normalized, [Bound(.greater, lower)]) }
            guard let next = partial.bumped(partial.lastGiven) else { return (normalized, [Bound(.greater, lower)]) }
            return (normalized, [Bound(.greaterOrEqual, next)])
        case "<":
            return (normalized, [Bound(.less, lower)])
        case "<=":
            if partial.isComplete { return (normalized, [Bound(.lessOrEqual, lower)]) }
            return (normalized, partial.upperBound(bumping: partial.lastGiven))
        case "~":
            // ~1.2.3 and ~1.2 stay within 1.2; ~1 stays within 1.
            let bump = partial.given >= 2 ? 1 : 0
            return (normalized, [Bound(.greaterOrEqual, lower)] + partial.upperBound(bumping: bump))
        default:
            if partial.isWildcard {
                return (normalized, [Bound(.greaterOrEqual, lower)] + partial.upperBound(bumping: partial.lastGiven))
            }
            // Bare and caret: the leftmost non-zero part given may not change.
            let name = op.isEmpty ? "^" + versionText : normalized
            let bump: Int
            if lower.major > 0 || partial.given == 1 {
                bump = 0
            } else if lower.minor > 0 || partial.given == 2 {
                bump = 1
            } else {
                bump = 2
            }
            return (name, [Bound(.greaterOrEqual, lower)] + partial.upperBound(bumping: bump))
        }
    }
}

/// A version with parts left out or wildcarded (`1`, `1.2`, `1.2.*`), as ranges write them.
struct PartialVersion {
    /// How many of major, minor, patch were written as numbers (1 to 3).
    let given: Int
    let isWildcard: Bool
    /// The written version with missing parts as zero.
    let lowerBound: SemanticVersion

    var isComplete: Bool { given == 3 }
    /// Index of the last part written as a number (0 major, 1 minor, 2 patch).
    var lastGiven: Int { given - 1 }

    struct Problem: Error { let problem: String }

    init(parsing text: String) throws(Problem) {
        let firstSeparator = text.firstIndex { $0 == "-" || $0 == "+" }
        let coreText = firstSeparator.map { text[..<$0] } ?? Substring(text)
        let parts = coreText.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...3).contains(parts.count) else {
            throw Problem(problem: "'\(text)' has \(parts.count) parts; a version has at most three")
        }
        var numbers: [UInt64] = []
        var wildcard = false
        let names = ["major", "minor", "patch"]
        for (index, part) in parts.enumerated() {
            if ["*", "x", "X"].contains(part) {
                if index == 0 { throw Problem(problem: "'\(text)' can't wildcard the major number; use '*'") }
                wildcard = true
                continue
            }
            if wildcard { throw Problem(problem: "'\(text)' has a number after a wildcard") }
            do {
                numbers.append(try SemanticVersion.number(part, name: names[index], in: text))
            } catch {
                throw Problem(problem: error.problem)
            }
        }
        given = numbers.count
        isWildcard = wildcard
        if firstSeparator != nil {
            guard numbers.count == 3 else {
                throw Problem(problem: "'\(text)' has a prerelease or build but not all three numbers")
            }
            do {
                lowerBound = try SemanticVersion(parsing: text)
            } catch {
                throw Problem(problem: error.problem)
            }
        } else {
            while numbers.count < 3 { numbers.append(0) }
            lowerBound = SemanticVersion(numbers[0], numbers[1], numbers[2])
        }
    }

    /// The version with part `index` incremented and the later parts zero: `1.2.3` bumping 1 is `1.3.0`.
    func bumped(_ index: Int) -> SemanticVersion? {
        let v = lowerBound
        switch index {
        case 0: return v.major == .max ? nil : SemanticVersion(v.major + 1, 0, 0)
        case 1: return v.minor == .max ? nil : SemanticVersion(v.major, v.minor + 1, 0)
        default: return v.patch == .max ? nil : SemanticVersion(v.major, v.minor, v.patch + 1)
        }
    }

    /// An exclusive upper bound at ``bumped(_:)``, or none when the number can't grow.
    func upperBound(bumping index: Int) -> [VersionRange.Bound] {
        bumped(index).map { [VersionRange.Bound(.less, $0)] } ?? []
    }
}
