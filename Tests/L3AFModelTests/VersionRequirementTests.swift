import Testing
@testable import L3AFModel

@Suite struct VersionRequirementTests {
    static let table: [(String, [String], [String])] = [
        // requirement, satisfied by, not satisfied by
        ("1.2.3", ["1.2.3", "1.2.4", "1.9.0"], ["1.2.2", "2.0.0", "1.3.0-beta", "2.0.0-alpha"]),
        ("^1.2.3", ["1.2.3", "1.99.99"], ["1.2.2", "2.0.0"]),
        ("^1.2", ["1.2.0", "1.9.9"], ["1.1.9", "2.0.0"]),
        ("^1", ["1.0.0", "1.9.9"], ["0.9.9", "2.0.0"]),
        ("^0.2.3", ["0.2.3", "0.2.9"], ["0.3.0", "0.2.2"]),
        ("^0.0.3", ["0.0.3"], ["0.0.4", "0.0.2"]),
        ("^0.0", ["0.0.0", "0.0.9"], ["0.1.0"]),
        ("^0", ["0.0.0", "0.9.0"], ["1.0.0"]),
        ("=1.2.3", ["1.2.3", "1.2.3+build.5"], ["1.2.4", "1.2.3-rc.1"]),
        ("=1.2", ["1.2.0", "1.2.9"], ["1.3.0"]),
        ("~1.2.3", ["1.2.3", "1.2.9"], ["1.3.0", "1.2.2"]),
        ("~1.2", ["1.2.0", "1.2.9"], ["1.3.0"]),
        ("~1", ["1.0.0", "1.9.0"], ["2.0.0"]),
        (">=1.0, <2.0", ["1.0.0", "1.5.0", "1.99.0"], ["0.9.0", "2.0.0", "2.0.0-rc.1", "1.5.0-beta"]),
        (">=1.0,<2.0", ["1.0.0"], ["2.0.0"]),
        (">1.2.3", ["1.2.4"], ["1.2.3"]),
        (">1.2", ["1.3.0"], ["1.2.9"]),
        ("<=1.2", ["1.2.9", "0.1.0"], ["1.3.0"]),
        ("<=1.2.3", ["1.2.3"], ["1.2.4"]),
        ("<1.2", ["1.1.9"], ["1.2.0"]),
        ("1.2.*", ["1.2.0", "1.2.77"], ["1.3.0", "1.1.0"]),
        ("1.*", ["1.0.0", "1.9.0"], ["2.0.0"]),
        ("1.x", ["1.4.0"], ["2.0.0"]),
        ("*", ["0.0.1", "99.0.0"], ["1.0.0-alpha"]),
        // Prereleases match only when the requirement names one at the same MAJOR.MINOR.PATCH.
        (">=1.2.3-alpha.1", ["1.2.3-alpha.1", "1.2.3-beta", "1.2.3", "1.3.0"], ["1.3.0-alpha.1", "1.2.3-alpha.0"]),
        ("^1.2.3-beta.2", ["1.2.3-beta.2", "1.2.3-beta.11", "1.2.3", "1.5.0"], ["1.2.3-beta.1", "1.2.4-beta", "2.0.0"]),
        ("=2.0.0-rc.1", ["2.0.0-rc.1"], ["2.0.0-rc.2", "2.0.0"]),
        (">=1.0.0, <2.0.0-0", ["1.5.0"], ["2.0.0-0", "2.0.0-rc.1"]),
    ]

    @Test(arguments: table)
    func matchesVersions(_ requirement: String, _ yes: [String], _ no: [String]) throws {
        let r = try VersionRequirement(parsing: requirement)
        for v in yes { #expect(r.isSatisfied(by: try SemanticVersion(parsing: v)), "\(requirement) should admit \(v)") }
        for v in no { #expect(!r.isSatisfied(by: try SemanticVersion(parsing: v)), "\(requirement) should refuse \(v)") }
    }

    @Test func bareVersionIsCaret() throws {
        #expect(try VersionRequirement(parsing: "1.2.3") == VersionRequirement(parsing: "^1.2.3"))
        #expect(try VersionRequirement(parsing: "1.2.3").description == "^1.2.3")
    }

    @Test func exactVersionIsOnlyForEquals() throws {
        #expect(try VersionRequirement(parsing: "=1.2.3").exactVersion == SemanticVersion(1, 2, 3))
        #expect(try VersionRequirement(parsing: "1.2.3").exactVersion == nil)
        #expect(try VersionRequirement(parsing: "=1.2").exactVersion == nil)
    }

    @Test(arguments: ["latest", "beta", "stable", "next-1", "lts_2026", "canary.2"])
    func parsesDistTags(_ text: String) throws {
        #expect(try VersionRequirement(parsing: text) == .tag(DistTag(text)))
    }

    @Test(arguments: [
        ("", "it is empty"), ("1.2.3.4", "has 4 parts"), (">=", "no version"), ("^", "no version"),
        ("1.2, ", "empty term"), (",1.2", "empty term"), ("v1.2", "starts with 'v'"), ("01.2", "leading zero"),
        ("1.2.3-", "empty identifier"), ("1.2-beta", "not all three numbers"), ("*.2", "can't wildcard the major"),
        ("1.*.3", "number after a wildcard"), (">=1.*", "mixes the operator"), ("<*", "compares against a wildcard"),
        ("Latest", "lowercase"), ("beta!", "the character '!'"), ("1.a", "not a number"), (">> 1.0", "not a number"),
    ])
    func refusesMalformedRequirements(_ text: String, _ problem: String) {
        #expect {
            try VersionRequirement(parsing: text)
        } throws: { error in
            let e = error as! RequirementParseError
            return e.problem.contains(problem) && e.hint != nil
        }
    }

    @Test func roundTripsThroughJSON() throws {
        let r = try VersionRequirement(parsing: ">=1.0, <2.0")
        let data = try DocumentDecoder.encode([r])
        #expect(try DocumentDecoder.decode([VersionRequirement].self, from: data, document: "t") == [r])
    }
}

@Suite struct VersionPickerTests {
    static func candidates(_ list: [(String, Bool)]) -> [VersionCandidate] {
        list.map { VersionCandidate(try! SemanticVersion(parsing: $0.0), yanked: $0.1) }
    }

