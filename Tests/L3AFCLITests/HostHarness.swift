import Foundation
import L3AFTestSupport

/// Everything a host test needs, all real: a registry on loopback with the first-party packages packed by
/// `l3af pack` and published, a network of its own (sender and receiver namespaces and a bridge), and a
/// client's folders and bpffs pin root. `l3af(…)` runs the real CLI with these settings.
final class HostHarness {
    let registry: RegistryHarness
    let network: TestNetwork
    let folder: URL
    /// The interface programs go on: the bridge's port toward the sender.
    var port: String { network.senderPort }

    /// `ratelimiting` versions to publish now; `bad` ones are built with `-DL3AF_BAD_RELEASE` (drops every limited SYN).
    init(ratelimiting: [String] = ["1.0.0"], bad: Set<String> = []) throws {
        registry = try RegistryHarness()
        network = try TestNetwork()
        folder = try Fixtures.temporaryFolder("host")
        for package in ["xdp-root", "tc-root", "packet-counter", "ip-denylist"] {
            try publish(package, version: "1.0.0")
        }
        for version in ratelimiting { try publish("ratelimiting", version: version, bad: bad.contains(version)) }
    }

    /// Packs `registry/<package>` at `version` with the real `l3af pack` and publishes it.
    func publish(_ package: String, version: String, bad: Bool = false) throws {
        let source = folder.appending(path: "src/\(package)-\(version)")
        try FileManager.default.createDirectory(at: source.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Fixtures.repositoryRoot.appending(path: "registry/\(package)"), to: source)
        let manifest = source.appending(path: "l3af.json")
        try String(contentsOf: manifest, encoding: .utf8).replacingOccurrences(of: "\"version\": \"1.0.0\"", with: "\"version\": \"\(version)\"")
            .write(to: manifest, atomically: true, encoding: .utf8)
        let packed = try Executable.run("l3af", ["pack", source.path, "-o", folder.appending(path: "dist").path] + (bad ? ["--cflag=-DL3AF_BAD_RELEASE"] : []))
        guard packed.status == 0 else { throw FixtureError("pack \(package)@\(version): \(packed.stderr)") }
        let published = try registry.l3af(["publish", folder.appending(path: "dist/l3af_\(package)-\(version).tar.gz").path])
        guard published.status == 0 else { throw FixtureError("publish \(package)@\(version): \(published.stderr)") }
    }

    /// Publishes `registry/<package>` under another name (its manifest renamed), e.g. a second counter for a chain.
    func publishRenamed(_ package: String, as name: String, version: String) throws {
        let source = folder.appending(path: "src/\(name)-\(version)")
        try FileManager.default.createDirectory(at: source.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Fixtures.repositoryRoot.appending(path: "registry/\(package)"), to: source)
        let manifest = source.appending(path: "l3af.json")
        try String(contentsOf: manifest, encoding: .utf8)
            .replacingOccurrences(of: "\"name\": \"\(package)\"", with: "\"name\": \"\(name)\"")
            .replacingOccurrences(of: "\"version\": \"1.0.0\"", with: "\"version\": \"\(version)\"")
            .write(to: manifest, atomically: true, encoding: .utf8)
        let packed = try Executable.run("l3af", ["pack", source.path, "-o", folder.appending(path: "dist").path])
        guard packed.status == 0 else { throw FixtureError("pack \(name): \(packed.stderr)") }
        let published = try registry.l3af(["publish", folder.appending(path: "dist/l3af_\(name)-\(version).tar.gz").path])
        guard published.status == 0 else { throw FixtureError("publish \(name): \(published.stderr)") }
    }

    var state: String { folder.appending(path: "state").path }
    var pinRoot: String { network.pinRoot }

    /// The client settings every host command takes.
    var settings: [String] {
        ["--registry", registry.url, "--trusted-key", registry.publicKey, "--repo", folder.appending(path: "repo").path,
         "--cache", folder.appending(path: "cache").path, "--state", state, "--pin-root", pinRoot]
    }

    /// Runs `l3af` with this host's settings.
    func l3af(_ arguments: [String]) throws -> Executable.Result {
        try Executable.run("l3af", arguments + settings)
    }

    /// `l3af status --json`, decoded.
    func status() throws -> [String: Any] {
        let run = try l3af(["status", "--json"])
        guard run.status == 0, let object = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any] else {
            throw FixtureError("status: \(run.stderr)")
        }
        return object
    }

    /// The enabled programs of the chain on `hook` of the port, from `status --json`: (package@version, counters, id).
    func chain(_ hook: String = "xdp_ingress") throws -> [(spec: String, counters: [String: UInt64], programID: Int?)] {
        let chains = (try status()["chains"] as? [[String: Any]]) ?? []
        guard let chain = chains.first(where: { $0["interface"] as? String == port && $0["hook"] as? String == hook }) else { return [] }
        return ((chain["programs"] as? [[String: Any]]) ?? []).filter { $0["enabled"] as? Bool != false }.map { program in
            let counters = ((program["counters"] as? [String: Any]) ?? [:]).mapValues { ($0 as? NSNumber)?.uint64Value ?? 0 }
            return ("\(program["package"]!)@\(program["version"]!)", counters, program["program_id"] as? Int)
        }
    }

    /// Revision numbers and kinds, newest first.
    func history() throws -> [(number: Int, kind: String, cause: String)] {
        let run = try l3af(["history", "--json"])
        guard run.status == 0, let rows = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [[String: Any]] else {
            throw FixtureError("history: \(run.stderr)")
        }
        return rows.map { ($0["number"] as! Int, $0["kind"] as! String, $0["cause"] as! String) }
    }

    func remove() {
        try? network.remove()
        _ = registry.server.stop()
        try? FileManager.default.removeItem(at: folder)
        try? FileManager.default.removeItem(at: registry.root)
    }
}
