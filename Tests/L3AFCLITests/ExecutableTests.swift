import Foundation
import L3AFTestSupport
import Testing

/// Runs one of this package's executables.
func Run(_ executable: String, _ arguments: [String], stdin: String? = nil) throws -> Executable.Result {
    try Executable.run(executable, arguments, stdin: stdin)
}

let repositoryRoot = Fixtures.repositoryRoot

@Suite struct ExecutableTests {
    @Test(arguments: ["l3af", "l3afd", "l3af-registry"])
    func printsVersionAndHelp(_ executable: String) throws {
        let version = try Run(executable, ["--version"])
        #expect(version.status == 0)
        // 0.0.0-dev here; scripts/build-release stamps `git describe` (0.1.0-12-gabcdef0), which scripts/package checks.
        let printed = version.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(printed.wholeMatch(of: /[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.+~-]+)?/) != nil, "\(printed)")
        let help = try Run(executable, ["--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("USAGE: \(executable)"))
    }

    /// libcurl and libarchive are bound on first use (CLazyLink): not needed at start, so `--version` and a pinned,
    /// installed fetch don't pay for loading some 45 shared libraries.
    @Test(arguments: ["l3af", "l3afd", "l3af-registry"])
    func curlAndArchiveAreNotLoadedAtStart(_ executable: String) throws {
        let dynamic = try Executable.run("/usr/bin/readelf", ["-d", Executable.path(executable)])
        #expect(dynamic.status == 0, "\(dynamic.stderr)")
        let needed = dynamic.stdout.split(separator: "\n").filter { $0.contains("(NEEDED)") }
        #expect(!needed.isEmpty)
        #expect(!needed.contains { $0.contains("libcurl") || $0.contains("libarchive") }, "\(needed)")
    }

    @Test func unknownSubcommandIsAUsageError() throws {
        let run = try Run("l3af", ["frobnicate"])
        #expect(run.status != 0)
        #expect(run.stderr.contains("frobnicate"))
    }

    @Test func validateAcceptsEachKindOfDocument() throws {
        let cases = [
            ("manifest", "manifest/valid/ratelimiting-full.json", "ok: manifest ratelimiting@1.2.0: 1 program(s) on xdp_ingress"),
            ("package", "package/valid/with-yanked-version.json", "ok: package ratelimiting: 4 version(s), tags beta=1.3.0-beta.1 latest=1.2.0 stable=1.1.0"),
            ("index", "index/valid/two-packages.json", "ok: index version 42, 2 shard(s), expires 2026-11-28T00:00:00Z"),
            ("payload", "l3af-bpf-programs/valid/l3afd-ratelimiting-example.json", "ok: payload for 1 interface(s), 1 program(s)"),
            ("names", "l3af-bpf-program-names/valid/l3afd-delete-example.json", "ok: delete payload for l3af/Ethernet4"),
        ]
        for (kind, file, expected) in cases {
            let run = try Run("l3af", ["validate", kind, repositoryRoot.appending(path: "schemas/examples/\(file)").path])
            #expect(run.status == 0, "\(kind): \(run.stderr)")
            #expect(run.stdout.trimmingCharacters(in: .newlines) == expected)
        }
    }

    @Test func validateNamesTheFieldAndExitsNonZero() throws {
        let file = repositoryRoot.appending(path: "schemas/examples/manifest/invalid/hook-unknown.json").path
        let run = try Run("l3af", ["validate", "manifest", file])
        #expect(run.status == 1)
        #expect(run.stdout.isEmpty)
        #expect(run.stderr.hasPrefix("error: manifest \(file): at programs[0].hook: 'xdp' is not a hook"))
    }

    @Test func validateReadsStandardInputAndReportsSemanticProblems() throws {
        let payload = #"[{"iface":"eth0","bpf_programs":{"xdp_ingress":[{"name":"a","seq_id":1},{"name":"b","seq_id":1}]}}]"#
        let run = try Run("l3af", ["validate", "payload", "-"], stdin: payload)
        #expect(run.status == 1)
        #expect(run.stderr.contains("[0].bpf_programs.xdp_ingress[1].seq_id 1 is also the seq_id of 'a'"))
    }

    @Test func validateSaysWhenAFileIsMissing() throws {
        let run = try Run("l3af", ["validate", "manifest", "/nonexistent/l3af.json"])
        #expect(run.status == 1)
        #expect(run.stderr.contains("error: can't read '/nonexistent/l3af.json'"))
        #expect(run.stderr.contains("hint: "))
    }
}
