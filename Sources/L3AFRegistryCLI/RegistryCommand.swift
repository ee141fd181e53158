import ArgumentParser
import L3AFCLISupport
import Foundation
import L3AFModel
import L3AFRegistry
import L3AFSystem
import Logging

/// `l3af-registry`: serves and publishes into a signed, static package tree.
public struct RegistryCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "l3af-registry",
        abstract: "The l3af package registry: a signed static tree any web server can serve, and a publish API.",
        discussion: """
            Layout under --root: tree/ is the static tree (index.json, packages/<name>.json, \
            <name>/<version>/<platform>/<artifact>, dist-tag links); point nginx or a CDN at it to serve reads. \
            private/ holds hashed tokens and owners and is never served.
            """,
        version: L3AFBuild.version,
        subcommands: [KeygenCommand.self, TokenCommand.self, ServeCommand.self, RotateKeyCommand.self]
    )

    public init() {}
}

struct KeygenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen", abstract: "Make an ed25519 signing key; prints the public key clients trust, in base64.")

    @Option(help: "Where to write the private key (mode 0600).")
    var out: String

    @Flag(help: "Replace an existing key file.")
    var force = false

    func run() async throws {
        if FileManager.default.fileExists(atPath: out), !force {
            throw CLIError("key-exists", "\(out) already exists", hint: "pass --force to replace it (clients trusting the old key will refuse the new index)")
        }
        let key = IndexSigningKey()
        // Created 0600 from the first byte (a temporary file renamed into place), never readable by others meanwhile.
        do { try AtomicFile.write(Array((key.base64Seed + "\n").utf8), to: out, mode: 0o600) } catch {
            throw CLIError("unwritable-file", "can't write \(out): \(error)")
        }
        print("wrote the private key to \(out); clients trust this public key (--trusted-key):")
        print(key.publicKey.base64)
    }
}

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Manage publish tokens.", subcommands: [TokenAddCommand.self, TokenListCommand.self, TokenRevokeCommand.self])
}

struct TokenAddCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add", abstract: "Create a publish token; only its hash is stored. Prints the token last.")

    @Option(help: "The registry's root folder.")
    var root: String

    @Option(help: "Who the token publishes as; the first to publish a package becomes its owner.")
    var owner: String

    @Option(help: "Comma-separated package names the token may write, or '*' for any.")
    var packages: String

    func run() async throws {
        let names = packages.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !names.isEmpty else { throw CLIError("no-packages", "--packages names no package", hint: "e.g. --packages 'ratelimiting,xdp-root' or '*'") }
        for name in names where name != "*" { _ = try PackageName(name) }
        guard !owner.isEmpty, owner.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            throw CLIError("invalid-owner", "invalid owner '\(owner)': use letters, digits, '-', '_' and '.'")
        }
        let token = try RegistryStore.addToken(layout: RegistryLayout(root: root), owner: owner, packages: names)
        print("token for \(owner), packages \(names.joined(separator: ", ")) (shown once; only its hash is kept):")
        print(token)
    }
}

struct TokenListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List publish tokens: id, owner, packages, created (never the token).")

    @Option(help: "The registry's root folder.") var root: String
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let tokens = try RegistryStore.listTokens(layout: RegistryLayout(root: root))
        let lines = tokens.map { "\($0.id)  \($0.owner)  \($0.packages.joined(separator: ","))  \($0.created)" }
        try output.emit(tokens, text: tokens.isEmpty ? "no tokens" : (["ID            OWNER  PACKAGES  CREATED"] + lines).joined(separator: "\n"))
    }
}

