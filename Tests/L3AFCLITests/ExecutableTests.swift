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

/// `--json` on every l3af command, errors included.
@Suite struct JSONOutputTests {
    /// Every leaf command of l3af lists --json in its help.
    @Test func everyCommandTakesJSON() throws {
        func subcommands(_ path: [String]) throws -> [String] {
            let help = try Run("l3af", path + ["--help"]).stdout
            guard let start = help.range(of: "SUBCOMMANDS:") else { return [] }
            return help[start.upperBound...].split(separator: "\n").compactMap { line in
                guard line.hasPrefix("  "), !line.hasPrefix("   "), let word = line.split(separator: " ").first else { return nil }
                return String(word)
            }.filter { $0 != "help" && $0 != "See" }
        }
        var leaves: [[String]] = []
        for command in try subcommands([]) {
            let inner = try subcommands([command])
            leaves += inner.isEmpty ? [[command]] : inner.map { [command, $0] }
        }
        #expect(leaves.count > 25)
        for leaf in leaves {
            #expect(try Run("l3af", leaf + ["--help"]).stdout.contains("--json"), "l3af \(leaf.joined(separator: " ")) has no --json")
        }
    }

    /// With --json an error is `{"error": {"code", "message", "hint"}}` on standard output and the exit is non-zero;
    /// a usage error too; without it, `error:` and `hint:` on standard error as before.
    @Test func errorsAreJSONWhenAskedFor() throws {
        let folder = try Fixtures.temporaryFolder("json-errors")
        let bad = folder.appending(path: "l3af.json")
        try Data(#"{"name": "Bad", "version": "1.0.0", "programs": []}"#.utf8).write(to: bad)
        let failed = try Run("l3af", ["validate", "manifest", bad.path, "--json"])
        #expect(failed.status == 1 && failed.stderr.isEmpty, "\(failed.stderr)")
        let body = try #require(try JSONSerialization.jsonObject(with: Data(failed.stdout.utf8)) as? [String: Any], "\(failed.stdout)")
        let error = try #require(body["error"] as? [String: Any])
        #expect(error["code"] as? String == "invalid-document" && (error["message"] as? String)?.contains("name") == true, "\(error)")
        let usage = try Run("l3af", ["install", "--json"])
        #expect(usage.status == 64, "\(usage.stdout) \(usage.stderr)")
        let usageBody = try JSONSerialization.jsonObject(with: Data(usage.stdout.utf8)) as? [String: Any]
        #expect((usageBody?["error"] as? [String: Any])?["code"] as? String == "usage", "\(usage.stdout)")
        let text = try Run("l3af", ["validate", "manifest", bad.path])
        #expect(text.status == 1 && text.stderr.hasPrefix("error: ") && text.stdout.isEmpty)
        let ok = try Run("l3af", ["validate", "manifest", repositoryRoot.appending(path: "registry/xdp-root/l3af.json").path, "--json"])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect((try JSONSerialization.jsonObject(with: Data(ok.stdout.utf8)) as? [String: Any])?["valid"] as? Bool == true, "\(ok.stdout)")
    }
}
