import Foundation
import L3AFClient
import L3AFModel
import L3AFTestSupport
import Testing

/// `kill -9` the registry at a random moment of a publish, restart it, and check that the tree is the
/// old one or the new one: the index verifies, every document matches it, every artifact matches its
/// document, nothing temporary is left, and the version is wholly there or wholly absent.
/// Rounds: $L3AF_CRASH_ROUNDS (default 8; scripts/registry-crash-soak runs 200).
@Suite(.serialized) struct RegistryCrashTests {
    @Test func killDuringPublishLeavesTheOldTreeOrTheNew() async throws {
        let rounds = Int(ProcessInfo.processInfo.environment["L3AF_CRASH_ROUNDS"] ?? "") ?? 8
        let registry = try RegistryHarness()
        #expect(try registry.publish(try Fixtures.xdpRootPackage(version: "1.0.0")).status == 0)
        var server = registry.server
        var url = registry.url
        var completed = 0
        for round in 1...rounds {
            let version = "1.0.\(round)"
            let file = registry.root.appending(path: "round.tar.gz")
            try Data(try Fixtures.xdpRootPackage(version: version)).write(to: file)
            let publisher = try RunningProcess("l3af", ["publish", file.path, "--registry", url, "--token", registry.token])
            // A blocking sleep: Task.sleep on a cooperative pool busy with the other suites overshoots by far more.
            usleep(UInt32(Int.random(in: 0...80_000)))
            server.stop(signal: SIGKILL)
            publisher.wait()
            (server, url) = try registry.restarted()

            let tree = "file://" + registry.tree.path
            let audit = try Executable.run("l3af", ["audit", "--registry", tree, "--trusted-key", registry.publicKey])
            #expect(audit.status == 0, "round \(round): \(audit.stderr)")
            let leftovers = FileManager.default.enumerator(atPath: registry.tree.path)?.compactMap { $0 as? String }
                .filter { ($0 as NSString).lastPathComponent.hasPrefix(".tmp-") } ?? []
            #expect(leftovers.isEmpty, "round \(round): \(leftovers)")
            let document = try await HTTPClient().send(HTTPRequest(url: url + "/packages/xdp-root.json"))
            let doc = try DocumentDecoder.decode(PackageDocument.self, from: document.body, document: "doc")
            let folder = registry.tree.appending(path: "xdp-root/\(version)").path
            if doc.versions[version] != nil {
                completed += 1
                #expect(FileManager.default.fileExists(atPath: folder + "/any/l3af_xdp-root.tar.gz"))
            } else {
                #expect(!FileManager.default.fileExists(atPath: folder), "round \(round): an unlisted version folder survived")
            }
        }
        server.stop(signal: SIGKILL)
        print("crash rounds: \(rounds), publishes that completed before the kill: \(completed)")
    }
}
