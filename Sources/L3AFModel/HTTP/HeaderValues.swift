import Foundation

/// Integers and header values from outside (HTTP headers, payloads, config files), parsed with bounds: digits
/// only, no sign or spaces unless said, never past the range the caller can use. A value out of range is refused
/// (`nil`), never clamped into something the sender didn't say and never trapping on overflow.
public enum BoundedInteger {
    /// `text` as a decimal integer in `range`: ASCII digits only (a leading `-` when the range has negatives).
    public static func parse(_ text: some StringProtocol, in range: ClosedRange<Int>) -> Int? {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.count <= 20 else { return nil }
        let negative = bytes[0] == UInt8(ascii: "-")
        let digits = negative ? bytes.dropFirst() : bytes[...]
        guard !digits.isEmpty, digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else { return nil }
        var value = 0
        for digit in digits {
            let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (plus, overflow2) = times.addingReportingOverflow(Int(digit - UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { return nil }
            value = plus
        }
        if negative { value = -value }
        return range.contains(value) ? value : nil
    }
}

/// A single `Range: bytes=…` request against a body of `size` bytes (RFC 9110 §14.1.2), parsed without overflow:
/// positions past the body are clamped as the RFC says, huge numbers are just large, never a trap.
public enum ByteRange: Equatable, Sendable {
    case satisfiable(Range<Int>)
    case unsatisfiable
    /// Not a single byte range this server answers; the whole body is sent.
    case ignored

    public static func parse(_ header: String, size: Int) -> ByteRange {
        guard header.hasPrefix("bytes="), !header.contains(","), size >= 0 else { return .ignored }
        let spec = header.dropFirst(6).trimmingCharacters(in: .whitespaces)
        let parts = spec.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return .ignored }
        // Positions are bounded by Int.max; a larger one is malformed and the header is ignored.
        let first = parts[0].isEmpty ? nil : BoundedInteger.parse(parts[0], in: 0...Int.max)
        let last = parts[1].isEmpty ? nil : BoundedInteger.parse(parts[1], in: 0...Int.max)
        if !parts[0].isEmpty && first == nil || !parts[1].isEmpty && last == nil { return .ignored }
        switch (first, last) {
        case (let start?, let end?) where start <= end:
            // min(end, size - 1) + 1 can't overflow: it is at most size.
            return start < size ? .satisfiable(start..<(min(end, size - 1) + 1)) : .unsatisfiable
        case (let start?, nil):
            return start < size ? .satisfiable(start..<size) : .unsatisfiable
        case (nil, let suffix?):
            return suffix > 0 && size > 0 ? .satisfiable((size - min(suffix, size))..<size) : .unsatisfiable
        default:
            return .ignored
        }
    }
}

/// `Retry-After` as delay-seconds (RFC 9110 §10.2.3: `1*DIGIT`), bounded. An HTTP-date is the caller's to turn
/// into seconds; `nan`, `inf`, negative or fractional text is not a delay and is ignored.
public enum RetryAfter {
    /// The delay in seconds, at most `limit`; `nil` when `value` is not delay-seconds.
    public static func seconds(_ value: String, limit: Int) -> Int? {
        let text = value.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty, text.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else { return nil }
        // Any run of digits is a valid delay; one past the limit waits the limit.
        return BoundedInteger.parse(text, in: 0...Int.max).map { min($0, limit) } ?? limit
    }
}
