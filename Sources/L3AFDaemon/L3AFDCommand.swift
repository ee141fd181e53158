import ArgumentParser
import Foundation
import L3AFCLISupport
import L3AFModel
import Logging

/// `l3afd`: the node daemon serving l3afd's REST API.
public struct L3AFDCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "l3afd",
        abstract: "The l3af node daemon: l3afd's REST API, wire-compatible, driving the same runtime as l3af.",
        discussion: """
            Serves GET /l3af/configs/v1[/{iface}], POST /l3af/configs/v1/add|update|delete (L3afBPFPrograms and \
            L3afBPFProgramNames payloads), this project's routes under /l3af/v1/, and /metrics (Prometheus). Settings \
            come from --config (JSON: listen, metrics_listen, registry, trusted_keys, repo, cache, state, pin_root, \
            host_name, tls {certificate, key, client_ca, min_version, san_match_rules}, socket, token_file, allowed_hosts, \
            insecure_listen, max_connections, idle_timeout_seconds, history_limit, sample_interval_seconds, samples, \
            lock_timeout_seconds), \
            then flags. On SIGTERM it stops serving and leaves every program attached.
            """,
        version: L3AFBuild.version
    )

    @Option(help: "A JSON config file.") var config: String?
    @Option(help: "host:port of the API (default 127.0.0.1:7080; port 0 picks one).") var listen: String?
    @Option(help: "host:port for /metrics alone (default: on the API's address).") var metricsListen: String?
    @Option(help: "The registry's URL.") var registry: String?
    @Option(help: "A trusted registry key, base64 (repeatable).") var trustedKey: [String] = []
    @Option(help: "l3afd's repository folder (default /var/l3afd/repo).") var repo: String?
    @Option(help: "Cache folder (default /var/cache/l3af).") var cache: String?
    @Option(help: "State folder: state.db, the lock, l3afd.pid (default /var/l3afd).") var state: String?
    @Option(help: "bpffs folder for the chains (default /sys/fs/bpf/l3af).") var pinRoot: String?
    @Option(help: "The name payloads' host_name must match (default: the system's).") var hostName: String?
    @Option(help: "PEM certificate chain to serve TLS with.") var tlsCertificate: String?
    @Option(help: "PEM private key of --tls-certificate.") var tlsKey: String?
    @Option(help: "PEM CA client certificates must chain to (mTLS).") var tlsClientCa: String?
    @Option(help: "Lowest TLS version: 1.2 (default) or 1.3.") var tlsMinVersion: String?
    @Option(help: "A literal or regex a client certificate's SAN must match (repeatable; needs --tls-client-ca).") var sanMatchRule: [String] = []
    @Option(help: "Also serve the API on this Unix socket (mode 0600; the caller's uid is recorded).") var socket: String?
    @Option(help: "A file (mode 0600) with the bearer token every API request must carry.") var tokenFile: String?
    @Option(help: "A name the Host header may carry besides IPs, localhost and the host name (repeatable).") var allowedHost: [String] = []
    @Flag(help: "Serve without client authentication on a non-loopback address (something in front must authenticate).") var insecureListen = false
    @Option(help: "Seconds between metric samples (default 1, as l3afd).") var sampleInterval: Double?
    @Option(help: "Seconds a change waits for another writer (an l3af, or l3afd's own) before answering 409 (default 30).") var lockTimeout: Double?
    @Option(help: "Log level: trace, debug, info, notice, warning, error.") var logLevel: String = "info"
    @Option(help: "Log format: text, or json (one object per line: time, level, label, message, source, fields).") var logFormat: LogFormat = .text

    public init() {}

    func settings() throws -> DaemonConfiguration {
        var settings = DaemonConfiguration()
        if let config {
            guard let data = FileManager.default.contents(atPath: config) else {
                throw DaemonError(.badConfiguration, "can't read the config file \(config)", hint: "check --config")
            }
            if L3afdConfigFile.isINI(path: config, bytes: Array(data)) {
                settings = try L3afdConfigFile.read(String(decoding: data, as: UTF8.self), path: config)
            } else {
                settings = try DocumentDecoder.decode(DaemonConfiguration.self, from: data, document: "config \(config)")
            }
        }
        if let listen { settings.listen = listen }
        if let metricsListen { settings.metricsListen = metricsListen }
        if let registry { settings.client.registry = registry }
        if !trustedKey.isEmpty { settings.client.trustedKeys = trustedKey }
        if let repo { settings.client.repo = repo }
        if let cache { settings.client.cache = cache }
        if let state { settings.client.state = state }
        if let pinRoot { settings.pinRoot = pinRoot }
        if let hostName { settings.hostName = hostName }
        if let sampleInterval { settings.sampleIntervalSeconds = sampleInterval }
        if let lockTimeout { settings.lockTimeoutSeconds = lockTimeout }
        if let socket { settings.socket = socket }
        if let tokenFile { settings.tokenFile = tokenFile }
        if !allowedHost.isEmpty { settings.allowedHosts = allowedHost }
        if insecureListen { settings.insecureListen = true }
        if let tlsCertificate, let tlsKey {
            settings.tls = .init(certificate: tlsCertificate, key: tlsKey, clientCA: tlsClientCa, minimumVersion: tlsMinVersion, sanMatchRules: sanMatchRule)
        } else if tlsCertificate != nil || tlsKey != nil || tlsClientCa != nil || tlsMinVersion != nil || !sanMatchRule.isEmpty {
            throw DaemonError(.badConfiguration, "TLS needs both --tls-certificate and --tls-key", hint: "--tls-client-ca adds mTLS on top")
        }
        return settings
    }

    public func run() async throws {
        let settings = try settings()
        logFormat.bootstrap()
        var logger = Logger(label: "l3afd")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        let scheme = settings.tls == nil ? "http" : "https"
        let host = try DaemonConfiguration.address(settings.listen, option: "listen").host
        try await Daemon.run(settings, logger: logger) { port, metricsPort in
            var line = "l3afd listening on \(scheme)://\(host):\(port)"
            if let metricsPort { line += " (metrics on http://\(try! DaemonConfiguration.address(settings.metricsListen!, option: "").host):\(metricsPort)/metrics)" }
            FileHandle.standardOutput.write(Data((line + "\n").utf8))
        }
    }
}
