import L3AFModel

/// Why the registry refused or failed a request; each maps to an HTTP status and a JSON body.
public struct RegistryError: HTTPStatusError, Equatable {
    public enum Kind: String, Sendable {
        case unauthorized, forbidden, notFound, conflict, badRequest, tooLarge, internalFailure, unavailable
    }

    public let kind: Kind
    public let code: String
    public let description: String
    public let hint: String?
    /// Seconds a client should wait before trying again (sent as `Retry-After` with a 503).
    public let retryAfter: Int?

    public init(_ kind: Kind, _ code: String, _ description: String, hint: String? = nil, retryAfter: Int? = nil) {
        self.kind = kind
        self.code = code
        self.description = description
        self.hint = hint
        self.retryAfter = retryAfter
    }

    public var httpStatus: Int { status }
    public var retryAfterSeconds: Int? { retryAfter }

    /// The HTTP status this error is answered with.
    public var status: Int {
        switch kind {
        case .unauthorized: 401
        case .forbidden: 403
        case .notFound: 404
        case .conflict: 409
        case .badRequest: 400
        case .tooLarge: 413
        case .internalFailure: 500
        case .unavailable: 503
        }
    }

    /// A bad request that wraps one of the model's errors (a bad name, version, manifest…).
    static func invalid(_ error: any L3AFError) -> RegistryError {
        RegistryError(.badRequest, error.code, error.description, hint: error.hint)
    }

    static func io(_ what: String, errno: Int32) -> RegistryError {
        RegistryError(.internalFailure, "storage-failed", "\(what) failed: \(String(cString: strerror(errno))) (errno \(errno))")
    }
}

#if canImport(Glibc)
import Glibc
#endif
