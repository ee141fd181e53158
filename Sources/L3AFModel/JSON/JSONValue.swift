/// Any JSON value, kept exactly: used for l3afd's free-form argument maps and for the canonical
/// form that signatures cover.
public enum JSONValue: Hashable, Sendable, Codable, CustomStringConvertible {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let v): try container.encode(v)
        case .integer(let v): try container.encode(v)
        case .number(let v): try container.encode(v)
        case .string(let v): try container.encode(v)
        case .array(let v): try container.encode(v)
        case .object(let v): try container.encode(v)
        }
    }

    /// A scalar as the text a `key=value` parameter would carry: `"80,443"`, `2`, `true`.
    /// `nil` for null, arrays and objects.
    public var scalarText: String? {
        switch self {
        case .bool(let v): String(v)
        case .integer(let v): String(v)
        case .number(let v): v.rounded() == v && abs(v) < 1e15 ? String(Int64(v)) : String(v)
        case .string(let v): v
        case .null, .array, .object: nil
        }
    }

    /// The member `key` of an object, or `nil`.
    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    public var description: String {
        (try? String(decoding: canonicalBytes(), as: UTF8.self)) ?? "<json>"
    }
}

extension JSONValue {
    /// The canonical encoding that signatures cover: object keys sorted by their UTF-8 bytes, no
    /// insignificant white space, strings with only `"` `\` and control characters escaped, and
    /// integers only (a fractional number has no single spelling, so it is refused).
    public func canonicalBytes() throws(CanonicalJSONError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(4096)
        do {
            try write(into: &out)
        } catch {
            throw CanonicalJSONError(path: error.path.isEmpty ? "(top level)" : error.path)
        }
        return out
    }

    /// Writes the value; the path of a value that can't be written is built only when there is one, as the error
    /// travels out (signed indexes are written on every publish and verified by every client).
    private func write(into out: inout [UInt8]) throws(CanonicalJSONError) {
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let v): out.append(contentsOf: (v ? "true" : "false").utf8)
        case .integer(let v): out.append(contentsOf: String(v).utf8)
        case .number:
            throw CanonicalJSONError(path: "")
        case .string(let v): Self.writeString(v, into: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                do { try item.write(into: &out) } catch {
                    throw CanonicalJSONError(path: error.path.isEmpty || error.path.hasPrefix("[") ? "[\(i)]" + error.path : "[\(i)].\(error.path)")
                }
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            let keys = members.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            for (i, key) in keys.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                Self.writeString(key, into: &out)
                out.append(UInt8(ascii: ":"))
                do { try members[key]!.write(into: &out) } catch {
                    throw CanonicalJSONError(path: error.path.isEmpty || error.path.hasPrefix("[") ? key + error.path : "\(key).\(error.path)")
                }
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    private static let hex = Array("0123456789abcdef".utf8)

    private static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "\""))
            case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "\\"))
            case 0..<0x20:
                out.append(contentsOf: "\\u00".utf8)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0xf)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// A value that has no canonical encoding (a fractional number).
public struct CanonicalJSONError: L3AFError, Equatable {
    /// Where the value is, e.g. `packages.foo.size`.
    public let path: String
    public var code: String { "non-canonical-json" }
    public var description: String {
        "the value at \(path) is a fractional number, which signed documents can't hold"
    }
}
