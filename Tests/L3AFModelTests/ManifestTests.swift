import Foundation
import Testing
@testable import L3AFModel

@Suite struct ManifestTests {
    static let ratelimiting = """
        {"name":"ratelimiting","version":"1.2.0","description":"d","license":"GPL-2.0-only","min_kernel":"5.15",
         "programs":[{"hook":"xdp_ingress","object_file":"ratelimiting.bpf.o","entry_function":"xdp_ratelimiting",
           "next_map":"xdp_rl_ingress_next_prog",
           "parameters":[{"name":"rate","type":"u32","config_map":"rl_config_map","key":0,"default":"100"},
                         {"name":"ports","type":"port","set_map":"rl_ports_map","default":"80,443"}],
           "monitor_maps":[{"name":"rl_drop_count_map","key":0,"aggregator":"scalar"},
                           {"name":"rl_recv_count_map","aggregator":"max-rate"}],
           "state_maps":["rl_window_map"]}]}
        """

    @Test func decodesAFullManifest() throws {
        let m = try decode(Manifest.self, Self.ratelimiting)
        #expect(m.name.rawValue == "ratelimiting")
        #expect(m.version == SemanticVersion(1, 2, 0))
        #expect(m.minKernel == KernelVersion(5, 15))
        #expect(m.platforms == nil, "portable when platforms is left out")
        let p = try #require(m.program(for: .xdpIngress))
        #expect(p.nextMap == "xdp_rl_ingress_next_prog")
        #expect(p.parameters.map(\.name) == ["rate", "ports"])
        #expect(p.parameters[0].destination == .config(map: "rl_config_map", key: 0))
        #expect(p.parameters[1].destination == .set(map: "rl_ports_map"))
        #expect(p.monitorMaps[1] == MonitorMap(name: "rl_recv_count_map", key: 0, aggregator: .maxRate))
        #expect(p.stateMaps == ["rl_window_map"])
        #expect(m.program(for: .tcEgress) == nil)
    }

    @Test func roundTripsThroughJSON() throws {
        let m = try decode(Manifest.self, Self.ratelimiting)
        let again = try DocumentDecoder.decode(Manifest.self, from: try DocumentDecoder.encode(m), document: "again")
        #expect(again == m)
    }

    static func mutated(_ edit: (inout [String: Any]) -> Void) -> String {
        var object = try! JSONSerialization.jsonObject(with: Data(ratelimiting.utf8)) as! [String: Any]
        edit(&object)
        return String(decoding: try! JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }

    static func editProgram(_ edit: @escaping (inout [String: Any]) -> Void) -> String {
        mutated { m in
            var programs = m["programs"] as! [[String: Any]]
            edit(&programs[0])
            m["programs"] = programs
        }
    }

    static func editParameter(_ index: Int, _ edit: @escaping (inout [String: Any]) -> Void) -> String {
        editProgram { p in
            var parameters = p["parameters"] as! [[String: Any]]
            edit(&parameters[index])
            p["parameters"] = parameters
        }
    }

    static let refusals: [(String, String, String)] = [
        ("bad name", mutated { $0["name"] = "Rate" }, "at name: invalid package name 'Rate'"),
        ("bad version", mutated { $0["version"] = "1.2" }, "at version: invalid version '1.2'"),
        ("missing version", mutated { $0["version"] = nil }, "the required field 'version' is missing"),
        ("unknown field", mutated { $0["min_kernal"] = "5.15" }, "unknown field 'min_kernal'"),
        ("bad kernel", mutated { $0["min_kernel"] = "new" }, "at min_kernel: invalid kernel version 'new'"),
        ("no programs", mutated { $0["programs"] = [] }, "at programs: a package needs at least one program"),
        ("manifest version", mutated { $0["manifest_version"] = 2 }, "manifest_version 2 is not supported"),
        ("empty platforms", mutated { $0["platforms"] = [] }, "at platforms:"),
        ("two on one hook", mutated { m in m["programs"] = (m["programs"] as! [Any]) + (m["programs"] as! [Any]) },
         "two programs use the hook xdp_ingress"),
        ("bad hook", editProgram { $0["hook"] = "xdp" }, "at programs[0].hook: 'xdp' is not a hook; use one of xdp_ingress, tc_ingress, tc_egress"),
        ("traversal", editProgram { $0["object_file"] = "../x.o" }, "at programs[0].object_file: '../x.o' is not a plain file name"),
        ("bad entry", editProgram { $0["entry_function"] = "1abc" }, "at programs[0].entry_function: '1abc' is not a C identifier"),
        ("misspelt", editProgram { $0["entry_fucntion"] = "x" }, "at programs[0].entry_fucntion: unknown field 'entry_fucntion'"),
        ("next as state", editProgram { $0["state_maps"] = ["xdp_rl_ingress_next_prog"] }, "can't be a state map"),
        ("both maps", editParameter(0) { $0["set_map"] = "s" }, "needs exactly one of config_map (with key) or set_map"),
        ("no map", editParameter(0) { $0["config_map"] = nil }, "needs exactly one of config_map"),
        ("key on set", editParameter(1) { $0["key"] = 3 }, "a set parameter has no key"),
        ("bad type", editParameter(0) { $0["type"] = "int" }, "at programs[0].parameters[0].type: 'int' is not a parameter type"),
        ("bad default", editParameter(0) { $0["default"] = "fast" }, "at programs[0].parameters[0].default: parameter rate=fast"),
        ("bad set default", editParameter(1) { $0["default"] = "80,99999" }, "element '99999'"),
        ("key type", editParameter(0) { $0["key"] = "0" }, "at programs[0].parameters[0].key: expected an integer, found a string"),
        ("duplicate parameter", editParameter(1) { $0["name"] = "rate" }, "the parameter 'rate' is declared twice"),
        ("bad aggregator", editProgram { $0["monitor_maps"] = [["name": "m", "aggregator": "sum"]] },
         "at programs[0].monitor_maps[0].aggregator: 'sum' is not an aggregator; use one of scalar, max-rate, avg"),
    ]

    @Test(arguments: refusals)
    func refusesNamingTheField(_ label: String, _ json: String, _ expected: String) {
        let error = decodeError(Manifest.self, json)
        #expect(error?.contains(expected) == true, "\(label): \(error ?? "decoded")")
    }

    @Test func refusesSomethingThatIsNotJSON() {
        #expect(decodeError(Manifest.self, "{not json")?.contains("not valid JSON") == true)
        #expect(decodeError(Manifest.self, "[]")?.contains("expected an object, found an array") == true)
    }
}
