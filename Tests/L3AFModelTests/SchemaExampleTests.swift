import Foundation
import Testing
@testable import L3AFModel

/// Every example beside a schema is checked against the schema and against the Swift decoder, and
/// both must agree: valid examples pass both, invalid ones fail both.
@Suite struct SchemaExampleTests {
    struct Example: CustomTestStringConvertible, Sendable {
        let schema: String
        let valid: Bool
        let file: URL
        var testDescription: String { "\(schema)/\(valid ? "valid" : "invalid")/\(file.lastPathComponent)" }
    }

    static let schemaNames = ["manifest", "package", "index", "index-shard", "l3af-bpf-programs", "l3af-bpf-program-names"]

    static let examples: [Example] = schemaNames.flatMap { schema in
        [true, false].flatMap { valid in
            let folder = repositoryRoot.appending(path: "schemas/examples/\(schema)/\(valid ? "valid" : "invalid")")
            let files = (try? FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)) ?? []
            return files.filter { $0.pathExtension == "json" }.sorted { $0.path < $1.path }
                .map { Example(schema: schema, valid: valid, file: $0) }
        }
    }

    /// What the Swift side says of a document: `nil` when it accepts it, else the error.
    static func swiftDecoderError(schema: String, data: Data) -> String? {
        do {
            switch schema {
            case "manifest": _ = try DocumentDecoder.decode(Manifest.self, from: data, document: schema)
            case "package": _ = try DocumentDecoder.decode(PackageDocument.self, from: data, document: schema)
            case "index": _ = try DocumentDecoder.decode(SignedIndexEnvelope.self, from: data, document: schema)
            case "index-shard": _ = try DocumentDecoder.decode(IndexShard.self, from: data, document: schema)
            case "l3af-bpf-programs":
                let payload = try DocumentDecoder.decode([L3afBPFPrograms].self, from: data, document: schema)
                if let problem = payload.flatMap({ $0.problems() }).first { return problem.description }
            case "l3af-bpf-program-names": _ = try DocumentDecoder.decode(L3afBPFProgramNames.self, from: data, document: schema)
            default: return "no decoder for \(schema)"
            }
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func everySchemaHasValidAndInvalidExamples() {
        for schema in Self.schemaNames {
            #expect(Self.examples.contains { $0.schema == schema && $0.valid }, "\(schema) has valid examples")
            #expect(Self.examples.contains { $0.schema == schema && !$0.valid }, "\(schema) has invalid examples")
        }
        #expect(Self.examples.count >= 40)
    }

    @Test(arguments: examples)
    func schemaAndDecoderAgree(_ example: Example) throws {
        let schema = try JSONSchema(data: try Data(contentsOf: repositoryRoot.appending(path: "schemas/\(example.schema).schema.json")))
        let data = try Data(contentsOf: example.file)
        let violations = schema.violations(of: try JSONDecoder().decode(JSONValue.self, from: data))
        let decoderError = Self.swiftDecoderError(schema: example.schema, data: data)
        if example.valid {
            #expect(violations.isEmpty, "schema: \(violations)")
            #expect(decoderError == nil, "decoder: \(decoderError ?? "")")
        } else {
            #expect(!violations.isEmpty, "the schema accepts an invalid example")
            #expect(decoderError != nil, "the decoder accepts an invalid example")
        }
    }

    @Test func validatorRefusesKeywordsItDoesNotCheck() throws {
        #expect(throws: SchemaError.self) { try JSONSchema(decode(JSONValue.self, #"{"type":"object","dependentRequired":{}}"#)) }
        #expect(throws: SchemaError.self) { try JSONSchema(decode(JSONValue.self, #"{"properties":{"a":{"multipleOf":2}}}"#)) }
    }

    @Test func validatorReportsPathsAndReasons() throws {
        let schema = try JSONSchema(decode(JSONValue.self, """
            {"type":"object","required":["a"],"additionalProperties":false,
             "properties":{"a":{"type":"array","items":{"type":"integer","minimum":1}},"b":{"enum":["x","y"]}}}
            """))
        let violations = schema.violations(of: try decode(JSONValue.self, #"{"a":[1,0,"s"],"b":"z","c":1}"#)).map(\.description)
        #expect(violations == [
            "a[1]: is below the minimum 1.0", "a[2]: expected integer, found string",
            #"b: "z" is not one of "x", "y""#, "c: is not a known field",
        ])
        #expect(schema.violations(of: .object([:])).map(\.description) == ["(top level): the required field 'a' is missing"])
    }
}
