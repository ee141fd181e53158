import Foundation

/// A JSON Schema (draft 2020-12), restricted to the keywords the project's schemas use, so that code
/// and tests can check documents against `schemas/` without another runtime.
///
/// A keyword outside that set is refused when the schema is loaded, rather than silently ignored:
/// a schema can't claim more than this validator checks.
public struct JSONSchema: Sendable {
    /// Keywords that only annotate.
    static let annotations: Set<String> = [
        "$schema", "$id", "$comment", "title", "description", "examples", "default", "deprecated", "format",
        "readOnly", "writeOnly",
    ]
    /// Keywords that are checked.
    static let assertions: Set<String> = [
        "$ref", "$defs", "type", "enum", "const", "properties", "required", "additionalProperties",
        "patternProperties", "propertyNames", "minProperties", "items", "minItems", "maxItems", "uniqueItems",
        "pattern", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
        "oneOf", "anyOf", "allOf", "not", "if", "then", "else",
    ]

    let root: JSONValue

    /// Loads a schema, refusing keywords this validator does not check.
    public init(_ schema: JSONValue) throws(SchemaError) {
        try Self.checkKeywords(schema, path: "#")
        root = schema
    }

    /// Loads a schema from JSON bytes.
    public init(data: Data) throws(SchemaError) {
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: data)
        } catch {
            throw SchemaError(path: "#", problem: "the schema is not JSON")
        }
        try self.init(value)
    }

    /// Every way `instance` breaks the schema, each with the instance path; empty when valid.
    public func violations(of instance: JSONValue) -> [SchemaViolation] {
        var out: [SchemaViolation] = []
        validate(instance, against: root, at: "", into: &out)
        return out
    }

    private static func checkKeywords(_ schema: JSONValue, path: String) throws(SchemaError) {
        switch schema {
        case .bool: return
        case .object(let members):
            for (key, value) in members {
                guard annotations.contains(key) || assertions.contains(key) else {
                    throw SchemaError(path: path, problem: "the keyword '\(key)' is not supported by this validator")
                }
                switch key {
                case "properties", "$defs", "patternProperties":
                    guard case .object(let subs) = value else { throw SchemaError(path: "\(path)/\(key)", problem: "must be an object") }
                    for (name, sub) in subs { try checkKeywords(sub, path: "\(path)/\(key)/\(name)") }
                case "items", "additionalProperties", "propertyNames", "not", "if", "then", "else":
                    try checkKeywords(value, path: "\(path)/\(key)")
                case "oneOf", "anyOf", "allOf":
                    guard case .array(let subs) = value else { throw SchemaError(path: "\(path)/\(key)", problem: "must be an array") }
                    for (i, sub) in subs.enumerated() { try checkKeywords(sub, path: "\(path)/\(key)/\(i)") }
                case "pattern":
                    guard case .string(let pattern) = value, (try? NSRegularExpression(pattern: pattern)) != nil else {
                        throw SchemaError(path: "\(path)/pattern", problem: "is not a valid regular expression")
                    }
                default: break
                }
            }
        default:
            throw SchemaError(path: path, problem: "a schema must be an object or a boolean")
        }
    }

    private func resolve(_ reference: String) -> JSONValue? {
        guard reference.hasPrefix("#") else { return nil }
        var node = root
        for token in reference.dropFirst().split(separator: "/") {
            let key = token.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
            guard let next = node[key] else { return nil }
            node = next
        }
        return node
    }

    private func validate(_ instance: JSONValue, against schema: JSONValue, at path: String, into out: inout [SchemaViolation]) {
        func fail(_ message: String) { out.append(SchemaViolation(path: path.isEmpty ? "(top level)" : path, message: message)) }
        switch schema {
        case .bool(let allowed):
            if !allowed { fail("is not allowed here") }
            return
        case .object: break
        default: return
        }
        if case .string(let reference)? = schema["$ref"] {
            if let target = resolve(reference) {
                validate(instance, against: target, at: path, into: &out)
            } else {
                fail("the schema's $ref '\(reference)' does not resolve")
            }
        }
        if let type = schema["type"] {
            let allowed: [String] = switch type {
            case .string(let t): [t]
            case .array(let ts): ts.compactMap { if case .string(let t) = $0 { t } else { nil } }
            default: []
            }
            if !allowed.contains(where: { Self.has(type: $0, instance) }) {
                fail("expected \(allowed.joined(separator: " or ")), found \(Self.typeName(of: instance))")
                return
            }
        }
        if case .array(let options)? = schema["enum"], !options.contains(where: { Self.equal($0, instance) }) {
            fail("\(instance) is not one of \(options.map(\.description).joined(separator: ", "))")
        }
        if let constant = schema["const"], !Self.equal(constant, instance) {
            fail("must be \(constant)")
        }
        for keyword in ["allOf", "anyOf", "oneOf"] {
            guard case .array(let subs)? = schema[keyword] else { continue }
            let results = subs.map { sub -> [SchemaViolation] in
                var inner: [SchemaViolation] = []
                validate(instance, against: sub, at: path, into: &inner)
                return inner
            }
            let passing = results.filter(\.isEmpty).count
            switch keyword {
            case "allOf": out += results.flatMap { $0 }
            case "anyOf" where passing == 0:
                fail("matches none of the allowed forms: " + results.compactMap(\.first?.description).joined(separator: " | "))
            case "oneOf" where passing != 1:
                fail(passing == 0
                    ? "matches none of the allowed forms: " + results.compactMap(\.first?.description).joined(separator: " | ")
                    : "matches \(passing) of the forms, exactly one is allowed")
            default: break
            }
        }
        if let notSchema = schema["not"] {
            var inner: [SchemaViolation] = []
            validate(instance, against: notSchema, at: path, into: &inner)
            if inner.isEmpty { fail("matches a form that is not allowed") }
        }
        if let condition = schema["if"] {
            var inner: [SchemaViolation] = []
            validate(instance, against: condition, at: path, into: &inner)
            if inner.isEmpty, let then = schema["then"] {
                validate(instance, against: then, at: path, into: &out)
            } else if !inner.isEmpty, let otherwise = schema["else"] {
                validate(instance, against: otherwise, at: path, into: &out)
            }
        }
        switch instance {
        case .object(let members):
            if case .array(let required)? = schema["required"] {
                for case .string(let key) in required where members[key] == nil {
                    fail("the required field '\(key)' is missing")
                }
            }
            if case .integer(let min)? = schema["minProperties"], members.count < min {
                fail("has \(members.count) members, at least \(min) required")
            }
            let properties: [String: JSONValue] = if case .object(let p)? = schema["properties"] { p } else { [:] }
            let patterns: [(NSRegularExpression, JSONValue)] =
                if case .object(let p)? = schema["patternProperties"] {
                    p.compactMap { key, sub in (try? NSRegularExpression(pattern: key)).map { ($0, sub) } }
                } else { [] }
            for key in members.keys.sorted() {
                let value = members[key]!
                let childPath = path.isEmpty ? key : "\(path).\(key)"
                if let propertyNames = schema["propertyNames"] {
                    var inner: [SchemaViolation] = []
                    validate(.string(key), against: propertyNames, at: childPath, into: &inner)
                    if !inner.isEmpty { out.append(SchemaViolation(path: childPath, message: "is not an allowed name: \(inner[0].message)")) }
                }
                var matched = false
                if let sub = properties[key] {
                    matched = true
                    validate(value, against: sub, at: childPath, into: &out)
                }
                for (regex, sub) in patterns where Self.matches(regex, key) {
                    matched = true
                    validate(value, against: sub, at: childPath, into: &out)
                }
                if !matched, let additional = schema["additionalProperties"] {
                    if case .bool(false) = additional {
                        out.append(SchemaViolation(path: childPath, message: "is not a known field"))
                    } else {
                        validate(value, against: additional, at: childPath, into: &out)
                    }
                }
            }
        case .array(let items):
            if case .integer(let min)? = schema["minItems"], items.count < min { fail("has \(items.count) items, at least \(min) required") }
            if case .integer(let max)? = schema["maxItems"], items.count > max { fail("has \(items.count) items, at most \(max) allowed") }
            if case .bool(true)? = schema["uniqueItems"] {
                for i in items.indices where items[..<i].contains(where: { Self.equal($0, items[i]) }) {
                    fail("item [\(i)] repeats an earlier item")
                }
            }
            if let itemSchema = schema["items"] {
                for (i, item) in items.enumerated() { validate(item, against: itemSchema, at: "\(path)[\(i)]", into: &out) }
            }
        case .string(let text):
            let length = text.unicodeScalars.count
            if case .integer(let min)? = schema["minLength"], length < min { fail("is shorter than \(min) characters") }
            if case .integer(let max)? = schema["maxLength"], length > max { fail("is longer than \(max) characters") }
            if case .string(let pattern)? = schema["pattern"], let regex = try? NSRegularExpression(pattern: pattern),
                !Self.matches(regex, text)
            {
                fail("'\(text)' does not match the pattern \(pattern)")
            }
        case .integer, .number:
            let value: Double = if case .integer(let i) = instance { Double(i) } else if case .number(let d) = instance { d } else { 0 }
            if let min = schema["minimum"].flatMap(Self.number), value < min { fail("is below the minimum \(min)") }
            if let max = schema["maximum"].flatMap(Self.number), value > max { fail("is above the maximum \(max)") }
            if let min = schema["exclusiveMinimum"].flatMap(Self.number), value <= min { fail("must be greater than \(min)") }
            if let max = schema["exclusiveMaximum"].flatMap(Self.number), value >= max { fail("must be less than \(max)") }
        default: break
        }
    }

    private static func number(_ value: JSONValue) -> Double? {
        switch value {
        case .integer(let i): Double(i)
        case .number(let d): d
        default: nil
        }
    }

    private static func matches(_ regex: NSRegularExpression, _ text: String) -> Bool {
        regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }

    private static func has(type: String, _ value: JSONValue) -> Bool {
        switch (type, value) {
        case ("null", .null), ("boolean", .bool), ("string", .string), ("array", .array), ("object", .object): true
        case ("integer", .integer), ("number", .integer), ("number", .number): true
        case ("integer", .number(let d)): d.rounded() == d
        default: false
        }
    }

    private static func typeName(of value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool: "boolean"
        case .integer: "integer"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    private static func equal(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a, b) {
        case (.integer(let x), .number(let y)), (.number(let y), .integer(let x)): Double(x) == y
        default: a == b
        }
    }
}

/// A schema this validator can't use.
public struct SchemaError: L3AFError, Equatable {
    public let path: String
    public let problem: String
    public var code: String { "invalid-schema" }
    public var description: String { "schema at \(path): \(problem)" }
}

/// One way a document breaks its schema.
public struct SchemaViolation: Hashable, Sendable, CustomStringConvertible {
    public let path: String
    public let message: String
    public var description: String { "\(path): \(message)" }
}
