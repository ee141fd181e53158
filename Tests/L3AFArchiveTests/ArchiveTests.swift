import Foundation
import Testing
@testable import L3AFArchive

/// Runs `tar` (GNU tar, a real peer) to make archives that l3af's writer refuses to make: links, devices,
/// escapes. Each test says what its archive is for.
func tarball(_ setup: (URL) throws -> Void, arguments: [String]) throws -> [UInt8] {
    let folder = FileManager.default.temporaryDirectory.appending(path: "l3af-archive-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    try setup(folder)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/tar")
    process.currentDirectoryURL = folder
    process.arguments = ["-czf", "out.tar.gz"] + arguments
    try process.run()
    process.waitUntilExit()
    #expect(process.terminationStatus == 0)
    return Array(try Data(contentsOf: folder.appending(path: "out.tar.gz")))
}

@Suite struct ArchiveReaderTests {
    @Test func readsWhatTheWriterWrote() throws {
        let bytes = try ArchiveWriter.tarGz([
            ArchiveEntry(path: "pkg/l3af.json", kind: .file, permissions: 0o644, contents: Array("{}".utf8)),
            ArchiveEntry(path: "pkg/prog.bpf.o", kind: .file, permissions: 0o600, contents: [1, 2, 3]),
        ])
        let entries = try ArchiveReader.entries(of: bytes, name: "t")
        #expect(entries.map(\.path) == ["pkg", "pkg/l3af.json", "pkg/prog.bpf.o"])
        #expect(entries[2].contents == [1, 2, 3])
        #expect(entries[2].permissions == 0o644, "modes are normalized")
        #expect(entries[0].kind == .directory)
    }

    @Test func writerIsReproducible() throws {
        let files = [
            ArchiveEntry(path: "b/x", kind: .file, permissions: 0o644, contents: Array("x".utf8)),
            ArchiveEntry(path: "a", kind: .file, permissions: 0o755, contents: Array("a".utf8)),
        ]
        let first = try ArchiveWriter.tarGz(files)
        let second = try ArchiveWriter.tarGz(files.reversed())
        #expect(first == second, "same files in another order give the same bytes")
        #expect(first[4...7] == [0, 0, 0, 0], "no timestamp in the gzip header")
    }

    @Test func readsArchivesMadeByGNUTar() throws {
        // An ordinary l3afd-style tarball: one top folder holding .bpf.o files.
        let bytes = try tarball({ folder in
            try FileManager.default.createDirectory(at: folder.appending(path: "l3af_x"), withIntermediateDirectories: true)
            try Data([7]).write(to: folder.appending(path: "l3af_x/x.bpf.o"))
        }, arguments: ["./l3af_x"])
        #expect(try ArchiveReader.entries(of: bytes, name: "t").map(\.path) == ["l3af_x", "l3af_x/x.bpf.o"])
    }

    @Test func refusesSymbolicLinks() throws {
        // A link pointing out of the package, e.g. at /etc/passwd.
        let bytes = try tarball({ folder in
            try FileManager.default.createSymbolicLink(atPath: folder.appending(path: "evil").path, withDestinationPath: "/etc/passwd")
        }, arguments: ["evil"])
        #expect { try ArchiveReader.entries(of: bytes, name: "t") } throws: {
            ($0 as! ArchiveError).reason == .unsafeEntry(path: "evil", why: "it is a symbolic link")
        }
    }

    @Test func refusesHardLinks() throws {
        // A second name for the same file, which unpacking could aim at a file outside.
        let bytes = try tarball({ folder in
            try Data([1]).write(to: folder.appending(path: "a"))
            try FileManager.default.linkItem(atPath: folder.appending(path: "a").path, toPath: folder.appending(path: "b").path)
        }, arguments: ["a", "b"])
        #expect { try ArchiveReader.entries(of: bytes, name: "t") } throws: {
            ($0 as! ArchiveError).reason == .unsafeEntry(path: "b", why: "it is a hard link")
        }
    }

    @Test func refusesEscapingPaths() throws {
        // GNU tar keeps '..' in member names with -P; the entry would land outside the target folder.
        let bytes = try tarball({ folder in
            try FileManager.default.createDirectory(at: folder.appending(path: "in"), withIntermediateDirectories: true)
            try Data([1]).write(to: folder.appending(path: "x"))
        }, arguments: ["-P", "in/../x"])
        #expect { try ArchiveReader.entries(of: bytes, name: "t") } throws: {
            ($0 as! ArchiveError).reason == .unsafeEntry(path: "in/../x", why: "the path climbs out with '..'")
        }
        #expect(ArchiveReader.safePath("/etc/passwd") == .failure(.init(why: "the path is absolute")))
        #expect(ArchiveReader.safePath("./a//b/./c") == .success("a/b/c"))
        #expect(ArchiveReader.safePath("./") == .failure(.init(why: "the path names no file")))
    }

    @Test func refusesDevicesAndFIFOs() throws {
        // A FIFO, which an unpacker would create and then block on.
        let bytes = try tarball({ folder in
            #expect(mkfifo(folder.appending(path: "pipe").path, 0o644) == 0)
        }, arguments: ["pipe"])
        #expect { try ArchiveReader.entries(of: bytes, name: "t") } throws: {
            ($0 as! ArchiveError).reason == .unsafeEntry(path: "pipe", why: "it is a FIFO")
        }
    }

    @Test func stopsADecompressionBomb() throws {
        // 64 MiB of zeros compress to ~64 KiB; the cap stops reading long before it is all unpacked.
        let bomb = try ArchiveWriter.tarGz([ArchiveEntry(path: "zeros", kind: .file, permissions: 0o644, contents: [UInt8](repeating: 0, count: 64 << 20))])
        #expect(bomb.count < 200_000)
        #expect {
            try ArchiveReader.entries(of: bomb, name: "bomb", limits: ArchiveLimits(maximumFileBytes: 1 << 20))
        } throws: { ($0 as! ArchiveError).reason == .fileTooLarge(path: "zeros", limit: 1 << 20) }
        #expect {
            try ArchiveReader.entries(of: bomb, name: "bomb", limits: ArchiveLimits(maximumTotalBytes: 2 << 20))
        } throws: { ($0 as! ArchiveError).reason == .totalTooLarge(limit: 2 << 20) }
        let many = try ArchiveWriter.tarGz((0..<20).map { ArchiveEntry(path: "f\($0)", kind: .file, permissions: 0o644) })
        #expect {
            try ArchiveReader.entries(of: many, name: "many", limits: ArchiveLimits(maximumEntries: 10))
        } throws: { ($0 as! ArchiveError).reason == .tooManyEntries(limit: 10) }
    }

    @Test func refusesWhatIsNotAnArchive() throws {
        #expect { try ArchiveReader.entries(of: Array("just text, not a tarball".utf8), name: "notes.txt") } throws: {
            let e = $0 as! ArchiveError
            return e.code == "archive-unreadable" && e.description.hasPrefix("notes.txt is not a readable tar archive") && e.hint != nil
        }
        var truncated = try ArchiveWriter.tarGz([ArchiveEntry(path: "a", kind: .file, permissions: 0o644, contents: Array(repeating: 7, count: 100_000))])
        truncated = Array(truncated.prefix(truncated.count / 2))
        #expect(throws: ArchiveError.self) { try ArchiveReader.entries(of: truncated, name: "cut") }
    }
}
