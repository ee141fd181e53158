import Foundation
import Testing
@testable import L3AFModel

@Suite struct PackageDocumentTests {
    static func document() throws -> PackageDocument {
        let data = try Data(contentsOf: repositoryRoot.appending(
            path: "schemas/examples/package/valid/with-yanked-version.json"))
        return try DocumentDecoder.decode(PackageDocument.self, from: data, document: "example")
    }

    @Test func resolvesThroughTagsRangesAndYanks() throws {
        let doc = try Self.document()
        #expect(try doc.resolve(.latest).version.description == "1.2.0")
        #expect(try doc.resolve(VersionRequirement(parsing: "stable")).version.description == "1.1.0")
        #expect(try doc.resolve(VersionRequirement(parsing: "beta")).version.description == "1.3.0-beta.1")
        #expect(throws: ResolutionError.self) { try doc.resolve(VersionRequirement(parsing: "~1.0")) }
        #expect(try doc.resolve(VersionRequirement(parsing: "=1.0.0")).yanked)
        #expect(try doc.resolve(VersionRequirement(parsing: "^1.1")).version.description == "1.2.0")
        #expect(try doc.resolve(VersionRequirement(parsing: "=1.1.0")).deprecated == "use 1.2 or later")
    }

    @Test func carriesTheManifestSummary() throws {
        let entry = try Self.document().resolve(.latest)
        #expect(entry.manifest.programs.first?.parameters.map(\.name) == ["rate", "ports"])
        #expect(entry.supports(platform: "focal"), "portable packages serve every platform")
        #expect(entry.artifact == "l3af_ratelimiting.tar.gz")
    }

    @Test func refusesInconsistentDocuments() throws {
        let valid = try String(contentsOf: repositoryRoot.appending(
            path: "schemas/examples/package/valid/ratelimiting-tags-deprecated-prerelease.json"), encoding: .utf8)
        let missingTarget = valid.replacingOccurrences(of: "\"stable\": \"1.1.0\"", with: "\"stable\": \"1.0.9\"")
        #expect(decodeError(PackageDocument.self, missingTarget)?.contains("the tag 'stable' points at 1.0.9, which is not in versions") == true)
        let noLatest = valid.replacingOccurrences(of: "\"latest\": \"1.2.0\",", with: "")
        #expect(decodeError(PackageDocument.self, noLatest)?.contains("must have a 'latest' tag") == true)
        let wrongKey = valid.replacingOccurrences(of: "\"1.1.0\": {", with: "\"1.1.1\": {")
        #expect(decodeError(PackageDocument.self, wrongKey)?.contains("the entry under '1.1.1' says it is version 1.1.0") == true)
    }

    @Test func roundTripsThroughJSON() throws {
        let doc = try Self.document()
        #expect(try DocumentDecoder.decode(PackageDocument.self, from: DocumentDecoder.encode(doc), document: "again") == doc)
    }
}

@Suite struct IndexSigningTests {
    let key = IndexSigningKey()
    let now = Timestamp(secondsSince1970: 1_800_000_000)

    func index(version: UInt64 = 7, expiresIn: Int64 = 86_400) -> RegistryIndex {
        RegistryIndex(
            version: version, issued: now, expires: now.adding(seconds: expiresIn),
            shards: [RegistryIndex.shard(of: "ratelimiting"): .init(sha256: SHA256Digest(of: Array("doc".utf8)), size: 3)])
    }

    func verify(_ bytes: [UInt8], keys: [TrustedKey]? = nil, last: UInt64? = nil, at time: Timestamp? = nil)
        throws(IndexVerificationError) -> RegistryIndex
    {
        try IndexVerifier(trustedKeys: keys ?? [key.publicKey]).verify(bytes, now: time ?? now, lastAcceptedVersion: last)
    }

