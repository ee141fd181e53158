import Foundation
import L3AFModel
import L3AFTestSupport

/// A client's folders (repo, cache, state) and a way to run `l3af fetch` and friends against a registry.
struct ClientHarness {
    let folder: URL
    let registry: RegistryHarness

    init(registry: RegistryHarness) throws {
        self.registry = registry
        folder = try Fixtures.temporaryFolder("client")
    }

    var repo: String { folder.appending(path: "repo").path }
    var cache: String { folder.appending(path: "cache").path }

    /// Runs an `l3af` client command with this client's folders and the registry's key.
    func l3af(_ arguments: [String], registryURL: String? = nil, config: [String: Any]? = nil) throws -> Executable.Result {
        var extra = ["--registry", registryURL ?? registry.url, "--trusted-key", registry.publicKey, "--repo", repo,
                     "--cache", cache, "--state", folder.appending(path: "state").path]
        if let config {
            let file = folder.appending(path: "config.json")
            try JSONSerialization.data(withJSONObject: config).write(to: file)
            extra += ["--config", file.path]
        }
        return try Executable.run("l3af", arguments + extra)
    }

    /// Every file under the repo folder, with its size: to show that a refusal changed nothing.
    func repoSnapshot() -> [String: Int] {
        var files: [String: Int] = [:]
        let walker = FileManager.default.enumerator(atPath: repo)
        while let item = walker?.nextObject() as? String {
            let attributes = try? FileManager.default.attributesOfItem(atPath: "\(repo)/\(item)")
            files[item] = (attributes?[.size] as? Int) ?? -1
        }
        return files
    }

    func remove() { try? FileManager.default.removeItem(at: folder) }
}
