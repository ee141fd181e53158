import L3AFArchive
import L3AFModel
import L3AFPackage
import Testing

/// What the registry refuses before accepting an upload, decided by the inspector alone (no registry, no root).
@Suite struct PackageInspectorTests {
    func tarball(_ files: [(String, String)]) throws -> [UInt8] {
        try ArchiveWriter.tarGz(files.map { ArchiveEntry(path: $0.0, kind: .file, permissions: 0o644, contents: Array($0.1.utf8)) })
    }

    let manifest = #"{"name": "p", "version": "1.0.0", "programs": [{"hook": "xdp_ingress", "object_file": "p.o", "entry_function": "f", "next_map": "n"}]}"#

    @Test func aTarballWithoutAManifestIsRefusedWithTheFix() throws {
        let error = #expect(throws: PackageError.self) { _ = try PackageInspector.inspect(try tarball([("p.o", "x")]), name: "p.tgz") }
        #expect(error?.code == "manifest-missing" && error?.hint?.contains("l3af pack") == true)
    }

    @Test func twoManifestsAreRefused() throws {
        let error = #expect(throws: PackageError.self) {
            _ = try PackageInspector.inspect(try tarball([("a/l3af.json", manifest), ("l3af.json", manifest)]))
        }
        #expect(error?.description.contains("more than one") == true)
    }

    @Test func aMissingOrBrokenObjectIsNamed() throws {
        let missing = #expect(throws: PackageError.self) { _ = try PackageInspector.inspect(try tarball([("l3af.json", manifest)])) }
        #expect(missing?.description.contains("p.o") == true, "\(missing!)")
        let broken = #expect(throws: PackageError.self) { _ = try PackageInspector.inspect(try tarball([("l3af.json", manifest), ("p.o", "not elf")])) }
        #expect(broken?.description.contains("p.o") == true, "\(broken!)")
    }

    @Test func aBadManifestNamesTheField() throws {
        let bad = manifest.replacingOccurrences(of: "\"1.0.0\"", with: "\"one\"")
        let error = #expect(throws: PackageError.self) { _ = try PackageInspector.inspect(try tarball([("l3af.json", bad), ("p.o", "x")])) }
        #expect(error?.description.contains("version") == true, "\(error!)")
    }

    @Test func notATarballIsRefused() {
        #expect(throws: PackageError.self) { _ = try PackageInspector.inspect(Array("plain text".utf8)) }
    }
}
