import Foundation
import L3AFClient
import L3AFModel
import L3AFTestSupport
import Testing

/// `l3af fetch` against the real registry on loopback.
@Suite(.serialized) struct InstallTests {
    /// A registry with xdp-root 1.0.0, 1.1.0, 1.2.0 (yanked), 2.0.0-beta.1 (tag beta) and ratelimiting 0.1.0.
    static func populated() throws -> RegistryHarness {
        let registry = try RegistryHarness()
        for version in ["1.0.0", "1.1.0", "1.2.0"] { _ = try registry.publish(try Fixtures.xdpRootPackage(version: version)) }
        _ = try registry.publish(try Fixtures.xdpRootPackage(version: "2.0.0-beta.1"), extra: ["--tag", "beta"])
        _ = try registry.publish(try Fixtures.xdpRootPackage(version: "0.1.0", name: "ratelimiting"))
        _ = try registry.l3af(["yank", "xdp-root@1.2.0"])
        return registry
    }

    /// A download shows a progress bar on a terminal (a pty made by script(1)), cleared at the end; none when
    /// standard error is not a terminal, none with --quiet or --json.
    @Test func aProgressBarOnATerminalOnly() throws {
        let registry = try Self.populated()
        let client = try ClientHarness(registry: registry)
        defer { client.remove() }
        let settings = ["--registry", registry.url, "--trusted-key", registry.publicKey, "--repo", client.repo, "--cache", client.cache,
                        "--state", client.folder.appending(path: "state").path]
        func onTerminal(_ arguments: [String]) throws -> String {
            let line = ([Executable.path("l3af")] + arguments + settings).map { "'\($0)'" }.joined(separator: " ")
            let result = try Executable.run("/usr/bin/script", ["-qec", line, "/dev/null"])
            #expect(result.status == 0, "\(result.stdout)")
            return result.stdout
        }
        let shown = try onTerminal(["fetch", "xdp-root@=1.0.0"])
        #expect(shown.contains("100% ") && shown.contains(" KB") && shown.contains("\r\u{1B}[K"), "\(shown.debugDescription)")
        #expect(try !onTerminal(["fetch", "xdp-root@=1.1.0", "--quiet"]).contains("%"))
        #expect(try !onTerminal(["fetch", "xdp-root@=2.0.0-beta.1", "--json"]).contains("% "))
        let piped = try client.l3af(["fetch", "ratelimiting@=0.1.0"])
        #expect(piped.status == 0 && !piped.stderr.contains("%"), "\(piped.stderr)")
    }

    @Test func installsByExactVersionRangeLatestAndTag() async throws {
        let registry = try Self.populated()
        let client = try ClientHarness(registry: registry)
        defer { client.remove() }
        let cases = [
            ("xdp-root@=1.0.0", "1.0.0"), ("xdp-root@^1.0", "1.1.0"), ("xdp-root@latest", "1.1.0"),
            ("xdp-root", "1.1.0"), ("xdp-root@beta", "2.0.0-beta.1"), ("xdp-root@=1.2.0", "1.2.0"),
        ]
        for (spec, version) in cases {
            let result = try client.l3af(["fetch", spec, "--json"])
            #expect(result.status == 0, "\(spec): \(result.stderr)")
            let installed = try JSONDecoder().decode([InstalledPackage].self, from: Data(result.stdout.utf8))
            #expect(installed.first?.version == version, "\(spec)")
            #expect(installed.first?.path == "\(client.repo)/xdp-root/\(version)/l3af_xdp-root")
            #expect(FileManager.default.fileExists(atPath: "\(client.repo)/xdp-root/\(version)/l3af_xdp-root/xdp_root.bpf.o"))
            #expect(installed.first?.yanked == (version == "1.2.0"), "\(spec): an exact pin installs a yanked version, marked so")
        }
        let latest = try client.l3af(["fetch", "xdp-root@~1.1", "xdp-root@=1.2.0"])
        #expect(latest.stdout.contains("warning: xdp-root@1.2.0 is yanked"), "a yanked version is flagged in text too: \(latest.stdout)")
        let skipped = try client.l3af(["fetch", "xdp-root@~1.2"])
        #expect(skipped.status == 1 && skipped.stderr.contains("no version of xdp-root matches '~1.2'; yanked: 1.2.0"))
    }

