/// A value whose JSON form is a string it parses from and prints to (versions, requirements, digests,
/// times, names). Decoding reports the parser's own message at the field's path.
public protocol TextCodable: Codable, CustomStringConvertible {
    associatedtype TextError: L3AFError
    /// Parses the JSON string.
    init(decodingText text: String) throws(TextError)
    /// The JSON string; `description` unless said otherwise.
    var encodedText: String { get }
}

extension TextCodable {
    public var encodedText: String { description }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do {
            try self.init(decodingText: text)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.description)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(encodedText)
    }
}

extension SemanticVersion: TextCodable {
    public init(decodingText text: String) throws(VersionParseError) { try self.init(parsing: text) }
}

extension VersionRequirement: TextCodable {
    public init(decodingText text: String) throws(RequirementParseError) { try self.init(parsing: text) }
}

extension KernelVersion: TextCodable {
    public init(decodingText text: String) throws(KernelVersionError) { try self.init(parsing: text) }
}

extension Timestamp: TextCodable {
    public init(decodingText text: String) throws(TimestampError) { try self.init(parsing: text) }
}

extension SHA256Digest: TextCodable {
    public init(decodingText text: String) throws(DigestFormatError) { try self.init(hex: text) }
}

extension PackageName: TextCodable {
    public init(decodingText text: String) throws(PackageNameError) { try self.init(text) }
}

extension DistTag: TextCodable {
    public init(decodingText text: String) throws(DistTagError) { try self.init(text) }
}