    @Test func verifiesWhatItSigned() throws {
        let bytes = try key.sign(index())
        let verified = try verify(bytes)
        #expect(verified == index())
        #expect(try DocumentDecoder.decode(SignedIndexEnvelope.self, from: bytes, document: "i").signatures[0].keyid.hex
            == key.publicKey.keyID)
    }

    @Test func acceptsAnyFormattingOfTheSameDocument() throws {
        // The signature covers canonical JSON, so re-indenting or reordering keys doesn't break it.
        let bytes = try key.sign(index())
        let object = try JSONSerialization.jsonObject(with: Data(bytes))
        let pretty = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted])
        #expect(try verify(Array(pretty)) == index())
    }

    @Test func refusesATamperedIndex() throws {
        let text = String(decoding: try key.sign(index()), as: UTF8.self).replacingOccurrences(of: "\"version\":7", with: "\"version\":8")
        #expect { try verify(Array(text.utf8)) } throws: { ($0 as! IndexVerificationError).code == "index-bad-signature" }
    }

    @Test func refusesAnUntrustedKey() throws {
        let other = IndexSigningKey()
        #expect {
            try verify(other.sign(index()))
        } throws: { error in
            let e = error as! IndexVerificationError
            return e.code == "index-untrusted" && e.hint!.contains("--trusted-key")
        }
        #expect { try verify(key.sign(index()), keys: []) } throws: { ($0 as! IndexVerificationError).code == "no-trusted-keys" }
        #expect(try verify(key.sign(index()), keys: [other.publicKey, key.publicKey]).version == 7)
    }

    @Test func refusesAnExpiredIndex() throws {
        let bytes = try key.sign(index(expiresIn: 60))
        #expect(try verify(bytes, at: now.adding(seconds: 59)).version == 7)
        #expect { try verify(bytes, at: now.adding(seconds: 60)) } throws: { ($0 as! IndexVerificationError).code == "index-expired" }
    }

    @Test func refusesAnOlderIndex() throws {
        let bytes = try key.sign(index(version: 7))
        #expect(try verify(bytes, last: 7).version == 7, "the same version again is a re-fetch")
        #expect {
            try verify(bytes, last: 8)
        } throws: { ($0 as! IndexVerificationError).reason == .rollback(version: 7, lastAccepted: 8) }
    }

    @Test func refusesMalformedEnvelopes() {
        for text in ["nope", "{}", #"{"signed":{},"signatures":{}}"#, #"{"signed":{"a":1.5},"signatures":[]}"#] {
            #expect(throws: IndexVerificationError.self, "\(text)") { try verify(Array(text.utf8)) }
        }
    }

    @Test func keysRoundTripThroughBase64() throws {
        let restored = try IndexSigningKey(base64Seed: key.base64Seed)
        #expect(restored.publicKey == key.publicKey)
        #expect(try TrustedKey(base64: key.publicKey.base64) == key.publicKey)
        #expect(throws: KeyFormatError.self) { try TrustedKey(base64: "not base64!") }
        #expect(throws: KeyFormatError.self) { try TrustedKey(base64: Data(count: 31).base64EncodedString()) }
    }
}

@Suite struct CanonicalJSONTests {
    @Test func sortsKeysAndDropsWhitespace() throws {
        let value = try decode(JSONValue.self, #"{ "b": [1, true, null], "a": "x\"y\n", "é": {"z": -3, "y": "😀"} }"#)
        #expect(String(decoding: try value.canonicalBytes(), as: UTF8.self)
            == #"{"a":"x\"y\u000a","b":[1,true,null],"é":{"y":"😀","z":-3}}"#)
    }

    @Test func refusesFractionalNumbers() {
        #expect {
            try decode(JSONValue.self, #"{"a":{"b":[1.5]}}"#).canonicalBytes()
        } throws: { ($0 as! CanonicalJSONError).path == "a.b[0]" }
    }

    @Test func digestsParseAndPrint() throws {
        let digest = SHA256Digest(of: Array("abc".utf8))
        #expect(digest.hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(try SHA256Digest(hex: digest.hex) == digest)
        for bad in ["", "abc", String(repeating: "G", count: 64), digest.hex.uppercased()] {
            #expect(throws: DigestFormatError.self) { try SHA256Digest(hex: bad) }
        }
    }

    @Test func timestampsHaveOneSpelling() throws {
        let t = try Timestamp(parsing: "2026-11-22T03:44:00+02:00")
        #expect(t.description == "2026-11-22T01:44:00Z")
        #expect(try Timestamp(parsing: "2026-11-22T01:44:00.75Z") == Timestamp(parsing: "2026-11-22T01:44:00Z"))
        #expect(throws: TimestampError.self) { try Timestamp(parsing: "yesterday") }
    }
}

@Suite struct IndexShardTests {
    /// What is signed and written is built by hand for speed; it must be exactly what the Codable form decodes to, so no
    /// field can be left out of the signature.
    @Test func handBuiltJSONMatchesTheCodableForm() throws {
        let entry = RegistryIndex.Entry(of: Array("doc".utf8))
        let index = RegistryIndex(version: 7, issued: Timestamp(secondsSince1970: 1_800_000_000), expires: Timestamp(secondsSince1970: 1_800_086_400),
                                  shards: ["3e": entry, "00": RegistryIndex.Entry(of: [])])
        let shard = IndexShard(packages: ["ratelimiting": entry, "xdp-root": entry])
        #expect(index.jsonValue == (try decode(JSONValue.self, String(decoding: JSONEncoder().encode(index), as: UTF8.self))))
        #expect(shard.jsonValue == (try decode(JSONValue.self, String(decoding: JSONEncoder().encode(shard), as: UTF8.self))))
    }

    @Test func aShardListsOnlyItsOwnPackages() throws {
        let id = RegistryIndex.shard(of: "ratelimiting")
        let other = id == "00" ? "01" : "00"
        let bytes = try IndexShard(packages: ["ratelimiting": RegistryIndex.Entry(of: [])]).canonicalBytes()
        #expect(try IndexShard.decode(bytes, id: id).packages.count == 1)
        #expect(throws: DocumentError.self, "a package listed in another shard is refused") { try IndexShard.decode(bytes, id: other) }
    }
}
