import Foundation
import Testing
@testable import L3AFModel

@Suite struct PayloadTests {
    static let documented = """
        [{"host_name":"l3af","iface":"Ethernet4","bpf_programs":{"xdp_ingress":[{"name":"ratelimiting",
          "seq_id":1,"artifact":"ratelimiting.exe","map_name":"xdp_rl_ingress_next_prog",
          "cmd_start":"ratelimiting.exe","version":"latest","user_program_daemon":true,
          "admin_status":"enabled","prog_type":"xdp","cfg_version":1,
          "start_args":{"ports":"80,8080,8081","rate":"2"},
          "monitor_maps":[{"name":"rl_drop_count_map","key":0,"aggregator":"scalar"},
                          {"name":"rl_recv_count_map","key":0,"aggregator":"max-rate"}]}]}}]
        """

    @Test func decodesTheDocumentedAddPayload() throws {
        let payload = try decode([L3afBPFPrograms].self, Self.documented)
        #expect(payload.count == 1)
        #expect(payload[0].hostName == "l3af")
        #expect(payload[0].iface == "Ethernet4")
        let p = try #require(payload[0].bpfPrograms.xdpIngress.first)
        #expect(p.name == "ratelimiting")
        #expect(p.seqID == 1)
        #expect(p.mapName == "xdp_rl_ingress_next_prog")
        #expect(p.userProgramDaemon)
        #expect(p.isEnabled)
        #expect(p.cfgVersion == 1)
        #expect(p.startParameters.map { "\($0.name)=\($0.value)" } == ["ports=80,8080,8081", "rate=2"])
        #expect(p.monitorMaps == [
            MonitorMap(name: "rl_drop_count_map", key: 0, aggregator: .scalar),
            MonitorMap(name: "rl_recv_count_map", key: 0, aggregator: .maxRate),
        ])
        #expect(payload[0].problems().isEmpty)
    }

    @Test func decodesTheDocumentedDeletePayload() throws {
        let names = try decode(
            L3afBPFProgramNames.self, #"{"bpf_programs":{"xdp_ingress":["ratelimiting"]},"host_name":"l3af","iface":"Ethernet4"}"#)
        #expect(names.bpfPrograms[.xdpIngress] == ["ratelimiting"])
        #expect(names.bpfPrograms.tcEgress.isEmpty)
        #expect(names.iface == "Ethernet4")
    }

    @Test func missingFieldsTakeZeroValues() throws {
        let p = try decode(BPFProgram.self, #"{"name":"x"}"#)
        #expect(p == BPFProgram(name: "x"))
        #expect(p.seqID == 0 && p.version.isEmpty && p.startArgs.isEmpty && !p.isEnabled)
        let nulls = try decode(BPFProgram.self, #"{"name":"x","start_args":null,"monitor_maps":null,"map_args":null}"#)
        #expect(nulls == BPFProgram(name: "x"))
        let host = try decode(L3afBPFPrograms.self, #"{"iface":"eth0","bpf_programs":null}"#)
        #expect(host.bpfPrograms == HookLists<BPFProgram>())
    }

    @Test func unknownFieldsAreIgnored() throws {
        let p = try decode([L3afBPFPrograms].self, #"[{"iface":"e","x":{"y":[1]},"bpf_programs":{"xdp_ingress":[{"name":"a","new":true}],"future":[]}}]"#)
        #expect(p[0].bpfPrograms.xdpIngress[0].name == "a")
    }

    @Test(arguments: [
        (#"[{"iface":"e","bpf_programs":{"xdp_ingress":[{"name":"a","seq_id":"1"}]}}]"#,
         "at [0].bpf_programs.xdp_ingress[0].seq_id: expected an integer, found a string"),
        (#"[{"iface":4}]"#, "at [0].iface: expected a string, found a number"),
        (#"[{"iface":"e","bpf_programs":{"tc_egress":[{"name":"a","user_program_daemon":"yes"}]}}]"#,
         "at [0].bpf_programs.tc_egress[0].user_program_daemon: expected true or false"),
        (#"[{"iface":"e","bpf_programs":{"xdp_ingress":[{"name":"a","monitor_maps":[{"name":"m","aggregator":"sum"}]}]}}]"#,
         "at [0].bpf_programs.xdp_ingress[0].monitor_maps[0].aggregator: 'sum' is not an aggregator"),
        (#"{"iface":"e"}"#, "expected an array, found an object"),
        (#"[{"iface":"e","bpf_programs":{"xdp_ingress":{"name":"a"}}}]"#, "at [0].bpf_programs.xdp_ingress: expected an array"),
        (#"[{"iface":"e","bpf_programs":{"xdp_ingress":[{"name":"a","start_args":[1]}]}}]"#,
         "at [0].bpf_programs.xdp_ingress[0].start_args: expected an object"),
        (#"[{"iface":"e","bpf_programs":{"xdp_ingress":[{"name":"a","map_args":[{"name":"m","args":[{"key":"1"}]}]}]}}]"#,
         "at [0].bpf_programs.xdp_ingress[0].map_args[0].args[0].key: expected an integer"),
    ])
    func wrongTypesNameTheFieldPath(_ json: String, _ expected: String) {
        let error = decodeError([L3afBPFPrograms].self, json)
        #expect(error?.contains(expected) == true, "\(error ?? "decoded")")
    }

    @Test func decodesBothMapArgsForms() throws {
        let list = try decode(BPFProgram.self, #"{"map_args":[{"name":"rl_ports_map","args":[{"key":80,"value":1}]}]}"#)
        #expect(list.mapArgs == [MapArg(name: "rl_ports_map", args: [.init(key: 80, value: 1)])])
        let legacy = try decode(BPFProgram.self, #"{"map_args":{"rl_ports_map":"80,443","b":2}}"#)
        #expect(legacy.mapArgs == [MapArg(name: "b", legacyValue: .integer(2)), MapArg(name: "rl_ports_map", legacyValue: .string("80,443"))])
    }

    @Test func startArgsKeepAnyJSONValue() throws {
        let p = try decode(BPFProgram.self, #"{"start_args":{"rate":2,"on":true,"ports":"80","nested":{"a":1},"f":1.5}}"#)
        #expect(p.startParameters.map { "\($0.name)=\($0.value)" } == ["f=1.5", "on=true", "ports=80", "rate=2"])
    }

    @Test func roundTripsThroughJSON() throws {
        let payload = try decode([L3afBPFPrograms].self, Self.documented)
        #expect(try DocumentDecoder.decode([L3afBPFPrograms].self, from: DocumentDecoder.encode(payload), document: "again") == payload)
        let encoded = String(decoding: try DocumentDecoder.encode(payload), as: UTF8.self)
        for field in ["\"seq_id\"", "\"entry_function_name\"", "\"ebpf_package_repo_url\"", "\"user_program_daemon\"", "\"bpf_programs\""] {
            #expect(encoded.contains(field), "encodes l3afd's field name \(field)")
        }
    }

    @Test func semanticProblemsNameTheirPaths() throws {
        let json = """
            {"iface":"","bpf_programs":{"xdp_ingress":[{"name":"a","seq_id":1},{"name":"b","seq_id":1},{"name":"a","seq_id":2},
              {"name":"","seq_id":-1,"admin_status":"on","prog_type":"tc"}]}}
            """
        let problems = try decode(L3afBPFPrograms.self, json).problems().map(\.description)
        #expect(problems == [
            "iface is empty",
            "bpf_programs.xdp_ingress[1].seq_id 1 is also the seq_id of 'a' in xdp_ingress",
            "bpf_programs.xdp_ingress[2].name 'a' appears twice in xdp_ingress",
            "bpf_programs.xdp_ingress[3].name is empty",
            "bpf_programs.xdp_ingress[3].seq_id is -1; it must be 0 or more",
            "bpf_programs.xdp_ingress[3].admin_status 'on' is neither 'enabled' nor 'disabled'",
            "bpf_programs.xdp_ingress[3].prog_type 'tc' does not fit xdp_ingress (expected 'xdp')",
        ])
    }
}
