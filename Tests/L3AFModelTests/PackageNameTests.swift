import Testing
@testable import L3AFModel

@Suite struct PackageNameTests {
    @Test(arguments: ["a", "ratelimiting", "xdp-root", "tc_root", "a1", "z-9_x", String(repeating: "a", count: 64)])
    func acceptsValidNames(_ name: String) throws {
        #expect(try PackageName(name).rawValue == name)
    }

    @Test(arguments: [
        ("", "it is empty"),
        ("Ratelimiting", "it starts with 'R', not a lowercase letter"),
        ("rateLimiting", "uppercase letter 'L'"),
        ("1rate", "it starts with '1'"),
        ("-rate", "it starts with '-'"),
        ("_rate", "it starts with '_'"),
        ("rate limiting", "the character ' '"),
        ("rate.limiting", "the character '.'"),
        ("rate/limiting", "the character '/'"),
        ("ratélimiting", "the character"),
        (String(repeating: "a", count: 65), "65 characters long"),
    ])
    func refusesInvalidNamesSayingTheRule(_ name: String, _ problem: String) {
        #expect {
            try PackageName(name)
        } throws: { error in
            let description = (error as! PackageNameError).description
            return description.contains(problem) && description.contains(PackageName.rule)
        }
    }

    @Test func dashAndUnderscoreCollide() throws {
        let a = try PackageName("rate-limit")
        let b = try PackageName("rate_limit")
        #expect(a != b)
        #expect(a.collides(with: b))
        #expect(a.collisionKey == "rate-limit")
        #expect(try !PackageName("ratelimit").collides(with: a))
    }

    @Test func suggestsAValidSpelling() {
        let error = PackageNameError(name: "Rate Limiting", problem: "")
        #expect(error.hint == "did you mean 'rate-limiting'?")
        #expect(PackageNameError(name: "123", problem: "").hint == nil)
    }

    @Test func decodesAndRefusesInJSON() throws {
        #expect(try DocumentDecoder.decode([PackageName].self, from: Array(#"["ok"]"#.utf8), document: "t") == [PackageName("ok")])
        #expect(throws: DocumentError.self) {
            try DocumentDecoder.decode([PackageName].self, from: Array(#"["Not OK"]"#.utf8), document: "t")
        }
    }
}

@Suite struct PackageSpecTests {
    @Test(arguments: [
        ("ratelimiting", "ratelimiting", "latest"),
        ("ratelimiting@1.2.3", "ratelimiting", "^1.2.3"),
        ("ratelimiting@=1.2.3", "ratelimiting", "=1.2.3"),
        ("ratelimiting@^1.2", "ratelimiting", "^1.2"),
        ("ratelimiting@latest", "ratelimiting", "latest"),
        ("ratelimiting@beta", "ratelimiting", "beta"),
        ("xdp-root@1", "xdp-root", "^1"),
        ("ratelimiting@>=1.0, <2.0", "ratelimiting", ">=1.0, <2.0"),
        ("ratelimiting@*", "ratelimiting", "*"),
    ])
    func parsesSpecs(_ text: String, _ name: String, _ requirement: String) throws {
        let spec = try PackageSpec(parsing: text)
        #expect(spec.name.rawValue == name)
        #expect(spec.requirement.description == requirement)
    }

    @Test(arguments: [
        ("Rate@1.0.0", "invalid package name 'Rate'"),
        ("rate@", "nothing follows '@'"),
        ("rate@1.2.3.4", "has 4 parts"),
        ("rate@v1.2", "starts with 'v'"),
        ("@1.0.0", "it is empty"),
        ("rate@1.0@2", "invalid version requirement"),
    ])
    func refusesBadSpecsNamingThePart(_ text: String, _ fragment: String) {
        #expect {
            try PackageSpec(parsing: text)
        } throws: { error in
            let e = error as! PackageSpecError
            return e.description.contains(fragment) && e.description.contains("'\(text)'") && e.hint != nil
        }
    }
}
