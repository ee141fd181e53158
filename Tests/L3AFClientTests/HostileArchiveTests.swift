import Foundation
import L3AFArchive
import L3AFClient
import L3AFModel
import L3AFTestSupport
import Testing

/// Archives built to cost the reader: other compression filters, repeated headers, huge paths, zip where only tar
/// is accepted. Each refused with what was wrong, in bounded time.
@Suite struct HostileArchiveTests {
    /// An archive written by Python's tarfile/zipfile from `script`, which writes it to the path in `sys.argv[1]`.
    static func craft(_ script: String) throws -> [UInt8] {
        let path = FileManager.default.temporaryDirectory.appending(path: "l3af-hostile-\(UUID().uuidString)").path
        defer { unlink(path) }
        let result = try Executable.run("/usr/bin/env", ["python3", "-c", script, path])
        guard result.status == 0, let bytes = FileManager.default.contents(atPath: path) else { throw FixtureError("python: \(result.stderr)") }
        return Array(bytes)
    }

    @Test(arguments: ["bz2", "xz"])
    func onlyGzipIsRead(_ filter: String) throws {
        let bytes = try Self.craft("""
            import sys, tarfile, io
            with tarfile.open(sys.argv[1], "w:\(filter)") as t:
                data = b'{}'
                info = tarfile.TarInfo("l3af.json"); info.size = len(data); t.addfile(info, io.BytesIO(data))
            """)
        #expect(throws: ArchiveError.self) { try ArchiveReader.entries(of: bytes, name: "bomb.tar.\(filter)") }
    }

    @Test func everyHeaderCountsTowardTheEntryCap() throws {
        // 5,000 headers for the same folder: one distinct path, but 5,000 headers to read.
        let bytes = try Self.craft("""
            import sys, tarfile
            with tarfile.open(sys.argv[1], "w:gz") as t:
                for i in range(5000):
                    info = tarfile.TarInfo("d"); info.type = tarfile.DIRTYPE; t.addfile(info)
            """)
        let start = Date()
        do {
            _ = try ArchiveReader.entries(of: bytes, name: "repeated.tar.gz")
            Issue.record("5,000 repeated headers were read")
        } catch {
            #expect(error.description.contains("1000"), "\(error.description)")
        }
        #expect(Date().timeIntervalSince(start) < 2)
    }

    @Test func hugePathsAreRefused() throws {
        let bytes = try Self.craft("""
            import sys, tarfile, io
            with tarfile.open(sys.argv[1], "w:gz", format=tarfile.PAX_FORMAT) as t:
                info = tarfile.TarInfo("a/" * 3000 + "f"); info.size = 1; t.addfile(info, io.BytesIO(b"x"))
            """)
        #expect(throws: ArchiveError.self) { try ArchiveReader.entries(of: bytes, name: "long.tar.gz") }
    }

    @Test func zipOnlyWhereAllowed() throws {
        let bytes = try Self.craft("""
            import sys, zipfile
            with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
                z.writestr("l3af_x/x.o", b"object")
            """)
        #expect(throws: ArchiveError.self) { try ArchiveReader.entries(of: bytes, name: "x.zip") }
        let entries = try ArchiveReader.entries(of: bytes, name: "x.zip", limits: ArchiveLimits(allowZip: true))
        #expect(entries.map(\.path) == ["l3af_x/x.o"])
        #expect(entries.first?.contents == Array("object".utf8))
    }

    @Test func aCachedArtifactChangedAfterVerificationIsNotUnpacked() throws {
        let folder = try Fixtures.temporaryFolder("tamper")
        defer { try? FileManager.default.removeItem(at: folder) }
        let tarball = try ArchiveWriter.tarGz([ArchiveEntry(path: "l3af_x/x.o", kind: .file, permissions: 0o644, contents: Array("good".utf8))])
        let cached = folder.appending(path: "cached.tar.gz").path
        try Data(tarball).write(to: URL(fileURLWithPath: cached))
        let digest = SHA256Digest(of: tarball)
        let evil = try ArchiveWriter.tarGz([ArchiveEntry(path: "l3af_x/x.o", kind: .file, permissions: 0o644, contents: Array("evil".utf8))])
        try Data(evil).write(to: URL(fileURLWithPath: cached))
        let repo = folder.appending(path: "repo").path
        #expect(throws: (any Error).self) {
            try Unpacker().unpack(tarball: cached, repo: repo, name: "x", version: "1.0.0", artifact: "l3af_x.tar.gz", sha256: digest, source: "test", unsigned: false)
        }
        #expect(!FileManager.default.fileExists(atPath: "\(repo)/x/1.0.0"), "nothing unpacked")
        #expect(!FileManager.default.fileExists(atPath: cached), "the altered cache file is removed")
    }
}
