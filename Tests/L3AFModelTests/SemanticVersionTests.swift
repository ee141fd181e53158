import Testing
@testable import L3AFModel

@Suite struct SemanticVersionTests {
    @Test(arguments: [
        "0.0.0", "1.2.3", "10.20.30", "1.1.2-prerelease+meta", "1.1.2+meta", "1.1.2+meta-valid", "1.0.0-alpha",
        "1.0.0-beta", "1.0.0-alpha.beta", "1.0.0-alpha.beta.1", "1.0.0-alpha.1", "1.0.0-alpha0.valid",
        "1.0.0-alpha.0valid", "1.0.0-alpha-a.b-c-somethinglong+build.1-aef.1-its-okay", "1.0.0-rc.1+build.1",
        "2.0.0-rc.1+build.123", "1.2.3-beta", "10.2.3-DEV-SNAPSHOT", "1.2.3-SNAPSHOT-123", "2.0.0+build.1848",
        "2.0.1-alpha.1227", "1.0.0-0A.is.legal", "1.0.0-x-y-z.--", "18446744073709551615.0.0",
    ])
    func parsesAndPrintsValidVersions(_ text: String) throws {
        #expect(try SemanticVersion(parsing: text).description == text)
    }

    @Test(arguments: [
        ("", "empty"), ("1", "three numbers"), ("1.2", "three numbers"), ("1.2.3.4", "three numbers"),
        ("01.1.1", "leading zero"), ("1.01.1", "leading zero"), ("1.1.01", "leading zero"),
        ("1.2.3-0123", "leading zero"), ("1.2.3-0123.0123", "leading zero"), ("1.2.3-", "empty identifier"),
        ("1.2.3+", "empty identifier"), ("1.2.3-alpha..1", "empty identifier"), ("1.2.3-alpha_beta", "'_'"),
        ("1.2.3+b@d", "'@'"), ("v1.2.3", "starts with 'v'"), ("1.2.a", "not a number"), ("-1.2.3", "three numbers"),
        ("1.2.3 ", "not a number"), ("18446744073709551616.0.0", "too large"), ("1.2.3-99999999999999999999", "too large"),
    ])
    func refusesInvalidVersions(_ text: String, _ problem: String) {
        #expect {
            try SemanticVersion(parsing: text)
        } throws: { error in
            let e = error as! VersionParseError
            return e.problem.contains(problem) && e.description.contains("'\(text)'") && e.hint != nil
        }
    }

    @Test func precedenceFollowsTheSpecification() throws {
        let ordered = [
            "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
            "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "1.9.0", "1.10.0", "2.0.0",
        ].map { try! SemanticVersion(parsing: $0) }
        for (lower, higher) in zip(ordered, ordered.dropFirst()) {
            #expect(lower.comparePrecedence(to: higher) < 0, "\(lower) < \(higher)")
            #expect(lower < higher)
        }
        #expect(ordered.shuffled().sorted() == ordered)
    }

    @Test func buildMetadataDoesNotAffectPrecedence() throws {
        let a = try SemanticVersion(parsing: "1.0.0+a")
        let b = try SemanticVersion(parsing: "1.0.0+b")
        #expect(a.hasSamePrecedence(as: b))
        #expect(a != b)
        #expect(a < b, "Comparable still gives a total order, build last")
        #expect(try SemanticVersion(parsing: "1.0.0-rc.1+z") < SemanticVersion(parsing: "1.0.0+a"))
    }

    @Test func numericIdentifiersSortBelowAlphanumeric() throws {
        #expect(try SemanticVersion(parsing: "1.0.0-1") < SemanticVersion(parsing: "1.0.0-a"))
        #expect(try SemanticVersion(parsing: "1.0.0-2") < SemanticVersion(parsing: "1.0.0-10"))
        #expect(try SemanticVersion(parsing: "1.0.0-B") < SemanticVersion(parsing: "1.0.0-a"), "ASCII order")
    }

    @Test func releaseAndCore() throws {
        let v = try SemanticVersion(parsing: "1.2.3-rc.1+b5")
        #expect(v.isPrerelease)
        #expect(v.release == SemanticVersion(1, 2, 3))
        #expect(v.hasSameCore(as: SemanticVersion(1, 2, 3)))
    }
}

@Suite struct KernelVersionTests {
    @Test func parsesRequirementsAndReleases() throws {
        #expect(try KernelVersion(parsing: "5.15") == KernelVersion(5, 15))
        #expect(try KernelVersion(parsing: "6.1.7") == KernelVersion(6, 1, 7))
        #expect(try KernelVersion(parsing: "6.18.44-fc-v657", release: true) == KernelVersion(6, 18, 44))
        #expect(try KernelVersion(parsing: "5.4.0-150-generic", release: true) == KernelVersion(5, 4, 0))
        #expect(try KernelVersion(parsing: "5.15", release: true) < KernelVersion(parsing: "6.1"))
        #expect(try KernelVersion(parsing: "5.9") < KernelVersion(parsing: "5.10"))
    }

    @Test(arguments: ["5", "five", "5.15-rc1", "5.15.", ".5.15", "5..15", "1.2.3.4", ""])
    func refusesMalformedRequirements(_ text: String) {
        #expect(throws: KernelVersionError.self) { try KernelVersion(parsing: text) }
    }
}
