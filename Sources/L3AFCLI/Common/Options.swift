import ArgumentParser
import Foundation
import L3AFClient
import L3AFCLISupport
import L3AFModel

/// Where the registry is and how to authenticate to it.
struct RegistryOptions: ParsableArguments {
    @Option(help: "The registry's URL (default: $L3AF_REGISTRY, else the config files' registry).")
    var registry: String?

    @Option(help: "A publish token (default: $L3AF_TOKEN, else the one `l3af login` kept for the registry). Never printed.")
    var token: String?

    func api() throws -> RegistryAPI {
        let environment = ProcessInfo.processInfo.environment
        let config = try ClientConfiguration.load(file: nil, environment: environment)
        let url = try registryURL(registry, configured: config.registry)
        return RegistryAPI(baseURL: url, token: token ?? environment["L3AF_TOKEN"].flatMap { $0.isEmpty ? nil : $0 } ?? config.token(for: url))
    }
}

/// `name@1.2.3`, naming exactly one version.
struct ExactVersionSpec: ExpressibleByArgument {
    let name: PackageName
    let version: SemanticVersion

    init?(argument: String) {
        guard let parsed = try? Self.parse(argument) else { return nil }
        self = parsed
    }

    init(name: PackageName, version: SemanticVersion) {
        self.name = name
        self.version = version
    }

    static func parse(_ text: String) throws -> ExactVersionSpec {
        guard let at = text.firstIndex(of: "@") else {
            throw CLIError("invalid-spec", "'\(text)' names no version", hint: "write name@1.2.3")
        }
        let name = try PackageName(String(text[..<at]))
        let version = try SemanticVersion(parsing: String(text[text.index(after: at)...]))
        return ExactVersionSpec(name: name, version: version)
    }

    static var defaultCompletionKind: CompletionKind { .default }
}

/// Parses an exact `name@version` argument, with the model's error when it is wrong.
func exactSpec(_ text: String) throws -> ExactVersionSpec { try ExactVersionSpec.parse(text) }

/// The registry URL from a flag, else the configuration's (`$L3AF_REGISTRY`, else the config files').
func registryURL(_ flag: String?, configured: String?) throws -> String {
    guard let url = flag ?? configured, !url.isEmpty else {
        throw CLIError("no-registry", "no registry URL is configured",
                       hint: "pass --registry URL, set L3AF_REGISTRY, or put \"registry\" in /etc/l3af/config.json or ~/.config/l3af/config.json")
    }
    return url
}
