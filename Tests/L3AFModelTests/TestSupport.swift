import Foundation
import L3AFModel

/// The repository's top folder, found from this file's path.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// Decodes `json` as `T`, or throws the model's ``DocumentError``.
func decode<T: Decodable>(_ type: T.Type, _ json: String) throws(DocumentError) -> T {
    try DocumentDecoder.decode(T.self, from: Array(json.utf8), document: "test")
}

/// The error a decode throws, as text; `nil` when it decodes.
func decodeError<T: Decodable>(_ type: T.Type, _ json: String) -> String? {
    do {
        _ = try decode(T.self, json)
        return nil
    } catch {
        return error.description
    }
}
