/// A coding key for any member name, to see what an object holds.
struct AnyCodingKey: CodingKey {
    let stringValue: String
    let intValue: Int? = nil
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

extension Decoder {
    /// Refuses members other than `Keys`' cases, naming the first unknown one and the known ones,
    /// so a misspelt field in a hand-written document is an error rather than silently ignored.
    /// With ``CodingUserInfoKey/toleratesUnknownKeys`` set, unknown members are ignored instead: for records this
    /// program stored itself, which a newer release may have written with fields this one doesn't know.
    public func rejectUnknownKeys<Keys: CodingKey & CaseIterable>(_ keys: Keys.Type) throws {
        if userInfo[.toleratesUnknownKeys] as? Bool == true { return }
        let known = Set(Keys.allCases.map(\.stringValue))
        let container = try self.container(keyedBy: AnyCodingKey.self)
        if let unknown = container.allKeys.map(\.stringValue).sorted().first(where: { !known.contains($0) }) {
            throw DecodingError.dataCorruptedError(
                forKey: AnyCodingKey(stringValue: unknown), in: container,
                debugDescription: "unknown field '\(unknown)'; known fields: \(known.sorted().joined(separator: ", "))")
        }
    }
}

extension CodingUserInfoKey {
    /// `true`: ``Swift/Decoder/rejectUnknownKeys(_:)`` lets unknown members pass (stored records, not hand-written documents).
    public static let toleratesUnknownKeys = CodingUserInfoKey(rawValue: "l3af.toleratesUnknownKeys")!
}
