/// A name from outside (a payload, an archive, a URL) that is about to become one component of a path: it can
/// only hold a plain name, so a folder joined with it stays that folder's child. Checked once, at the edge.
public struct FileName: Hashable, Sendable, CustomStringConvertible {
    /// The longest component Linux allows (NAME_MAX).
    public static let maximumLength = 255
    /// The rule, as said in every refusal.
    public static let rule = "a plain file name: 1 to 255 bytes, no '/', no NUL or control characters, not '.' or '..'"

    public let rawValue: String

    /// Checks `rawValue`; `field` names where it came from in the error (`bpf_programs.xdp_ingress[0].artifact`).
    public init(_ rawValue: String, field: String = "name") throws(PathNameError) {
        if let problem = Self.problem(in: rawValue) { throw PathNameError(field: field, value: rawValue, problem: problem, rule: Self.rule) }
        self.rawValue = rawValue
    }

    /// Whether `name` is one plain path component.
    public static func isPlain(_ name: String) -> Bool { problem(in: name) == nil }

    /// What is wrong with `name` as a path component, or `nil`.
    public static func problem(in name: String) -> String? {
        if name.isEmpty { return "it is empty" }
        if name == "." || name == ".." { return "it is '\(name)'" }
        if name.utf8.count > maximumLength { return "it is \(name.utf8.count) bytes long" }
        for scalar in name.unicodeScalars {
            if scalar == "/" { return "it has a '/'" }
            if scalar.value < 0x20 || scalar.value == 0x7f { return "it has the control character \(scalar.escaped(asASCII: true))" }
        }
        return nil
    }

    public var description: String { rawValue }
}

/// A relative path from outside whose every component is a ``FileName``: it can't be absolute, climb out with
/// `..`, or hide a NUL, so it stays inside whatever folder it is joined to (links aside: archives may hold none).
public struct RelativePath: Hashable, Sendable, CustomStringConvertible {
    public static let rule = "a relative path of plain names: not absolute, no '..' or '.', no empty or control characters"
    /// The longest path accepted (PATH_MAX).
    public static let maximumLength = 4096

    /// Normalized: components joined by single `/`s.
    public let rawValue: String
    public let components: [FileName]

    public init(_ rawValue: String, field: String = "path") throws(PathNameError) {
        func refuse(_ problem: String) -> PathNameError { PathNameError(field: field, value: rawValue, problem: problem, rule: Self.rule) }
        if rawValue.hasPrefix("/") { throw refuse("it is absolute") }
        if rawValue.utf8.count > Self.maximumLength { throw refuse("it is \(rawValue.utf8.count) bytes long") }
        var parts: [FileName] = []
        for part in rawValue.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." { throw refuse("it climbs out with '..'") }
            if let problem = FileName.problem(in: String(part)) { throw refuse("the component '\(part)' is not plain: \(problem)") }
            parts.append(try FileName(String(part), field: field))
        }
        if parts.isEmpty { throw refuse("it names no file") }
        components = parts
        self.rawValue = parts.map(\.rawValue).joined(separator: "/")
    }

    public var description: String { rawValue }
}

/// A name or path from outside that would leave its folder, or is not a name at all.
public struct PathNameError: L3AFError, Equatable {
    /// Where it came from: a payload field path, an archive entry, a URL segment.
    public let field: String
    public let value: String
    public let problem: String
    public let rule: String

    public init(field: String, value: String, problem: String, rule: String) {
        self.field = field
        self.value = value
        self.problem = problem
        self.rule = rule
    }

    public var code: String { "invalid-path-name" }
    public var description: String { "\(field): '\(value.unicodeScalars.map { $0.escaped(asASCII: true) }.joined())' is not allowed: \(problem)" }
    public var hint: String? { "use \(rule)" }
}
