/// The version a host runs of a package: what the registry resolved (a SemVer version), or what a plain l3afd
/// repository calls it (any plain name, e.g. `v2` or `2024-01`). It becomes a folder name in the repo and a pin name
/// on bpffs, so it is checked as a ``FileName`` where it enters. Ordered by SemVer precedence where both sides are
/// SemVer; otherwise by text.
public struct PackageVersion: Hashable, Sendable, Comparable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let rawValue: String

    public init(_ text: String, field: String = "version") throws(PathNameError) {
        rawValue = try FileName(text, field: field).rawValue
    }

    public init(_ version: SemanticVersion) { rawValue = version.description }

    /// For literals in code and tests; a literal that isn't a plain name traps.
    public init(stringLiteral value: String) { try! self.init(value) }

    /// The version as SemVer, when it is one.
    public var semantic: SemanticVersion? { try? SemanticVersion(parsing: rawValue) }

    public var description: String { rawValue }

    public static func < (a: PackageVersion, b: PackageVersion) -> Bool {
        if let x = a.semantic, let y = b.semantic { return x < y }
        return a.rawValue < b.rawValue
    }

    /// Whether both are SemVer and `self` is the newer.
    public func isNewer(than other: PackageVersion) -> Bool {
        guard let x = semantic, let y = other.semantic else { return false }
        return x > y
    }
}

extension PackageVersion: TextCodable {
    public init(decodingText text: String) throws(PathNameError) { try self.init(text) }
}
