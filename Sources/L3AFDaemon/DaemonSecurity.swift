import Foundation
import Glibc
import HTTPTypes
import Hummingbird
import L3AFHost
import L3AFModel
import L3AFSystem
import NIOCore
import NIOSSL

/// The request context of l3afd's API: Hummingbird's, plus the connection, so the guard can read the caller's
/// Unix credentials (SO_PEERCRED) and TLS certificate.
struct DaemonContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// Who may use the API, checked on every request before any route runs (see the README's Security section):
/// - writes (`POST`/`PUT`/`DELETE`) take only `Content-Type: application/json`, so a web page can't send one without
///   a CORS preflight (a `text/plain` form post needs none);
/// - the `Host` header must name this daemon (an IP literal, `localhost`, its host name, or an `allowed_hosts`
///   name), so a page on a rebinding DNS name can't reach it through the browser;
/// - with a token file, `Authorization: Bearer` must carry that token (constant-time compare);
/// - with mTLS and `san_match_rules`, the client certificate must have a SAN matching one rule.
/// `/metrics` and `/healthz` are exempt from the token and SAN rules (scrapers and probes), not from the Host check.
/// The caller (a Unix socket's uid, a certificate's SAN, `token`) becomes the actor of any revision it makes.
struct DaemonGuard: RouterMiddleware {
    typealias Context = DaemonContext

    let policy: AccessPolicy

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let unix = context.channel.localAddress?.protocol == .unix
        if !unix, let problem = policy.hostProblem(request.head.authority) {
            throw AccessError(.forbidden, "host-not-allowed", problem, hint: "address l3afd by IP, localhost or its host name, or add the name to allowed_hosts")
        }
        if ![.get, .head].contains(request.method) {
            let type = request.headers[.contentType]?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard type == "application/json" else {
                throw AccessError(.unsupportedMediaType, "json-required", "\(request.method) \(request.uri.path) takes Content-Type: application/json, not \(request.headers[.contentType].map { "'\($0)'" } ?? "none")",
                                hint: "send the payload as JSON with Content-Type: application/json")
            }
        }
        let open = ["/metrics", "/healthz"].contains(request.uri.path)
        var actor: String?
        if unix, let uid = await Self.peerUID(context.channel) {
            actor = "uid \(uid)" + (Self.userName(uid).map { " (\($0))" } ?? "")
        }
        if !policy.sanRules.isEmpty, !open, let names = await Self.peerNames(context.channel) {
            guard let matched = policy.matchingSAN(names) else {
                throw AccessError(.forbidden, "certificate-not-allowed", "the client certificate's names (\(names.isEmpty ? "none" : names.joined(separator: ", "))) match no san_match_rules entry",
                                hint: "issue the client a certificate whose SAN matches a rule, or add a rule")
            }
            actor = actor ?? "cert \(matched)"
        }
        if let token = policy.token, !open {
            guard let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer "),
                  Self.constantTimeEqual(Array(header.dropFirst(7).trimmingCharacters(in: .whitespaces).utf8), Array(token.utf8))
            else {
                throw AccessError(.unauthorized, "token-required", "this l3afd needs a bearer token", hint: "pass --token (l3af) or Authorization: Bearer <token>")
            }
            actor = actor ?? "token"
        }
        guard let actor else { return try await next(request, context) }
        RequestActor.name(actor)
        return try await HostManager.$requestActor.withValue(actor) { try await next(request, context) }
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }

    /// The connecting process's uid on a Unix socket (SO_PEERCRED), or `nil`.
    static func peerUID(_ channel: any Channel) async -> uid_t? {
        guard let provider = channel as? any SocketOptionProvider else { return nil }
        let credentials: PeerCredentials? = try? await provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED)).get()
        return credentials.map(\.uid)
    }

    /// `struct ucred` of socket(7) (pid, uid, gid: three 32-bit fields, in that order); glibc declares it only under
    /// _GNU_SOURCE, so it is spelled out here with the same layout.
    struct PeerCredentials: Sendable {
        var pid: Int32
        var uid: UInt32
        var gid: UInt32
    }

    static func userName(_ uid: uid_t) -> String? {
        guard let entry = getpwuid(uid), let name = entry.pointee.pw_name else { return nil }
        return String(cString: name)
    }

    /// The subject alternative names of the client's certificate (DNS, email, URI, IP), or `nil` without TLS.
    static func peerNames(_ channel: any Channel) async -> [String]? {
        let names: [String]?? = try? await channel.eventLoop.submit { () -> [String]? in
            guard let handler = try? channel.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self) else { return nil }
            guard let certificate = handler.peerCertificate else { return [] }
            return certificate._subjectAlternativeNames().compactMap { name -> String? in
                switch name.nameType {
                case .dnsName, .email, .uri: return String(decoding: name.contents, as: UTF8.self)
                case .ipAddress: return ipText(Array(name.contents))
                default: return nil
                }
            }
        }.get()
        return names ?? nil
    }

    static func ipText(_ bytes: [UInt8]) -> String? {
        let family: Int32 = bytes.count == 4 ? AF_INET : bytes.count == 16 ? AF_INET6 : -1
        guard family != -1 else { return nil }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        return bytes.withUnsafeBytes { raw in inet_ntop(family, raw.baseAddress, &text, socklen_t(text.count)) }.map { _ in String(cString: text) }
    }
}

