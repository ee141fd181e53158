import Foundation
import L3AFModel
import L3AFSystem

/// One publish token as stored: only its SHA-256, never the token.
struct TokenRecord: Codable, Sendable, Equatable {
    var id: String
    var owner: String
    /// Package names the token may write, or `*` for any.
    var packages: [String]
    var sha256: SHA256Digest
    var created: Timestamp

    func covers(_ name: PackageName) -> Bool { packages.contains("*") || packages.contains(name.rawValue) }
}

/// Tokens and package owners, kept in the registry's private folder and re-read when another process
/// (`l3af-registry token add`) changes them. Owners are kept per package (`owners/<name>.json`), so a write reads
/// and writes the owners of its one package, however many packages there are.
struct Credentials: Sendable {
    var tokens: [TokenRecord] = []
    /// Package → owners, for the package it was loaded for.
    var owners: [PackageName: [String]] = [:]

    struct TokensFile: Codable { var tokens: [TokenRecord] }

    /// The tokens, and the owners of `name` when one is given.
    static func load(_ layout: RegistryLayout, for name: PackageName? = nil) throws(RegistryError) -> Credentials {
        var credentials = Credentials()
        do {
            if let bytes = RegistryFiles.read(layout.tokensFile) {
                credentials.tokens = try JSONDecoder().decode(TokensFile.self, from: Data(bytes)).tokens
            }
            if let name, let bytes = RegistryFiles.read(layout.ownersFile(name)) {
                credentials.owners[name] = try JSONDecoder().decode([String].self, from: Data(bytes))
            }
        } catch {
            throw RegistryError(.internalFailure, "credentials-unreadable", "the registry's private files can't be read: \(error)")
        }
        return credentials
    }

    func saveTokens(_ layout: RegistryLayout) throws(RegistryError) {
        try RegistryFiles.write(Array(try! DocumentDecoder.encode(TokensFile(tokens: tokens))), to: layout.tokensFile, mode: 0o600)
    }

    /// Writes the owners of every package this holds.
    func saveOwners(_ layout: RegistryLayout) throws(RegistryError) {
        for (name, list) in owners {
            let bytes: Data
            do { bytes = try DocumentDecoder.encode(list) } catch {
                throw RegistryError(.internalFailure, "encoding-failed", "encoding the owners of \(name) failed: \(error)")
            }
            try RegistryFiles.write(Array(bytes), to: layout.ownersFile(name), mode: 0o600)
        }
    }

    /// Splits the single `owners.json` of registries written before owners were kept per package; under the writer lock.
    static func splitOwnersFile(_ layout: RegistryLayout) throws(RegistryError) {
        guard let bytes = RegistryFiles.read(layout.legacyOwnersFile) else { return }
        let all: [String: [String]]
        do { all = try JSONDecoder().decode([String: [String]].self, from: Data(bytes)) } catch {
            throw RegistryError(.internalFailure, "credentials-unreadable", "\(layout.legacyOwnersFile) can't be read: \(error)")
        }
        var credentials = Credentials()
        for (name, list) in all { if let name = try? PackageName(name) { credentials.owners[name] = list } }
        try credentials.saveOwners(layout)
        unlink(layout.legacyOwnersFile)
    }

    /// The record of a presented token, or 401.
    func authenticate(_ token: String?) throws(RegistryError) -> TokenRecord {
        guard let token, !token.isEmpty else {
            throw RegistryError(.unauthorized, "token-missing", "this request needs a publish token",
                                hint: "pass --token (l3af-registry token add prints one)")
        }
        let digest = SHA256Digest(of: Array(token.utf8))
        guard let record = tokens.first(where: { $0.sha256 == digest }) else {
            throw RegistryError(.unauthorized, "token-invalid", "the publish token is not known to this registry",
                                hint: "check the token, or ask the registry's operator for a new one")
        }
        RequestActor.name("\(record.owner) (token \(record.id))")
        return record
    }

    /// Checks that `record` may write `name`: the token's scope covers it and, once the package exists,
    /// the token's owner is one of its owners.
    func authorize(_ record: TokenRecord, for name: PackageName) throws(RegistryError) {
        guard record.covers(name) else {
            throw RegistryError(.forbidden, "token-scope", "the token of \(record.owner) does not cover the package '\(name)'",
                                hint: "use a token whose --packages include \(name)")
        }
        if let owners = owners[name], !owners.contains(record.owner) {
            throw RegistryError(.forbidden, "not-an-owner", "\(record.owner) is not an owner of '\(name)' (owners: \(owners.joined(separator: ", ")))",
                                hint: "an owner can add you: l3af owner add \(name) \(record.owner)")
        }
    }

    /// Removes the token whose id is `id` (or starts with it, when that is unambiguous); returns the removed record.
    mutating func revokeToken(_ id: String) throws(RegistryError) -> TokenRecord {
        let matching = tokens.filter { $0.id == id } + (id.count >= 4 ? tokens.filter { $0.id != id && $0.id.hasPrefix(id) } : [])
        guard matching.count == 1, let record = matching.first else {
            throw RegistryError(.notFound, matching.isEmpty ? "no-such-token" : "ambiguous-token",
                                matching.isEmpty ? "no token has the id '\(id)'" : "'\(id)' is the start of \(matching.count) token ids",
                                hint: "l3af-registry token list shows the ids")
        }
        tokens.removeAll { $0.id == record.id }
        return record
    }

    /// Makes a new random token for `owner`, stores its hash, and returns the token.
    mutating func addToken(owner: String, packages: [String], now: Timestamp) -> String {
        var random = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &random) }
        let token = "l3af_" + SHA256Digest(of: bytes).hex.prefix(48)
        let id = String(SHA256Digest(of: Array(token.utf8)).hex.prefix(12))
        tokens.append(TokenRecord(id: id, owner: owner, packages: packages, sha256: SHA256Digest(of: Array(token.utf8)), created: now))
        return token
    }
}
