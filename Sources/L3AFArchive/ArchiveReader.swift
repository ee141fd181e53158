internal import CArchive
import Glibc
import L3AFModel

/// Limits that stop a hostile archive before it costs much.
public struct ArchiveLimits: Sendable {
    /// Headers read, every one counted: folders, repeats and all.
    public var maximumEntries: Int
    public var maximumFileBytes: Int
    public var maximumTotalBytes: Int
    /// The longest entry path accepted, in bytes.
    public var maximumPathBytes: Int
    /// Entry paths read, in bytes, added up.
    public var maximumHeaderBytes: Int
    /// Zip as well as tar: l3afd's plain repositories may serve `.zip` artifacts. Packages are gzip'd tar only.
    public var allowZip: Bool

    public init(maximumEntries: Int = 1_000, maximumFileBytes: Int = 64 << 20, maximumTotalBytes: Int = 256 << 20,
                maximumPathBytes: Int = 1024, maximumHeaderBytes: Int = 256 << 10, allowZip: Bool = false) {
        self.maximumEntries = maximumEntries
        self.maximumFileBytes = maximumFileBytes
        self.maximumTotalBytes = maximumTotalBytes
        self.maximumPathBytes = maximumPathBytes
        self.maximumHeaderBytes = maximumHeaderBytes
        self.allowZip = allowZip
    }
}

/// One entry of a package archive: a folder, or a regular file and its bytes.
public struct ArchiveEntry: Hashable, Sendable {
    public enum Kind: Hashable, Sendable { case directory, file }

    /// The normalized relative path (no `./`, no trailing `/`).
    public let path: String
    public let kind: Kind
    /// Permission bits with set-uid, set-gid and sticky bits dropped.
    public let permissions: UInt32
    /// The file's bytes; empty for a folder.
    public let contents: [UInt8]

    public init(path: String, kind: Kind, permissions: UInt32, contents: [UInt8] = []) {
        self.path = path
        self.kind = kind
        self.permissions = permissions
        self.contents = contents
    }
}

/// Reads package archives with libarchive, accepting only what a package may hold: regular files and
/// folders at relative paths inside it. Links, devices, FIFOs, absolute paths and `..` are refused, and
/// the limits are enforced on the bytes actually produced, so a decompression bomb stops mid-stream.
public enum ArchiveReader {
    /// Reads every entry of the archive in `bytes`. `name` names it in errors.
    public static func entries(
        of bytes: [UInt8], name: String, limits: ArchiveLimits = ArchiveLimits()
    ) throws(ArchiveError) -> [ArchiveEntry] {
        var entries: [ArchiveEntry] = []
        try walk(bytes, name: name, limits: limits) { entry in entries.append(entry) }
        return entries
    }

    /// Checks a path from an archive and returns it normalized, or says why it is unsafe.
    public static func safePath(_ raw: String) -> Result<String, SafePathProblem> {
        if raw.isEmpty { return .failure(.init(why: "the path is empty")) }
        if raw.utf8.contains(0) { return .failure(.init(why: "the path has a NUL byte")) }
        if raw.hasPrefix("/") { return .failure(.init(why: "the path is absolute")) }
        var parts: [Substring] = []
        for part in raw.split(separator: "/", omittingEmptySubsequences: true) where part != "." {
            if part == ".." { return .failure(.init(why: "the path climbs out with '..'")) }
            parts.append(part)
        }
        if parts.isEmpty { return .failure(.init(why: "the path names no file")) }
        return .success(parts.joined(separator: "/"))
    }

    /// Why a path is unsafe.
    public struct SafePathProblem: Error, Equatable { public let why: String }

