import Foundation
import L3AFModel
import Testing

/// Names that become paths, integers from headers and payload fields: each refused at the edge with what was wrong.
@Suite struct HostileInputTests {
    @Test(arguments: ["../../../../tmp/e", "..", ".", "", "a/b", "x\u{0}y", "bad\nline", String(repeating: "a", count: 256)])
    func fileNamesThatWouldLeaveTheirFolderAreRefused(_ name: String) {
        #expect(!FileName.isPlain(name))
        #expect(throws: PathNameError.self) { try FileName(name, field: "artifact") }
    }

    @Test func plainNamesPass() throws {
        for name in ["l3af_ratelimiting.tar.gz", "xdp_root", "v2.1.0", "latest", "focal"] { #expect(FileName.isPlain(name), "\(name)") }
        #expect(try RelativePath("objects/./x.bpf.o").rawValue == "objects/x.bpf.o")
        for bad in ["/etc/passwd", "a/../../b", "..", "a//..", "./"] {
            #expect(throws: PathNameError.self, "\(bad)") { try RelativePath(bad) }
        }
    }

    @Test func payloadFieldsThatBecomePathsAreCheckedAtTheEdge() throws {
        var program = BPFProgram(name: "ratelimiting", seqID: 1)
        program.artifact = "../../../../tmp/e"
        program.cmdStart = "../../bin/sh"
        program.objectFile = "../outside.o"
        program.mapName = "a/b"
        program.version = "../1.0"
        program.monitorMaps = [MonitorMap(name: "../m")]
        program.mapArgs = [MapArg(name: "x/y")]
        program.startArgs = ["iface": .string("evil0"), "bad key": .string("1")]
        program.ebpfPackageRepoURL = "gopher://x"
        let payload = L3afBPFPrograms(hostName: "", iface: "eth0", bpfPrograms: HookLists(xdpIngress: [program]))
        let paths = Set(payload.problems().map(\.path))
        for field in ["artifact", "cmd_start", "object_file", "map_name", "version", "monitor_maps[0].name", "map_args[0].name",
                      "start_args.iface", "start_args.bad key", "ebpf_package_repo_url"] {
            #expect(paths.contains("bpf_programs.xdp_ingress[0].\(field)"), "\(field) refused: \(paths.sorted())")
        }
    }

    @Test func seqIDsNearIntMaxAndBadInterfacesAreRefused() {
        let program = BPFProgram(name: "ratelimiting", seqID: Int.max)
        let payload = L3afBPFPrograms(hostName: "", iface: "../eth0", bpfPrograms: HookLists(xdpIngress: [program]))
        let problems = payload.problems().map(\.description)
        #expect(problems.contains { $0.contains("seq_id is \(Int.max); it must be at most") }, "\(problems)")
        #expect(problems.contains { $0.hasPrefix("iface '../eth0' is not an interface name") }, "\(problems)")
    }

    @Test func boundedIntegers() {
        #expect(BoundedInteger.parse("42", in: 0...100) == 42)
        #expect(BoundedInteger.parse("9223372036854775807", in: 0...Int.max) == Int.max)
        for bad in ["9223372036854775808", "99999999999999999999999", "-1", "+1", " 1", "1.5", "nan", "", "0x10"] {
            #expect(BoundedInteger.parse(bad, in: 0...Int.max) == nil, "\(bad)")
        }
    }

    @Test func rangesNeverOverflow() {
        #expect(ByteRange.parse("bytes=0-9223372036854775807", size: 100) == .satisfiable(0..<100))
        #expect(ByteRange.parse("bytes=9223372036854775807-", size: 100) == .unsatisfiable)
        #expect(ByteRange.parse("bytes=-9223372036854775807", size: 100) == .satisfiable(0..<100))
        #expect(ByteRange.parse("bytes=0-99999999999999999999999", size: 100) == .ignored)
        #expect(ByteRange.parse("bytes=5-1", size: 100) == .ignored)
    }

    @Test func retryAfterIsDelaySecondsOnly() {
        #expect(RetryAfter.seconds("5", limit: 30) == 5)
        #expect(RetryAfter.seconds("999999999999999999999999", limit: 30) == 30)
        for bad in ["nan", "-1", "1.5", "inf", "", "1e9"] { #expect(RetryAfter.seconds(bad, limit: 30) == nil, "\(bad)") }
    }

    @Test func aManifestWithADuplicatePlatformIsRefused() {
        let manifest = #"{"name": "x", "version": "1.0.0", "platforms": ["focal", "focal"], "programs": [{"hook": "xdp_ingress", "object_file": "x.o", "entry_function": "x", "next_map": "n"}]}"#
        #expect(throws: (any Error).self) { try DocumentDecoder.decode(Manifest.self, from: Array(manifest.utf8), document: "l3af.json") }
    }
}
