import Foundation

/// A moment, written as RFC 3339 UTC with whole seconds (`2026-11-22T01:44:00Z`) so that its text,
/// and so any signature over it, has one spelling.
public struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Whole seconds since 1970-01-01T00:00:00Z.
    public let secondsSince1970: Int64

    public init(secondsSince1970: Int64) { self.secondsSince1970 = secondsSince1970 }

    /// The moment `date`, truncated to the second.
    public init(_ date: Date) { secondsSince1970 = Int64(date.timeIntervalSince1970.rounded(.down)) }

    public var date: Date { Date(timeIntervalSince1970: TimeInterval(secondsSince1970)) }

    /// This moment moved by `seconds`.
    public func adding(seconds: Int64) -> Timestamp { Timestamp(secondsSince1970: secondsSince1970 + seconds) }

    /// Parses RFC 3339 (`Z` or an offset; fractional seconds are dropped).
    public init(parsing text: String) throws(TimestampError) {
        let whole = try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: false))
        guard let date = whole ?? (try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true))) else {
            throw TimestampError(text: text)
        }
        self.init(date)
    }

    public var description: String {
        date.formatted(Date.ISO8601FormatStyle(timeZone: TimeZone(identifier: "UTC")!))
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.secondsSince1970 < rhs.secondsSince1970 }
}

/// Text that is not an RFC 3339 time.
public struct TimestampError: L3AFError, Equatable {
    public let text: String
    public var code: String { "invalid-timestamp" }
    public var description: String { "'\(text)' is not an RFC 3339 time such as 2026-11-22T01:44:00Z" }
}