    @Test func pinnedVersionsAlreadyInstalledNeedNoRequest() async throws {
        let registry = try Self.populated()
        let fault = try FaultServer(root: registry.tree.path)
        let client = try ClientHarness(registry: registry)
        defer { client.remove() }
        let first = try client.l3af(["fetch", "xdp-root@=1.0.0", "ratelimiting@=0.1.0", "--json"], registryURL: fault.url)
        #expect(first.status == 0, "\(first.stderr)")
        let asked = fault.requests().count
        let again = try client.l3af(["fetch", "xdp-root@=1.0.0", "ratelimiting@=0.1.0", "--json"], registryURL: fault.url)
        #expect(again.status == 0, "\(again.stderr)")
        let installed = try JSONDecoder().decode([InstalledPackage].self, from: Data(again.stdout.utf8))
        #expect(installed.map { "\($0.name)@\($0.version):\($0.source.rawValue)" } == ["xdp-root@1.0.0:installed", "ratelimiting@0.1.0:installed"])
        #expect(installed.map(\.sha256) == (try JSONDecoder().decode([InstalledPackage].self, from: Data(first.stdout.utf8))).map(\.sha256))
        #expect(fault.requests().count == asked, "no request for pinned, installed versions: \(fault.requests().dropFirst(asked).map(\.path))")

        // A range, or a pin not installed yet, still goes to the signed index.
        _ = try client.l3af(["fetch", "xdp-root@=1.0.0", "xdp-root@=1.1.0"], registryURL: fault.url)
        #expect(fault.requests().dropFirst(asked).map(\.path).first == "/index.json")
    }

    @Test func installsSeveralAtOnceAndReusesWhatIsThere() async throws {
        let registry = try Self.populated()
        let client = try ClientHarness(registry: registry)
        defer { client.remove() }
        let first = try client.l3af(["fetch", "xdp-root@^1", "ratelimiting", "--json"])
        #expect(first.status == 0, "\(first.stderr)")
        let installed = try JSONDecoder().decode([InstalledPackage].self, from: Data(first.stdout.utf8))
        #expect(installed.map { "\($0.name)@\($0.version):\($0.source.rawValue)" } == ["xdp-root@1.1.0:downloaded", "ratelimiting@0.1.0:downloaded"])
        let artifactPath = "/xdp-root/1.1.0/any/l3af_xdp-root.tar.gz"
        _ = artifactPath
        let again = try client.l3af(["fetch", "xdp-root@^1", "ratelimiting", "--json"])
        #expect(try JSONDecoder().decode([InstalledPackage].self, from: Data(again.stdout.utf8)).map(\.source) == [.installed, .installed])

        // Removed from the repo but still in the cache: unpacked again with no artifact request.
        try FileManager.default.removeItem(atPath: "\(client.repo)/ratelimiting")
        let fault = try FaultServer(root: registry.tree.path)
        let cached = try client.l3af(["fetch", "ratelimiting", "--json"], registryURL: fault.url)
        #expect(try JSONDecoder().decode([InstalledPackage].self, from: Data(cached.stdout.utf8)).map(\.source) == [.cached], "\(cached.stderr)")
        #expect(fault.requests().map(\.path) == ["/index.json"], "only the index was asked for: \(fault.requests().map(\.path))")

        let list = try client.l3af(["list", "--installed"])
        #expect(list.stdout.contains("ratelimiting@0.1.0  sha256") && list.stdout.contains("xdp-root@1.1.0  sha256"))
        let verify = try client.l3af(["verify", "xdp-root@1.1.0"])
        #expect(verify.status == 0 && verify.stdout.contains("the artifact matches the signed registry"), "\(verify.stderr)")
    }

    @Test func badSpecsChangeNothing() throws {
        let registry = try Self.populated()
        let client = try ClientHarness(registry: registry)
        defer { client.remove() }
        for (spec, message) in [("xdp-root@^9", "no version of xdp-root matches '^9'"), ("nothere", "no package named 'nothere'"),
                                ("Bad@1", "invalid package name 'Bad'")] {
            let result = try client.l3af(["fetch", "ratelimiting", spec])
            #expect(result.status == 1 && result.stderr.contains(message), "\(spec): \(result.stderr)")
        }
        #expect(client.repoSnapshot().isEmpty, "the valid spec beside a bad one was not installed either")
    }

