import Foundation
@testable import L3AFCLISupport
import L3AFTestSupport
import Logging
import Testing

/// `--log-format json` and the request log of both servers.
@Suite struct LogTests {
    /// The JSON lines of a log, each parsed (a line that isn't a JSON object fails the test).
    static func entries(_ printed: String) throws -> [[String: Any]] {
        try printed.split(separator: "\n").filter { $0.hasPrefix("{") }.map { line in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)")
        }
    }

    @Test func aJSONLineHasTheEntryAndItsFields() throws {
        let time = Date(timeIntervalSince1970: 1_796_469_385.0421)
        let line = JSONLogHandler.line(time: time, level: .warning, label: "l3afd", message: "a \"quoted\"\nmessage", source: "L3AFDaemon",
                                       fields: ["route": "/x", "time": "not the time", "n": .stringConvertible(3), "list": ["a", "b"]],
                                       journalPriority: false)
        #expect(line.hasSuffix("\n") && line.dropLast().contains("\n") == false, "one line: \(line)")
        let object = try #require(try Self.entries(line).first)
        #expect(object["time"] as? String == "2026-12-05T11:16:25.042Z")
        #expect(object["level"] as? String == "warning" && object["label"] as? String == "l3afd" && object["source"] as? String == "L3AFDaemon")
        #expect(object["message"] as? String == "a \"quoted\"\nmessage")
        #expect(object["route"] as? String == "/x" && object["n"] as? Int == 3 && object["list"] as? [String] == ["a", "b"])
        // Under journald the line starts with the syslog priority it strips.
        #expect(JSONLogHandler.line(time: time, level: .error, label: "l", message: "m", source: "s", fields: [:], journalPriority: true).hasPrefix("<3>{"))
        #expect(LogFormat.standardErrorIsJournal("1:2") == false && LogFormat.standardErrorIsJournal(nil) == false && LogFormat.standardErrorIsJournal("x") == false)
    }

    /// `--log-format` anywhere on `l3af`'s command line (or `$L3AF_LOG_FORMAT`) is taken before the subcommand is
    /// parsed; a bad value is a usage error that names the good ones.
    @Test func theClientTakesItsLogFormatBeforeTheSubcommand() throws {
        let (format, rest) = try LogFormat.take(from: ["pack", "--log-format", "json", "x", "--", "--log-format=text"], environment: [:])
        #expect(format == .json && rest == ["pack", "x", "--", "--log-format=text"])
        #expect(try LogFormat.take(from: ["--log-format=text", "list"], environment: ["L3AF_LOG_FORMAT": "json"]) == (.text, ["list"]))
        #expect(try LogFormat.take(from: ["list"], environment: ["L3AF_LOG_FORMAT": "json"]).0 == .json)
        #expect(throws: CLIError.self) { try LogFormat.take(from: ["list", "--log-format"], environment: [:]) }
        let bad = try Run("l3af", ["--log-format", "xml", "list"])
        #expect(bad.status == 64 && bad.stderr.contains("'xml'") && bad.stderr.contains("--log-format json"), "\(bad.stderr)")
        // libbpf's messages while packing, as JSON lines under the `libbpf` label.
        let output = try Fixtures.temporaryFolder("log-pack")
        defer { try? FileManager.default.removeItem(at: output) }
        let packed = try Executable.run(Executable.path("l3af"), ["pack", Fixtures.repositoryRoot.appending(path: "registry/xdp-root").path, "-o", output.path, "--log-format", "json"],
                                        environment: ProcessInfo.processInfo.environment.merging(["L3AF_LIBBPF_LOG": "trace"]) { $1 })
        #expect(packed.status == 0, "\(packed.stderr)")
        let lines = try Self.entries(packed.stderr)
        #expect(lines.isEmpty == false && lines.allSatisfy { $0["label"] as? String == "libbpf" && $0["message"] is String }, "\(packed.stderr)")
    }

    /// The registry's request log: every request with its route, status and actor, a rejected token as anonymous.
    @Test func theRegistryLogsEachRequestAsJSON() async throws {
        let registry = try RegistryHarness(serveArguments: ["--log-format", "json", "--log-level", "info"])
        #expect(try registry.publish(try Fixtures.xdpRootPackage(version: "1.0.0")).status == 0)
        #expect(try registry.publish(try Fixtures.xdpRootPackage(version: "1.0.1"), token: "l3af_wrong").status != 0)
        _ = try await registry.http("/index.json")
        _ = try await registry.http("/packages/nothing-here.json")
        let requests = try Self.entries(registry.server.printed).filter { $0["status"] is Int }
        let published = try #require(requests.first { $0["method"] as? String == "PUT" && $0["status"] as? Int == 201 }, "\(requests)")
        #expect(published["route"] as? String == "/api/v1/packages/{name}/{version}")
        #expect((published["actor"] as? String)?.hasPrefix("netops (token ") == true, "\(published)")
        #expect((published["duration_us"] as? Int ?? -1) >= 0)
        let refused = try #require(requests.first { $0["method"] as? String == "PUT" && $0["status"] as? Int == 401 }, "\(requests)")
        #expect(refused["actor"] as? String == "-")
        #expect(requests.contains { $0["path"] as? String == "/index.json" && $0["status"] as? Int == 200 })
        #expect(requests.contains { $0["path"] as? String == "/packages/nothing-here.json" && $0["status"] as? Int == 404 })
        for entry in requests { #expect(entry["time"] is String && entry["level"] as? String == "info" && entry["label"] as? String == "l3af-registry") }
    }

    /// l3afd's request log names the route and, on its Unix socket, the caller's uid.
    @Test func theDaemonLogsEachRequestAsJSON() async throws {
        let root = try Fixtures.temporaryFolder("log-l3afd")
        let socket = root.appending(path: "l3afd.sock").path
        let process = try RunningProcess("l3afd", ["--listen", "127.0.0.1:0", "--state", root.appending(path: "state").path, "--repo", root.appending(path: "repo").path,
                                                   "--cache", root.appending(path: "cache").path, "--pin-root", "/sys/fs/bpf/l3af-test-log-\(getpid())",
                                                   "--socket", socket, "--log-format", "json"])
        defer { process.stop() }
        let line = try process.waitForLine(containing: "listening on ")
        let url = String(try #require(line.split(separator: " ").first { $0.hasPrefix("http://") }))
        _ = try Executable.run("/usr/bin/curl", ["-s", "\(url)/l3af/configs/v1"])
        _ = try Executable.run("/usr/bin/curl", ["-s", "--unix-socket", socket, "http://localhost/l3af/v1/status"])
        var requests: [[String: Any]] = []
        for _ in 0..<100 where requests.count < 2 {
            requests = try Self.entries(process.printed).filter { $0["status"] is Int }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(requests.contains { $0["route"] as? String == "/l3af/configs/v1" && $0["status"] as? Int == 200 && $0["actor"] as? String == "-" }, "\(requests)")
        #expect(requests.contains { $0["route"] as? String == "/l3af/v1/status" && ($0["actor"] as? String)?.hasPrefix("uid 0") == true }, "\(requests)")
    }
}
