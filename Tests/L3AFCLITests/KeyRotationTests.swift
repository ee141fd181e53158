import Foundation
import L3AFTestSupport
import Testing

/// Rotating a registry's signing key: the old key only, an overlap signed by both, the new key only, and clients that
/// trust either, including one that never saw the rotation document, and a forged rotation refused.
@Suite(.serialized) struct KeyRotationTests {
    /// A registry served from `root` on a fixed port, restarted with other keys.
    final class Registry {
        let root: URL
        let port: Int
        var process: RunningProcess?
        var url: String { "http://127.0.0.1:\(port)" }

        init() throws {
            root = try Fixtures.temporaryFolder("rotation")
            let socket = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in(sin_family: sa_family_t(AF_INET), sin_port: 0, sin_addr: in_addr(s_addr: inet_addr("127.0.0.1")), sin_zero: (0, 0, 0, 0, 0, 0, 0, 0))
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, length) } }
            _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) } }
            port = Int(UInt16(bigEndian: address.sin_port))
            close(socket)
        }

        /// A new key: its file and public key.
        func keygen(_ name: String) throws -> (file: String, publicKey: String) {
            let file = root.appending(path: "\(name).key").path
            let made = try Executable.run("l3af-registry", ["keygen", "--out", file])
            return (file, String(made.stdout.split(separator: "\n").last ?? ""))
        }

        func serve(_ key: String, alsoSignWith: [String] = []) throws {
            process?.stop()
            process = try RunningProcess("l3af-registry", ["serve", "--root", root.appending(path: "data").path, "--key", key, "--listen", "127.0.0.1:\(port)",
                                                            "--log-level", "warning"] + alsoSignWith.flatMap { ["--also-sign-with", $0] })
            _ = try process!.waitForLine(containing: "l3af-registry listening on ")
        }

        /// Publishes xdp-root at `version` (every publish re-signs the index with the keys now serving).
        func publish(_ version: String, token: String) throws {
            let tarball = root.appending(path: "xdp-root-\(version).tar.gz")
            try Data(try Fixtures.xdpRootPackage(version: version)).write(to: tarball)
            let published = try Executable.run("l3af", ["publish", tarball.path, "--registry", url, "--token", token])
            #expect(published.status == 0, "\(published.stderr)")
        }

        deinit { process?.stop() }
    }

    /// A client that trusts `key`, with a state folder of its own (what it accepted and the rotations it followed).
    struct Client {
        let folder: URL
        let key: String
        init(_ key: String) throws {
            folder = try Fixtures.temporaryFolder("rotation-client")
            self.key = key
        }
        func fetch(_ spec: String, from registry: Registry) throws -> Executable.Result {
            try Executable.run("l3af", ["fetch", spec, "--registry", registry.url, "--trusted-key", key, "--repo", folder.appending(path: "repo").path,
                                        "--cache", folder.appending(path: "cache").path, "--state", folder.appending(path: "state").path])
        }
        /// What `key-rotations.json` records for `registry`: the last rotation followed and its keys.
        func rotation(_ registry: Registry) -> (number: Int, keys: [String])? {
            guard let data = try? Data(contentsOf: folder.appending(path: "state/key-rotations.json")),
                  let entry = (try? JSONSerialization.jsonObject(with: data) as? [String: Any])?[registry.url] as? [String: Any] else { return nil }
            return (entry["rotation"] as? Int ?? -1, entry["keys"] as? [String] ?? [])
        }
    }

    @Test func aRotationKeepsEveryClientWorking() throws {
        let registry = try Registry()
        let old = try registry.keygen("old"), new = try registry.keygen("new")
        let token = String(try Executable.run("l3af-registry", ["token", "add", "--root", registry.root.appending(path: "data").path, "--owner", "ops",
                                                                "--packages", "*"]).stdout.split(separator: "\n").last ?? "")
        // The old key only.
        try registry.serve(old.file)
        try registry.publish("1.0.0", token: token)
        let early = try Client(old.publicKey)
        #expect(try early.fetch("xdp-root@=1.0.0", from: registry).status == 0)
        #expect(try Client(new.publicKey).fetch("xdp-root@=1.0.0", from: registry).status != 0, "the new key signs nothing yet")

        // The rotation document, then the overlap: the index signed by both keys.
        let rotated = try Executable.run("l3af-registry", ["rotate-key", "--root", registry.root.appending(path: "data").path, "--key", old.file, "--new-key", new.file])
        #expect(rotated.status == 0, "\(rotated.stderr)")
        try registry.serve(new.file, alsoSignWith: [old.file])
        try registry.publish("1.1.0", token: token)
        #expect(try early.fetch("xdp-root@=1.1.0", from: registry).status == 0, "a client of the old key, during the overlap")
        #expect(try Client(new.publicKey).fetch("xdp-root@=1.1.0", from: registry).status == 0, "a client of the new key, during the overlap")
        #expect(early.rotation(registry) == nil, "nothing to follow while the old key still signs")

        // The new key only.
        try registry.serve(new.file)
        try registry.publish("1.2.0", token: token)
        #expect(try Client(new.publicKey).fetch("xdp-root@=1.2.0", from: registry).status == 0)
        let followed = try early.fetch("xdp-root@=1.2.0", from: registry)
        #expect(followed.status == 0, "the old key's client follows keys/1.json: \(followed.stderr)")
        #expect(early.rotation(registry)?.number == 1 && early.rotation(registry)?.keys == [new.publicKey], "\(String(describing: early.rotation(registry)))")
        let never = try Client(old.publicKey)
        let fresh = try never.fetch("xdp-root@=1.2.0", from: registry)
        #expect(fresh.status == 0, "a client that never saw the rotation document: \(fresh.stderr)")
        // `l3af audit` given only the old key follows the rotation too; given the new one, it needs none.
        let audited = try Executable.run("l3af", ["audit", "--registry", registry.url, "--trusted-key", old.publicKey])
        #expect(audited.status == 0 && audited.stdout.contains("1 key rotation(s) followed"), "\(audited.stdout)\(audited.stderr)")
        let direct = try Executable.run("l3af", ["audit", "--registry", registry.url, "--trusted-key", new.publicKey])
        #expect(direct.status == 0 && !direct.stdout.contains("rotation"), "\(direct.stdout)\(direct.stderr)")

        // A forged rotation (signed by keys no client trusted) is refused, and nothing is taken from it.
        let forger = try registry.keygen("forger"), taken = try registry.keygen("taken")
        #expect(try Executable.run("l3af-registry", ["rotate-key", "--root", registry.root.appending(path: "data").path, "--key", forger.file,
                                                     "--new-key", taken.file]).status == 0)
        try registry.serve(taken.file)
        try registry.publish("1.3.0", token: token)
        let refused = try early.fetch("xdp-root@=1.3.0", from: registry)
        #expect(refused.status != 0 && refused.stderr.contains("key rotation") && refused.stderr.contains("keys/2.json"), "\(refused.stderr)")
        let forged = try Executable.run("l3af", ["audit", "--registry", registry.url, "--trusted-key", old.publicKey])
        #expect(forged.status != 0 && forged.stderr.contains("keys/2.json"), "\(forged.stderr)")
        #expect(early.rotation(registry)?.number == 1 && early.rotation(registry)?.keys == [new.publicKey], "\(String(describing: early.rotation(registry)))")
        #expect(!FileManager.default.fileExists(atPath: early.folder.appending(path: "repo/xdp-root/1.3.0").path))
    }
}
