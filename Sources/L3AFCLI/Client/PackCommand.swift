import ArgumentParser
import Foundation
import L3AFCLISupport
import L3AFModel
import L3AFPackage
import L3AFSystem

struct PackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pack",
        abstract: "Build a package tarball from a folder: compile its C, check the objects, write l3af_<name>-<version>.tar.gz.",
        discussion: """
            The folder holds l3af.json and, for each object file it names (x.bpf.o), the C source x.bpf.c (or a built \
            x.bpf.o). Sources are compiled with clang -target bpf -O2 -g; every object is opened with libbpf and checked \
            against the manifest. The tarball has l3afd's layout (a top folder l3af_<name>) and is reproducible: packing \
            the same sources twice gives the same bytes, so its sha256 names the build.
            """)

    @Argument(help: "The package folder (default: the current one).")
    var folder: String = "."

    @Option(name: [.short, .long], help: "Where to write the tarball (default: the current folder).")
    var output: String = "."

    @Option(help: "The clang to compile with (default: $L3AF_CLANG, else clang on PATH).")
    var clang: String?

    @Option(name: .customLong("cflag"), help: "An extra compiler flag (repeatable), e.g. --cflag=-DDEBUG.")
    var cflags: [String] = []

    @OptionGroup var format: OutputOptions

    struct Reply: Encodable {
        let name: String
        let version: String
        let path: String
        let sha256: String
        let size: Int
        let objects: [String]
    }

    func run() async throws {
        let built = try PackageBuilder(clang: clang, extraFlags: cflags).build(folder: folder)
        try AtomicFile.makeFolders(output)
        let path = "\(output)/\(built.fileName)"
        try AtomicFile.write(built.bytes, to: path)
        let reply = Reply(name: built.manifest.name.description, version: built.manifest.version.description, path: path,
                          sha256: built.sha256.description, size: built.bytes.count, objects: built.objects.map(\.file))
        let compiled = built.objects.map { "\($0.file) (\($0.compiled ? "compiled" : "as built"))" }.joined(separator: ", ")
        try format.emit(reply, text: "packed \(reply.name)@\(reply.version): \(path) (\(reply.size) bytes, sha256 \(reply.sha256)); objects: \(compiled)")
    }
}
