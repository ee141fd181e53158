import Foundation
import Glibc

/// The one advisory lock of the project: an exclusive `flock(2)` on a file. Every lock is one of these: the host's
/// writer lock (waits up to a deadline, says whom it waits for), the repo's and the registry's writer locks (wait),
/// and the one-process-per-folder locks of `l3afd` and `l3af-registry serve` (never wait, held for the process's
/// life). The holder writes its pid into the file, so a waiter or a refused process can say who holds it. The
/// kernel drops the lock when its holder dies, `kill -9` included. Taking it blocks its thread: call it off the
/// cooperative pool (``OffPool``).
public final class FileLock: @unchecked Sendable {  // the descriptor only, immutable after init
    public let path: String
    private let fd: Int32

    /// How long to wait for another holder.
    public enum Wait: Sendable {
        /// Until it lets go.
        case forever
        /// Not at all: ``Held`` at once when another process holds it.
        case never
        /// Up to this many seconds, then ``Held``; `notify` is told once when the wait starts.
        case seconds(Double, notify: @Sendable (_ holder: String) -> Void)
    }

    /// Another process holds the lock (and kept it past the wait).
    public struct Held: Error, Sendable {
        public let path: String
        /// The holder's pid as it wrote it, or `?`.
        public let pid: String
    }

    /// Takes the lock on `path` (created 0600, with its folder), waiting as `wait` says. Released on deinit.
    public init(path: String, wait: Wait) throws {
        self.path = path
        try AtomicFile.makeFolders((path as NSString).deletingLastPathComponent)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StorageError("opening the lock \(path)", errno: errno) }
        // Taken before `self.fd` is set: a failed wait closes the descriptor here, once, and no deinit sees it.
        do { try Self.take(fd, path, wait) } catch {
            close(fd)
            throw error
        }
        self.fd = fd
        _ = ftruncate(fd, 0)
        let text = "\(getpid())\n"
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    private static func take(_ fd: Int32, _ path: String, _ wait: Wait) throws {
        /// One non-blocking try: whether the lock is now held.
        func attempt() throws -> Bool {
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { return true }
            guard errno == EWOULDBLOCK || errno == EINTR else { throw StorageError("flock \(path)", errno: errno) }
            return false
        }
        /// The pid the holder wrote, or `?`.
        func holder() -> String {
            let text = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            return text.isEmpty ? "?" : text
        }
        switch wait {
        case .forever:
            while flock(fd, LOCK_EX) != 0 {
                guard errno == EINTR else { throw StorageError("flock \(path)", errno: errno) }
            }
        case .never:
            if try attempt() { return }
            throw Held(path: path, pid: holder())
        case .seconds(let seconds, let notify):
            let deadline = Date().addingTimeInterval(seconds)
            var told = false
            while try !attempt() {
                if Date() >= deadline { throw Held(path: path, pid: holder()) }
                if !told {
                    notify(holder())
                    told = true
                }
                usleep(10_000)
            }
        }
    }

    deinit {
        _ = ftruncate(fd, 0)
        flock(fd, LOCK_UN)
        close(fd)
    }

    /// Runs `body` holding the lock on `path` (waiting for it), then lets go.
    public static func withLock<T>(_ path: String, _ body: () throws -> T) throws -> T {
        let lock = try FileLock(path: path, wait: .forever)
        defer { withExtendedLifetime(lock) {} }
        return try body()
    }
}