/// What the guard enforces, from the configuration.
struct AccessPolicy: Sendable {
    /// Names the `Host` header may carry besides IP literals and `localhost`.
    var hostNames: Set<String>
    var token: String?
    /// Literals and regular expressions a client certificate's SAN must match (one is enough).
    let sanRules: [String]
    /// The rules compiled once (`nil` where a rule is not a valid expression: it then matches only as a literal).
    private let patterns: SANPatterns

    init(hostNames: Set<String>, token: String?, sanRules: [String]) {
        self.hostNames = hostNames
        self.token = token
        self.sanRules = sanRules
        patterns = SANPatterns(sanRules)
    }

    /// Why `header` doesn't name this daemon, or `nil` when it does.
    func hostProblem(_ header: String?) -> String? {
        guard let header, !header.isEmpty else { return "the request has no Host header" }
        var host = header
        if host.hasPrefix("["), let end = host.firstIndex(of: "]") {
            host = String(host[host.index(after: host.startIndex)..<end])
        } else if let colon = host.lastIndex(of: ":"), host.filter({ $0 == ":" }).count == 1 {
            host = String(host[..<colon])
        }
        host = host.lowercased()
        if host == "localhost" || Self.isIPLiteral(host) || hostNames.contains(host) { return nil }
        return "the Host header '\(header)' does not name this l3afd"
    }

    static func isIPLiteral(_ text: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }

    /// The first name matching a rule, or `nil`. A rule matches a name equal to it, or, read as a regular expression,
    /// matching the whole name.
    func matchingSAN(_ names: [String]) -> String? {
        for name in names {
            for (rule, regex) in zip(sanRules, patterns.compiled) {
                if rule == name { return name }
                if let regex, (try? regex.wholeMatch(in: name)) != nil { return name }
            }
        }
        return nil
    }
}

/// The SAN rules as regular expressions, compiled once when the daemon starts.
final class SANPatterns: @unchecked Sendable {  // immutable after init; Regex<AnyRegexOutput> is not declared Sendable
    let compiled: [Regex<AnyRegexOutput>?]

    init(_ rules: [String]) { compiled = rules.map { try? Regex($0) } }
}

/// A request refused before it reached a route: who is asking, or how, is not allowed.
struct AccessError: HTTPStatusError {
    let status: HTTPResponse.Status
    var httpStatus: Int { status.code }
    let code: String
    let description: String
    let hint: String?

    init(_ status: HTTPResponse.Status, _ code: String, _ description: String, hint: String? = nil) {
        self.status = status
        self.code = code
        self.description = description
        self.hint = hint
    }
}
