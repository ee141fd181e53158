/// What versions of a package a user asks for: `1.2.3` (the same as `^1.2.3`), `=1.2.3` (exactly),
/// `^1.2`, `~1.2.3`, `>=1.0, <2.0` (a comma is AND), `1.2.*`, `*`, or a dist-tag such as `latest`.
///
/// A prerelease satisfies a requirement only when the requirement names a prerelease at the same
/// `MAJOR.MINOR.PATCH` (`>=1.2.0-rc.1` admits `1.2.0-rc.2` but not `1.3.0-beta`), so nobody gets
/// a prerelease by accident.
public enum VersionRequirement: Hashable, Sendable, CustomStringConvertible {
    /// `*`: any release.
    case any
    /// A dist-tag: picks exactly the version the tag points at.
    case tag(DistTag)
    /// One or more comparators that must all hold.
    case range(VersionRange)

    /// The tag every package has once it has a version.
    public static let latest = VersionRequirement.tag(.latest)

    /// Parses a requirement; see the type's summary for the forms.
    public init(parsing text: String) throws(RequirementParseError) {
        let trimmed = text.trimmingASCIISpaces()
        if trimmed.isEmpty { throw RequirementParseError(text: text, problem: "it is empty") }
        if ["*", "x", "X"].contains(trimmed) {
            self = .any
            return
        }
        if let first = trimmed.first, first.isASCIILetter, first != "x", first != "X" {
            if first == "v" || first == "V", trimmed.dropFirst().first?.isASCIIDigit == true {
                throw RequirementParseError(
                    text: text, problem: "it starts with '\(first)'; write '\(trimmed.dropFirst())'")
            }
            do {
                self = .tag(try DistTag(trimmed))
            } catch {
                throw RequirementParseError(text: text, problem: error.problem)
            }
            return
        }
        self = .range(try VersionRange(parsing: trimmed, original: text))
    }

    /// The exact version an `=x.y.z` requirement names, or `nil`.
    public var exactVersion: SemanticVersion? {
        guard case .range(let range) = self else { return nil }
        return range.exactVersion
    }

    /// Whether `version` satisfies the requirement. A tag says nothing about versions: it is
    /// matched through the package's dist-tags when picking.
    public func isSatisfied(by version: SemanticVersion) -> Bool {
        switch self {
        case .any: !version.isPrerelease
        case .tag: false
        case .range(let range): range.isSatisfied(by: version)
        }
    }

    public var description: String {
        switch self {
        case .any: "*"
        case .tag(let tag): tag.rawValue
        case .range(let range): range.description
        }
    }
}

/// A dist-tag name: a lowercase letter, then up to 63 lowercase letters, digits, `.`, `-` or `_`.
/// A tag can't look like a version or a range, so `l3af install name@beta` is never ambiguous.
public struct DistTag: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// `latest`, which publishing moves unless told otherwise.
    public static let latest = DistTag(unchecked: "latest")
    /// The rule, as said in every refusal.
    public static let rule = "a dist-tag is a lowercase letter followed by up to 63 of [a-z0-9._-]"

    public let rawValue: String

    /// Validates a tag name.
    public init(_ rawValue: String) throws(DistTagError) {
        let scalars = Array(rawValue.unicodeScalars)
        guard let first = scalars.first, ("a"..."z").contains(first) else {
            throw DistTagError(tag: rawValue, problem: "'\(rawValue)' does not start with a lowercase letter")
        }
        guard scalars.count <= 64 else {
            throw DistTagError(tag: rawValue, problem: "'\(rawValue)' is longer than 64 characters")
        }
        if let bad = scalars.first(where: {
            !(("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "." || $0 == "-" || $0 == "_")
        }) {
            throw DistTagError(
                tag: rawValue, problem: "'\(rawValue)' has the character '\(bad.escaped(asASCII: true))'")
        }
        self.rawValue = rawValue
    }

    private init(unchecked: String) { rawValue = unchecked }

    public var description: String { rawValue }
    public static func < (lhs: DistTag, rhs: DistTag) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A dist-tag name that breaks the rule.
public struct DistTagError: L3AFError, Equatable {
    public let tag: String
    public let problem: String
    public var code: String { "invalid-dist-tag" }
    public var description: String { "invalid dist-tag: \(problem); \(DistTag.rule)" }
}

/// A requirement that could not be parsed.
public struct RequirementParseError: L3AFError, Equatable {
    /// The requirement as given.
    public let text: String
    /// What is wrong with it.
    public let problem: String

    public var code: String { "invalid-version-requirement" }
    public var description: String { "invalid version requirement '\(text)': \(problem)" }
    public var hint: String? {
        "write an exact version (=1.2.3), a range (1.2.3, ^1.2, ~1.2.3, >=1.0, <2.0, 1.2.*, *) or a dist-tag (latest)"
    }
}

extension Character {
    var isASCIIWhitespace: Bool { self == " " || self == "\t" || self == "\n" || self == "\r" || self == "\r\n" }
}

extension StringProtocol {
    func trimmingASCIISpaces() -> String {
        var text = Substring(self)
        while let first = text.first, first.isASCIIWhitespace { text.removeFirst() }
        while let last = text.last, last.isASCIIWhitespace { text.removeLast() }
        return String(text)
    }
}
