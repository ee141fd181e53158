/// A version number as Semantic Versioning 2.0.0 defines it: `MAJOR.MINOR.PATCH`, an optional
/// `-prerelease` and an optional `+build`.
///
/// Ordering is SemVer precedence: numbers compare numerically, a prerelease is lower than its
/// release, prerelease identifiers compare field by field (numeric ones numerically and lower
/// than alphanumeric ones), and a longer prerelease wins a tie. Build metadata plays no part in
/// precedence; ``<`` still orders by it last so that `Comparable` is a total order that agrees
/// with `==`. Use ``hasSamePrecedence(as:)`` to ask the SemVer question.
public struct SemanticVersion: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// One dot-separated prerelease identifier.
    public enum PrereleaseIdentifier: Hashable, Comparable, Sendable, CustomStringConvertible {
        case numeric(UInt64)
        case alphanumeric(String)

        public var description: String {
            switch self {
            case .numeric(let n): String(n)
            case .alphanumeric(let s): s
            }
        }

        public static func < (lhs: Self, rhs: Self) -> Bool {
            switch (lhs, rhs) {
            case (.numeric(let a), .numeric(let b)): a < b
            case (.numeric, .alphanumeric): true
            case (.alphanumeric, .numeric): false
            // ASCII sort order, as SemVer says: compare bytes, not Unicode collation.
            case (.alphanumeric(let a), .alphanumeric(let b)): a.utf8.lexicographicallyPrecedes(b.utf8)
            }
        }
    }

    public let major: UInt64
    public let minor: UInt64
    public let patch: UInt64
    /// Empty for a release.
    public let prerelease: [PrereleaseIdentifier]
    /// Build metadata identifiers; ignored for precedence.
    public let build: [String]

    /// A version from its parts; identifiers are assumed valid (use ``init(parsing:)`` for text).
    public init(
        _ major: UInt64, _ minor: UInt64, _ patch: UInt64,
        prerelease: [PrereleaseIdentifier] = [], build: [String] = []
    ) {
        self.major = major
        self.minor = minor
        self.patch = patch
        self.prerelease = prerelease
        self.build = build
    }

    /// Parses a full SemVer 2.0.0 version string, strictly: no leading `v`, no leading zeros, no
    /// missing parts, no empty identifiers.
    public init(parsing text: String) throws(VersionParseError) {
        func fail(_ problem: String) -> VersionParseError { VersionParseError(text: text, problem: problem) }
        if text.isEmpty { throw fail("it is empty") }
        if text.first == "v" || text.first == "V" {
            throw fail("it starts with '\(text.first!)'; write '\(text.dropFirst())'")
        }
        var rest = Substring(text)
        var build: [String] = []
        if let plus = rest.firstIndex(of: "+") {
            let buildText = rest[rest.index(after: plus)...]
            rest = rest[..<plus]
            build = try Self.identifiers(buildText, kind: "build metadata", numericRule: false, in: text)
                .map(String.init)
        }
        var prerelease: [PrereleaseIdentifier] = []
        if let dash = rest.firstIndex(of: "-") {
            let preText = rest[rest.index(after: dash)...]
            rest = rest[..<dash]
            prerelease = try Self.identifiers(preText, kind: "prerelease", numericRule: true, in: text).map {
                if let n = UInt64($0), $0.allSatisfy(\.isASCIIDigit) { .numeric(n) } else { .alphanumeric(String($0)) }
            }
        }
        let core = rest.split(separator: ".", omittingEmptySubsequences: false)
        guard core.count == 3 else {
            throw fail("it needs three numbers MAJOR.MINOR.PATCH, found \(core.count) in '\(rest)'")
        }
        let names = ["major", "minor", "patch"]
        var numbers: [UInt64] = []
        for (index, part) in core.enumerated() {
            numbers.append(try Self.number(part, name: names[index], in: text))
        }
        self.init(numbers[0], numbers[1], numbers[2], prerelease: prerelease, build: build)
    }

    /// Whether this is a prerelease (`1.0.0-rc.1`).
    public var isPrerelease: Bool { !prerelease.isEmpty }

    /// The same version without prerelease or build: `1.2.3-rc.1+b5` → `1.2.3`.
    public var release: SemanticVersion { SemanticVersion(major, minor, patch) }

    /// Whether the two have the same `MAJOR.MINOR.PATCH`.
    public func hasSameCore(as other: SemanticVersion) -> Bool {
        major == other.major && minor == other.minor && patch == other.patch
    }

    /// SemVer precedence: negative, zero or positive. Build metadata is ignored.
    public func comparePrecedence(to other: SemanticVersion) -> Int {
        if major != other.major { return major < other.major ? -1 : 1 }
        if minor != other.minor { return minor < other.minor ? -1 : 1 }
        if patch != other.patch { return patch < other.patch ? -1 : 1 }
        switch (prerelease.isEmpty, other.prerelease.isEmpty) {
        case (true, true): return 0
        case (true, false): return 1
        case (false, true): return -1
        case (false, false):
            for (a, b) in zip(prerelease, other.prerelease) where a != b {
                return a < b ? -1 : 1
            }
            return prerelease.count == other.prerelease.count ? 0 : (prerelease.count < other.prerelease.count ? -1 : 1)
        }
    }

    /// Whether SemVer gives the two the same precedence (`1.0.0+a` and `1.0.0+b` do).
    public func hasSamePrecedence(as other: SemanticVersion) -> Bool { comparePrecedence(to: other) == 0 }

    public static func < (lhs: SemanticVersion, rhs: SemanticVersion) -> Bool {
        let order = lhs.comparePrecedence(to: rhs)
        if order != 0 { return order < 0 }
        return lhs.build.lexicographicallyPrecedes(rhs.build) { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    public var description: String {
        var text = "\(major).\(minor).\(patch)"
        if !prerelease.isEmpty { text += "-" + prerelease.map(\.description).joined(separator: ".") }
        if !build.isEmpty { text += "+" + build.joined(separator: ".") }
        return text
    }

    static func number(_ part: Substring, name: String, in text: String) throws(VersionParseError) -> UInt64 {
        guard !part.isEmpty else { throw VersionParseError(text: text, problem: "the \(name) number is missing") }
        guard part.allSatisfy(\.isASCIIDigit) else {
            throw VersionParseError(text: text, problem: "the \(name) part '\(part)' is not a number")
        }
        guard part.count == 1 || part.first != "0" else {
            throw VersionParseError(text: text, problem: "the \(name) number '\(part)' has a leading zero")
        }
        guard let value = UInt64(part) else {
            throw VersionParseError(text: text, problem: "the \(name) number '\(part)' is too large")
        }
        return value
    }

    private static func identifiers(
        _ list: Substring, kind: String, numericRule: Bool, in text: String
    ) throws(VersionParseError) -> [Substring] {
        let parts = list.split(separator: ".", omittingEmptySubsequences: false)
        for part in parts {
            if part.isEmpty {
                throw VersionParseError(text: text, problem: "the \(kind) has an empty identifier")
            }
            if let bad = part.first(where: { !($0.isASCIIDigit || $0.isASCIILetter || $0 == "-") }) {
                throw VersionParseError(
                    text: text, problem: "the \(kind) identifier '\(part)' has '\(bad)'; use only [0-9A-Za-z-]")
            }
            if numericRule, part.count > 1, part.first == "0", part.allSatisfy(\.isASCIIDigit) {
                throw VersionParseError(
                    text: text, problem: "the numeric \(kind) identifier '\(part)' has a leading zero")
            }
            if numericRule, part.allSatisfy(\.isASCIIDigit), UInt64(part) == nil {
                throw VersionParseError(text: text, problem: "the \(kind) identifier '\(part)' is too large")
            }
        }
        return parts
    }
}

/// A version string that is not SemVer 2.0.0.
public struct VersionParseError: L3AFError, Equatable {
    /// The text as given.
    public let text: String
    /// What is wrong with it.
    public let problem: String

    public var code: String { "invalid-version" }
    public var description: String { "invalid version '\(text)': \(problem)" }
    public var hint: String? {
        "a version is MAJOR.MINOR.PATCH with an optional -prerelease and +build, e.g. 1.2.0 or 2.0.0-rc.1"
    }
}

extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
    var isASCIILetter: Bool { ("a"..."z").contains(self) || ("A"..."Z").contains(self) }
}