    let published = candidates([
        ("1.0.0", false), ("1.1.0", false), ("1.2.0", true), ("1.3.0-beta.1", false), ("2.0.0", false),
        ("2.1.0", true), ("3.0.0-rc.1", false),
    ])
    let tags: [DistTag: SemanticVersion] = [
        .latest: SemanticVersion(2, 0, 0), try! DistTag("beta"): try! SemanticVersion(parsing: "1.3.0-beta.1"),
        try! DistTag("bad"): SemanticVersion(2, 1, 0), try! DistTag("gone"): SemanticVersion(9, 0, 0),
    ]

    func pick(_ text: String) throws(ResolutionError) -> String {
        try (try! VersionRequirement(parsing: text)).pick(from: published, distTags: tags, package: "rl").description
    }

    @Test func picksHighestMatchingNotYanked() throws {
        #expect(try pick("^1.0") == "1.1.0", "1.2.0 is yanked, 1.3.0-beta.1 is a prerelease")
        #expect(try pick("*") == "2.0.0", "2.1.0 is yanked, 3.0.0-rc.1 is a prerelease")
        #expect(try pick(">=1.0, <2.0") == "1.1.0")
        #expect(try pick("~1.0") == "1.0.0")
    }

    @Test func exactPicksYankedVersions() throws {
        #expect(try pick("=1.2.0") == "1.2.0")
        #expect(try pick("=2.1.0") == "2.1.0")
    }

    @Test func prereleasesOnlyWhenNamed() throws {
        #expect(try pick("^1.3.0-beta.1") == "1.3.0-beta.1")
        #expect(try pick(">=3.0.0-rc.1") == "3.0.0-rc.1")
        #expect(try pick(">=3.0.0-alpha") == "3.0.0-rc.1")
    }

    @Test func distTagPicksExactlyItsVersion() throws {
        #expect(try pick("latest") == "2.0.0")
        #expect(try pick("beta") == "1.3.0-beta.1")
    }

    @Test func distTagOnAYankedVersionIsRefused() {
        #expect { try pick("bad") } throws: { ($0 as! ResolutionError).reason == .tagPointsAtYanked(SemanticVersion(2, 1, 0)) }
    }

    @Test func unknownTagListsTheKnownOnes() {
        #expect {
            try pick("nightly")
        } throws: { error in
            let e = error as! ResolutionError
            return e.code == "unknown-dist-tag" && e.description.contains("beta, gone, latest")
        }
    }

    @Test func tagPointingNowhereIsRefused() {
        #expect { try pick("gone") } throws: { ($0 as! ResolutionError).reason == .tagPointsNowhere(SemanticVersion(9, 0, 0)) }
    }

    @Test func noMatchExplainsYankedAndPrereleaseExclusions() {
        #expect {
            try pick("~1.2")
        } throws: { error in
            let e = error as! ResolutionError
            return e.description.contains("yanked: 1.2.0") && e.hint == "a yanked version installs only when named exactly: =1.2.0"
        }
        let betaOnly = Self.candidates([("0.9.0", false), ("1.3.0-beta.1", false)])
        #expect {
            try VersionRequirement(parsing: "^1.0").pick(from: betaOnly, package: "rl")
        } throws: { error in
            let e = error as! ResolutionError
            return e.description.contains("prereleases not asked for: 1.3.0-beta.1") && e.hint == "to accept a prerelease, name it: =1.3.0-beta.1"
        }
        #expect {
            try pick("^7")
        } throws: { ($0 as! ResolutionError).hint == "the newest release is 2.0.0" }
        #expect {
            try pick("=5.0.0")
        } throws: { ($0 as! ResolutionError).code == "no-matching-version" }
    }

    @Test func noVersionsAtAll() {
        #expect {
            try VersionRequirement.latest.pick(from: [], package: "empty")
        } throws: { ($0 as! ResolutionError).reason == .noVersions }
    }
}
