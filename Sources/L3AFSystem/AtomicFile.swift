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

