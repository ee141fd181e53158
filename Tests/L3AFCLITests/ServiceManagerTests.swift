import Foundation
import L3AFSystem
import L3AFTestSupport
import Testing

/// What the servers tell systemd under `Type=notify` with a watchdog: READY=1 once they serve, WATCHDOG=1 while they
/// run, STOPPING=1 when SIGTERM starts a graceful stop. A datagram socket here plays systemd's notify socket.
@Suite(.serialized) struct ServiceManagerTests {
    /// A bound notify socket and the messages it received.
    final class NotifySocket {
        let path: String
        let fd: Int32

        init() throws {
            path = FileManager.default.temporaryDirectory.appending(path: "l3af-notify-\(UUID().uuidString.prefix(8))").path
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)) }
            }
            guard bound == 0 else { throw FixtureError("can't bind \(path)") }
        }

        /// Messages received within `seconds`, until `until` holds for them.
        func messages(seconds: Double, until: ([String]) -> Bool) -> [String] {
            var received: [String] = []
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline, !until(received) {
                var buffer = [UInt8](repeating: 0, count: 512)
                let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                if count > 0 { received.append(String(decoding: buffer.prefix(count), as: UTF8.self)) } else { Thread.sleep(forTimeInterval: 0.01) }
            }
            return received
        }

        deinit { close(fd); unlink(path) }
    }

    /// READY=1 after the "listening" line, watchdog pings every half WATCHDOG_USEC, STOPPING=1 and a clean exit on SIGTERM.
    func check(_ name: String, _ arguments: [String]) throws {
        let notify = try NotifySocket()
        let process = try RunningProcess(name, arguments, environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "200000"])
        _ = try process.waitForLine(containing: "listening on ")
        let running = notify.messages(seconds: 5) { $0.filter { $0 == "WATCHDOG=1" }.count >= 3 && $0.contains("READY=1") }
        #expect(running.contains("READY=1"), "\(name): \(running)")
        #expect(running.filter { $0 == "WATCHDOG=1" }.count >= 3, "\(name): pings every 100 ms: \(running)")
        #expect(process.stop() == 0, "\(process.printed)")
        let stopping = notify.messages(seconds: 2) { $0.contains("STOPPING=1") }
        #expect(stopping.contains("STOPPING=1"), "\(name): \(stopping)")
    }

    @Test func registryTellsSystemd() throws {
        let root = try Fixtures.temporaryFolder("notify-registry")
        let key = root.appending(path: "key").path
        #expect(try Executable.run("l3af-registry", ["keygen", "--out", key]).status == 0)
        try check("l3af-registry", ["serve", "--root", root.appending(path: "data").path, "--key", key, "--listen", "127.0.0.1:0", "--log-level", "warning"])
    }

    /// With systemd's usual WatchdogSec (30 s: a ping every 15 s), SIGTERM still stops at once.
    @Test func aLongWatchdogIntervalDoesNotHoldUpTheStop() throws {
        let root = try Fixtures.temporaryFolder("notify-registry-stop")
        let key = root.appending(path: "key").path
        #expect(try Executable.run("l3af-registry", ["keygen", "--out", key]).status == 0)
        let process = try RunningProcess("l3af-registry", ["serve", "--root", root.appending(path: "data").path, "--key", key, "--listen", "127.0.0.1:0"],
                                         environment: ["WATCHDOG_USEC": "30000000"])
        _ = try process.waitForLine(containing: "listening on ")
        let start = Date()
        #expect(process.stop() == 0)
        #expect(Date().timeIntervalSince(start) < 5, "stopped after \(Date().timeIntervalSince(start)) s")
    }

    @Test func daemonTellsSystemd() throws {
        let root = try Fixtures.temporaryFolder("notify-l3afd")
        try check("l3afd", ["--listen", "127.0.0.1:0", "--state", root.appending(path: "state").path, "--repo", root.appending(path: "repo").path,
                            "--cache", root.appending(path: "cache").path, "--pin-root", "/sys/fs/bpf/l3af-test-notify-\(getpid())", "--log-level", "warning"])
    }

    /// A watchdog meant for another process (WATCHDOG_PID), or a value out of bounds, is no watchdog.
    @Test func watchdogIntervalIsReadWithBounds() {
        #expect(SystemdNotify.watchdogInterval(environment: ["WATCHDOG_USEC": "30000000"], pid: 7) == .seconds(15))
        #expect(SystemdNotify.watchdogInterval(environment: ["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"], pid: 7) == .seconds(15))
        #expect(SystemdNotify.watchdogInterval(environment: ["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "8"], pid: 7) == nil)
        for bad in ["", "-1", "5", "x", "99999999999999999999"] { #expect(SystemdNotify.watchdogInterval(environment: ["WATCHDOG_USEC": bad], pid: 7) == nil, "\(bad)") }
        #expect(SystemdNotify.watchdogInterval(environment: [:], pid: 7) == nil)
    }
}