    @Test func legacyUnsignedArtifactsNeedPermission() throws {
        let registry = try RegistryHarness()
        let client = try ClientHarness(registry: registry)
        defer { client.remove() }
        // A plain l3afd repository on disk: <repo>/<name>/<version>/<platform>/<artifact>, .bpf.o files only.
        let legacy = try Fixtures.temporaryFolder("l3afd-repo")
        defer { try? FileManager.default.removeItem(at: legacy) }
        let tarball = try Fixtures.package(manifest: "", objects: ["ratelimiting.bpf.o": try Fixtures.compileBPF("registry/xdp-root/xdp_root.bpf.c")], top: "l3af_ratelimiting")
            .self
        let folder = legacy.appending(path: "ratelimiting/latest/focal")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try Data(tarball).write(to: folder.appending(path: "l3af_ratelimiting.tar.gz"))
        let url = "file://" + legacy.path
        let refused = try client.l3af(["fetch", "ratelimiting@latest", "--l3afd-repo", url, "--platform", "focal"])
        #expect(refused.status == 1 && refused.stderr.contains("serves unsigned artifacts, which are not allowed"))
        #expect(client.repoSnapshot().isEmpty)
        let allowed = try client.l3af(["fetch", "ratelimiting@latest", "--l3afd-repo", url, "--platform", "focal", "--allow-unsigned"])
        #expect(allowed.status == 0, "\(allowed.stderr)")
        #expect(allowed.stdout.contains("is UNSIGNED"))
        // `latest` moves: each build it names is installed by its digest, so what it meant before stays for rollback.
        let digest = SHA256Digest(of: tarball).hex.prefix(12)
        #expect(FileManager.default.fileExists(atPath: "\(client.repo)/ratelimiting/latest-\(digest)/l3af_ratelimiting/ratelimiting.bpf.o"))
    }
}

/// Faults between the client and the registry, played by a server the test controls. Each failure gives
/// a clear message and a non-zero exit and leaves the repo as it was.
@Suite(.serialized) struct FetchFaultTests {
    let registry: RegistryHarness
    let client: ClientHarness
    let fault: FaultServer
    let tarball: [UInt8]
    let artifact = "/xdp-root/1.0.0/any/l3af_xdp-root.tar.gz"
    /// Fast failure for tests: a 1-second stall limit, 3 attempts.
    let config: [String: Any] = ["low_speed_seconds": 1, "low_speed_bytes_per_second": 1000, "attempts": 3, "connect_timeout_seconds": 2]

    init() throws {
        registry = try RegistryHarness()
        // 300 KB of incompressible filler so transfers have a middle to fail in.
        var filler = SystemRandomNumberGenerator()
        let noise = (0..<300_000).map { _ in UInt8.random(in: 0...255, using: &filler) }
        tarball = try Fixtures.package(manifest: Fixtures.xdpRootManifest(version: "1.0.0"),
                                       objects: ["xdp_root.bpf.o": try Fixtures.compileBPF("registry/xdp-root/xdp_root.bpf.c"), "filler.bin": noise], top: "l3af_xdp-root")
        _ = try registry.publish(tarball)
        client = try ClientHarness(registry: registry)
        fault = try FaultServer(root: registry.tree.path)
    }

    func fetch() throws -> Executable.Result { try client.l3af(["fetch", "xdp-root@1.0.0"], registryURL: fault.url, config: config) }

    @Test func retries503ThenSucceeds() throws {
        fault.script(artifact, [.status(503), .status(503)])
        let result = try fetch()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(fault.requests(for: artifact).count == 3)
        defer { client.remove() }
    }

    @Test func honoursRetryAfter() throws {
        defer { client.remove() }
        fault.script(artifact, [.status(429, retryAfter: "1")])
        let start = Date()
        #expect(try fetch().status == 0)
        #expect(Date().timeIntervalSince(start) >= 1.0, "waited as Retry-After said")
        fault.script("/index.json", [.status(503, retryAfter: "1")])
        #expect(try client.l3af(["fetch", "xdp-root@1.0.0"], registryURL: fault.url, config: config).status == 0, "metadata is retried too")
    }

    @Test func resumesAfterAResetMidway() throws {
        defer { client.remove() }
        fault.script(artifact, [.resetAfter(bytes: 100_000)])
        let result = try fetch()
        #expect(result.status == 0, "\(result.stderr)")
        let requests = fault.requests(for: artifact)
        #expect(requests.count == 2)
        #expect(requests.last?.headers["range"] == "bytes=100000-", "the second attempt resumed: \(requests.last?.headers ?? [:])")
        #expect(try client.l3af(["verify", "xdp-root@1.0.0"], registryURL: fault.url).status == 0, "the resumed file verifies")
    }

