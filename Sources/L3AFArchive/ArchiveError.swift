import L3AFModel

/// Why an archive was refused or could not be read or written.
public struct ArchiveError: L3AFError, Equatable {
    public enum Reason: Hashable, Sendable {
        /// libarchive could not read it as a (compressed) tar archive.
        case unreadable(String)
        /// An entry that safe unpacking refuses: an escape, a link, a device…
        case unsafeEntry(path: String, why: String)
        case tooManyEntries(limit: Int)
        case fileTooLarge(path: String, limit: Int)
        case totalTooLarge(limit: Int)
        case duplicateEntry(String)
        /// libarchive failed while writing.
        case writeFailed(String)
    }

    /// What the archive is, e.g. its file name.
    public let archive: String
    public let reason: Reason

    public init(archive: String, _ reason: Reason) {
        self.archive = archive
        self.reason = reason
    }

    public var code: String {
        switch reason {
        case .unreadable: "archive-unreadable"
        case .unsafeEntry: "archive-unsafe-entry"
        case .tooManyEntries, .fileTooLarge, .totalTooLarge: "archive-too-large"
        case .duplicateEntry: "archive-duplicate-entry"
        case .writeFailed: "archive-write-failed"
        }
    }

    public var description: String {
        switch reason {
        case .unreadable(let message): "\(archive) is not a readable tar archive: \(message)"
        case .unsafeEntry(let path, let why): "\(archive) has an unsafe entry '\(path)': \(why)"
        case .tooManyEntries(let limit): "\(archive) has more than \(limit) entries"
        case .fileTooLarge(let path, let limit): "\(archive): '\(path)' unpacks to more than \(limit) bytes"
        case .totalTooLarge(let limit): "\(archive) unpacks to more than \(limit) bytes in all"
        case .duplicateEntry(let path): "\(archive) has '\(path)' twice"
        case .writeFailed(let message): "writing \(archive) failed: \(message)"
        }
    }

    public var hint: String? {
        switch reason {
        case .unreadable: "a package is a gzip-compressed tar archive (l3af pack makes one)"
        case .unsafeEntry: "packages may hold only regular files and folders, with relative paths inside the package"
        case .tooManyEntries, .fileTooLarge, .totalTooLarge: "this looks like a decompression bomb or the wrong file"
        case .duplicateEntry, .writeFailed: nil
        }
    }
}

/// libarchive's `AE_IF*` file types, which are cast macros Swift does not import; the values are the
/// POSIX `S_IF*` bits libarchive defines them as.
enum EntryType {
    static let regular: UInt32 = 0o100000
    static let directory: UInt32 = 0o040000
    static let symlink: UInt32 = 0o120000
    static let socket: UInt32 = 0o140000
    static let characterDevice: UInt32 = 0o020000
    static let blockDevice: UInt32 = 0o060000
    static let fifo: UInt32 = 0o010000
}
