import Foundation
import L3AFTestSupport
import Testing

/// `l3af login`/`logout` and the per-user config file every command reads.
@Suite struct LoginTests {
    /// An environment whose user config lives in a fresh folder, and that folder.
    static func user() throws -> ([String: String], URL) {
        let home = try Fixtures.temporaryFolder("user-config")
        return (["XDG_CONFIG_HOME": home.path, "L3AF_TOKEN": "", "L3AF_REGISTRY": ""], home.appending(path: "l3af/config.json"))
    }

    @Test func loginKeepsTheTokenForPublishAndLogoutForgetsIt() throws {
        let registry = try RegistryHarness()
        let (environment, file) = try Self.user()
        let login = try Executable.run("l3af", ["login", "--registry", registry.url + "/"], stdin: registry.token + "\n", environment: environment)
        #expect(login.status == 0, "\(login.stderr)")
        var info = stat()
        #expect(stat(file.path, &info) == 0 && info.st_mode & 0o777 == 0o600, "the user's config is the user's alone")
        let kept = try String(contentsOf: file, encoding: .utf8)
        #expect(kept.contains(registry.url + "\"") && kept.contains(registry.token), "\(kept)")
        // publish takes the token kept for its registry (a trailing slash is the same registry).
        let tarball = registry.root.appending(path: "p.tar.gz")
        try Data(try Fixtures.xdpRootPackage(version: "1.0.0")).write(to: tarball)
        let published = try Executable.run("l3af", ["publish", tarball.path, "--registry", registry.url], environment: environment)
        #expect(published.status == 0, "\(published.stderr)")
        // Reads don't carry it: a static server (nginx, a CDN, here the test's own) serving the tree never sees it.
        let tree = try FaultServer(root: registry.tree.path)
        defer { tree.stop() }
        _ = try Executable.run("l3af", ["login", "--registry", tree.url], stdin: registry.token + "\n", environment: environment)
        #expect(try Executable.run("l3af", ["info", "xdp-root", "--registry", tree.url], environment: environment).status == 0)
        #expect(!tree.requests().isEmpty && tree.requests().allSatisfy { $0.headers["authorization"] == nil }, "\(tree.requests().map(\.headers))")
        _ = try Executable.run("l3af", ["logout", "--registry", tree.url], environment: environment)
        let logout = try Executable.run("l3af", ["logout", "--registry", registry.url], environment: environment)
        #expect(logout.status == 0 && logout.stdout.contains("forgot"), "\(logout.stderr)")
        #expect(try String(contentsOf: file, encoding: .utf8).contains(registry.token) == false)
        let refused = try Executable.run("l3af", ["publish", tarball.path, "--registry", registry.url], environment: environment)
        #expect(refused.status != 0 && refused.stderr.contains("token"), "\(refused.stderr)")
    }

    /// The user's file names the registry for every command, search and info included; a named --config is used alone.
    @Test func theUserConfigIsReadByEveryCommand() throws {
        let registry = try RegistryHarness()
        #expect(try registry.publish(try Fixtures.xdpRootPackage(version: "1.0.0")).status == 0)
        let (environment, file) = try Self.user()
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data("{\"registry\": \"\(registry.url)\"}".utf8).write(to: file)
        let search = try Executable.run("l3af", ["search", "xdp"], environment: environment)
        #expect(search.status == 0 && search.stdout.contains("xdp-root"), "\(search.stderr)")
        let info = try Executable.run("l3af", ["info", "xdp-root"], environment: environment)
        #expect(info.status == 0, "\(info.stderr)")
        let none = try Executable.run("l3af", ["search", "xdp"], environment: environment.merging(["XDG_CONFIG_HOME": "/nonexistent"]) { $1 })
        #expect(none.status != 0 && none.stderr.contains("no registry URL"), "\(none.stderr)")
    }

    /// A user file owned by someone else (root with another user's HOME, as `sudo -E` leaves it) is not read.
    @Test func anotherUsersFileIsNotRead() throws {
        let registry = try RegistryHarness()
        let (environment, file) = try Self.user()
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data("{\"registry\": \"\(registry.url)\"}".utf8).write(to: file)
        #expect(try Executable.run("l3af", ["search", "xdp"], environment: environment).status == 0)
        chown(file.path, 65534, 65534)
        let ignored = try Executable.run("l3af", ["search", "xdp"], environment: environment)
        #expect(ignored.status != 0 && ignored.stderr.contains("no registry URL"), "\(ignored.stderr)")
    }

    /// Tokens in a file others can read are refused, and a token that isn't one is not kept.
    @Test func tokensMustStayPrivate() throws {
        let (environment, file) = try Self.user()
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data("{\"registry\": \"http://127.0.0.1:9\", \"tokens\": {\"http://127.0.0.1:9\": \"l3af_x\"}}".utf8).write(to: file)
        chmod(file.path, 0o644)
        let refused = try Executable.run("l3af", ["search", "x"], environment: environment)
        #expect(refused.status != 0 && refused.stderr.contains("others can read it") && refused.stderr.contains("chmod 600"), "\(refused.stderr)")
        chmod(file.path, 0o600)
        let bad = try Executable.run("l3af", ["login", "--registry", "http://127.0.0.1:9"], stdin: "not a token\n", environment: environment)
        #expect(bad.status != 0 && bad.stderr.contains("not an l3af publish token"), "\(bad.stderr)")
        #expect(try String(contentsOf: file, encoding: .utf8).contains("not a token") == false)
    }
}
