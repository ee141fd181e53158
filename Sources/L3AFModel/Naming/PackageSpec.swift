/// What a user names on the command line: `name`, `name@1.2.3`, `name@^1.2`, `name@latest`.
/// A bare name means `name@latest`.
public struct PackageSpec: Hashable, Sendable, CustomStringConvertible {
    public let name: PackageName
    public let requirement: VersionRequirement

    public init(name: PackageName, requirement: VersionRequirement = .latest) {
        self.name = name
        self.requirement = requirement
    }

    /// Parses `name[@requirement]`.
    public init(parsing text: String) throws(PackageSpecError) {
        let namePart: Substring
        var requirementPart: Substring?
        if let at = text.firstIndex(of: "@") {
            namePart = text[..<at]
            requirementPart = text[text.index(after: at)...]
        } else {
            namePart = Substring(text)
        }
        do {
            name = try PackageName(String(namePart))
        } catch {
            throw PackageSpecError(spec: text, underlying: error)
        }
        guard let requirementPart else {
            requirement = .latest
            return
        }
        if requirementPart.isEmpty {
            throw PackageSpecError(
                spec: text,
                underlying: RequirementParseError(text: "", problem: "nothing follows '@'"))
        }
        do {
            requirement = try VersionRequirement(parsing: String(requirementPart))
        } catch {
            throw PackageSpecError(spec: text, underlying: error)
        }
    }

    public var description: String { "\(name)@\(requirement)" }
}

/// A package spec whose name or requirement is invalid.
public struct PackageSpecError: L3AFError {
    /// The spec as given.
    public let spec: String
    /// What was wrong with its name or requirement.
    public let underlying: any L3AFError

    public var code: String { underlying.code }
    public var description: String { "invalid package spec '\(spec)': \(underlying.description)" }
    public var hint: String? {
        underlying.hint.map { "\($0) (a spec is name, name@1.2.3, name@^1.2 or name@latest)" }
            ?? "a spec is name, name@1.2.3, name@^1.2 or name@latest"
    }
}
