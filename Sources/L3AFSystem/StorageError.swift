import Glibc
import L3AFModel

/// A file-system call that failed: what was being done, and the errno.
public struct StorageError: L3AFError, Equatable {
    public let what: String
    public let errno: Int32

    public init(_ what: String, errno: Int32) {
        self.what = what
        self.errno = errno
    }

    public var code: String { "storage-failed" }
    public var description: String { "\(what) failed: \(String(cString: strerror(errno))) (errno \(errno))" }
}
