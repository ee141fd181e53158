import ArgumentParser
import L3AFCLISupport
import Foundation
import L3AFClient
import L3AFModel
import L3AFPackage

struct PublishCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Publish a package tarball; checks it locally first (manifest, objects, entry functions, maps).")

    @Argument(help: "The package tarball (l3af pack makes one).")
    var tarball: String

    @Option(help: "Point this dist-tag at the new version instead of moving 'latest'.")
    var tag: String?

    @OptionGroup var registry: RegistryOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let bytes = Array(try readInput(tarball))
        let inspected = try PackageInspector.inspect(bytes, name: (tarball as NSString).lastPathComponent)
        let distTag = try tag.map { try DistTag($0) }
        let reply = try await registry.api().publish(
            name: inspected.manifest.name, version: inspected.manifest.version, tarball: bytes, tag: distTag)
        let spec = "\(reply.name)@\(reply.version)"
        try output.emit(reply, text: reply.created
            ? "published \(spec) (\(reply.size) bytes, sha256 \(reply.sha256))" + (reply.tags.isEmpty ? "" : "; tags: \(reply.tags.joined(separator: ", "))")
            : "\(spec) is already published with these exact bytes; nothing changed")
    }
}

struct YankCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "yank", abstract: "Yank a version: new resolutions skip it; exact pins still install it.")

    @Argument(help: "name@version") var spec: String
    @OptionGroup var registry: RegistryOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let parsed = try exactSpec(spec)
        let reply = try await registry.api().setYanked(true, name: parsed.name, version: parsed.version)
        try output.emit(reply, text: "yanked \(parsed.name)@\(parsed.version)")
    }
}

struct UnyankCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "unyank", abstract: "Undo a yank.")

    @Argument(help: "name@version") var spec: String
    @OptionGroup var registry: RegistryOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let parsed = try exactSpec(spec)
        let reply = try await registry.api().setYanked(false, name: parsed.name, version: parsed.version)
        try output.emit(reply, text: "unyanked \(parsed.name)@\(parsed.version)")
    }
}

struct DistTagCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dist-tag", abstract: "Point dist-tags at versions, remove them, list them.",
        subcommands: [Add.self, Remove.self, List.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add", abstract: "Point TAG at name@version.")
        @Argument(help: "name@version") var spec: String
        @Argument(help: "The tag, e.g. stable.") var tag: String
        @OptionGroup var registry: RegistryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let parsed = try exactSpec(spec)
            let tags = try await registry.api().setTag(try DistTag(tag), name: parsed.name, version: parsed.version)
            try output.emit(tags, text: "\(tag) → \(parsed.name)@\(parsed.version)")
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a tag (not latest).")
        @Argument(help: "The package.") var name: String
        @Argument(help: "The tag.") var tag: String
        @OptionGroup var registry: RegistryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let tags = try await registry.api().removeTag(try DistTag(tag), name: try PackageName(name))
            try output.emit(tags, text: "removed \(tag) from \(name)")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List a package's tags.")
        @Argument(help: "The package.") var name: String
        @OptionGroup var registry: RegistryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let tags = try await registry.api().distTags(try PackageName(name))
            try output.emit(tags, text: tags.keys.sorted().map { "\($0): \(tags[$0]!)" }.joined(separator: "\n"))
        }
    }
}

struct DeprecateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deprecate", abstract: "Deprecate the versions in a range with a message (an empty message undeprecates).")

    @Argument(help: "name@range, e.g. ratelimiting@\"<1.1\".") var spec: String
    @Argument(help: "What users should do instead.") var message: String
    @OptionGroup var registry: RegistryOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let parsed = try PackageSpec(parsing: spec)
        let reply = try await registry.api().deprecate(name: parsed.name, range: parsed.requirement, message: message)
        let versions = reply["versions"] ?? []
        try output.emit(reply, text: (message.isEmpty ? "undeprecated " : "deprecated ") + versions.map { "\(parsed.name)@\($0)" }.joined(separator: ", "))
    }
}

struct OwnerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "owner", abstract: "Manage a package's owners.", subcommands: [Add.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add", abstract: "Add an owner (you must be one).")
        @Argument(help: "The package.") var name: String
        @Argument(help: "The new owner.") var owner: String
        @OptionGroup var registry: RegistryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let reply = try await registry.api().addOwner(owner, name: try PackageName(name))
            try output.emit(reply, text: "owners of \(name): \((reply["owners"] ?? []).joined(separator: ", "))")
        }
    }
}

struct SearchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "search", abstract: "Find packages by name or description.")

    @Argument(help: "Words to look for; empty lists every package.") var query: String = ""
    @OptionGroup var registry: RegistryOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let hits = try await registry.api().search(query)
        let width = max(4, hits.map(\.name.count).max() ?? 0)
        let lines = hits.map { hit in
            hit.name.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + (hit.latest ?? "-").padding(toLength: 12, withPad: " ", startingAt: 0)
                + "  " + hit.description + (hit.deprecated.map { "  [deprecated: \($0)]" } ?? "")
        }
        try output.emit(hits, text: hits.isEmpty ? "no packages match '\(query)'" : lines.joined(separator: "\n"))
    }
}

struct InfoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Show a package: tags, versions, programs.")

    @Argument(help: "The package.") var name: String
    @OptionGroup var registry: RegistryOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let doc = try await registry.api().document(try PackageName(name))
        var lines = ["\(doc.name): \(doc.description)"]
        lines.append("dist-tags: " + doc.distTags.keys.sorted().map { "\($0)=\(doc.distTags[$0]!)" }.joined(separator: " "))
        for entry in doc.versions.values.sorted(by: { $0.version > $1.version }) {
            var line = "  \(entry.version)  \(entry.published)  \(entry.size) bytes  "
            line += entry.manifest.programs.map { "\($0.hook):\($0.entryFunction)" }.joined(separator: " ")
            if entry.yanked { line += "  [yanked]" }
            if let message = entry.deprecated { line += "  [deprecated: \(message)]" }
            lines.append(line)
        }
        if let latest = doc.distTags[.latest].flatMap({ doc.entry(for: $0) }) {
            let parameters = latest.manifest.parameters
            if !parameters.isEmpty {
                lines.append("parameters (\(latest.version)): " + parameters.map { "\($0.name):\($0.type.rawValue)" + ($0.defaultValue.map { "=\($0)" } ?? "") }.joined(separator: " "))
            }
        }
        try output.emit(doc, text: lines.joined(separator: "\n"))
    }
}
