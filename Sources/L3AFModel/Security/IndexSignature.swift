import Crypto
import Foundation

/// An ed25519 public key that signs registry indexes, as `l3af-registry keygen` prints it: the 32
/// raw bytes in base64.
public struct TrustedKey: Hashable, Sendable, CustomStringConvertible {
    let key: Curve25519.Signing.PublicKey
    /// The key's raw 32 bytes.
    public let rawRepresentation: [UInt8]

    /// Parses the base64 text of a raw ed25519 public key.
    public init(base64: String) throws(KeyFormatError) {
        guard let data = Data(base64Encoded: base64.trimmingASCIISpaces()), data.count == 32,
            let key = try? Curve25519.Signing.PublicKey(rawRepresentation: data)
        else { throw KeyFormatError(text: base64) }
        self.key = key
        self.rawRepresentation = Array(data)
    }

    init(_ key: Curve25519.Signing.PublicKey) {
        self.key = key
        self.rawRepresentation = Array(key.rawRepresentation)
    }

    /// The key's id in signatures: the SHA-256 of its raw bytes, in hex.
    public var keyID: String { SHA256Digest(of: rawRepresentation).hex }

    /// The base64 text of the raw key.
    public var base64: String { Data(rawRepresentation).base64EncodedString() }

    public var description: String { base64 }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.rawRepresentation == rhs.rawRepresentation }
    public func hash(into hasher: inout Hasher) { hasher.combine(rawRepresentation) }
}

/// The private half that a registry signs with. Never printed or logged.
public struct IndexSigningKey: Sendable {
    let key: Curve25519.Signing.PrivateKey
    /// Keys that sign beside this one: the previous key during a rotation's overlap, so clients that trust either
    /// accept the index.
    var companions: [Curve25519.Signing.PrivateKey] = []

    /// A new random key.
    public init() { key = Curve25519.Signing.PrivateKey() }

    /// This key, with `others` also signing everything it signs (a rotation's overlap window).
    public func alsoSigning(with others: [IndexSigningKey]) -> IndexSigningKey {
        var copy = self
        copy.companions += others.map(\.key)
        return copy
    }

    /// A key from its 32-byte seed, as stored in the registry's key file (base64).
    public init(base64Seed: String) throws(KeyFormatError) {
        guard let data = Data(base64Encoded: base64Seed.trimmingASCIISpaces()), data.count == 32,
            let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: data)
        else { throw KeyFormatError(text: "(private key)") }
        self.key = key
    }

    /// The seed in base64, for the key file.
    public var base64Seed: String { key.rawRepresentation.base64EncodedString() }

    /// The public key clients trust.
    public var publicKey: TrustedKey { TrustedKey(key.publicKey) }

    /// Signs `index` and returns the bytes of `index.json`:
    /// `{"signatures":[{"keyid":…,"sig":…}],"signed":{…}}` in canonical form.
    public func sign(_ index: RegistryIndex) throws -> [UInt8] {
        try envelope(index.jsonValue.canonicalBytes())
    }

    /// `{"signatures":[…],"signed":…}` around `message` (canonical JSON), signed by this key and its companions.
    func envelope(_ message: [UInt8]) throws -> [UInt8] {
        // The signed part is written once: the envelope's keys in canonical order are "signatures" then "signed", so
        // its bytes are the message spliced in.
        let signatures = try ([key] + companions).map { signer in
            JSONValue.object(["keyid": .string(TrustedKey(signer.publicKey).keyID), "sig": .string(try signer.signature(for: message).base64EncodedString())])
        }
        return Array(#"{"signatures":"#.utf8) + (try JSONValue.array(signatures).canonicalBytes()) + Array(#","signed":"#.utf8) + message + [UInt8(ascii: "}")]
    }
}

/// `keys/<version>.json` in a registry's tree: the keys that sign its index from this rotation on. Signed by at least
/// one key trusted before it (the chain a client follows, as TUF rotates its root) and by every key it names (proof
/// that the registry holds them). A client whose trusted keys sign no index follows the rotations it hasn't seen,
/// in order, and trusts the keys of the last one.
public struct KeyRotation: Hashable, Sendable {
    public static let type = "l3af-key-rotation"
    public var version: UInt64
    public var keys: [TrustedKey]
    public var issued: Timestamp

    public init(version: UInt64, keys: [TrustedKey], issued: Timestamp) {
        self.version = version
        self.keys = keys
        self.issued = issued
    }

