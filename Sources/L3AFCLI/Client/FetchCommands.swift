import ArgumentParser
import L3AFCLISupport
import Foundation
import Glibc
import L3AFClient
import L3AFModel

/// Configuration every command that installs shares: flags override the environment, which overrides the file.
struct ClientOptions: ParsableArguments {
    @Option(help: "Config file (default: $L3AF_CONFIG or /etc/l3af/config.json).") var config: String?
    @Option(help: "The registry's URL (default: $L3AF_REGISTRY).") var registry: String?
    @Option(help: "A trusted registry public key in base64 (repeatable; default: $L3AF_TRUSTED_KEYS).") var trustedKey: [String] = []
    @Option(help: "l3afd's repository folder (default: /var/l3afd/repo).") var repo: String?
    @Option(help: "Cache folder (default: /var/cache/l3af).") var cache: String?
    @Option(help: "State folder: state.db (revisions, pins), accepted index versions, the lock (default: /var/l3afd).") var state: String?
    @Option(help: "The platform segment of artifact URLs (default: this host's codename).") var platform: String?

    func configuration() throws -> ClientConfiguration {
        var config = try ClientConfiguration.load(file: self.config, environment: ProcessInfo.processInfo.environment)
        if let registry { config.registry = registry }
        if !trustedKey.isEmpty { config.trustedKeys = trustedKey }
        if let repo { config.repo = repo }
        if let cache { config.cache = cache }
        if let state { config.state = state }
        return config
    }

    func installer() throws -> PackageInstaller {
        let config = try configuration()
        return try PackageInstaller(configuration: config, platform: platform ?? PackageInstaller.hostPlatform())
    }
}

struct FetchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fetch",
        abstract: "Resolve, download, verify and unpack packages into the repo folder; prints where each went.",
        discussion: """
            Specs: name, name@1.2.3, name@=1.2.3, name@^1.2, name@latest. The index signature, its version and \
            expiry, each document's digest and each artifact's sha256 and size are checked before anything is \
            unpacked. With --l3afd-repo, fetches a plain l3afd artifact (no signature) from that repository.
            """)

    @Argument(help: "Package specs.") var specs: [String]
    @OptionGroup var client: ClientOptions
    @Option(help: "An l3afd-style repository URL to fetch unsigned artifacts from.") var l3afdRepo: String?
    @Option(help: "The artifact file name, with --l3afd-repo (default: l3af_<name>.tar.gz).") var artifact: String?
    @Flag(help: "Allow unsigned artifacts from --l3afd-repo.") var allowUnsigned = false
    @Flag(help: "No progress bar.") var quiet = false
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let installer = try client.installer()
        let parsed = try specs.map { try PackageSpec(parsing: $0) }
        var results: [InstalledPackage] = []
        if let repository = l3afdRepo {
            for spec in parsed {
                let version: String = switch spec.requirement {
                case .tag(let tag): tag.rawValue
                default: spec.requirement.exactVersion?.description ?? spec.requirement.description.replacingOccurrences(of: "^", with: "")
                }
                results.append(try await installer.fetchUnsigned(
                    name: spec.name, version: version, artifact: artifact ?? "l3af_\(spec.name).tar.gz", from: repository, allowed: allowUnsigned))
            }
        } else {
            let bar = ProgressBar.onTerminal(quiet: quiet, json: output.json)
            var report: (@Sendable (UInt64, UInt64) -> Void)?
            if let bar { report = { received, total in bar.update(received, total) } }
            results = try await installer.fetch(parsed, progress: report)
            bar?.finish()
        }
        let lines = results.map { item -> String in
            var line = "\(item.name)@\(item.version) → \(item.path) (\(item.source.rawValue), sha256 \(item.sha256.hex.prefix(16))…)"
            if item.unsigned { line += "\nwarning: \(item.name)@\(item.version) is UNSIGNED: it came from an l3afd repository and was not verified" }
            if item.yanked { line += "\nwarning: \(item.name)@\(item.version) is yanked" }
            if let message = item.deprecated { line += "\nwarning: \(item.name)@\(item.version) is deprecated: \(message)" }
            return line
        }
        try output.emit(results, text: lines.joined(separator: "\n"))
    }
}

struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List what is installed in the repo folder.")

    @Flag(help: "List installed package versions (the default).") var installed = false
    @OptionGroup var client: ClientOptions
    @OptionGroup var output: OutputOptions

    struct Row: Codable {
        let name: String
        let version: String
        let sha256: String?
        let source: String?
        let unsigned: Bool
        let path: String
    }

    func run() async throws {
        let repo = try client.configuration().repo
        let fm = FileManager.default
        var rows: [Row] = []
        for name in ((try? fm.contentsOfDirectory(atPath: repo)) ?? []).sorted() where !name.hasPrefix(".") {
            for version in ((try? fm.contentsOfDirectory(atPath: "\(repo)/\(name)")) ?? []).sorted() where !version.hasPrefix(".") {
                let folder = "\(repo)/\(name)/\(version)"
                let marker = InstallMarker.read(in: folder)
                rows.append(Row(name: name, version: version, sha256: marker?.sha256.hex, source: marker?.source, unsigned: marker?.unsigned ?? true, path: folder))
            }
        }
        let text = rows.isEmpty ? "nothing is installed in \(repo)" : rows.map { row in
            "\(row.name)@\(row.version)  " + (row.sha256.map { "sha256 \($0.prefix(16))…  from \(row.source ?? "?")" } ?? "not installed by l3af (no marker)")
                + (row.unsigned && row.sha256 != nil ? "  [unsigned]" : "")
        }.joined(separator: "\n")
        try output.emit(rows, text: text)
    }
}

struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "Re-check an installed version: its files, and its artifact against the signed registry.")

    @Argument(help: "name@version") var spec: String
    @OptionGroup var client: ClientOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let parsed = try exactSpec(spec)
        let marker = try await client.installer().verify(name: parsed.name, version: parsed.version)
        try output.emit(marker, text: "ok: \(parsed.name)@\(parsed.version): \(marker.files.count) file(s) match what was installed"
            + (marker.unsigned ? " (unsigned source \(marker.source))" : "; the artifact matches the signed registry"))
    }
}

/// A one-line progress bar on standard error.
final class ProgressBar: Sendable {
    /// A bar when standard error is a terminal and neither --quiet nor --json was given; else none.
    static func onTerminal(quiet: Bool, json: Bool) -> ProgressBar? {
        !quiet && !json && isatty(STDERR_FILENO) == 1 ? ProgressBar() : nil
    }

    func update(_ received: UInt64, _ total: UInt64) {
        guard total > 0 else { return }
        let fraction = min(1, Double(received) / Double(total))
        let filled = Int(fraction * 30)
        let (unit, scale) = total >= 1_000_000 ? ("MB", 1e6) : ("KB", 1e3)
        let text = String(format: "\r[%@%@] %3d%% %.1f/%.1f %@", String(repeating: "#", count: filled),
                          String(repeating: ".", count: 30 - filled), Int(fraction * 100), Double(received) / scale, Double(total) / scale, unit)
        FileHandle.standardError.write(Data(text.utf8))
    }

    func finish() { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
}