struct TokenRevokeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke", abstract: "Revoke a publish token by its id (from token list); refused from the next request on.")

    @Option(help: "The registry's root folder.") var root: String
    @Argument(help: "The token's id, or an unambiguous start of it (4 characters or more).") var id: String

    func run() async throws {
        let revoked = try RegistryStore.revokeToken(layout: RegistryLayout(root: root), id: id)
        print("revoked token \(revoked.id) of \(revoked.owner) (packages \(revoked.packages.joined(separator: ", ")))")
    }
}

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Serve the tree and the publish API; stops gracefully on SIGTERM or SIGINT.")

    @Option(help: "The registry's root folder (created if needed).")
    var root: String

    @Option(help: "The private key file from keygen.")
    var key: String

    @Option(help: "Another key file whose key also signs the index (repeatable): the previous key during a rotation's overlap, so clients that trust either accept it (see rotate-key).")
    var alsoSignWith: [String] = []

    @Option(help: "Address to listen on, HOST:PORT (port 0 picks a free one).")
    var listen = "127.0.0.1:8080"

    @Option(help: "Refuse uploads larger than this many bytes.")
    var maxUploadBytes = 64 << 20

    @Option(help: "Uploads received or inspected at once; more get 503 with Retry-After.")
    var maxUploads = 4

    @Option(help: "Open connections at most; more wait to be accepted.")
    var maxConnections = 512

    @Option(help: "Seconds an idle connection is kept open.")
    var idleTimeout = 60

    @Option(help: "How long a signed index is valid, in seconds; it is re-signed when half of that is left.")
    var indexTtl: Int64 = 7 * 86_400

    @Option(help: "How often to check whether the index needs re-signing, in seconds.")
    var refreshInterval = 60

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    @Option(help: "Log format: text, or json (one object per line: time, level, label, message, source, fields).")
    var logFormat: LogFormat = .text

    func run() async throws {
        for (name, value, range) in [("--max-upload-bytes", maxUploadBytes, 1...(1 << 30)), ("--max-uploads", maxUploads, 1...1024),
                                     ("--max-connections", maxConnections, 1...100_000), ("--idle-timeout", idleTimeout, 1...86_400),
                                     ("--refresh-interval", refreshInterval, 1...86_400)] where !range.contains(value) {
            throw CLIError("invalid-option", "\(name) is \(value); it must be \(range.lowerBound) to \(range.upperBound)")
        }
        guard (1...(10 * 365 * 86_400)).contains(indexTtl) else {
            throw CLIError("invalid-option", "--index-ttl is \(indexTtl); it must be 1 to \(10 * 365 * 86_400) seconds")
        }
        let signingKey = try readSigningKey(key).alsoSigning(with: try alsoSignWith.map(readSigningKey))
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else {
            throw CLIError("invalid-listen", "--listen '\(listen)' is not HOST:PORT", hint: "e.g. 127.0.0.1:8080")
        }
        let host = String(listen[..<colon])
        logFormat.bootstrap()
        var logger = Logger(label: "l3af-registry")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        let store = try RegistryStore(layout: RegistryLayout(root: root), key: signingKey, indexLifetimeSeconds: indexTtl, logger: logger)
        let publicKey = signingKey.publicKey.base64
        try await RegistryServer.run(
            store: store, host: host, port: port, maximumUploadBytes: maxUploadBytes, maximumUploads: maxUploads,
            maximumConnections: maxConnections, idleTimeoutSeconds: idleTimeout, refreshIntervalSeconds: refreshInterval,
            logRequests: logger.logLevel <= .info, logger: logger
        ) { bound in
            // Written straight to the descriptor so a supervising process sees it at once.
            FileHandle.standardOutput.write(Data("l3af-registry listening on http://\(host):\(bound) (public key \(publicKey))\n".utf8))
        }
    }
}

/// A signing key from its file, which only its owner may read.
func readSigningKey(_ path: String) throws -> IndexSigningKey {
    guard let seed = FileManager.default.contents(atPath: path) else {
        throw CLIError("unreadable-file", "can't read the key file \(path)", hint: "make one with l3af-registry keygen --out \(path)")
    }
    var info = stat()
    if stat(path, &info) == 0, info.st_mode & 0o077 != 0 {
        throw CLIError("key-exposed", "the signing key \(path) can be read by others (mode \(String(info.st_mode & 0o777, radix: 8)))",
                       hint: "chmod 600 \(path); if others may have read it, make a new key and rotate clients to it")
    }
    return try IndexSigningKey(base64Seed: String(decoding: seed, as: UTF8.self))
}

/// `l3af-registry rotate-key`: the signed statement that moves clients from the current key to a new one.
struct RotateKeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate-key",
        abstract: "Write tree/keys/<n>.json: the new signing key, signed by the current key and the new one.",
        discussion: """
            A rotation in three steps: (1) l3af-registry keygen --out new.key; rotate-key --key current.key \
            --new-key new.key; (2) serve --key new.key --also-sign-with current.key for an overlap window, while \
            clients add the new key to trusted_keys (clients that trust either key accept the index); (3) serve \
            --key new.key alone. A client that still trusts only the old key then finds the index signed by no key \
            it trusts, follows keys/1.json, keys/2.json, … (each signed by a key it trusted before), and trusts the \
            new key from then on.
            """)

    @Option(help: "The registry's root folder.") var root: String
    @Option(help: "The current key file (clients trust it now).") var key: String
    @Option(help: "The new key file (from keygen).") var newKey: String

    func run() async throws {
        let layout = RegistryLayout(root: root)
        let folder = "\(layout.tree)/keys"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let existing = (try? FileManager.default.contentsOfDirectory(atPath: folder))?.compactMap { UInt64($0.replacingOccurrences(of: ".json", with: "")) } ?? []
        let version = (existing.max() ?? 0) + 1
        let current = try readSigningKey(key), next = try readSigningKey(newKey)
        guard current.publicKey != next.publicKey else { throw CLIError("same-key", "--key and --new-key are the same key") }
        let bytes = try KeyRotation.sign(version: version, newKeys: [next], previous: current, issued: Timestamp(Date()))
        try AtomicFile.write(bytes, to: "\(folder)/\(version).json")
        print("wrote \(folder)/\(version).json: from \(current.publicKey) to \(next.publicKey)")
        print("next: serve --key \(newKey) --also-sign-with \(key) during the overlap, then --key \(newKey) alone")
    }
}
