import Glibc
import L3AFModel

/// A libbpf or bpf(2) call that failed: which call, on what, the errno, and for loads the verifier's log.
public struct BPFError: L3AFError, Equatable {
    public enum Operation: String, Sendable {
        case open, load, attach, detach, pin, unpin, mapUpdate = "map-update", mapLookup = "map-lookup", mapDelete = "map-delete"
        case lookup, inspect
    }

    public let operation: Operation
    public let errno: Int32
    /// The C function and its subject, e.g. `bpf_object__open_mem(ratelimiting.bpf.o)`.
    public let context: String
    /// The verifier log of a failed load, or another detail.
    public let detail: String?

    public init(_ operation: Operation, errno: Int32, context: String, detail: String? = nil) {
        self.operation = operation
        self.errno = errno
        self.context = context
        self.detail = detail
    }

    public var code: String { "bpf-\(operation.rawValue)-failed" }

    public var description: String {
        var text = "\(context) failed"
        if errno != 0 { text += ": \(String(cString: strerror(errno))) (errno \(errno))" }
        if let detail, !detail.isEmpty { text += "\n\(detail)" }
        return text
    }
}
