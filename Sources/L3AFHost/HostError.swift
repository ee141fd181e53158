import L3AFModel

/// Why a host operation failed. Every failure leaves the chains and the database as they were.
public struct HostError: HTTPStatusError {
    public enum Kind: String, Sendable {
        /// Something the user asked for that can't be: an unknown package, interface, hook or revision, a taken
        /// seq_id, a bad parameter, a malformed payload.
        case badInput = "bad-input"
        /// Another writer held the lock past `--lock-timeout`.
        case locked
        /// The chain engine refused or failed (verifier, kernel).
        case chain
        /// Resolving, fetching or verifying a package failed.
        case fetch
        /// The host database.
        case storage
        /// A watched change broke a health rule and was rolled back.
        case unhealthy
        /// Preflight found something a package needs that this host lacks (a newer kernel, a helper, a map type, the
        /// verifier's approval); nothing was changed.
        case preflight
    }

    public let kind: Kind
    public let description: String
    public let hint: String?
    public var code: String { kind.rawValue }

    /// How l3afd answers it: the caller's mistake 400, a busy host or a failed health watch 409, a kernel refusal 422,
    /// a registry that failed 502, the host's own storage 500.
    public var httpStatus: Int {
        switch kind {
        case .badInput: 400
        case .locked, .unhealthy: 409
        case .chain, .preflight: 422
        case .fetch: 502
        case .storage: 500
        }
    }

    public init(_ kind: Kind, _ description: String, hint: String? = nil) {
        self.kind = kind
        self.description = description
        self.hint = hint
    }
}
