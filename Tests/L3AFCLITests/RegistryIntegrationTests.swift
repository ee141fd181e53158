import Foundation
import L3AFClient
import L3AFModel
import L3AFTestSupport
import Testing

/// The real registry server on loopback, driven by the real `l3af` CLI and by plain HTTP (libcurl).
@Suite(.serialized) struct RegistryIntegrationTests {
    @Test func publishesAndServesTheSignedTreeAtL3afdsLayout() async throws {
        let registry = try RegistryHarness()
        let tarball = try Fixtures.xdpRootPackage(version: "1.0.0")
        let published = try registry.publish(tarball)
        #expect(published.status == 0, "\(published.stderr)")
        #expect(published.stdout.hasPrefix("published xdp-root@1.0.0 (\(tarball.count) bytes, sha256 \(SHA256Digest(of: tarball))); tags: latest"))

        let index = try await registry.verifiedIndex()
        let document = try await registry.http("/packages/xdp-root.json")
        #expect(document.status == 200)
        #expect(try await registry.listed("xdp-root", in: index)?.sha256 == SHA256Digest(of: document.body))
        let doc = try DocumentDecoder.decode(PackageDocument.self, from: document.body, document: "doc")
        #expect(doc.distTags[.latest] == SemanticVersion(1, 0, 0))
        #expect(doc.versions["1.0.0"]?.sha256 == SHA256Digest(of: tarball))

        // l3afd asks for <repo>/<name>/<version>/<platform>/<artifact>; any platform serves a portable package.
        for path in ["/xdp-root/1.0.0/focal/l3af_xdp-root.tar.gz", "/xdp-root/latest/jammy/l3af_xdp-root.tar.gz",
                     "/xdp-root/1.0.0/any/l3af_xdp-root.tar.gz"] {
            let artifact = try await registry.http(path)
            #expect(artifact.status == 200, "\(path)")
            #expect(artifact.body == tarball, "\(path)")
            #expect(artifact.headers["content-type"] == "application/gzip")
        }
        let wrongArtifact = try await registry.http("/xdp-root/1.0.0/focal/ratelimiting.tar.gz")
        #expect(wrongArtifact.status == 404 && wrongArtifact.text.contains("its artifact is l3af_xdp-root.tar.gz"))
        let audit = try Executable.run("l3af", ["audit", "--registry", registry.url, "--trusted-key", registry.publicKey])
        #expect(audit.status == 0 && audit.stdout.contains("1 package document(s) and 1 artifact(s)"), "\(audit.stderr)")
    }

    @Test func versionsAreImmutable() async throws {
        let registry = try RegistryHarness()
        #expect(try registry.publish(try Fixtures.xdpRootPackage(version: "1.0.0")).status == 0)
        let before = try await registry.verifiedIndex().version
        let again = try registry.publish(try Fixtures.xdpRootPackage(version: "1.0.0"))
        #expect(again.status == 0)
        #expect(again.stdout.contains("already published with these exact bytes; nothing changed"))
        let changed = try registry.publish(try Fixtures.xdpRootPackage(version: "1.0.0", description: "changed"))
        #expect(changed.status == 1)
        #expect(changed.stderr.contains("HTTP 409") && changed.stderr.contains("published versions never change"))
        #expect(changed.stderr.contains("hint: publish a new version number"))
        #expect(try await registry.verifiedIndex().version == before, "a refusal changes nothing")
    }

