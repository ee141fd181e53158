import Foundation

/// Decodes the project's JSON documents and turns every failure into a ``DocumentError`` that names
/// the document, the field's path (`bpf_programs.xdp_ingress[0].seq_id`) and what was expected.
public enum DocumentDecoder {
    /// Decodes `T` from `data`; `document` names it in errors ("manifest l3af.json").
    public static func decode<T: Decodable>(
        _ type: T.Type, from data: some DataProtocol, document: String
    ) throws(DocumentError) -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(data))
        } catch let error as DecodingError {
            throw DocumentError(document: document, decodingError: error)
        } catch {
            throw DocumentError(document: document, path: "", problem: "\(error)")
        }
    }

    /// Encodes a document the way the project writes them: sorted keys, pretty, no escaped slashes.
    public static func encode<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return try encoder.encode(value)
    }
}

/// A document that did not decode: which document, where in it, and what was wrong.
public struct DocumentError: L3AFError, Equatable {
    /// What the document is, e.g. `manifest l3af.json`.
    public let document: String
    /// The field path, empty for the document as a whole.
    public let path: String
    public let problem: String

    public init(document: String, path: String, problem: String) {
        self.document = document
        self.path = path
        self.problem = problem
    }

    public var code: String { "invalid-document" }

    public var description: String {
        path.isEmpty ? "\(document): \(problem)" : "\(document): at \(path): \(problem)"
    }

    public init(document: String, decodingError: DecodingError) {
        self.document = document
        switch decodingError {
        case .typeMismatch(let type, let context):
            path = Self.path(context.codingPath)
            problem = "expected \(Self.kind(of: type))" + Self.found(in: context.debugDescription)
        case .valueNotFound(let type, let context):
            path = Self.path(context.codingPath)
            problem = "expected \(Self.kind(of: type)), found null"
        case .keyNotFound(let key, let context):
            path = Self.path(context.codingPath)
            problem = "the required field '\(key.stringValue)' is missing"
        case .dataCorrupted(let context):
            path = Self.path(context.codingPath)
            if context.codingPath.isEmpty, let underlying = context.underlyingError {
                problem = "not valid JSON (\(Self.syntaxMessage(underlying)))"
            } else {
                problem = context.debugDescription
            }
        @unknown default:
            path = ""
            problem = "\(decodingError)"
        }
    }

    static func path(_ codingPath: [any CodingKey]) -> String {
        var text = ""
        for key in codingPath {
            if let index = key.intValue, key.stringValue.hasPrefix("Index ") || key.stringValue == String(index) {
                text += "[\(index)]"
            } else {
                text += text.isEmpty ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return text
    }

    static func kind(of type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "true or false"
        case is Int.Type, is Int64.Type, is Int32.Type, is UInt32.Type, is UInt64.Type, is UInt16.Type, is UInt8.Type:
            "an integer"
        case is Double.Type, is Float.Type: "a number"
        default:
            String(describing: type).hasPrefix("Array") ? "an array" :
                (String(describing: type).hasPrefix("Dictionary") ? "an object" : "\(type)")
        }
    }

    private static func found(in description: String) -> String {
        guard let range = description.range(of: "but found ") else { return "" }
        let rest = description[range.upperBound...]
        let end = rest.range(of: " instead")?.lowerBound ?? rest.endIndex
        // Foundation says "a string", "number", "bool", "a dictionary"; say it in JSON's words.
        let found = switch rest[..<end].replacingOccurrences(of: "a ", with: "").replacingOccurrences(of: "an ", with: "") {
        case "number": "a number"
        case "bool", "boolean": "true or false"
        case "string": "a string"
        case "dictionary", "object": "an object"
        case "array": "an array"
        case "null": "null"
        case let other: other
        }
        return ", found \(found)"
    }

    private static func syntaxMessage(_ error: any Error) -> String {
        let text = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)"
        return text.isEmpty ? "syntax error" : text
    }
}
