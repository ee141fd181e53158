import Foundation
import L3AFDaemon
import L3AFModel
import Testing

/// l3afd's own `l3afd.cfg`, read as l3afd reads it: upstream's example whole, every key honoured or noticed.
@Suite struct L3afdConfigFileTests {
    /// Upstream's example configuration (l3afd's config/l3afd.cfg), as an L3AF user has it.
    static let upstreamExample = """
        [DEFAULT]

        [l3afd]
        pid-file: ./l3afd.pid
        datacenter: dummy
        bpf-dir: /dev/shm
        bpf-log-dir:
        kernel-major-version: 5
        kernel-minor-version: 15
        shutdown-timeout: 25s
        http-client-timeout: 10s
        max-ebpf-restart-count: 3
        bpf-chaining-enabled: true
        swagger-api-enabled: true
        environment: DEV
        BpfMapDefaultPath: /sys/fs/bpf
        HotReloadEnabled : false

        [ebpf-repo]
        url: file:///srv/l3afd

        [web]
        metrics-addr: 0.0.0.0:8898
        ebpf-poll-interval: 30s
        n-metric-samples: 20

        [xdp-root]
        package-name: xdp-root
        artifact: l3af_xdp_root.tar.gz
        command: xdp_root
        ingress-map-name: xdp_root_array
        version: latest
        object-file: xdp_root.bpf.o
        entry-function-name: xdp_root

        [tc-root]
        package-name: tc-root
        artifact: l3af_tc_root.tar.gz
        ingress-map-name: tc_ingress_root_array
        egress-map-name: tc_egress_root_array
        command: tc_root
        version: latest
        ingress-object-file: tc_root_ingress.bpf.o
        egress-object-file: tc_root_egress.bpf.o
        ingress-entry-function-name: tc_ingress_root
        egress-entry-function-name: tc_egress_root

        [ebpf-chain-debug]
        addr: 0.0.0.0:8899
        enabled: true

        [l3af-configs]
        restapi-addr: 0.0.0.0:7080

        [l3af-config-store]
        filename: /var/l3afd/l3af-config.json

        [mtls]
        enabled: false
        # TLS_1_2 or TLS_1_3
        # min-tls-version: TLS_1_3
        # san-match-rules: .+l3afd.l3af.io,.*l3af.l3af.io,^l3afd.l3af.io$

        [l3af-config-store]
        filename: /var/l3afd/l3af-config.json
        """

    @Test func upstreamsExampleIsReadWithEveryKeyHonouredOrNoticed() throws {
        #expect(L3afdConfigFile.isINI(path: "/etc/l3afd/l3afd.conf", bytes: Array(Self.upstreamExample.utf8)))
        let configuration = try L3afdConfigFile.read(Self.upstreamExample, path: "l3afd.cfg")
        #expect(configuration.listen == "0.0.0.0:7080" && configuration.metricsListen == "0.0.0.0:8898")
        #expect(configuration.samples == 20 && configuration.client.connectTimeoutSeconds == 10)
        #expect(configuration.pinRoot == "/sys/fs/bpf/l3af")
        #expect(configuration.plainRepository == "file:///srv/l3afd" && configuration.client.registry == nil)
        #expect(configuration.client.repo == "/dev/shm" && configuration.configStore == "/var/l3afd/l3af-config.json")
        let xdp = try #require(configuration.plainRoots[.xdpIngress]), egress = try #require(configuration.plainRoots[.tcEgress])
        #expect(xdp.package == "xdp-root" && xdp.version == "latest" && xdp.artifact == "l3af_xdp_root.tar.gz" && xdp.objectFile == "xdp_root.bpf.o"
                && xdp.entryFunction == "xdp_root" && xdp.rootMap == "xdp_root_array")
        #expect(egress.package == "tc-root" && egress.objectFile == "tc_root_egress.bpf.o" && egress.entryFunction == "tc_egress_root"
                && egress.rootMap == "tc_egress_root_array")
        #expect(configuration.tls == nil)
        for key in ["pid-file", "datacenter", "shutdown-timeout", "HotReloadEnabled", "ebpf-poll-interval", "command"] {
            #expect(configuration.notices.contains { $0.contains(" \(key) has no effect") }, "a notice for \(key): \(configuration.notices)")
        }
    }

    @Test func anUnknownKeyOrSectionIsAnErrorNamingItAndItsLine() {
        let key = #expect(throws: DaemonError.self) { _ = try L3afdConfigFile.read("[l3afd]\npid-file: x\nbpf-chain-enabled: true\n", path: "l3afd.cfg") }
        #expect(key?.description == "l3afd.cfg line 3: l3afd has no key 'bpf-chain-enabled' in [l3afd]" && key?.hint?.contains("bpf-chaining-enabled") == true)
        let section = #expect(throws: DaemonError.self) { _ = try L3afdConfigFile.read("[webb]\nmetrics-addr: x\n", path: "l3afd.cfg") }
        #expect(section?.description.contains("line 1: l3afd has no section [webb]") == true)
        for (text, problem) in [
            ("[web]\nn-metric-samples: lots\n", "n-metric-samples 'lots'"),
            ("[l3afd]\nhttp-client-timeout: forever\n", "http-client-timeout 'forever'"),
            ("[l3afd]\nenvironment: STAGING\n", "environment 'STAGING'"),
            ("[ebpf-repo]\nurl: ftp://repo\n", "not a file, http or https URL"),
            ("pid-file: x\n", "before any [section]"),
        ] {
            let error = #expect(throws: DaemonError.self) { _ = try L3afdConfigFile.read(text, path: "l3afd.cfg") }
            #expect(error?.description.contains(problem) == true, "\(String(describing: error))")
        }
    }

    @Test func prodNeedsMTLSAndMTLSNamesItsFiles() throws {
        let prod = #expect(throws: DaemonError.self) { _ = try L3afdConfigFile.read("[l3afd]\nenvironment: PROD\n[mtls]\nenabled: false\n", path: "l3afd.cfg") }
        #expect(prod?.description.contains("PROD") == true && prod?.hint?.contains("[mtls] enabled: true") == true)
        let text = """
            [l3afd]
            environment: PROD
            [mtls]
            enabled: true
            min-tls-version: TLS_1_3
            cert-dir: /etc/l3af/certs
            cacert-filename: ca.pem
            server-crt-filename: server.crt
            server-key-filename: server.key
            san-match-rules: .+l3afd.l3af.io, ^l3afd.l3af.io$
            """
        let configuration = try L3afdConfigFile.read(text, path: "l3afd.cfg")
        #expect(configuration.tls == .init(certificate: "/etc/l3af/certs/server.crt", key: "/etc/l3af/certs/server.key", clientCA: "/etc/l3af/certs/ca.pem",
                                           minimumVersion: "1.3", sanMatchRules: [".+l3afd.l3af.io", "^l3afd.l3af.io$"]))
    }
}
