/// The name of an eBPF package: lowercase ASCII letters, digits, `-` and `_`, starting with a
/// letter, at most 64 characters.
///
/// `-` and `_` are the same for collisions (`rate-limit` and `rate_limit` can't both exist), which
/// ``collisionKey`` expresses. Two names are equal only when they are spelled the same.
public struct PackageName: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The longest name accepted.
    public static let maximumLength = 64
    /// The rule, as said in every refusal.
    public static let rule =
        "a package name is 1 to 64 characters of lowercase ASCII letters, digits, '-' and '_', starting with a letter"

    /// The name as spelled.
    public let rawValue: String

    /// Validates `rawValue` against the naming rule.
    public init(_ rawValue: String) throws(PackageNameError) {
        if let problem = Self.problem(in: rawValue) {
            throw PackageNameError(name: rawValue, problem: problem)
        }
        self.rawValue = rawValue
    }

    /// The form two names share when they collide: `_` folded to `-`.
    public var collisionKey: String {
        String(rawValue.map { $0 == "_" ? "-" : $0 })
    }

    /// Whether `other` is a different spelling of a name that collides with this one.
    public func collides(with other: PackageName) -> Bool {
        collisionKey == other.collisionKey
    }

    public var description: String { rawValue }

    public static func < (lhs: PackageName, rhs: PackageName) -> Bool { lhs.rawValue < rhs.rawValue }

    private static func problem(in name: String) -> String? {
        if name.isEmpty { return "it is empty" }
        let bytes = Array(name.utf8)
        if bytes.count > maximumLength { return "it is \(bytes.count) characters long" }
        guard let first = bytes.first, (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first) else {
            let shown = name.first.map { String($0) } ?? ""
            return "it starts with '\(shown)', not a lowercase letter"
        }
        for scalar in name.unicodeScalars {
            switch scalar {
            case "a"..."z", "0"..."9", "-", "_":
                continue
            case "A"..."Z":
                return "it has an uppercase letter '\(scalar)'; use '\(String(scalar).lowercased())'"
            default:
                return "it has the character '\(scalar.escaped(asASCII: true))'"
            }
        }
        return nil
    }
}

/// A package name that breaks the naming rule.
public struct PackageNameError: L3AFError, Equatable {
    /// The name as given.
    public let name: String
    /// What is wrong with it.
    public let problem: String

    public var code: String { "invalid-package-name" }
    public var description: String { "invalid package name '\(name)': \(problem); \(PackageName.rule)" }
    public var hint: String? {
        guard let suggestion = Self.suggestion(for: name), suggestion != name else { return nil }
        return "did you mean '\(suggestion)'?"
    }

    /// The nearest valid spelling, if there is one: lowercased, other characters turned into `-`.
    static func suggestion(for name: String) -> String? {
        var mapped = String(name.lowercased().unicodeScalars.map { scalar -> Character in
            switch scalar {
            case "a"..."z", "0"..."9", "-", "_": Character(scalar)
            default: "-"
            }
        })
        while let first = mapped.first, !("a"..."z").contains(first) { mapped.removeFirst() }
        mapped = String(mapped.prefix(PackageName.maximumLength))
        return (try? PackageName(mapped))?.rawValue
    }
}

extension PackageName: ExpressibleByStringLiteral {
    /// For literals in code and tests; a literal that breaks ``rule`` traps.
    public init(stringLiteral value: String) { try! self.init(value) }
}
