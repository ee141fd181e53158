import Foundation
import L3AFModel
import Testing
@testable import L3AFBPF

/// Compiles one of the first-party packages' C sources with clang -target bpf, as `l3af pack` will.
func compileBPF(_ source: String) throws -> [UInt8] {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let output = FileManager.default.temporaryDirectory.appending(path: "l3af-\(UUID().uuidString).bpf.o")
    defer { try? FileManager.default.removeItem(at: output) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["clang", "-target", "bpf", "-O2", "-g", "-I/usr/include/x86_64-linux-gnu", "-c",
                         root.appending(path: source).path, "-o", output.path]
    try process.run()
    process.waitUntilExit()
    #expect(process.terminationStatus == 0, "clang -target bpf \(source)")
    return Array(try Data(contentsOf: output))
}

@Suite struct BPFObjectFileTests {
    @Test func inspectsTheXDPRoot() throws {
        let object = try BPFObjectFile(bytes: try compileBPF("registry/xdp-root/xdp_root.bpf.c"), name: "xdp_root.bpf.o")
        #expect(object.programs.map(\.name) == ["xdp_root"])
        #expect(object.programs[0].type == .xdp)
        #expect(object.programs[0].section == "xdp")
        let array = try #require(object.maps.first { $0.name == "xdp_root_array" })
        #expect(array.isProgramArray && array.maxEntries == 1 && array.keySize == 4)
    }

    @Test func checksAManifestProgramAgainstTheObject() throws {
        let object = try BPFObjectFile(bytes: try compileBPF("registry/xdp-root/xdp_root.bpf.c"), name: "xdp_root.bpf.o")
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
            try BPFObjectFile(bytes: Array("not an ELF file".utf8), name: "junk.bpf.o")
        } throws: { error in
            let e = error as! BPFError
            return e.operation == .open && e.context == "bpf_object__open_mem(junk.bpf.o)"
        }
    }
}
