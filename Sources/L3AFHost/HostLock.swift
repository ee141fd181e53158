import Foundation
import Glibc

/// One writer at a time on a host: an exclusive `flock` on a file beside the database, shared by every `l3af`
/// process and the daemon. The holder writes its pid into the file so a waiter can say who it waits for. The
/// kernel drops the lock when its holder dies, `kill -9` included.
public final class HostLock: @unchecked Sendable {  // the descriptor only, released in deinit
    private let fd: Int32
    public let path: String

    /// Takes the lock, waiting up to `timeout` seconds (`notify` is told once, when the wait starts).
    public init(path: String, timeout: Double, notify: (String) -> Void = { _ in }) throws(HostError) {
        self.path = path
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw HostError(.storage, "can't open the lock \(path): \(String(cString: strerror(errno)))", hint: "check the state folder's permissions (--state)")
        }
        let deadline = Date().addingTimeInterval(timeout)
        var told = false
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                close(fd)
                throw HostError(.storage, "flock \(path): \(String(cString: strerror(errno)))")
            }
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
            if Date() >= deadline {
                close(fd)
                throw HostError(.locked, "another l3af (pid \(holder)) is changing this host, and it still held \(path) after \(timeout) s",
                                hint: "wait for it to finish, or pass a longer --lock-timeout")
            }
            if !told {
                notify("waiting for another l3af (pid \(holder)) that is changing this host…")
                told = true
            }
            usleep(20_000)
        }
        _ = ftruncate(fd, 0)
        let pid = "\(getpid())\n"
        _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    deinit {
        _ = ftruncate(fd, 0)
        flock(fd, LOCK_UN)
        close(fd)
    }
}
