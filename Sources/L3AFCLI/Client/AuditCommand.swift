import ArgumentParser
import L3AFCLISupport
import Foundation
import L3AFClient
import L3AFModel

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Verify a whole registry or mirror: index signature, every document, every artifact.",
        discussion: "Works against l3af-registry, nginx or a CDN serving the tree, or file:///path/to/tree.")

    @Option(help: "The registry's URL (default: $L3AF_REGISTRY).")
    var registry: String?

    @Option(help: "A trusted public key in base64, as l3af-registry keygen prints it (repeatable).")
    var trustedKey: [String] = []

    @OptionGroup var output: OutputOptions

    func run() async throws {
        let url = try registryURL(registry, configured: try ClientConfiguration.load(file: nil, environment: ProcessInfo.processInfo.environment).registry)
        let keys = try trustedKey.map { try TrustedKey(base64: $0) }
        let report = try await RegistryAudit(baseURL: url, trustedKeys: keys).run()
        try output.emit(report, text: "ok: index version \(report.indexVersion) verified; \(report.shards) shard(s), \(report.packages) package document(s) and \(report.artifacts) artifact(s) (\(report.bytes) bytes) match it"
                        + (report.rotationsFollowed > 0 ? "; \(report.rotationsFollowed) key rotation(s) followed to the key that signs it" : ""))
    }
}

