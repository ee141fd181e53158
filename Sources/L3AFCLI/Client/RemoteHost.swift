import Foundation
import L3AFCLISupport
import L3AFClient
import L3AFHost
import L3AFModel

/// `l3af --host URL …`: the same operations, asked of a remote `l3afd` through its `/l3af/v1/` routes (libcurl).
/// The daemon takes the lock, makes the flips and records the revision; its errors come back as they would locally.
/// It reaches the daemon however the daemon demands: `unix:/path` for its local socket, `https://` with a CA and a
/// client certificate for mTLS, a bearer token.
struct RemoteHost: HostClient {
    /// The URL requests are made against (`http://localhost` for a Unix socket).
    let base: String
    let token: String?
    let endpoint: HTTPRequest.Endpoint
    /// How long a refused connection is tried again: l3afd refuses connections for a moment while it restarts, and a
    /// request whose connection was refused was never taken, so sending it again can't do it twice.
    var connectWaitSeconds: Double = 10

    init(address: String, token: String?, caCertificate: String?, clientCertificate: String?, clientKey: String?) throws {
        var endpoint = HTTPRequest.Endpoint(caCertificate: caCertificate, clientCertificate: clientCertificate, clientKey: clientKey)
        if address.hasPrefix("unix:") {
            let path = String(address.dropFirst(5))
            guard path.hasPrefix("/") else {
                throw CLIError("invalid-host", "--host '\(address)' names no socket path", hint: "e.g. unix:/run/l3afd/l3afd.sock")
            }
            endpoint.unixSocket = path
            base = "http://localhost"
        } else {
            guard address.hasPrefix("http://") || address.hasPrefix("https://") else {
                throw CLIError("invalid-host", "--host '\(address)' is not an http(s) URL or unix:/path", hint: "e.g. https://node1:7080 or unix:/run/l3afd/l3afd.sock")
            }
            base = address.hasSuffix("/") ? String(address.dropLast()) : address
        }
        if (clientCertificate == nil) != (clientKey == nil) {
            throw CLIError("invalid-tls", "--cert and --key go together", hint: "give both for mTLS")
        }
        self.token = token
        self.endpoint = endpoint
    }

    func send<Operation: HostOperation>(_ operation: Operation) async throws -> Operation.Reply {
        var path = Operation.path
        let query = operation.query.sorted { $0.key < $1.key }
        if !query.isEmpty {
            var allowed = CharacterSet.urlQueryAllowed
            allowed.remove(charactersIn: "&=+?")
            path += "?" + query.map { "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: allowed) ?? $0.value)" }.joined(separator: "&")
        }
        return try await call(Operation.method, path, operation, as: Operation.Reply.self)
    }

    func plan<Operation: HostOperation>(_ operation: Operation) async throws -> ChangePlan {
        try await call(Operation.method, Operation.path + "?dry_run=true", operation, as: ChangePlan.self)
    }

    func call<Reply: Decodable>(_ method: String, _ path: String, _ body: some Encodable = [String: String](), as: Reply.Type) async throws -> Reply {
        let payload = method == "GET" ? nil : Array(try DocumentDecoder.encode(body))
        var headers: [(String, String)] = payload == nil ? [] : [("Content-Type", "application/json")]
        if let token { headers.append(("Authorization", "Bearer \(token)")) }
        let request = HTTPRequest(method: method, url: base + path, headers: headers, body: payload, endpoint: endpoint)
        let response = try await Self.send(request, waiting: connectWaitSeconds)
        guard (200..<300).contains(response.status) else {
            if let error = try? DocumentDecoder.decode(APIErrorBody.self, from: response.body, document: "l3afd's answer") {
                throw CLIError(error.error.code, error.error.message, hint: error.error.hint)
            }
            throw CLIError("remote-failed", "l3afd at \(base) answered \(response.status) to \(method) \(path)", hint: "check --host")
        }
        return try DocumentDecoder.decode(Reply.self, from: response.body, document: "l3afd's answer to \(path)")
    }

    /// `request`, sent again every 200 ms while its connection is refused, for `seconds` at most.
    static func send(_ request: HTTPRequest, waiting seconds: Double) async throws -> HTTPResponse {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            do { return try await HTTPClient().send(request) } catch {
                guard (error as? TransportError)?.code == "connect-failed", Date() < deadline else { throw error }
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }
}
