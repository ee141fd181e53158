import Foundation
import L3AFModel

/// The registry's publish and read API, over libcurl.
public struct RegistryAPI: Sendable {
    public let baseURL: String
    public let token: String?
    public var http: HTTPClient

    public init(baseURL: String, token: String? = nil, http: HTTPClient = HTTPClient()) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.token = token
        self.http = http
    }

    /// Publishes `tarball` as `name@version`, moving `tag` (or `latest`).
    public func publish(name: PackageName, version: SemanticVersion, tarball: [UInt8], tag: DistTag?) async throws -> PublishReceipt {
        let query = tag.map { "?tag=\($0.rawValue)" } ?? ""
        return try await call("PUT", "/api/v1/packages/\(name)/\(version)\(query)", body: tarball, contentType: "application/gzip")
    }

    public func setYanked(_ yanked: Bool, name: PackageName, version: SemanticVersion) async throws -> [String: String] {
        try await call("POST", "/api/v1/packages/\(name)/\(version)/\(yanked ? "yank" : "unyank")")
    }

    public func distTags(_ name: PackageName) async throws -> [String: String] {
        try await call("GET", "/api/v1/packages/\(name)/dist-tags")
    }

    public func setTag(_ tag: DistTag, name: PackageName, version: SemanticVersion) async throws -> [String: String] {
        try await call("PUT", "/api/v1/packages/\(name)/dist-tags/\(tag)", json: ["version": version.description])
    }

    public func removeTag(_ tag: DistTag, name: PackageName) async throws -> [String: String] {
        try await call("DELETE", "/api/v1/packages/\(name)/dist-tags/\(tag)")
    }

    public func deprecate(name: PackageName, range: VersionRequirement, message: String) async throws -> [String: [String]] {
        try await call("POST", "/api/v1/packages/\(name)/deprecate", json: ["range": range.description, "message": message])
    }

    public func addOwner(_ owner: String, name: PackageName) async throws -> [String: [String]] {
        try await call("PUT", "/api/v1/packages/\(name)/owners/\(owner)")
    }

    public func search(_ query: String) async throws -> [SearchResult] {
        let escaped = query.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        return try await call("GET", "/search?q=\(escaped)")
    }

    /// The package document, unverified (for display; installs verify it against the signed index).
    public func document(_ name: PackageName) async throws -> PackageDocument {
        try await call("GET", "/packages/\(name).json")
    }

    private func call<T: Decodable>(_ method: String, _ path: String, json: [String: String]) async throws -> T {
        try await call(method, path, body: Array(try DocumentDecoder.encode(json)), contentType: "application/json")
    }

    private func call<T: Decodable>(_ method: String, _ path: String, body: [UInt8]? = nil, contentType: String? = nil) async throws -> T {
        var headers: [(String, String)] = [("Accept", "application/json")]
        // Reads go to the static tree, which nginx or a CDN may serve: the token goes only with a change.
        if let token, method != "GET" { headers.append(("Authorization", "Bearer \(token)")) }
        if let contentType { headers.append(("Content-Type", contentType)) }
        let response = try await http.send(HTTPRequest(method: method, url: baseURL + path, headers: headers, body: body))
        guard (200..<300).contains(response.status) else {
            throw RegistryReplyError(status: response.status, body: response.body, url: baseURL + path)
        }
        return try DocumentDecoder.decode(T.self, from: response.body, document: "the registry's reply to \(method) \(path)")
    }
}

/// A 4xx or 5xx from the registry, with its JSON error body.
public struct RegistryReplyError: L3AFError {
    public let status: Int
    public let code: String
    public let message: String
    public let hint: String?

    init(status: Int, body: [UInt8], url: String) {
        self.status = status
        if let decoded = try? JSONDecoder().decode(APIErrorBody.self, from: Data(body)) {
            code = decoded.error.code
            message = decoded.error.message
            hint = decoded.error.hint
        } else {
            code = "http-\(status)"
            message = "\(url) answered HTTP \(status)"
            hint = nil
        }
    }

    public var description: String { "the registry refused (HTTP \(status)): \(message)" }
}
