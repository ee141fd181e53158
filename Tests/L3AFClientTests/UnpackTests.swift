import Foundation
import L3AFArchive
import L3AFModel
import L3AFTestSupport
import Testing
@testable import L3AFClient

/// Crafted hostile tarballs, made with Python's tarfile (a real, independent tar writer), unpacked into a
/// repo: each is refused with a message naming the entry, and the repo is left as it was.
@Suite struct UnpackTests {
    /// Runs a Python snippet that writes `out.tar.gz` into `folder` with `tarfile`; `t` is the open archive.
    static func craft(_ body: String, in folder: URL) throws -> String {
        let script = """
            import io, tarfile
            t = tarfile.open('\(folder.path)/out.tar.gz', 'w:gz', format=tarfile.GNU_FORMAT)
            def add(name, data=b'x', **kw):
                info = tarfile.TarInfo(name); info.size = len(data)
                for k, v in kw.items(): setattr(info, k, v)
                t.addfile(info, io.BytesIO(data))
            add('l3af_x/ok.bpf.o')
            \(body)
            t.close()
            """
        let result = try Executable.run("/usr/bin/env", ["python3", "-c", script])
        guard result.status == 0 else { throw FixtureError("python: \(result.stderr)") }
        return folder.appending(path: "out.tar.gz").path
    }

    /// The digest the unpacker re-checks the file against (as the installer's cache would have verified it).
    static func digest(_ path: String) -> SHA256Digest { SHA256Digest(of: Array(FileManager.default.contents(atPath: path) ?? Data())) }

    static let hostile: [(String, String, String)] = [
        ("dot-dot entry", "add('l3af_x/../../../etc/cron.d/evil')", "climbs out with '..'"),
        ("absolute path", "add('/etc/cron.d/evil')", "the path is absolute"),
        ("symlink out of the tree", "add('l3af_x/link', b'', type=tarfile.SYMTYPE, linkname='/etc/passwd')", "is a symbolic link"),
        ("hard link", "add('l3af_x/hard', b'', type=tarfile.LNKTYPE, linkname='l3af_x/ok.bpf.o')", "is a hard link"),
        ("device node", "add('l3af_x/dev', b'', type=tarfile.CHRTYPE, devmajor=1, devminor=3)", "is a device"),
        ("fifo", "add('l3af_x/fifo', b'', type=tarfile.FIFOTYPE)", "is a FIFO"),
    ]

    @Test(arguments: hostile)
    func refusesHostileEntries(_ label: String, _ body: String, _ why: String) throws {
        let folder = try Fixtures.temporaryFolder("hostile")
        defer { try? FileManager.default.removeItem(at: folder) }
        let tarball = try Self.craft(body, in: folder)
        let repo = folder.appending(path: "repo").path
        #expect {
            try Unpacker().unpack(tarball: tarball, repo: repo, name: "x", version: "1.0.0", artifact: "l3af_x.tar.gz",
                                  sha256: Self.digest(tarball), source: "test", unsigned: false)
        } throws: { error in
            let e = error as! ArchiveError
            return e.code == "archive-unsafe-entry" && e.description.contains(why)
        }
        let left = (try? FileManager.default.contentsOfDirectory(atPath: "\(repo)/x")) ?? []
        #expect(left.isEmpty, "\(label): nothing left in the repo: \(left)")
        #expect(!FileManager.default.fileExists(atPath: "/etc/cron.d/evil"))
    }

    @Test func dropsSetUIDBits() throws {
        let folder = try Fixtures.temporaryFolder("setuid")
        defer { try? FileManager.default.removeItem(at: folder) }
        let tarball = try Self.craft("add('l3af_x/tool', b'#!/bin/sh', mode=0o4755)\nadd('l3af_x/group', b'x', mode=0o2644)", in: folder)
        let repo = folder.appending(path: "repo").path
        let path = try Unpacker().unpack(tarball: tarball, repo: repo, name: "x", version: "1.0.0", artifact: "l3af_x.tar.gz",
                                         sha256: Self.digest(tarball), source: "test", unsigned: false)
        let tool = try FileManager.default.attributesOfItem(atPath: "\(path)/tool")[.posixPermissions] as! Int
        let group = try FileManager.default.attributesOfItem(atPath: "\(path)/group")[.posixPermissions] as! Int
        #expect(tool == 0o755, "set-uid dropped, execute kept: \(String(tool, radix: 8))")
        #expect(group == 0o644, "set-gid dropped: \(String(group, radix: 8))")
        #expect(try Unpacker.check(repo: repo, name: "x", version: "1.0.0").files.count == 3)
    }

    /// 10 GiB of zeros: a tar header for one 10 GiB file, then 160 gzip members of 64 MiB of zeros each
    /// (concatenated gzip members are one valid stream). About 10 MB on disk.
    @Test func stopsTenGigabytesOfZerosEarlyWithBoundedMemory() throws {
        let folder = try Fixtures.temporaryFolder("bomb")
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appending(path: "bomb.tar.gz").path
        let script = """
            import gzip, tarfile
            info = tarfile.TarInfo('l3af_x/zeros'); info.size = 10 << 30
            member = gzip.compress(bytes(64 << 20), compresslevel=9, mtime=0)
            with open('\(path)', 'wb') as f:
                f.write(gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT), mtime=0))
                for _ in range(160): f.write(member)
            """
        #expect(try Executable.run("/usr/bin/env", ["python3", "-c", script]).status == 0)
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        #expect(size < 20_000_000, "the bomb is small on disk: \(size) bytes")
        let before = Self.peakResidentBytes()
        let start = Date()
        #expect {
            try Unpacker().unpack(tarball: path, repo: folder.appending(path: "repo").path, name: "x", version: "1.0.0",
                                  artifact: "l3af_x.tar.gz", sha256: Self.digest(path), source: "test", unsigned: false)
        } throws: { ($0 as! ArchiveError).reason == .fileTooLarge(path: "l3af_x/zeros", limit: ArchiveLimits().maximumFileBytes) }
        #expect(Date().timeIntervalSince(start) < 10, "stopped early, not after 10 GiB")
        let growth = Self.peakResidentBytes() - before
        #expect(growth < 512 << 20, "memory stayed bounded: peak grew by \(growth >> 20) MiB")
        #expect(!FileManager.default.fileExists(atPath: folder.appending(path: "repo/x/1.0.0").path))
    }

    static func peakResidentBytes() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss * 1024
    }

    @Test func removesLeftoversOfAnInterruptedUnpack() throws {
        let folder = try Fixtures.temporaryFolder("leftover")
        defer { try? FileManager.default.removeItem(at: folder) }
        let repo = folder.appending(path: "repo").path
        try FileManager.default.createDirectory(atPath: "\(repo)/x/.tmp-1.0.0-123/l3af_x", withIntermediateDirectories: true)
        Unpacker.removeLeftovers(in: repo)
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(repo)/x").isEmpty)
    }
}
