internal import CLinux
import Foundation
import Glibc
import L3AFModel

/// Writes that a crash can't tear: every file goes to a temporary name in the same folder, is fsynced,
/// and is renamed over the target (rename(2) is atomic within a file system), then the folder is fsynced
/// so the rename itself survives a power cut. Temporary names start with `.tmp-` so recovery finds them.
public enum AtomicFile {
    public static let temporaryPrefix = ".tmp-"

    /// Replaces `path` with `bytes`, atomically. With `durable: false` nothing is fsynced: for caches whose
    /// contents are verified whenever they are used, where atomicity matters but surviving a power cut doesn't.
    public static func write(_ bytes: [UInt8], to path: String, mode: mode_t = 0o644, durable: Bool = true) throws(StorageError) {
        let folder = (path as NSString).deletingLastPathComponent
        try makeFolders(folder)
        let temporary = temporaryName(for: path)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw StorageError("creating \(temporary)", errno: errno) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                let code = errno
                close(fd)
                unlink(temporary)
                throw StorageError("writing \(temporary)", errno: code)
            }
            offset += n
        }
        guard !durable || fsync(fd) == 0 else {
            let code = errno
            close(fd)
            unlink(temporary)
            throw StorageError("fsync of \(temporary)", errno: code)
        }
        close(fd)
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw StorageError("renaming \(temporary) to \(path)", errno: code)
        }
        if durable { try syncFolder(folder) }
    }

    /// Points the symbolic link at `path` to `target`, atomically (a new link renamed over the old).
    public static func symlink(_ target: String, at path: String) throws(StorageError) {
        let folder = (path as NSString).deletingLastPathComponent
        let temporary = temporaryName(for: path)
        guard Glibc.symlink(target, temporary) == 0 else { throw StorageError("creating link \(temporary)", errno: errno) }
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw StorageError("renaming link \(temporary) to \(path)", errno: code)
        }
        try syncFolder(folder)
    }

    private static func temporaryName(for path: String) -> String {
        let folder = (path as NSString).deletingLastPathComponent
        return "\(folder)/\(temporaryPrefix)\((path as NSString).lastPathComponent)-\(UInt64.random(in: 0...UInt64.max))"
    }

    /// Makes everything written under `folder` durable with one `syncfs(2)` of its file system, instead of an
    /// fsync per file and per folder: on ext4 each fsync is its own journal commit. For trees of several files
    /// written at once (an unpacked package). `syncfs` reports writeback errors since Linux 5.8.
    public static func syncFileSystem(of folder: String) throws(StorageError) {
        try withFolder(folder, "syncfs") { l3af_syncfs($0) }
    }

    /// Creates `path` and its parents as needed.
    public static func makeFolders(_ path: String) throws(StorageError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw StorageError("creating folder \(path)", errno: (error as NSError).code == 0 ? EIO : Int32((error as NSError).code))
        }
    }

    public static func syncFolder(_ path: String) throws(StorageError) {
        try withFolder(path, "fsync") { fsync($0) }
    }

    /// Opens `folder` and runs `call` (a sync named `name`) on its descriptor; -1 from it is an error with errno.
    private static func withFolder(_ folder: String, _ name: String, _ call: (Int32) -> Int32) throws(StorageError) {
        let fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw StorageError("opening folder \(folder)", errno: errno) }
        defer { close(fd) }
        guard call(fd) == 0 else { throw StorageError("\(name) of folder \(folder)", errno: errno) }
    }

    /// The file's bytes, or `nil` when it does not exist.
    public static func read(_ path: String) -> [UInt8]? {
        FileManager.default.contents(atPath: path).map { Array($0) }
    }
}

/// An exclusive advisory lock (flock) on a file, so that one process at a time writes the tree.
public final class FileLock: @unchecked Sendable {  // immutable after init: only the descriptor
    private let fd: Int32

    public init(path: String) throws(StorageError) {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StorageError("opening lock \(path)", errno: errno) }
    }

    deinit { close(fd) }

    /// Runs `body` holding the lock; waits for another writer to finish.
    public func withLock<T>(_ body: () throws(StorageError) -> T) throws(StorageError) -> T {
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw StorageError("flock", errno: errno) }
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }
}

/// One process per resource: an flock on a file, taken without waiting and held for the process's life, the file
/// holding the holder's pid. `l3afd` takes one per state folder, `l3af-registry serve` one per root.
public final class ProcessLock: Sendable {
    private let fd: Int32

    /// Another process holds the lock.
    public struct Held: Error, Sendable {
        public let path: String
        /// The holder's pid as it wrote it, or `?`.
        public let pid: String
    }

    public init(path: String) throws {
        try AtomicFile.makeFolders((path as NSString).deletingLastPathComponent)
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StorageError("opening \(path)", errno: errno) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let other = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
            close(fd)
            throw Held(path: path, pid: other.isEmpty ? "?" : other)
        }
        _ = ftruncate(fd, 0)
        let text = "\(getpid())\n"
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}

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

/// Blocking work (a lock wait, an unpack, libarchive, libbpf) run on a thread of its own and awaited, so it never
/// holds one of the cooperative pool's few threads.
public enum OffPool {
    public static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
        }
    }
}