    @Test func yankMovesLatestAndTagsAreManaged() async throws {
        let registry = try RegistryHarness()
        for version in ["1.0.0", "1.1.0"] { #expect(try registry.publish(try Fixtures.xdpRootPackage(version: version)).status == 0) }
        let beta = try registry.publish(try Fixtures.xdpRootPackage(version: "1.2.0-beta.1"), extra: ["--tag", "beta"])
        #expect(beta.stdout.contains("tags: beta"), "\(beta.stdout)")
        var tags = try registry.l3afRead(["dist-tag", "ls", "xdp-root"]).stdout
        #expect(tags == "beta: 1.2.0-beta.1\nlatest: 1.1.0\n", "a tagged prerelease leaves latest alone")

        #expect(try registry.l3af(["yank", "xdp-root@1.1.0"]).stdout == "yanked xdp-root@1.1.0\n")
        tags = try registry.l3afRead(["dist-tag", "ls", "xdp-root"]).stdout
        #expect(tags.contains("latest: 1.0.0"), "yanking latest moves it back: \(tags)")
        let info = try registry.l3afRead(["info", "xdp-root"]).stdout
        #expect(info.contains("1.1.0") && info.contains("[yanked]"))
        let yankedArtifact = try await registry.http("/xdp-root/1.1.0/focal/l3af_xdp-root.tar.gz")
        #expect(yankedArtifact.status == 200, "a yanked version stays installable when pinned")
        #expect(try registry.l3af(["unyank", "xdp-root@1.1.0"]).status == 0)

        #expect(try registry.l3af(["dist-tag", "add", "xdp-root@1.0.0", "stable"]).stdout == "stable → xdp-root@1.0.0\n")
        let stable = try await registry.http("/xdp-root/stable/focal/l3af_xdp-root.tar.gz")
        #expect(stable.body == (try await registry.http("/xdp-root/1.0.0/focal/l3af_xdp-root.tar.gz")).body)
        let json = try registry.l3afRead(["dist-tag", "ls", "xdp-root", "--json"])
        #expect(try JSONDecoder().decode([String: String].self, from: Data(json.stdout.utf8))["stable"] == "1.0.0")
        #expect(try registry.l3af(["dist-tag", "rm", "xdp-root", "stable"]).status == 0)
        let removeLatest = try registry.l3af(["dist-tag", "rm", "xdp-root", "latest"])
        #expect(removeLatest.status == 1 && removeLatest.stderr.contains("HTTP 400") && removeLatest.stderr.contains("'latest' tag can't be removed"))
        let missing = try registry.l3af(["dist-tag", "add", "xdp-root@9.9.9", "x"])
        #expect(missing.status == 1 && missing.stderr.contains("xdp-root@9.9.9 is not published (versions: 1.0.0, 1.1.0, 1.2.0-beta.1)"))
    }

    @Test func deprecationAndSearch() async throws {
        let registry = try RegistryHarness()
        for version in ["1.0.0", "1.0.5", "1.1.0"] { #expect(try registry.publish(try Fixtures.xdpRootPackage(version: version)).status == 0) }
        #expect(try registry.publish(try Fixtures.xdpRootPackage(version: "0.1.0", name: "ratelimiting", description: "Limits new TCP connections")).status == 0)
        let deprecated = try registry.l3af(["deprecate", "xdp-root@<1.1", "use 1.1 or later"])
        #expect(deprecated.stdout == "deprecated xdp-root@1.0.0, xdp-root@1.0.5\n", "\(deprecated.stderr)")
        let info = try registry.l3afRead(["info", "xdp-root", "--json"])
        let doc = try DocumentDecoder.decode(PackageDocument.self, from: Array(info.stdout.utf8), document: "info")
        #expect(doc.versions["1.0.0"]?.deprecated == "use 1.1 or later")
        #expect(doc.versions["1.1.0"]?.deprecated == nil)

        #expect(try registry.l3afRead(["search", "tcp"]).stdout.hasPrefix("ratelimiting  0.1.0"))
        let all = try registry.l3afRead(["search", "--json"])
        #expect(try JSONDecoder().decode([SearchResult].self, from: Data(all.stdout.utf8)).map(\.name) == ["ratelimiting", "xdp-root"])
        #expect(try registry.l3afRead(["search", "nothing-like-this"]).stdout == "no packages match 'nothing-like-this'\n")
        let none = try registry.l3af(["deprecate", "xdp-root@>=5", "x"])
        #expect(none.status == 1 && none.stderr.contains("no version of xdp-root matches '>=5'"))
    }

    @Test func conditionalAndRangeRequests() async throws {
        let registry = try RegistryHarness()
        let tarball = try Fixtures.xdpRootPackage(version: "1.0.0")
        #expect(try registry.publish(tarball).status == 0)
        let path = "/xdp-root/1.0.0/focal/l3af_xdp-root.tar.gz"
        let full = try await registry.http(path)
        let etag = try #require(full.headers["etag"])
        #expect(etag == "\"\(SHA256Digest(of: tarball))\"")
        #expect(full.headers["accept-ranges"] == "bytes")
        #expect(try await registry.http(path, headers: [("If-None-Match", etag)]).status == 304)
        #expect(try await registry.http(path, headers: [("If-None-Match", "\"other\"")]).status == 200)

        let head = try await registry.http(path, headers: [("Range", "bytes=0-99")])
        #expect(head.status == 206 && head.body == Array(tarball[0..<100]))
        #expect(head.headers["content-range"] == "bytes 0-99/\(tarball.count)")
        let tail = try await registry.http(path, headers: [("Range", "bytes=100-")])
        #expect(tail.status == 206 && tail.body == Array(tarball[100...]), "resume from byte 100")
        let suffix = try await registry.http(path, headers: [("Range", "bytes=-10")])
        #expect(suffix.status == 206 && suffix.body == Array(tarball.suffix(10)))
        let beyond = try await registry.http(path, headers: [("Range", "bytes=\(tarball.count + 10)-")])
        #expect(beyond.status == 416 && beyond.headers["content-range"] == "bytes */\(tarball.count)")

        let index = try await registry.http("/index.json")
        let indexTag = try #require(index.headers["etag"])
        #expect(try await registry.http("/index.json", headers: [("If-None-Match", indexTag)]).status == 304)
        #expect(index.headers["cache-control"] == "no-cache")
        #expect(try registry.publish(try Fixtures.xdpRootPackage(version: "1.0.1")).status == 0)
        #expect(try await registry.http("/index.json", headers: [("If-None-Match", indexTag)]).status == 200, "a write changes the index ETag")
    }

    @Test func platformSpecificPackagesAnswerOnlyTheirPlatforms() async throws {
        let registry = try RegistryHarness()
        #expect(try registry.publish(try Fixtures.xdpRootPackage(version: "1.0.0", platforms: ["focal", "jammy"])).status == 0)
        #expect(try await registry.http("/xdp-root/1.0.0/focal/l3af_xdp-root.tar.gz").status == 200)
        #expect(try await registry.http("/xdp-root/latest/jammy/l3af_xdp-root.tar.gz").status == 200)
        let other = try await registry.http("/xdp-root/1.0.0/bionic/l3af_xdp-root.tar.gz")
        #expect(other.status == 404 && other.text.contains("is not built for 'bionic' (built for: focal, jammy)"))
    }

    /// Every refusal answers 4xx with a JSON error naming the problem, and changes nothing.
    @Test func refusalsAreClearAndChangeNothing() async throws {
        let registry = try RegistryHarness(packages: "xdp-root", serveArguments: ["--max-upload-bytes", "200000"])
        let good = try Fixtures.xdpRootPackage(version: "1.0.0")
        #expect(try registry.publish(good).status == 0)
        let indexBefore = try await registry.verifiedIndex().version
        let object = try Fixtures.compileBPF("registry/xdp-root/xdp_root.bpf.c")

        func put(_ path: String, _ body: [UInt8], token: String? = nil) async throws -> (Int, String, String) {
            var headers = [("Content-Type", "application/gzip")]
            if let token { headers.append(("Authorization", "Bearer \(token)")) }
            let response = try await registry.http("PUT", path, headers: headers, body: body)
            let decoded = try JSONDecoder().decode(APIErrorBody.self, from: Data(response.body))
            return (response.status, decoded.error.code, decoded.error.message)
        }
        let other = try registry.addToken(owner: "storage", packages: "xdp-root,other")
        let cases: [(String, [UInt8], String?, Int, String, String)] = [
            ("/api/v1/packages/xdp-root/2.0.0", try Fixtures.xdpRootPackage(version: "2.0.0"), nil, 401, "token-missing", "needs a publish token"),
            ("/api/v1/packages/xdp-root/2.0.0", try Fixtures.xdpRootPackage(version: "2.0.0"), "l3af_wrong", 401, "token-invalid", "not known"),
            ("/api/v1/packages/other/1.0.0", try Fixtures.xdpRootPackage(version: "1.0.0", name: "other"), registry.token, 403, "token-scope", "does not cover the package 'other'"),
            ("/api/v1/packages/xdp-root/2.0.0", try Fixtures.xdpRootPackage(version: "2.0.0"), other, 403, "not-an-owner", "storage is not an owner of 'xdp-root'"),
            ("/api/v1/packages/xdp-root/2.0.0", good, registry.token, 400, "manifest-mismatch", "the upload is for xdp-root@2.0.0 but its manifest says xdp-root@1.0.0"),
            ("/api/v1/packages/Xdp-Root/2.0.0", good, registry.token, 400, "invalid-package-name", "invalid package name 'Xdp-Root'"),
            ("/api/v1/packages/xdp-root/2.0", good, registry.token, 400, "invalid-version", "invalid version '2.0'"),
            ("/api/v1/packages/xdp-root/2.0.0", Array("not a tarball".utf8), registry.token, 400, "archive-unreadable", "is not a readable tar archive"),
            ("/api/v1/packages/xdp-root/2.0.0",
             try Fixtures.package(manifest: Fixtures.xdpRootManifest(version: "2.0.0"), objects: [:]), registry.token,
             400, "package-objects-invalid", "the object file 'l3af_pkg/xdp_root.bpf.o' for xdp_ingress is not in the package"),
            ("/api/v1/packages/xdp-root/2.0.0",
             try Fixtures.package(manifest: Fixtures.xdpRootManifest(version: "2.0.0", entryFunction: "xdp_gone"), objects: ["xdp_root.bpf.o": object]),
             registry.token, 400, "package-objects-invalid", "has no program 'xdp_gone' (it has: xdp_root)"),
            ("/api/v1/packages/xdp-root/2.0.0",
             try Fixtures.package(manifest: #"{"name":"xdp-root","version":"2.0.0","programs":[]}"#, objects: [:]), registry.token,
             400, "invalid-document", "a package needs at least one program"),
            ("/api/v1/packages/xdp-root/2.0.0", [UInt8](repeating: 7, count: 300_000), registry.token, 413, "upload-too-large", "limit of 200000 bytes"),
        ]
        for (path, body, token, status, code, message) in cases {
            let (gotStatus, gotCode, gotMessage) = try await put(path, body, token: token)
            #expect(gotStatus == status && gotCode == code, "\(code): got \(gotStatus) \(gotCode) \(gotMessage)")
            #expect(gotMessage.contains(message), "\(code): \(gotMessage)")
        }
        // A symbolic link in a tarball is refused (made with GNU tar, which l3af's writer can't make).
        let folder = try Fixtures.temporaryFolder("symlink")
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.createDirectory(at: folder.appending(path: "l3af_x"), withIntermediateDirectories: true)
        try Data(Fixtures.xdpRootManifest(version: "2.0.0").utf8).write(to: folder.appending(path: "l3af_x/l3af.json"))
        try FileManager.default.createSymbolicLink(atPath: folder.appending(path: "l3af_x/xdp_root.bpf.o").path, withDestinationPath: "/etc/passwd")
        #expect(try Executable.run("/usr/bin/tar", ["-C", folder.path, "-czf", folder.appending(path: "x.tgz").path, "l3af_x"]).status == 0)
        let (status, code, message) = try await put("/api/v1/packages/xdp-root/2.0.0", Array(try Data(contentsOf: folder.appending(path: "x.tgz"))), token: registry.token)
        #expect(status == 400 && code == "archive-unsafe-entry" && message.contains("'l3af_x/xdp_root.bpf.o'") && message.contains("symbolic link"))

        let unknown = try await registry.http("/api/v1/nothing")
        #expect(unknown.status == 404 && unknown.text.contains("\"code\" : \"http-404\""))
        #expect(try await registry.verifiedIndex().version == indexBefore, "no refusal changed the tree")

        // The owner can add another owner, whose token then works.
        #expect(try registry.l3af(["owner", "add", "xdp-root", "storage"]).stdout == "owners of xdp-root: netops, storage\n")
        #expect(try registry.publish(try Fixtures.xdpRootPackage(version: "2.0.0"), token: other).status == 0)
        let cli = try registry.publish(Array("junk".utf8))
        #expect(cli.status == 1 && cli.stderr.hasPrefix("error: pkg.tar.gz is not a readable tar archive"), "the CLI checks before uploading")
    }

    @Test func nameCollisionsAndReservedNamesAreRefused() async throws {
        let registry = try RegistryHarness()
        #expect(try registry.publish(try Fixtures.xdpRootPackage(version: "1.0.0", name: "rate-limit")).status == 0)
        let collision = try registry.publish(try Fixtures.xdpRootPackage(version: "1.0.0", name: "rate_limit"))
        #expect(collision.status == 1 && collision.stderr.contains("'rate_limit' collides with the existing package 'rate-limit'"))
        let reserved = try registry.publish(try Fixtures.xdpRootPackage(version: "1.0.0", name: "packages"))
        #expect(reserved.status == 1 && reserved.stderr.contains("reserved"))
    }

    @Test func nginxServesEveryReadFromTheSameTree() async throws {
        let registry = try RegistryHarness()
        let tarball = try Fixtures.xdpRootPackage(version: "1.0.0")
        #expect(try registry.publish(tarball).status == 0)
        let nginx = try NginxServer(tree: registry.tree)
        for path in ["/index.json", "/packages/xdp-root.json", "/xdp-root/1.0.0/focal/l3af_xdp-root.tar.gz",
                     "/xdp-root/latest/jammy/l3af_xdp-root.tar.gz", "/xdp-root/1.0.0/any/l3af_xdp-root.tar.gz"] {
            let fromNginx = try await HTTPClient().send(HTTPRequest(url: nginx.url + path))
            let fromRegistry = try await registry.http(path)
            #expect(fromNginx.status == 200, "nginx \(path)")
            #expect(fromNginx.body == fromRegistry.body, "same bytes for \(path)")
        }
        let range = try await HTTPClient().send(HTTPRequest(url: nginx.url + "/xdp-root/latest/focal/l3af_xdp-root.tar.gz", headers: [("Range", "bytes=100-")]))
        #expect(range.status == 206 && range.body == Array(tarball[100...]))
        let audit = try Executable.run("l3af", ["audit", "--registry", nginx.url, "--trusted-key", registry.publicKey])
        #expect(audit.status == 0, "the whole tree verifies through nginx: \(audit.stderr)")
    }

    /// A tree altered by one byte fails verification, naming what failed (over file:// and l3af audit).
    @Test func alteredTreeFailsVerificationNamingTheFile() async throws {
        let registry = try RegistryHarness()
        #expect(try registry.publish(try Fixtures.xdpRootPackage(version: "1.0.0")).status == 0)
        let url = "file://" + registry.tree.path
        func audit() throws -> Executable.Result { try Executable.run("l3af", ["audit", "--registry", url, "--trusted-key", registry.publicKey]) }
        #expect(try audit().status == 0)
        let index = try await registry.verifiedIndex(), id = RegistryIndex.shard(of: "xdp-root")
        let shard = RegistryIndex.shardPath(id, try #require(index.shards[id])).dropFirst("index/".count)
        for (file, expected) in [
            ("packages/xdp-root.json", "error: packages/xdp-root.json does not match index/\(shard): expected sha256"),
            ("index/\(shard)", "error: index/\(shard) does not match the signed index: expected sha256"),
            ("xdp-root/1.0.0/any/l3af_xdp-root.tar.gz", "error: xdp-root/1.0.0/any/l3af_xdp-root.tar.gz does not match packages/xdp-root.json"),
            ("index.json", "error: the registry index signature by key"),
        ] {
            let path = registry.tree.appending(path: file)
            var bytes = Array(try Data(contentsOf: path))
            let original = bytes
            let position = file == "index.json" ? bytes.count - 20 : bytes.count / 2
            bytes[position] ^= 0x01
            try Data(bytes).write(to: path)
            let result = try audit()
            #expect(result.status == 1)
            #expect(result.stderr.hasPrefix(expected), "\(file): \(result.stderr)")
            try Data(original).write(to: path)
        }
        let untrusted = try Executable.run("l3af", ["audit", "--registry", url, "--trusted-key", IndexSigningKey().publicKey.base64])
        #expect(untrusted.status == 1 && untrusted.stderr.contains("signed by no trusted key"))
    }

    @Test func stopsGracefullyOnSIGTERM() throws {
        let registry = try RegistryHarness()
        #expect(registry.server.stop(signal: SIGTERM) == 0)
    }
}

/// nginx serving a registry tree with the project's config, on a free loopback port.
final class NginxServer: Sendable {
    let folder: URL
    let url: String
    let process: RunningProcess

    /// nginx serving `tree`, ready once `probe` answers 200.
    init(tree: URL, probe: String = "/index.json") throws {
        folder = try Fixtures.temporaryFolder("nginx")
        // A port below the kernel's ephemeral range (32768 and up), which other tests' connections draw from; a port
        // another test holds all the same is tried again with another.
        var lastError = ""
        for _ in 0..<5 {
            let port = Int.random(in: 20_000...32_000)
            let site = try String(contentsOf: Fixtures.repositoryRoot.appending(path: "deploy/nginx-l3af-registry.conf"), encoding: .utf8)
                .replacingOccurrences(of: "@TREE@", with: tree.path).replacingOccurrences(of: "@LISTEN@", with: "127.0.0.1:\(port)")
            let config = """
                daemon off; master_process off; worker_processes 1; pid \(folder.path)/nginx.pid; error_log stderr;
                events { worker_connections 256; }
                http { access_log off; client_body_temp_path \(folder.path); proxy_temp_path \(folder.path);
                       fastcgi_temp_path \(folder.path); uwsgi_temp_path \(folder.path); scgi_temp_path \(folder.path);
                       include /etc/nginx/mime.types; \(site) }
                """
            try config.write(to: folder.appending(path: "nginx.conf"), atomically: true, encoding: .utf8)
            let process = try RunningProcess("/usr/sbin/nginx", ["-c", folder.appending(path: "nginx.conf").path, "-e", "stderr"])
            let url = "http://127.0.0.1:\(port)"
            for _ in 0..<100 {
                if (try? Executable.run("/usr/bin/curl", ["-sf", "-o", "/dev/null", url + probe]))?.status == 0 {
                    self.process = process
                    self.url = url
                    return
                }
                if process.printed.contains("Address already in use") { break }
                Thread.sleep(forTimeInterval: 0.05)
            }
            lastError = process.printed
            process.stop(signal: SIGKILL)
        }
        throw FixtureError("nginx did not start: \(lastError)")
    }

    deinit {
        // With master_process off nginx keeps the signal mask it inherits, in which SIGTERM may be blocked.
        process.stop(signal: SIGKILL)
        try? FileManager.default.removeItem(at: folder)
    }
}