    static func walk(
        _ bytes: [UInt8], name: String, limits: ArchiveLimits, _ visit: (ArchiveEntry) throws(ArchiveError) -> Void
    ) throws(ArchiveError) {
        guard let archive = archive_read_new() else { throw ArchiveError(archive: name, .unreadable("out of memory")) }
        defer { archive_read_free(archive) }
        // gzip only: bzip2, xz and the other filters turn a small upload into millions of headers for little gain.
        archive_read_support_filter_gzip(archive)
        archive_read_support_format_tar(archive)
        archive_read_support_format_gnutar(archive)
        if limits.allowZip { archive_read_support_format_zip(archive) }
        func failure() -> ArchiveError {
            // Copied now: the string belongs to the handle.
            let message = archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
            return ArchiveError(archive: name, .unreadable(message))
        }
        // withUnsafeBytes rethrows untyped errors, so the typed error travels out in a Result.
        let outcome: Result<Void, ArchiveError> = bytes.withUnsafeBytes { buffer in Result { () throws(ArchiveError) in
            guard archive_read_open_memory(archive, buffer.baseAddress, buffer.count) == ARCHIVE_OK else { throw failure() }
            var seen = Set<String>()
            var total = 0, headers = 0, headerBytes = 0
            var chunk = [UInt8](repeating: 0, count: 64 << 10)
            while true {
                var entry: OpaquePointer?
                let status = archive_read_next_header(archive, &entry)
                if status == ARCHIVE_EOF { break }
                guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else { throw failure() }
                headers += 1
                guard headers <= limits.maximumEntries else {
                    throw ArchiveError(archive: name, .tooManyEntries(limit: limits.maximumEntries))
                }
                let rawPointer = archive_entry_pathname(entry)
                let pathBytes = rawPointer.map { strlen($0) } ?? 0
                headerBytes += pathBytes
                guard pathBytes <= limits.maximumPathBytes, headerBytes <= limits.maximumHeaderBytes else {
                    throw ArchiveError(archive: name, .unsafeEntry(path: "(a path of \(pathBytes) bytes)",
                                                                  why: "entry paths are limited to \(limits.maximumPathBytes) bytes each and \(limits.maximumHeaderBytes) in all"))
                }
                let rawPath = rawPointer.map { String(cString: $0) } ?? ""
                let path: String
                switch safePath(rawPath) {
                case .success(let p): path = p
                case .failure(let problem): throw ArchiveError(archive: name, .unsafeEntry(path: rawPath, why: problem.why))
                }
                if archive_entry_hardlink(entry) != nil {
                    throw ArchiveError(archive: name, .unsafeEntry(path: path, why: "it is a hard link"))
                }
                let type = archive_entry_filetype(entry)
                let kind: ArchiveEntry.Kind
                switch type {
                case EntryType.regular: kind = .file
                case EntryType.directory: kind = .directory
                case EntryType.symlink: throw ArchiveError(archive: name, .unsafeEntry(path: path, why: "it is a symbolic link"))
                case EntryType.characterDevice, EntryType.blockDevice: throw ArchiveError(archive: name, .unsafeEntry(path: path, why: "it is a device"))
                case EntryType.fifo: throw ArchiveError(archive: name, .unsafeEntry(path: path, why: "it is a FIFO"))
                case EntryType.socket: throw ArchiveError(archive: name, .unsafeEntry(path: path, why: "it is a socket"))
                default: throw ArchiveError(archive: name, .unsafeEntry(path: path, why: "it is not a regular file or folder"))
                }
                if kind == .file, !seen.insert(path).inserted { throw ArchiveError(archive: name, .duplicateEntry(path)) }
                if kind == .directory { seen.insert(path + "/") }
                var contents: [UInt8] = []
                if kind == .file {
                    while true {
                        let n = chunk.withUnsafeMutableBytes { archive_read_data(archive, $0.baseAddress, $0.count) }
                        if n == 0 { break }
                        guard n > 0 else { throw failure() }
                        total += n
                        guard contents.count + n <= limits.maximumFileBytes else {
                            throw ArchiveError(archive: name, .fileTooLarge(path: path, limit: limits.maximumFileBytes))
                        }
                        guard total <= limits.maximumTotalBytes else {
                            throw ArchiveError(archive: name, .totalTooLarge(limit: limits.maximumTotalBytes))
                        }
                        contents.append(contentsOf: chunk[0..<n])
                    }
                }
                let permissions = UInt32(archive_entry_perm(entry)) & 0o777
                try visit(ArchiveEntry(path: path, kind: kind, permissions: permissions, contents: contents))
            }
        } }
        try outcome.get()
    }
}
