import Foundation
import L3AFArchive
import L3AFModel
import L3AFPackage
import L3AFTestSupport
import Testing

/// `l3af pack`: compiles a package folder, checks the objects against the manifest, writes a reproducible tarball.
@Suite struct PackTests {
    /// A copy of `registry/<package>` in a new temporary folder.
    func copy(_ package: String) throws -> URL {
        let folder = try Fixtures.temporaryFolder("pack").appending(path: package)
        try FileManager.default.copyItem(at: repositoryRoot.appending(path: "registry/\(package)"), to: folder)
        return folder
    }

    @Test(arguments: ["xdp-root", "tc-root", "ratelimiting", "ip-denylist", "packet-counter"])
    func packsEachFirstPartyPackageReproducibly(_ package: String) throws {
        let output = try Fixtures.temporaryFolder("pack-out")
        defer { try? FileManager.default.removeItem(at: output) }
        let first = try Run("l3af", ["pack", repositoryRoot.appending(path: "registry/\(package)").path, "-o", output.appending(path: "a").path, "--json"])
        #expect(first.status == 0, "\(first.stderr)")
        // The same sources in another folder, packed from inside it: the same bytes.
        let elsewhere = try copy(package)
        defer { try? FileManager.default.removeItem(at: elsewhere.deletingLastPathComponent()) }
        let second = try Executable.run(Executable.path("l3af"), ["pack", "-o", output.appending(path: "b").path], workingDirectory: elsewhere.path)
        #expect(second.status == 0, "\(second.stderr)")
        let reply = try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as! [String: Any]
        let fileName = "l3af_\(package)-1.0.0.tar.gz"
        #expect((reply["path"] as? String)?.hasSuffix(fileName) == true)
        let a = try Data(contentsOf: output.appending(path: "a/\(fileName)"))
        let b = try Data(contentsOf: output.appending(path: "b/\(fileName)"))
        #expect(a == b)
        #expect(reply["sha256"] as? String == SHA256Digest(of: a).description)
        // l3afd's layout, accepted by the registry's own inspection.
        let inspected = try PackageInspector.inspect(Array(a), name: fileName)
        #expect(inspected.baseFolder == "l3af_\(package)")
        #expect(inspected.manifest.name.description == package)
        let paths = try ArchiveReader.entries(of: Array(a), name: fileName).map(\.path)
        #expect(paths.allSatisfy { $0.hasPrefix("l3af_\(package)") })
        #expect(!paths.contains { $0.hasSuffix(".c") })
    }

    @Test func refusesAnEntryFunctionTheObjectLacks() throws {
        let folder = try copy("ratelimiting")
        defer { try? FileManager.default.removeItem(at: folder.deletingLastPathComponent()) }
        let manifest = folder.appending(path: "l3af.json")
        try String(contentsOf: manifest, encoding: .utf8)
            .replacingOccurrences(of: "\"entry_function\": \"ratelimiting\"", with: "\"entry_function\": \"rate_limit\"")
            .replacingOccurrences(of: "\"rl_window_map\"", with: "\"rl_windows\"")
            .write(to: manifest, atomically: true, encoding: .utf8)
        let run = try Run("l3af", ["pack", folder.path, "-o", folder.path])
        #expect(run.status == 1)
        #expect(run.stderr.contains("has no program 'rate_limit' (it has: ratelimiting)"), "\(run.stderr)")
        #expect(run.stderr.contains("has no map 'rl_windows' (named as state map)"), "\(run.stderr)")
        #expect(!FileManager.default.fileExists(atPath: folder.appending(path: "l3af_ratelimiting-1.0.0.tar.gz").path))
    }

    @Test func refusesAProgramTypeThatDoesNotFitTheHook() throws {
        let folder = try copy("xdp-root")
        defer { try? FileManager.default.removeItem(at: folder.deletingLastPathComponent()) }
        let manifest = folder.appending(path: "l3af.json")
        try String(contentsOf: manifest, encoding: .utf8).replacingOccurrences(of: "\"xdp_ingress\"", with: "\"tc_egress\"")
            .write(to: manifest, atomically: true, encoding: .utf8)
        let run = try Run("l3af", ["pack", folder.path, "-o", folder.path])
        #expect(run.status == 1)
        #expect(run.stderr.contains("is a xdp program, which can't run on tc_egress"), "\(run.stderr)")
    }

    @Test func reportsTheCompilerErrorAndTheCommandLine() throws {
        let folder = try copy("xdp-root")
        defer { try? FileManager.default.removeItem(at: folder.deletingLastPathComponent()) }
        let handle = try FileHandle(forWritingTo: folder.appending(path: "xdp_root.bpf.c"))
        handle.seekToEndOfFile()
        handle.write(Data("int broken(\n".utf8))
        try handle.close()
        let run = try Run("l3af", ["pack", folder.path, "-o", folder.path])
        #expect(run.status == 1)
        #expect(run.stderr.contains("clang could not compile"), "\(run.stderr)")
        #expect(run.stderr.contains("xdp_root.bpf.c:"), "\(run.stderr)")
        #expect(run.stderr.contains("-target bpf -O2 -g"), "\(run.stderr)")
    }

    @Test func namesAMissingSourceAndAMissingManifest() throws {
        let folder = try copy("xdp-root")
        defer { try? FileManager.default.removeItem(at: folder.deletingLastPathComponent()) }
        try FileManager.default.removeItem(at: folder.appending(path: "xdp_root.bpf.c"))
        var run = try Run("l3af", ["pack", folder.path])
        #expect(run.status == 1)
        #expect(run.stderr.contains("has neither xdp_root.bpf.c nor xdp_root.bpf.o"), "\(run.stderr)")
        run = try Run("l3af", ["pack", folder.deletingLastPathComponent().path])
        #expect(run.status == 1)
        #expect(run.stderr.contains("has no readable l3af.json"), "\(run.stderr)")
    }

    @Test func takesABuiltObjectWhenThereIsNoSource() throws {
        let folder = try copy("xdp-root")
        defer { try? FileManager.default.removeItem(at: folder.deletingLastPathComponent()) }
        try FileManager.default.removeItem(at: folder.appending(path: "xdp_root.bpf.c"))
        try Data(Fixtures.compileBPF("registry/xdp-root/xdp_root.bpf.c")).write(to: folder.appending(path: "xdp_root.bpf.o"))
        let run = try Run("l3af", ["pack", folder.path, "-o", folder.path])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("xdp_root.bpf.o (as built)"))
    }
}
