import Foundation
import L3AFModel
import L3AFTestSupport
import Testing
@testable import L3AFBPF

@Suite struct BPFObjectFileTests {
    @Test func inspectsTheXDPRoot() throws {
        let object = try BPFObjectFile(bytes: try Fixtures.compileBPF("registry/xdp-root/xdp_root.bpf.c"), name: "xdp_root.bpf.o")
        #expect(object.programs.map(\.name) == ["xdp_root"])
        #expect(object.programs[0].type == .xdp)
        #expect(object.programs[0].section == "xdp")
        let array = try #require(object.maps.first { $0.name == "xdp_root_array" })
        #expect(array.isProgramArray && array.maxEntries == 1 && array.keySize == 4)
    }

    @Test func checksAManifestProgramAgainstTheObject() throws {
        let object = try BPFObjectFile(bytes: try Fixtures.compileBPF("registry/xdp-root/xdp_root.bpf.c"), name: "xdp_root.bpf.o")
        let good = Manifest.Program(hook: .xdpIngress, objectFile: "xdp_root.bpf.o", entryFunction: "xdp_root", nextMap: "xdp_root_array")
        #expect(object.problems(for: good).isEmpty)
        var wrong = good
        wrong.entryFunction = "xdp_missing"
        wrong.hook = .tcIngress
        wrong.nextMap = "nope"
        wrong.stateMaps = ["gone"]
        #expect(object.problems(for: wrong) == [
            "xdp_root.bpf.o has no program 'xdp_missing' (it has: xdp_root)",
            "xdp_root.bpf.o has no next map 'nope'",
            "xdp_root.bpf.o has no map 'gone' (named as state map)",
        ])
        var tc = good
        tc.hook = .tcEgress
        #expect(object.problems(for: tc) == ["the entry function 'xdp_root' is a xdp program, which can't run on tc_egress"])
    }

    @Test func refusesBytesThatAreNotAnObject() {
        #expect {
            _ = try BPFObjectFile(bytes: Array("not an ELF file".utf8), name: "junk.bpf.o")
        } throws: { error in
            let e = error as! BPFError
            return e.operation == .open && e.context == "bpf_object__open_mem(junk.bpf.o)"
        }
    }
}
