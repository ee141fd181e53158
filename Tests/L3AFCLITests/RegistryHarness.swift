import Foundation
import L3AFClient
import L3AFModel
import L3AFTestSupport

/// A real `l3af-registry serve` on a loopback port, with its key and a token made by the real CLI.
final class RegistryHarness: Sendable {
    let root: URL
    let keyFile: URL
    let publicKey: String
    let token: String
    let server: RunningProcess
    let url: String
    let extraArguments: [String]

    init(packages: String = "*", owner: String = "netops", serveArguments: [String] = []) throws {
        root = try Fixtures.temporaryFolder("registry")
        keyFile = root.appending(path: "registry.key")
        let keygen = try Executable.run("l3af-registry", ["keygen", "--out", keyFile.path])
        guard keygen.status == 0, let key = keygen.stdout.split(separator: "\n").last else { throw FixtureError("keygen: \(keygen.stderr)") }
        publicKey = String(key)
        let added = try Executable.run("l3af-registry", ["token", "add", "--root", root.appending(path: "data").path, "--owner", owner, "--packages", packages])
        guard added.status == 0, let last = added.stdout.split(separator: "\n").last else { throw FixtureError("token add: \(added.stderr)") }
        token = String(last)
        extraArguments = serveArguments
        (server, url) = try Self.start(root: root, keyFile: keyFile, arguments: serveArguments)
    }

    static func start(root: URL, keyFile: URL, arguments: [String]) throws -> (RunningProcess, String) {
        let server = try RunningProcess("l3af-registry", [
            "serve", "--root", root.appending(path: "data").path, "--key", keyFile.path, "--listen", "127.0.0.1:0",
            "--log-level", "warning",
        ] + arguments)
        let line = try server.waitForLine(containing: "l3af-registry listening on ")
        guard let range = line.range(of: "http://"), let end = line[range.lowerBound...].firstIndex(of: " ") else {
            throw FixtureError("no URL in '\(line)'")
        }
        return (server, String(line[range.lowerBound..<end]))
    }

    /// The tree folder nginx or file:// can serve.
    var tree: URL { root.appending(path: "data/tree") }

    /// Another token, for another owner.
    func addToken(owner: String, packages: String) throws -> String {
        let added = try Executable.run("l3af-registry", ["token", "add", "--root", root.appending(path: "data").path, "--owner", owner, "--packages", packages])
        return String(added.stdout.split(separator: "\n").last ?? "")
    }

    /// Runs `l3af` against this registry with this token.
    func l3af(_ arguments: [String], token: String? = nil) throws -> Executable.Result {
        try Executable.run("l3af", arguments + ["--registry", url, "--token", token ?? self.token])
    }

    /// Runs `l3af` against this registry without a token.
    func l3afRead(_ arguments: [String]) throws -> Executable.Result {
        try Executable.run("l3af", arguments + ["--registry", url])
    }

    /// Writes a tarball to a file and publishes it with the CLI.
    func publish(_ tarball: [UInt8], as file: String = "pkg.tar.gz", extra: [String] = [], token: String? = nil) throws -> Executable.Result {
        let path = root.appending(path: file)
        try Data(tarball).write(to: path)
        return try l3af(["publish", path.path] + extra, token: token)
    }

    /// A plain HTTP request through libcurl.
    func http(_ path: String, headers: [(String, String)] = []) async throws -> HTTPResponse {
        try await http("GET", path, headers: headers)
    }

    /// A plain HTTP request through libcurl, with a method and body.
    func http(_ method: String, _ path: String, headers: [(String, String)] = [], body: [UInt8]? = nil) async throws -> HTTPResponse {
        try await HTTPClient().send(HTTPRequest(method: method, url: url + path, headers: headers, body: body))
    }

    /// The signed index, verified with this registry's key.
    func verifiedIndex() async throws -> RegistryIndex {
        let bytes = try await http("/index.json").body
        return try IndexVerifier(trustedKeys: [TrustedKey(base64: publicKey)]).verify(bytes, now: Timestamp(Date()))
    }

    /// What the signed index (through its shard) says of `name`'s document.
    func listed(_ name: String, in index: RegistryIndex) async throws -> RegistryIndex.Entry? {
        let id = RegistryIndex.shard(of: name)
        guard let entry = index.shards[id] else { return nil }
        return try IndexShard.decode(try await http("/" + RegistryIndex.shardPath(id, entry)).body, id: id).packages[name]
    }

    /// Restarts the server (after `kill -9`, say), keeping the tree.
    func restarted() throws -> (RunningProcess, String) {
        try Self.start(root: root, keyFile: keyFile, arguments: extraArguments)
    }

    deinit {
        server.stop()
        try? FileManager.default.removeItem(at: root)
    }
}
