import Testing
@testable import L3AFModel

@Suite struct ParameterTests {
    let rate = Parameter(name: "rate", type: .u32, destination: .config(map: "rl_config_map", key: 0))
    let ports = Parameter(name: "ports", type: .port, destination: .set(map: "rl_ports_map"))

    @Test func parsesScalarsToHostOrderBytes() throws {
        #expect(try rate.parse("100") == [.unsigned(100, bytes: 4)])
        #expect(try rate.parse("100")[0].bytes == [100, 0, 0, 0])
        #expect(try rate.parse(" 4294967295 ")[0].bytes == [255, 255, 255, 255])
        let u64 = Parameter(name: "n", type: .u64, destination: .config(map: "m", key: 1))
        #expect(try u64.parse("18446744073709551615")[0].bytes == Array(repeating: 255, count: 8))
    }

    @Test func parsesSetsFoldingDuplicates() throws {
        #expect(try ports.parse("80,443, 80").map(\.description) == ["80", "443"])
        #expect(try ports.parse("8080")[0].bytes == [0x90, 0x1f])
        #expect(try ports.parse("").isEmpty, "an empty set clears the map")
    }

    @Test(arguments: [
        ("rate", "abc", "'abc' is not an unsigned 32-bit integer (0 to 4294967295)"),
        ("rate", "-1", "not an unsigned 32-bit integer"),
        ("rate", "4294967296", "not an unsigned 32-bit integer"),
        ("rate", "1.5", "not an unsigned 32-bit integer"),
        ("ports", "70000", "element '70000': '70000' is not a port (1 to 65535)"),
        ("ports", "0", "not a port"),
        ("ports", "80,,443", "empty element"),
        ("ports", "http", "not a port"),
    ])
    func refusesBadValuesNamingParameterAndValue(_ name: String, _ value: String, _ problem: String) {
        let parameter = name == "rate" ? rate : ports
        #expect {
            try parameter.parse(value)
        } throws: { error in
            let e = error as! ParameterError
            return e.description.hasPrefix("parameter \(name)=\(value): ") && e.description.contains(problem)
        }
    }

    @Test func parsesBooleans() throws {
        let flag = Parameter(name: "on", type: .bool, destination: .config(map: "m", key: 0))
        #expect(try flag.parse("true") == [.bool(true)])
        #expect(try flag.parse("off") == [.bool(false)])
        #expect(throws: ParameterError.self) { try flag.parse("maybe") }
    }

    @Test func parsesAddressesAndPrefixes() throws {
        let v4 = Parameter(name: "a", type: .ipv4, destination: .set(map: "m"))
        #expect(try v4.parse("192.0.2.1")[0].bytes == [192, 0, 2, 1])
        for bad in ["192.0.2", "192.0.2.256", "192.0.2.01", "a.b.c.d", "1.2.3.4.5"] {
            #expect(throws: ParameterError.self, "\(bad)") { try v4.parse(bad) }
        }
        let v6 = Parameter(name: "a", type: .ipv6, destination: .set(map: "m"))
        #expect(try v6.parse("::1")[0].bytes == Array(repeating: 0, count: 15) + [1])
        #expect(try v6.parse("2001:db8::8:800:200c:417a")[0].description == "2001:db8:0:0:8:800:200c:417a")
        #expect(try v6.parse("::ffff:192.0.2.1")[0].bytes.suffix(6) == [0xff, 0xff, 192, 0, 2, 1])
        #expect(try v6.parse("1:2:3:4:5:6:7:8")[0].description == "1:2:3:4:5:6:7:8")
        for bad in ["1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "g::1", ":", "1:2:3:4:5:6:7"] {
            #expect(throws: ParameterError.self, "\(bad)") { try v6.parse(bad) }
        }
        let net = Parameter(name: "deny", type: .ipv4Prefix, destination: .set(map: "m"))
        let parsed = try net.parse("10.1.2.3/8, 192.0.2.1")
        #expect(parsed.map(\.description) == ["10.0.0.0/8", "192.0.2.1/32"], "host bits are masked")
        #expect(parsed[0].bytes == [8, 0, 0, 0, 10, 0, 0, 0])
        #expect(throws: ParameterError.self) { try net.parse("10.0.0.0/33") }
        let net6 = Parameter(name: "deny6", type: .ipv6Prefix, destination: .set(map: "m"))
        #expect(try net6.parse("2001:db8:ffff::/33")[0].description == "2001:db8:8000:0:0:0:0:0/33")
    }
}
