import Foundation
import Glibc

/// Writes that a crash can't tear: every file goes to a temporary name in the same folder, is fsynced,
/// and is renamed over the target (rename(2) is atomic within a file system), then the folder is fsynced
/// so the rename itself survives a power cut. Temporary names start with `.tmp-` so recovery finds them.
enum AtomicFile {
    static let temporaryPrefix = ".tmp-"

    /// Replaces `path` with `bytes`, atomically.
    static func write(_ bytes: [UInt8], to path: String, mode: mode_t = 0o644) throws(RegistryError) {
        let folder = (path as NSString).deletingLastPathComponent
        try makeFolders(folder)
        let temporary = temporaryName(for: path)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw .io("creating \(temporary)", errno: errno) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                let code = errno
                close(fd)
                unlink(temporary)
                throw .io("writing \(temporary)", errno: code)
            }
            offset += n
        }
        guard fsync(fd) == 0 else {
            let code = errno
            close(fd)
            unlink(temporary)
            throw .io("fsync of \(temporary)", errno: code)
        }
        close(fd)
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw .io("renaming \(temporary) to \(path)", errno: code)
        }
        try syncFolder(folder)
    }

    /// Points the symbolic link at `path` to `target`, atomically (a new link renamed over the old).
    static func symlink(_ target: String, at path: String) throws(RegistryError) {
        let folder = (path as NSString).deletingLastPathComponent
        let temporary = temporaryName(for: path)
        guard Glibc.symlink(target, temporary) == 0 else { throw .io("creating link \(temporary)", errno: errno) }
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw .io("renaming link \(temporary) to \(path)", errno: code)
        }
        try syncFolder(folder)
    }

    private static func temporaryName(for path: String) -> String {
        let folder = (path as NSString).deletingLastPathComponent
        return "\(folder)/\(temporaryPrefix)\((path as NSString).lastPathComponent)-\(UInt64.random(in: 0...UInt64.max))"
    }

    /// Creates `path` and its parents as needed.
    static func makeFolders(_ path: String) throws(RegistryError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw RegistryError(.internalFailure, "storage-failed", "creating folder \(path) failed: \(error)")
        }
    }

    static func syncFolder(_ path: String) throws(RegistryError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw .io("opening folder \(path)", errno: errno) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw .io("fsync of folder \(path)", errno: errno) }
    }

    /// The file's bytes, or `nil` when it does not exist.
    static func read(_ path: String) -> [UInt8]? {
        FileManager.default.contents(atPath: path).map { Array($0) }
    }
}

/// An exclusive advisory lock (flock) on a file, so that one process at a time writes the tree.
final class FileLock: @unchecked Sendable {  // immutable after init: only the descriptor
    private let fd: Int32

    init(path: String) throws(RegistryError) {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .io("opening lock \(path)", errno: errno) }
    }

    deinit { close(fd) }

    /// Runs `body` holding the lock; waits for another writer to finish.
    func withLock<T>(_ body: () throws(RegistryError) -> T) throws(RegistryError) -> T {
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw .io("flock", errno: errno) }
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }
}
