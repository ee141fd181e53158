import Foundation

/// Strict text forms of IP addresses, parsed without the C library so the model stays pure.
public enum IPAddressText {
    /// Dotted-quad IPv4, four decimal octets without leading zeros.
    public static func ipv4(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy(\.isASCIIDigit),
                part.count == 1 || part.first != "0", let n = UInt8(part)
            else { return nil }
            bytes.append(n)
        }
        return bytes
    }

    /// RFC 4291 text: eight groups, `::` once for a run of zero groups, optionally ending in dotted IPv4.
    public static func ipv6(_ text: String) -> [UInt8]? {
        guard !text.isEmpty, text.utf8.count <= 45 else { return nil }
        var head: [UInt16] = []
        var tail: [UInt16] = []
        var sawGap = false
        let pieces = text.components(separatedBy: "::")
        guard pieces.count <= 2 else { return nil }
        func groups(_ piece: String, allowIPv4: Bool) -> [UInt16]? {
            if piece.isEmpty { return [] }
            var out: [UInt16] = []
            let fields = piece.split(separator: ":", omittingEmptySubsequences: false)
            for (i, field) in fields.enumerated() {
                if allowIPv4, i == fields.count - 1, field.contains(".") {
                    guard let v4 = ipv4(String(field)) else { return nil }
                    out += [UInt16(v4[0]) << 8 | UInt16(v4[1]), UInt16(v4[2]) << 8 | UInt16(v4[3])]
                    continue
                }
                guard (1...4).contains(field.count), let n = UInt16(field, radix: 16),
                    field.allSatisfy(\.isHexDigit)
                else { return nil }
                out.append(n)
            }
            return out
        }
        if pieces.count == 2 {
            sawGap = true
            guard let h = groups(pieces[0], allowIPv4: false), let t = groups(pieces[1], allowIPv4: true) else { return nil }
            head = h
            tail = t
            guard head.count + tail.count <= 7 else { return nil }
        } else {
            guard let all = groups(pieces[0], allowIPv4: true), all.count == 8 else { return nil }
            head = all
        }
        let zeros = sawGap ? Array(repeating: UInt16(0), count: 8 - head.count - tail.count) : []
        return (head + zeros + tail).flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
    }

    /// The address with every bit past `length` cleared.
    static func masked(_ address: [UInt8], to length: Int) -> [UInt8] {
        address.enumerated().map { index, byte in
            let bitsHere = max(0, min(8, length - index * 8))
            return bitsHere == 8 ? byte : byte & ~(UInt8(0xff) >> bitsHere)
        }
    }

    /// Text for 4 or 16 address bytes (IPv6 without zero compression).
    public static func format(_ bytes: [UInt8]) -> String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        return stride(from: 0, to: bytes.count, by: 2).map {
            String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16)
        }.joined(separator: ":")
    }
}
