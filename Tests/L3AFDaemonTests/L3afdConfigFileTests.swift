import Foundation
import Synchronization
import Logging
import ServiceLifecycle
import L3AFHTTPServer
import L3AFDaemon
import L3AFFleet
import L3AFModel
import L3AFSystem
import L3AFTestSupport
import Testing

/// l3afd's own `l3afd.cfg`, read as l3afd reads it: upstream's example whole, every key honoured or noticed.
@Suite struct L3afdConfigFileTests {
    /// Upstream's example configuration (l3afd's config/l3afd.cfg), as an L3AF user has it.
    static let upstreamExample = try! Fixtures.upstreamL3afdConfig()

    @Test func upstreamsExampleIsReadWithEveryKeyHonouredOrNoticed() throws {
        #expect(L3afdConfigFile.isINI(path: "/etc/l3afd/l3afd.conf", bytes: Array(Self.upstreamExample.utf8)))
        let configuration = try L3afdConfigFile.read(Self.upstreamExample, path: "l3afd.cfg")
        #expect(configuration.listen == "0.0.0.0:7080" && configuration.metricsListen == "0.0.0.0:8898")
        #expect(configuration.samples == 20 && configuration.client.connectTimeoutSeconds == 10 && configuration.statusIntervalSeconds == 30)
        #expect(configuration.maximumRestarts == 3 && configuration.chainDebugListen == "0.0.0.0:8899")
        #expect(configuration.pinRoot == "/sys/fs/bpf/l3af")
        #expect(configuration.plainRepository == "file:///srv/l3afd" && configuration.client.registry == nil)
        #expect(configuration.client.repo == "/var/l3afd/repo" && configuration.configStore == "/var/l3afd/l3af-config.json")
        let xdp = try #require(configuration.plainRoots[.xdpIngress]), egress = try #require(configuration.plainRoots[.tcEgress])
        #expect(xdp.package == "xdp-root" && xdp.version == "latest" && xdp.artifact == "l3af_xdp_root.tar.gz" && xdp.objectFile == "xdp_root.bpf.o"
                && xdp.entryFunction == "xdp_root" && xdp.rootMap == "xdp_root_array")
        #expect(egress.package == "tc-root" && egress.objectFile == "tc_root_egress.bpf.o" && egress.entryFunction == "tc_egress_root"
                && egress.rootMap == "tc_egress_root_array")
        #expect(configuration.tls == nil)
        for key in ["pid-file", "datacenter", "shutdown-timeout", "HotReloadEnabled", "command", "bpf-dir"] {
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

    /// `[fleet]` (ours) joins the host to a fleet; the JSON configuration's `fleet` the same; bad values refused with
    /// their line or key.
    @Test func theFleetSectionJoinsAFleet() throws {
        let text = "[fleet]\nendpoints: http://10.0.0.1:2379, https://10.0.0.2:2379\nprefix: /dc1/l3af\nhost-name: edge-7\ngroups: edge, canary\n"
            + "interfaces: uplink:ens5, mgmt:eth1\nlease-seconds: 15s\nretry-seconds: 1m\nca-file: /etc/l3af/etcd-ca.pem\n"
        let configuration = try L3afdConfigFile.read(text, path: "l3afd.cfg")
        let fleet = try #require(configuration.fleet)
        #expect(fleet.endpoints == ["http://10.0.0.1:2379", "https://10.0.0.2:2379"] && fleet.prefix == "/dc1/l3af" && fleet.groups == ["edge", "canary"])
        #expect(fleet.interfaces == ["uplink": "ens5", "mgmt": "eth1"] && fleet.leaseSeconds == 15 && fleet.retrySeconds == 60)
        #expect(fleet.tls == FleetTLS(ca: "/etc/l3af/etcd-ca.pem") && configuration.hostName == "edge-7")
        for (bad, problem) in [
            ("[fleet]\nendpoints: ftp//x\n", "is not http://host:port"),
            ("[fleet]\nendpoints: http://e:2379\ngroups: ../x\n", "can't name a fleet member"),
            ("[fleet]\nendpoints: http://e:2379\nprefix: fleet\n", "is not a key prefix"),
            ("[fleet]\nendpoints: http://e:2379\nlease-seconds: 1\n", "lease_seconds is 1"),
            ("[fleet]\nendpoints: http://e:2379\ninterfaces: uplink\n", "is not fleet-name:local-name"),
        ] {
            let error = #expect(throws: DaemonError.self) { _ = try L3afdConfigFile.read(bad, path: "l3afd.cfg") }
            #expect(error?.description.contains(problem) == true && error?.description.contains("line ") == true, "\(String(describing: error))")
        }
        let json = try DocumentDecoder.decode(DaemonConfiguration.self, from: Data(#"{"fleet": {"endpoints": ["http://127.0.0.1:2379"], "groups": ["edge"]}}"#.utf8), document: "l3afd.json")
        #expect(json.fleet?.groups == ["edge"] && json.fleet?.leaseSeconds == 10)
        #expect(throws: DocumentError.self) { _ = try DocumentDecoder.decode(DaemonConfiguration.self, from: Data(#"{"fleet": {"endpoints": [], "group": "x"}}"#.utf8), document: "l3afd.json") }
    }

    /// `[graceful-restart]` as l3af-arch's development l3afd.cfg has it; upstream's defaults for keys left out; bad
    /// values named with their line.
    @Test func gracefulRestartIsReadWithUpstreamsDefaults() throws {
        let text = "[graceful-restart]\nrestart-artifacts-url: file:///srv/l3afd\ntime-to-restart: 7\nbasepath: /usr/local/l3afd\nversion-limit: 100\n"
        let restart = try #require(try L3afdConfigFile.read(text, path: "l3afd.cfg").gracefulRestart)
        #expect(restart == DaemonConfiguration.GracefulRestart(artifactsURL: "file:///srv/l3afd", basePath: "/usr/local/l3afd", timeToRestartSeconds: 7, versionLimit: 100))
        let defaults = try #require(try L3afdConfigFile.read("[graceful-restart]\nrestart-artifacts-url: https://builds.example/l3afd\n", path: "l3afd.cfg").gracefulRestart)
        #expect(defaults.basePath == "/usr/local/l3afd" && defaults.timeToRestartSeconds == 7 && defaults.versionLimit == 100)
        #expect(try L3afdConfigFile.read("[graceful-restart]\ntime-to-restart: 7\n", path: "l3afd.cfg").gracefulRestart == nil, "no URL: not served")
        for (text, problem) in [
            ("[graceful-restart]\nrestart-artifacts-url: ftp://x\n", "line 2: the restart artifacts URL 'ftp://x' is not a file, http or https URL"),
            ("[graceful-restart]\nrestart-artifacts-url: file:///x\ntime-to-restart: soon\n", "line 3: time-to-restart 'soon'"),
            ("[graceful-restart]\nrestart-artifacts-url: file:///x\nbasepath: relative\n", "line 2: the restart base path 'relative' is not an absolute path"),
            ("[graceful-restart]\nrestart-artifacts-url: file:///x\nversion-limit: -1\n", "line 3: version-limit '-1'"),
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

/// A graceful stop says STOPPING=1; a handover to a new process (a graceful restart) doesn't, or systemd would stop
/// the unit with the new process in it.
@Suite struct SystemdWatchdogTests {
    func stop(final: Bool) async throws -> [String] {
        let sent = Mutex<[String]>([])
        let watchdog = SystemdWatchdog(interval: .milliseconds(20), stopIsFinal: { final }, notify: { message in sent.withLock { $0.append(message) } })
        let group = ServiceGroup(configuration: .init(services: [watchdog], logger: Logger(label: "test")))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            // At least two pings first (a loaded machine may take a while to run the watchdog's task).
            for _ in 0..<500 where sent.withLock({ $0.count }) < 2 { try await Task.sleep(for: .milliseconds(20)) }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        return sent.withLock { $0 }
    }

    @Test func aFinalStopSaysStoppingAndAHandoverDoesnt() async throws {
        let final = try await stop(final: true)
        #expect(final.filter { $0 == "WATCHDOG=1" }.count >= 2 && final.last == "STOPPING=1", "\(final)")
        let handover = try await stop(final: false)
        #expect(handover.filter { $0 == "WATCHDOG=1" }.count >= 2 && !handover.contains("STOPPING=1"), "\(handover)")
    }
}

/// What a graceful restart tells systemd: the new process is the service's main process.
@Suite struct SystemdNotifyTests {
    @Test func mainPIDReachesTheNotifySocket() throws {
        for abstract in [false, true] {
            let name = "l3af-notify-\(getpid())-\(abstract)"
            let path = abstract ? "@\(name)" : FileManager.default.temporaryDirectory.appending(path: name).path
            let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            defer { close(fd); if !abstract { unlink(path) } }
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            var bytes = Array(path.utf8)
            if abstract { bytes[0] = 0 }
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)) }
            }
            #expect(bound == 0)
            SystemdNotify.send("MAINPID=4242", to: path)
            var buffer = [UInt8](repeating: 0, count: 64)
            let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            #expect(count > 0 && String(decoding: buffer.prefix(max(count, 0)), as: UTF8.self) == "MAINPID=4242", "abstract \(abstract)")
        }
        SystemdNotify.send("MAINPID=1", to: nil)  // no socket: nothing, no error
    }
}
