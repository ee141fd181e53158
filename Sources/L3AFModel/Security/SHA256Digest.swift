import Crypto
import Foundation

/// A SHA-256 digest, written as 64 lowercase hexadecimal digits.
public struct SHA256Digest: Hashable, Sendable, CustomStringConvertible {
    /// The 32 bytes.
    public let bytes: [UInt8]

    /// The digest of `data`.
    public init(of data: some DataProtocol) {
        bytes = Array(SHA256.hash(data: data))
    }

    init(bytes: [UInt8]) { self.bytes = bytes }

    /// Parses 64 lowercase hexadecimal digits.
    public init(hex: String) throws(DigestFormatError) {
        let utf8 = Array(hex.utf8)
        guard utf8.count == 64 else { throw DigestFormatError(text: hex) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32)
        for i in stride(from: 0, to: 64, by: 2) {
            guard let hi = Self.nibble(utf8[i]), let lo = Self.nibble(utf8[i + 1]) else {
                throw DigestFormatError(text: hex)
            }
            bytes.append(hi << 4 | lo)
        }
        self.bytes = bytes
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        default: nil
        }
    }

    /// The 64-digit lowercase hex form.
    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for b in bytes { out += [digits[Int(b >> 4)], digits[Int(b & 0xf)]] }
        return String(decoding: out, as: UTF8.self)
    }

    public var description: String { hex }
}

/// Text that is not a SHA-256 digest.
public struct DigestFormatError: L3AFError, Equatable {
    public let text: String
    public var code: String { "invalid-digest" }
    public var description: String {
        "'\(text.prefix(80))' is not a SHA-256 digest: expected 64 lowercase hexadecimal digits"
    }
}

/// SHA-256 over data that arrives in pieces.
public struct SHA256Stream: Sendable {
    private var hasher = SHA256()

    public init() {}

    public mutating func update(_ data: some DataProtocol) { hasher.update(data: data) }

    public func finalize() -> SHA256Digest { SHA256Digest(bytes: Array(hasher.finalize())) }
}
