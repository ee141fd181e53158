import Foundation
import L3AFCLISupport
import L3AFClient
import L3AFHost
import L3AFModel

/// `l3af --host URL …`: the same operations, asked of a remote `l3afd` through its `/l3af/v1/` routes (libcurl).
/// The daemon takes the lock, makes the flips and records the revision; its errors come back as they would locally.
struct RemoteHost {
    let url: String

    func call<Reply: Decodable>(_ method: String, _ path: String, _ body: some Encodable = [String: String](), as: Reply.Type) async throws -> Reply {
        let base = url.hasSuffix("/") ? String(url.dropLast()) : url
        let payload = method == "GET" ? nil : Array(try DocumentDecoder.encode(body))
        let response = try await HTTPClient().send(HTTPRequest(
            method: method, url: base + path, headers: payload == nil ? [] : [("Content-Type", "application/json")], body: payload))
        guard (200..<300).contains(response.status) else {
            if let error = try? DocumentDecoder.decode(APIErrorBody.self, from: response.body, document: "l3afd's answer") {
                throw CLIError(error.error.code, error.error.message, hint: error.error.hint)
            }
            throw CLIError("remote-failed", "l3afd at \(base) answered \(response.status) to \(method) \(path)", hint: "check --host")
        }
        return try DocumentDecoder.decode(Reply.self, from: response.body, document: "l3afd's answer to \(path)")
    }
}

