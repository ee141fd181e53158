import CBuildInfo

/// An error that a person can act on: a stable code, a message that names what was wrong, and
/// where there is one, a hint that says how to fix it.
///
/// The CLI prints `error: <description>` and `hint: <hint>`; the servers map the code to an HTTP
/// status and a JSON body. Every error type in the project conforms.
public protocol L3AFError: Error, CustomStringConvertible, Sendable {
    /// A short, stable, machine-readable identifier, e.g. `invalid-package-name`.
    var code: String { get }
    /// How to fix it, when that can be said in a sentence.
    var hint: String? { get }
}

extension L3AFError {
    public var hint: String? { nil }
}

/// An error a server answers with a status of its own: a 4xx for the caller's mistakes, a 5xx for the server's.
public protocol HTTPStatusError: L3AFError {
    var httpStatus: Int { get }
    /// Seconds a client should wait before trying again (`Retry-After`), when there is a wait to say.
    var retryAfterSeconds: Int? { get }
}

extension HTTPStatusError {
    public var retryAfterSeconds: Int? { nil }
}

/// The version of l3af itself, printed by every executable's `--version`.
public enum L3AFBuild {
    /// `git describe` of the tree this build was made from (scripts/build-release stamps it), or 0.0.0-dev.
    public static let version = String(cString: l3af_build_version())
}