    @Test func abortsAStallInBoundedTime() throws {
        defer { client.remove() }
        fault.script(artifact, Array(repeating: .stallAfter(bytes: 1000), count: 10))
        let start = Date()
        let result = try fetch()
        let elapsed = Date().timeIntervalSince(start)
        #expect(result.status == 1)
        #expect(result.stderr.contains("failed after 3 attempt(s)"), "\(result.stderr)")
        #expect(elapsed < 15, "three 1-second stall limits and backoff, not forever: \(elapsed)s")
        #expect(client.repoSnapshot().isEmpty)
    }

    @Test func cutsAnEndlessBodyAtTheSignedSize() throws {
        defer { client.remove() }
        fault.script(artifact, [.endless])
        let result = try fetch()
        #expect(result.status == 1)
        #expect(result.stderr.contains("sent more than the \(tarball.count) bytes its signed metadata allows"), "\(result.stderr)")
        #expect(fault.requests(for: artifact).count == 1, "not retried")
        #expect(client.repoSnapshot().isEmpty)
    }

    @Test func notFoundIsNotRetried() throws {
        defer { client.remove() }
        fault.script(artifact, [.status(404)])
        let result = try fetch()
        #expect(result.status == 1 && result.stderr.contains("answered HTTP 404") && result.stderr.contains("hint: the registry does not have it"))
        #expect(fault.requests(for: artifact).count == 1)
        #expect(client.repoSnapshot().isEmpty)
    }

    @Test func refusesATamperedArtifact() throws {
        defer { client.remove() }
        var bad = tarball
        bad[bad.count / 2] ^= 0xff
        fault.override(artifact, with: bad)
        let result = try fetch()
        #expect(result.status == 1 && result.stderr.contains("does not match its signed metadata: expected sha256 \(SHA256Digest(of: tarball))"), "\(result.stderr)")
        #expect(client.repoSnapshot().isEmpty)
    }

    @Test func refusesATamperedDocument() throws {
        defer { client.remove() }
        var document = Array(try Data(contentsOf: registry.tree.appending(path: "packages/xdp-root.json")))
        document[document.count / 2] ^= 0x01
        fault.override("/packages/xdp-root.json", with: document)
        let result = try fetch()
        #expect(result.status == 1 && result.stderr.contains("packages/xdp-root.json does not match index/"), "\(result.stderr)")
        #expect(client.repoSnapshot().isEmpty)
    }

    @Test func refusesABadIndexSignature() throws {
        defer { client.remove() }
        let index = try String(contentsOf: registry.tree.appending(path: "index.json"), encoding: .utf8)
        fault.override("/index.json", with: Array(index.replacingOccurrences(of: "\"version\":", with: "\"version\":1").utf8))
        let result = try fetch()
        #expect(result.status == 1 && result.stderr.contains("signature by key") && result.stderr.contains("does not verify"), "\(result.stderr)")
        #expect(client.repoSnapshot().isEmpty)
    }

    @Test func refusesAnIndexOlderThanTheLastSeen() throws {
        defer { client.remove() }
        let old = Array(try Data(contentsOf: registry.tree.appending(path: "index.json")))
        #expect(try registry.publish(try Fixtures.xdpRootPackage(version: "1.0.1")).status == 0)
        #expect(try client.l3af(["fetch", "xdp-root@1.0.1"], config: config).status == 0, "accepts the newer index")
        fault.override("/index.json", with: old)
        let result = try fetch()
        #expect(result.status == 1 && result.stderr.contains("older than version") && result.stderr.contains("refusing a rollback"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(client.repo)/xdp-root/1.0.0"))
    }

    @Test func refusesAnExpiredIndex() throws {
        defer { client.remove() }
        let shortLived = try RegistryHarness(serveArguments: ["--index-ttl", "2", "--refresh-interval", "3600"])
        _ = try shortLived.publish(try Fixtures.xdpRootPackage(version: "1.0.0"))
        let frozen = try FaultServer(root: shortLived.tree.path)
        Thread.sleep(forTimeInterval: 2.2)
        let other = try ClientHarness(registry: shortLived)
        defer { other.remove() }
        let result = try other.l3af(["fetch", "xdp-root@1.0.0"], registryURL: frozen.url)
        #expect(result.status == 1 && result.stderr.contains("the registry index expired at"), "\(result.stderr)")
        #expect(other.repoSnapshot().isEmpty)
    }
}
