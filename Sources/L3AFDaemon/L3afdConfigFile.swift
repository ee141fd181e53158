import Foundation
import L3AFFleet
import L3AFHost
import L3AFModel

/// l3afd's own configuration file, `l3afd.cfg` (INI: `[section]` headers, `key: value` or `key = value` lines, `#` and
/// `;` comments), read into a ``DaemonConfiguration`` so an L3AF deployment keeps its file. Every key of upstream's
/// example is honoured, or accepted with a one-line notice saying why it has no effect here; a section or key l3afd
/// doesn't have is an error naming it and its line. `environment: PROD` refuses to run without mTLS, as l3afd does.
public enum L3afdConfigFile {
    /// Whether `path`/`bytes` look like an l3afd.cfg rather than our JSON: a `.cfg` name, or a first `[section]`.
    public static func isINI(path: String, bytes: [UInt8]) -> Bool {
        if path.hasSuffix(".cfg") || path.hasSuffix(".ini") { return true }
        let text = String(decoding: bytes.prefix(4096), as: UTF8.self)
        let first = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.first { !$0.isEmpty && !$0.hasPrefix("#") && !$0.hasPrefix(";") }
        return first?.hasPrefix("[") == true
    }

    /// Keys with no effect here, and why, by section.
    static let noticed: [String: [String: String]] = [
        "l3afd": [
            "pid-file": "l3afd keeps its pid in <state>/l3afd.pid (one daemon per state folder)",
            "datacenter": "it has no meaning here",
            "bpf-dir": "artifacts stay in the repo folder (--repo, default /var/l3afd/repo), owned by root and kept across reboots (a world-writable /dev/shm would let any local user plant objects, and a reboot would empty it), so a restore needs no network",
            "kernel-major-version": "the kernel is asked (uname), not told",
            "kernel-minor-version": "the kernel is asked (uname), not told",
            "shutdown-timeout": "l3afd stops at once on SIGTERM and leaves every program attached",
            "swagger-api-enabled": "schemas/openapi.yaml documents the API",
            "HotReloadEnabled": "l3afd restarts without touching the chains; there is nothing to hand over",
        ],
        "xdp-root": ["command": "l3afd loads the root itself; it has no user program"],
        "tc-root": ["command": "l3afd loads the roots itself; they have no user program"],
        "mtls": ["cert-expiry-warning-days": "certificate expiry is not watched by l3afd"],
    ]

    /// Keys honoured, by section.
    static let honoured: [String: Set<String>] = [
        "l3afd": ["http-client-timeout", "bpf-chaining-enabled", "environment", "BpfMapDefaultPath", "bpf-log-dir", "max-ebpf-restart-count"],
        "ebpf-repo": ["url"],
        "xdp-root": ["package-name", "artifact", "ingress-map-name", "version", "object-file", "entry-function-name"],
        "tc-root": ["package-name", "artifact", "ingress-map-name", "egress-map-name", "version", "ingress-object-file", "egress-object-file",
                    "ingress-entry-function-name", "egress-entry-function-name"],
        "l3af-config-store": ["filename"],
        "ebpf-chain-debug": ["addr", "enabled"],
        "web": ["metrics-addr", "n-metric-samples", "ebpf-poll-interval"],
        "l3af-configs": ["restapi-addr"],
        "graceful-restart": ["restart-artifacts-url", "basepath", "time-to-restart", "version-limit"],
        "mtls": ["enabled", "min-tls-version", "cert-dir", "cacert-filename", "server-crt-filename", "server-key-filename", "san-match-rules"],
        // Ours, not l3afd's: the fleet (etcd) this host joins.
        "fleet": ["endpoints", "prefix", "host-name", "groups", "interfaces", "lease-seconds", "retry-seconds", "ca-file", "cert-file", "key-file"],
    ]

    static func bad(_ path: String, _ line: Int, _ problem: String, hint: String? = nil) -> DaemonError {
        DaemonError(.badConfiguration, "\(path) line \(line): \(problem)", hint: hint)
    }

