/// A Linux kernel version as packages require it (`5.15`, `6.1.0`) and as `uname -r` reports it
/// (`6.18.44-fc-v657`: only the leading numbers count).
public struct KernelVersion: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let major: UInt32
    public let minor: UInt32
    public let patch: UInt32

    public init(_ major: UInt32, _ minor: UInt32, _ patch: UInt32 = 0) {
        self.major = major
        self.minor = minor
        self.patch = patch
    }

    /// Parses `MAJOR.MINOR[.PATCH]`; with `release: true`, anything after the numbers (a `uname -r`
    /// suffix) is ignored.
    public init(parsing text: String, release: Bool = false) throws(KernelVersionError) {
        var numeric = Substring(text)
        if release {
            numeric = numeric.prefix { $0.isASCIIDigit || $0 == "." }
            while numeric.hasSuffix(".") { numeric = numeric.dropLast() }
            numeric = Substring(numeric.split(separator: ".", omittingEmptySubsequences: false).prefix(3)
                .joined(separator: "."))
        }
        let parts = numeric.split(separator: ".", omittingEmptySubsequences: false)
        guard (2...3).contains(parts.count),
            parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCIIDigit) }),
            let numbers = Optional(parts.compactMap { UInt32($0) }), numbers.count == parts.count
        else { throw KernelVersionError(text: text) }
        self.init(numbers[0], numbers[1], numbers.count > 2 ? numbers[2] : 0)
    }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.major, lhs.minor, lhs.patch) < (rhs.major, rhs.minor, rhs.patch)
    }

    public var description: String { patch == 0 ? "\(major).\(minor)" : "\(major).\(minor).\(patch)" }
}

/// A kernel version that is not `MAJOR.MINOR[.PATCH]`.
public struct KernelVersionError: L3AFError, Equatable {
    public let text: String
    public var code: String { "invalid-kernel-version" }
    public var description: String { "invalid kernel version '\(text)': write MAJOR.MINOR or MAJOR.MINOR.PATCH, e.g. 5.15" }
}
