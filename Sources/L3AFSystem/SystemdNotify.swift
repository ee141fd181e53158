import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// sd_notify(3): messages to the service manager that started this process, at `$NOTIFY_SOCKET`. The servers say
/// `READY=1` once they accept connections, `STOPPING=1` when a graceful stop begins, and `WATCHDOG=1` while they
/// run (``SystemdWatchdog`` in L3AFHTTPServer); a graceful restart of l3afd names the new process (`MAINPID=`).
/// Without a socket (not started by systemd with `Type=notify`) every call does nothing.
public enum SystemdNotify {
    /// Sends `message` to `socket` (a path, or `@name` for an abstract socket); nothing when there is none.
    public static func send(_ message: String, to socket: String? = ProcessInfo.processInfo.environment["NOTIFY_SOCKET"]) {
        guard let path = socket, !path.isEmpty, path.utf8.count < 108 else { return }
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
        _ = Array(message.utf8).withUnsafeBytes { message in
            withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, message.baseAddress, message.count, 0, $0, length) } }
        }
    }

    /// How often to send `WATCHDOG=1`: half the `WatchdogSec=` systemd gave this process (`$WATCHDOG_USEC`, for the
    /// process `$WATCHDOG_PID` names when it names one); nil when there is no watchdog. A value out of bounds (under
    /// 10 ms or over a day) is treated as none rather than trusted.
    public static func watchdogInterval(environment: [String: String] = ProcessInfo.processInfo.environment,
                                        pid: Int32 = getpid()) -> Duration? {
        guard let text = environment["WATCHDOG_USEC"], let microseconds = Int64(text), (10_000...86_400_000_000).contains(microseconds) else { return nil }
        if let owner = environment["WATCHDOG_PID"], Int32(owner) != pid { return nil }
        return .microseconds(microseconds / 2)
    }
}