    /// Reads `text` (the file at `path`, for messages) over `base`; returns the configuration and the notices to log.
    public static func read(_ text: String, path: String, base: DaemonConfiguration = DaemonConfiguration()) throws(DaemonError) -> DaemonConfiguration {
        var configuration = base
        // An L3AF deployment: its user programs and tools find maps where l3afd pins them.
        configuration.l3afdMapPins = true
        var section: String?
        var values: [String: [String: (value: String, line: Int)]] = [:]
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            let number = index + 1
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]") else { throw bad(path, number, "'\(line)' is not a [section] header") }
                let name = String(line.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces)
                guard name == "DEFAULT" || noticed[name] != nil || honoured[name] != nil else {
                    let known = Set(noticed.keys).union(honoured.keys).sorted().joined(separator: ", ")
                    throw bad(path, number, "l3afd has no section [\(name)]", hint: "its sections: \(known)")
                }
                section = name
                continue
            }
            guard let separator = line.firstIndex(where: { $0 == ":" || $0 == "=" }) else {
                throw bad(path, number, "'\(line)' is not `key: value`")
            }
            guard let section else { throw bad(path, number, "'\(line)' comes before any [section]") }
            let key = line[..<separator].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: separator)...].trimmingCharacters(in: .whitespaces)
            if section == "DEFAULT" {
                configuration.notices.append("\(path): [DEFAULT] \(key) ignored: l3afd reads its keys in their own sections")
                continue
            }
            guard honoured[section]?.contains(key) == true || noticed[section]?[key] != nil else {
                let known = (honoured[section] ?? []).union(noticed[section]?.keys.map { $0 } ?? []).sorted()
                throw bad(path, number, "l3afd has no key '\(key)' in [\(section)]", hint: "its keys: \(known.joined(separator: ", "))")
            }
            if let why = noticed[section]?[key] { configuration.notices.append("\(path): [\(section)] \(key) has no effect: \(why)") }
            values[section, default: [:]][key] = (value, number)
        }

        func value(_ section: String, _ key: String) -> (value: String, line: Int)? { values[section]?[key] }
        if let (url, line) = value("ebpf-repo", "url"), !url.isEmpty {
            guard BPFProgram.repositorySchemes.contains(urlScheme(of: url) ?? "") else {
                throw bad(path, line, "[ebpf-repo] url '\(url)' is not a file, http or https URL")
            }
            // The operator configured it: programs naming no repository, and the roots, come from it as from a plain
            // l3afd repository (trusted on first use).
            configuration.plainRepository = url
            configuration.plainRoots = try roots(value, path: path)
        }
        if let (text, line) = value("ebpf-chain-debug", "enabled"), !text.isEmpty {
            guard let enabled = bool(text) else { throw bad(path, line, "[ebpf-chain-debug] enabled '\(text)' is not true or false") }
            if enabled { configuration.chainDebugListen = value("ebpf-chain-debug", "addr").map(\.value).flatMap { $0.isEmpty ? nil : $0 } ?? "localhost:8899" }
        }
        if let (folder, line) = value("l3afd", "bpf-log-dir"), !folder.isEmpty {
            guard folder.hasPrefix("/") else { throw bad(path, line, "bpf-log-dir '\(folder)' is not an absolute path") }
            configuration.userProgramLogDir = folder
        }
        if let (text, line) = value("l3afd", "max-ebpf-restart-count"), !text.isEmpty {
            guard let count = Int(text), (0...1000).contains(count) else { throw bad(path, line, "max-ebpf-restart-count '\(text)' is not a number from 0 to 1000") }
            configuration.maximumRestarts = count
        }
        if let (file, line) = value("l3af-config-store", "filename"), !file.isEmpty {
            guard file.hasPrefix("/") else { throw bad(path, line, "[l3af-config-store] filename '\(file)' is not an absolute path") }
            configuration.configStore = file
        }
        if let (address, _) = value("l3af-configs", "restapi-addr"), !address.isEmpty { configuration.listen = address }
        if let (address, _) = value("web", "metrics-addr"), !address.isEmpty { configuration.metricsListen = address }
        if let (text, line) = value("web", "n-metric-samples"), !text.isEmpty {
            guard let samples = Int(text), (2...10_000).contains(samples) else { throw bad(path, line, "n-metric-samples '\(text)' is not a number from 2 to 10000") }
            configuration.samples = samples
        }
        if let (text, line) = value("web", "ebpf-poll-interval"), !text.isEmpty {
            guard let seconds = duration(text), (1...86_400).contains(seconds) else {
                throw bad(path, line, "ebpf-poll-interval '\(text)' is not a duration of 1 s to 1 day", hint: "e.g. 30s")
            }
            configuration.statusIntervalSeconds = Double(seconds)
        }
        if let (text, line) = value("l3afd", "http-client-timeout"), !text.isEmpty {
            guard let seconds = duration(text), (1...3600).contains(seconds) else {
                throw bad(path, line, "http-client-timeout '\(text)' is not a duration of 1 s to 1 h", hint: "e.g. 10s or 1m")
            }
            configuration.client.connectTimeoutSeconds = seconds
        }
        if let (folder, line) = value("l3afd", "BpfMapDefaultPath"), !folder.isEmpty {
            guard folder.hasPrefix("/") else { throw bad(path, line, "BpfMapDefaultPath '\(folder)' is not an absolute path") }
            configuration.pinRoot = (folder.hasSuffix("/") ? String(folder.dropLast()) : folder) + "/l3af"
            configuration.notices.append("\(path): chains are pinned under \(configuration.pinRoot)")
        }
        if let (text, line) = value("l3afd", "bpf-chaining-enabled"), !text.isEmpty {
            guard let chaining = bool(text) else { throw bad(path, line, "bpf-chaining-enabled '\(text)' is not true or false") }
            configuration.chaining = chaining
        }
        if let (text, line) = value("mtls", "enabled"), !text.isEmpty {
            guard let enabled = bool(text) else { throw bad(path, line, "[mtls] enabled '\(text)' is not true or false") }
            if enabled {
                let folder = value("mtls", "cert-dir")?.value ?? "/etc/l3af/certs"
                func file(_ key: String, _ fallback: String) -> String { "\(folder)/\(value("mtls", key)?.value ?? fallback)" }
                var minimum: String?
                if let (version, versionLine) = value("mtls", "min-tls-version"), !version.isEmpty {
                    switch version {
                    case "TLS_1_2": minimum = "1.2"
                    case "TLS_1_3": minimum = "1.3"
                    default: throw bad(path, versionLine, "min-tls-version '\(version)' is not TLS_1_2 or TLS_1_3")
                    }
                }
                let rules = (value("mtls", "san-match-rules")?.value ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                configuration.tls = .init(certificate: file("server-crt-filename", "server.crt"), key: file("server-key-filename", "server.key"),
                                          clientCA: file("cacert-filename", "ca.pem"), minimumVersion: minimum, sanMatchRules: rules)
            }
        }
        if let (url, line) = value("graceful-restart", "restart-artifacts-url"), !url.isEmpty {
            var restart = DaemonConfiguration.GracefulRestart(artifactsURL: url)
            if let (folder, _) = value("graceful-restart", "basepath"), !folder.isEmpty { restart.basePath = folder }
            if let (text, timeLine) = value("graceful-restart", "time-to-restart"), !text.isEmpty {
                guard let seconds = duration(text), (1...600).contains(seconds) else {
                    throw bad(path, timeLine, "time-to-restart '\(text)' is not a number of seconds from 1 to 600")
                }
                restart.timeToRestartSeconds = Double(seconds)
            }
            if let (text, limitLine) = value("graceful-restart", "version-limit"), !text.isEmpty {
                guard let limit = Int(text), (0...10_000).contains(limit) else { throw bad(path, limitLine, "version-limit '\(text)' is not a number from 0 to 10000") }
                restart.versionLimit = limit
            }
            do { try restart.validate() } catch { throw bad(path, line, error.description, hint: error.hint) }
            configuration.gracefulRestart = restart
        }
        if let (text, line) = value("fleet", "endpoints"), !text.isEmpty {
            configuration.fleet = try fleet(text, line: line, value, path: path)
            if let (name, _) = value("fleet", "host-name"), !name.isEmpty { configuration.hostName = name }
        }
        if let (environment, line) = value("l3afd", "environment"), !environment.isEmpty {
            switch environment {
            case "DEV": break
            case "PROD":
                guard configuration.tls?.clientCA != nil else {
                    throw bad(path, line, "environment is PROD but [mtls] is not enabled: l3afd serves PROD only with mTLS",
                              hint: "set [mtls] enabled: true with its certificates, or environment: DEV")
                }
            default: throw bad(path, line, "environment '\(environment)' is not PROD or DEV")
            }
        }
        return configuration
    }

    /// `[fleet]`: `endpoints` (comma-separated etcd URLs), `prefix`, `groups` (comma-separated), `interfaces`
    /// (`fleet-name:local-name` pairs, comma-separated), `lease-seconds`, `retry-seconds`, and `ca-file`, `cert-file`,
    /// `key-file` for TLS to etcd.
    static func fleet(_ endpoints: String, line: Int, _ value: (String, String) -> (value: String, line: Int)?, path: String) throws(DaemonError) -> FleetConfiguration {
        func list(_ key: String) -> [String] {
            (value("fleet", key)?.value ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        var fleet = FleetConfiguration(endpoints: list("endpoints"))
        if let (prefix, _) = value("fleet", "prefix"), !prefix.isEmpty { fleet.prefix = prefix }
        fleet.groups = list("groups")
        for pair in list("interfaces") {
            let parts = pair.split(separator: ":").map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { throw bad(path, value("fleet", "interfaces")?.line ?? line, "[fleet] interfaces: '\(pair)' is not fleet-name:local-name", hint: "e.g. uplink:ens5") }
            fleet.interfaces[parts[0]] = parts[1]
        }
        if let (text, textLine) = value("fleet", "lease-seconds"), !text.isEmpty {
            guard let seconds = duration(text) else { throw bad(path, textLine, "[fleet] lease-seconds '\(text)' is not a duration") }
            fleet.leaseSeconds = seconds
        }
        if let (text, textLine) = value("fleet", "retry-seconds"), !text.isEmpty {
            guard let seconds = duration(text) else { throw bad(path, textLine, "[fleet] retry-seconds '\(text)' is not a duration") }
            fleet.retrySeconds = Double(seconds)
        }
        let ca = value("fleet", "ca-file")?.value, certificate = value("fleet", "cert-file")?.value, key = value("fleet", "key-file")?.value
        if [ca, certificate, key].contains(where: { !($0 ?? "").isEmpty }) {
            fleet.tls = FleetTLS(ca: ca.flatMap { $0.isEmpty ? nil : $0 }, certificate: certificate.flatMap { $0.isEmpty ? nil : $0 }, key: key.flatMap { $0.isEmpty ? nil : $0 })
        }
        do { try fleet.validate() } catch { throw bad(path, line, "[fleet] \(error.description)", hint: error.hint) }
        return fleet
    }

    /// The roots as `[xdp-root]` and `[tc-root]` describe them, upstream's defaults for keys not given.
    static func roots(_ value: (String, String) -> (value: String, line: Int)?, path: String) throws(DaemonError) -> [Hook: PlainRoot] {
        func root(_ section: String, _ prefix: String, defaults: [String: String]) throws(DaemonError) -> PlainRoot {
            func get(_ key: String) -> (value: String, line: Int) {
                if let given = value(section, key), !given.value.isEmpty { return given }
                let bare = key.hasPrefix(prefix) ? String(key.dropFirst(prefix.count)) : key
                return (defaults[bare] ?? defaults[key] ?? "", 0)
            }
            func name(_ key: String) throws(DaemonError) -> String {
                let (text, line) = get(key)
                do { _ = try FileName(text, field: "[\(section)] \(key)") } catch { throw bad(path, line, error.description, hint: error.hint) }
                return text
            }
            let package: PackageName
            do { package = try PackageName(get("package-name").value) } catch {
                throw bad(path, get("package-name").line, "[\(section)] package-name: \(error.description)", hint: error.hint)
            }
            return PlainRoot(package: package, version: try name("version"), artifact: try name("artifact"), objectFile: try name(prefix + "object-file"),
                             entryFunction: try name(prefix + "entry-function-name"), rootMap: try name(prefix.isEmpty ? "ingress-map-name" : prefix + "map-name"))
        }
        return [
            .xdpIngress: try root("xdp-root", "", defaults: [
                "package-name": "xdp-root", "version": "latest", "artifact": "l3af_xdp_root.tar.gz", "object-file": "xdp_root.bpf.o",
                "entry-function-name": "xdp_root", "ingress-map-name": "xdp_root_array",
            ]),
            .tcIngress: try root("tc-root", "ingress-", defaults: [
                "package-name": "tc-root", "version": "latest", "artifact": "l3af_tc_root.tar.gz", "object-file": "tc_root_ingress.bpf.o",
                "entry-function-name": "tc_ingress_root", "map-name": "tc_ingress_root_array",
            ]),
            .tcEgress: try root("tc-root", "egress-", defaults: [
                "package-name": "tc-root", "version": "latest", "artifact": "l3af_tc_root.tar.gz", "object-file": "tc_root_egress.bpf.o",
                "entry-function-name": "tc_egress_root", "map-name": "tc_egress_root_array",
            ]),
        ]
    }

    /// `10s`, `1m`, `2h`, or plain seconds.
    static func duration(_ text: String) -> Int? {
        let units: [Character: Int] = ["s": 1, "m": 60, "h": 3600]
        if let unit = text.last, let scale = units[unit], let count = Int(text.dropLast()) {
            let (seconds, overflow) = count.multipliedReportingOverflow(by: scale)
            return overflow ? nil : seconds
        }
        return Int(text)
    }

    static func bool(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "true", "yes", "1", "on": true
        case "false", "no", "0", "off": false
        default: nil
        }
    }
}
