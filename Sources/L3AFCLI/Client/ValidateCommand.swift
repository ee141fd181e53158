import ArgumentParser
import Foundation
import L3AFCLISupport
import L3AFModel

/// `l3af validate KIND FILE`: checks a document the way l3af reads it, naming the field at fault.
struct ValidateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check a manifest, registry document or l3afd payload, naming any field at fault."
    )

    enum Kind: String, ExpressibleByArgument, CaseIterable {
        case manifest
        case index
        case package
        case payload
        case names
    }

    @Argument(help: "What the file is: \(Kind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var kind: Kind

    @Argument(help: "The JSON file, or - for standard input.")
    var file: String

    @Flag(help: "Print the document as l3af reads it, in canonical form.")
    var print = false

    @OptionGroup var output: OutputOptions

    struct Reply: Encodable { let kind: String; let file: String; let valid: Bool; let summary: String }

    func run() async throws {
        let data = try readInput(file)
        let summary: String
        let normalized: Data
        switch kind {
        case .manifest:
            let manifest = try DocumentDecoder.decode(Manifest.self, from: data, document: "manifest \(file)")
            summary = "manifest \(manifest.name)@\(manifest.version): \(manifest.programs.count) program(s) on "
                + manifest.programs.map(\.hook.rawValue).joined(separator: ", ")
            normalized = try DocumentDecoder.encode(manifest)
        case .index:
            let index = try DocumentDecoder.decode(SignedIndexEnvelope.self, from: data, document: "index \(file)").signed
            summary = "index version \(index.version), \(index.shards.count) shard(s), expires \(index.expires)"
            normalized = try DocumentDecoder.encode(index)
        case .package:
            let document = try DocumentDecoder.decode(PackageDocument.self, from: data, document: "package document \(file)")
            summary = "package \(document.name): \(document.versions.count) version(s), tags "
                + document.distTags.keys.sorted().map { "\($0)=\(document.distTags[$0]!)" }.joined(separator: " ")
            normalized = try DocumentDecoder.encode(document)
        case .payload:
            let payload = try DocumentDecoder.decode([L3afBPFPrograms].self, from: data, document: "payload \(file)")
            let problems = payload.enumerated().flatMap { $1.problems(at: "[\($0)].") }
            if !problems.isEmpty {
                throw CLIError(
                    "invalid-payload", "payload \(file): " + problems.map(\.description).joined(separator: "; "))
            }
            let count = payload.map { p in Hook.allCases.map { p.bpfPrograms[$0].count }.reduce(0, +) }.reduce(0, +)
            summary = "payload for \(payload.count) interface(s), \(count) program(s)"
            normalized = try DocumentDecoder.encode(payload)
        case .names:
            let names = try DocumentDecoder.decode(L3afBPFProgramNames.self, from: data, document: "payload \(file)")
            summary = "delete payload for \(names.hostName)/\(names.iface)"
            normalized = try DocumentDecoder.encode(names)
        }
        if print {
            FileHandle.standardOutput.write(normalized + Data("\n".utf8))
        } else {
            try output.emit(Reply(kind: kind.rawValue, file: file, valid: true, summary: summary), text: "ok: \(summary)")
        }
    }
}