    var jsonValue: JSONValue {
        .object(["type": .string(Self.type), "version": .integer(Int64(version)), "keys": .array(keys.map { .string($0.base64) }),
                 "issued": .string(issued.description)])
    }

    /// The bytes of `keys/<version>.json`: signed by `previous` (a key clients trust now) and by every new key.
    public static func sign(version: UInt64, newKeys: [IndexSigningKey], previous: IndexSigningKey, issued: Timestamp) throws -> [UInt8] {
        let rotation = KeyRotation(version: version, keys: newKeys.map(\.publicKey), issued: issued)
        return try previous.alsoSigning(with: newKeys).envelope(rotation.jsonValue.canonicalBytes())
    }

    /// Checks `bytes` as rotation number `version` after `trusted`; returns it.
    public static func verify(_ bytes: some DataProtocol, version: UInt64, trusted: [TrustedKey]) throws(IndexVerificationError) -> KeyRotation {
        let (signed, _, _) = try IndexVerifier(trustedKeys: trusted).checkSignatures(bytes)
        guard case .string(Self.type)? = signed["type"], case .integer(let number)? = signed["version"], number == Int64(version),
              case .array(let listed)? = signed["keys"], !listed.isEmpty, case .string(let issuedText)? = signed["issued"],
              let issued = try? Timestamp(parsing: issuedText)
        else { throw IndexVerificationError(.malformed("keys/\(version).json is not key rotation \(version)")) }
        var keys: [TrustedKey] = []
        for item in listed {
            guard case .string(let text) = item, let key = try? TrustedKey(base64: text) else {
                throw IndexVerificationError(.malformed("keys/\(version).json lists a key that is not an ed25519 key"))
            }
            keys.append(key)
        }
        // Every new key must have signed it too.
        let (_, _, byNew) = try IndexVerifier(trustedKeys: keys).checkSignatures(bytes)
        guard Set(byNew) == Set(keys.map(\.keyID)) else {
            throw IndexVerificationError(.malformed("keys/\(version).json is not signed by every key it names"))
        }
        return KeyRotation(version: version, keys: keys, issued: issued)
    }
}

/// Checks `index.json` before anything in it is believed: a valid signature by a trusted key, not
/// expired, and not older than the last index this host accepted.
public struct IndexVerifier: Sendable {
    public let trustedKeys: [TrustedKey]

    public init(trustedKeys: [TrustedKey]) { self.trustedKeys = trustedKeys }

    /// Verifies `bytes` at time `now`. `lastAcceptedVersion` is the highest index version this host
    /// has accepted from this registry, if any; an equal version is accepted (a re-fetch).
    public func verify(
        _ bytes: some DataProtocol, now: Timestamp, lastAcceptedVersion: UInt64? = nil
    ) throws(IndexVerificationError) -> RegistryIndex {
        try verifyWithKey(bytes, now: now, lastAcceptedVersion: { _ in lastAcceptedVersion }).index
    }

    /// Verifies `bytes` and also says which trusted key signed it. `lastAcceptedVersion` is asked with
    /// that key's id, so rollback protection follows the registry's key, whatever URL or mirror served it.
    public func verifyWithKey(
        _ bytes: some DataProtocol, now: Timestamp, lastAcceptedVersion: (String) -> UInt64?
    ) throws(IndexVerificationError) -> (index: RegistryIndex, keyID: String) {
        let (_, message, verifiedBy) = try checkSignatures(bytes)
        let index: RegistryIndex
        do {
            index = try DocumentDecoder.decode(RegistryIndex.self, from: message, document: "index.json")
        } catch {
            throw IndexVerificationError(.malformed(error.description))
        }
        if now >= index.expires { throw IndexVerificationError(.expired(index.expires, now: now)) }
        let keyID = verifiedBy[0]
        if let last = lastAcceptedVersion(keyID), index.version < last {
            throw IndexVerificationError(.rollback(version: index.version, lastAccepted: last))
        }
        return (index, keyID)
    }

