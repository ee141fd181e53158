import Foundation
import L3AFClient
import L3AFModel
import L3AFTestSupport
import Testing

/// `kill -9` the client at random moments of installs. After each kill the repo holds only complete
/// versions (each one's files match its marker), and the next run succeeds and leaves no temporaries.
/// Rounds: $L3AF_INSTALL_KILL_ROUNDS (default 10; scripts/install-kill-soak runs 50).
@Suite(.serialized) struct InstallCrashTests {
    @Test func killDuringInstallsLeavesOnlyCompleteVersions() throws {
        let rounds = Int(ProcessInfo.processInfo.environment["L3AF_INSTALL_KILL_ROUNDS"] ?? "") ?? 10
        let registry = try RegistryHarness()
        var random = SystemRandomNumberGenerator()
        let object = try Fixtures.compileBPF("registry/xdp-root/xdp_root.bpf.c")
        for round in 0...rounds {
            // 1 MiB of incompressible filler, so the download and the unpack each take a moment to interrupt.
            let filler = (0..<(1 << 20)).map { _ in UInt8.random(in: 0...255, using: &random) }
            let tarball = try Fixtures.package(manifest: Fixtures.xdpRootManifest(version: "1.0.\(round)"),
                                               objects: ["xdp_root.bpf.o": object, "filler.bin": filler], top: "l3af_xdp-root")
            #expect(try registry.publish(tarball).status == 0)
        }
        let client = try ClientHarness(registry: registry)
        defer { client.remove() }
        func fetch(_ spec: String) throws -> RunningProcess {
            try RunningProcess("l3af", ["fetch", spec, "--quiet", "--registry", registry.url, "--trusted-key", registry.publicKey,
                                        "--repo", client.repo, "--cache", client.cache, "--state", client.folder.appending(path: "state").path])
        }
        // Kills land at random moments of a whole install, however long one takes on this machine and build:
        // version 1.0.0 is installed once, uncut, to measure that.
        let clock = ContinuousClock()
        let calibration = try fetch("xdp-root@=1.0.0")
        let whole = clock.measure { #expect(calibration.wait() == 0) }
        let span = max(1, Int(whole / .microseconds(1)))
        var interrupted = 0
        for round in 1...rounds {
            let spec = "xdp-root@=1.0.\(round)"
            let running = try fetch(spec)
            // A blocking sleep: Task.sleep on a cooperative pool busy with the other suites overshoots by far more.
            usleep(UInt32(Int.random(in: 0...span)))
            if running.stop(signal: SIGKILL) != 0 { interrupted += 1 }
            // Whatever is in the repo now is complete.
            for version in (try? FileManager.default.contentsOfDirectory(atPath: "\(client.repo)/xdp-root")) ?? [] where !version.hasPrefix(".") {
                #expect(throws: Never.self, "round \(round): \(version) is complete") {
                    try Unpacker.check(repo: client.repo, name: "xdp-root", version: version)
                }
            }
            let again = try client.l3af(["fetch", spec])
            #expect(again.status == 0, "round \(round): the next run succeeds: \(again.stderr) \(again.stdout)")
            let leftovers = ((try? FileManager.default.contentsOfDirectory(atPath: "\(client.repo)/xdp-root")) ?? []).filter { $0.hasPrefix(".") }
            #expect(leftovers.isEmpty, "round \(round): \(leftovers)")
            #expect(throws: Never.self) { try Unpacker.check(repo: client.repo, name: "xdp-root", version: "1.0.\(round)") }
        }
        print("install kill rounds: \(rounds), interrupted by the kill: \(interrupted) (a whole install took \(whole))")
    }
}