    /// The `signed` member of an envelope and the trusted keys whose signatures over it verify (at least one): a
    /// signature by a trusted key that doesn't verify is an error, signatures by other keys are passed over.
    func checkSignatures(_ bytes: some DataProtocol) throws(IndexVerificationError) -> (signed: JSONValue, message: [UInt8], verifiedBy: [String]) {
        guard !trustedKeys.isEmpty else { throw IndexVerificationError(.noTrustedKeys) }
        let envelope: JSONValue
        do {
            envelope = try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
        } catch {
            throw IndexVerificationError(.malformed("it is not JSON"))
        }
        guard let signed = envelope["signed"], case .object = signed else {
            throw IndexVerificationError(.malformed("it has no 'signed' object"))
        }
        guard case .array(let signatures)? = envelope["signatures"] else {
            throw IndexVerificationError(.malformed("it has no 'signatures' array"))
        }
        let message: [UInt8]
        do {
            message = try signed.canonicalBytes()
        } catch {
            throw IndexVerificationError(.malformed(error.description))
        }
        var seenKeyIDs: [String] = []
        var verifiedBy: [String] = []
        for signature in signatures {
            guard case .string(let keyID)? = signature["keyid"], case .string(let sig)? = signature["sig"] else {
                throw IndexVerificationError(.malformed("a signature lacks 'keyid' or 'sig'"))
            }
            seenKeyIDs.append(keyID)
            guard let trusted = trustedKeys.first(where: { $0.keyID == keyID }) else { continue }
            guard let sigBytes = Data(base64Encoded: sig), trusted.key.isValidSignature(sigBytes, for: message) else {
                throw IndexVerificationError(.badSignature(keyID: keyID))
            }
            verifiedBy.append(keyID)
        }
        guard !verifiedBy.isEmpty else { throw IndexVerificationError(.untrusted(keyIDs: seenKeyIDs)) }
        return (signed, message, verifiedBy)
    }
}

/// The shape of `index.json`, decoded without verifying it (verifying needs trusted keys: use
/// ``IndexVerifier``). For tools that inspect an index.
public struct SignedIndexEnvelope: Hashable, Sendable, Decodable {
    /// One signature over the canonical JSON of `signed`.
    public struct Signature: Hashable, Sendable, Codable {
        /// The SHA-256 of the signing key's raw bytes.
        public let keyid: SHA256Digest
        /// The ed25519 signature in base64.
        public let sig: String
    }

    public let signed: RegistryIndex
    public let signatures: [Signature]
}

/// Text that is not a base64 ed25519 key.
public struct KeyFormatError: L3AFError, Equatable {
    public let text: String
    public var code: String { "invalid-key" }
    public var description: String {
        "'\(text.prefix(60))' is not an ed25519 key: expected 32 bytes in base64 (as `l3af-registry keygen` prints)"
    }
}

/// Why an index was not believed.
public struct IndexVerificationError: L3AFError, Equatable {
    public enum Reason: Hashable, Sendable {
        case noTrustedKeys
        case malformed(String)
        case untrusted(keyIDs: [String])
        case badSignature(keyID: String)
        case expired(Timestamp, now: Timestamp)
        case rollback(version: UInt64, lastAccepted: UInt64)
    }

    public let reason: Reason
    public init(_ reason: Reason) { self.reason = reason }

    public var code: String {
        switch reason {
        case .noTrustedKeys: "no-trusted-keys"
        case .malformed: "index-malformed"
        case .untrusted: "index-untrusted"
        case .badSignature: "index-bad-signature"
        case .expired: "index-expired"
        case .rollback: "index-rollback"
        }
    }

    public var description: String {
        switch reason {
        case .noTrustedKeys:
            "no trusted registry keys are configured, so the index can't be verified"
        case .malformed(let problem):
            "the registry index is malformed: \(problem)"
        case .untrusted(let ids):
            "the registry index is signed by no trusted key (signed by: \(ids.isEmpty ? "nobody" : ids.map { String($0.prefix(16)) }.joined(separator: ", ")))"
        case .badSignature(let id):
            "the registry index signature by key \(id.prefix(16)) does not verify: the index was altered or corrupted"
        case .expired(let expires, let now):
            "the registry index expired at \(expires) (now \(now)): the registry may be frozen or serving stale data"
        case .rollback(let version, let last):
            "the registry index is version \(version), older than version \(last) already accepted here: refusing a rollback"
        }
    }

    public var hint: String? {
        switch reason {
        case .noTrustedKeys, .untrusted:
            "pass the registry's public key with --trusted-key (l3af-registry keygen prints it)"
        case .badSignature, .malformed:
            "fetch again; if it persists, the registry or something between you and it is serving bad data"
        case .expired:
            "the registry refreshes its index before it expires; check that it is running and that this host's clock is right"
        case .rollback:
            "something is serving an old copy of the registry (a stale mirror or cache); point at the live registry"
        }
    }
}
