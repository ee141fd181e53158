import ArgumentParser
import Foundation
import L3AFCLISupport
import L3AFFleet
import L3AFHost
import L3AFModel

/// `l3af fleet`: the desired state of many hosts, in etcd.
struct FleetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet",
        abstract: "Run many hosts from etcd: desired chains and pins per group and host, rollouts in waves.",
        discussion: """
            Every l3afd with a fleet in its configuration watches its groups' and its own desired state in etcd, \
            applies each change through its host owner (one revision whose cause names the etcd revision) and writes \
            its status under a lease. Each write here is one etcd transaction that compares the revision it read, so \
            two operators never overwrite each other silently.
            """,
        subcommands: [
            FleetHostsCommand.self, FleetGetCommand.self, FleetSetCommand.self, FleetInstallCommand.self, FleetRemoveCommand.self,
            FleetPinCommand.self, FleetUnpinCommand.self, FleetRolloutCommand.self, FleetRollbackCommand.self, FleetHistoryCommand.self,
            FleetDiffCommand.self,
        ])
}

/// Where etcd is and under which prefix the fleet lives.
struct FleetOptions: ParsableArguments {
    @Option(help: "etcd's client URLs, comma-separated (default: $L3AF_ETCD, else http://127.0.0.1:2379).") var etcd: String?
    @Option(help: "The fleet's key prefix in etcd (default: $L3AF_FLEET_PREFIX, else /l3af/fleet).") var prefix: String?
    @Option(help: "The CA that signed etcd's certificate (for https endpoints).") var etcdCa: String?
    @Option(help: "A client certificate for etcd (PEM).") var etcdCert: String?
    @Option(help: "The client certificate's key (PEM).") var etcdKey: String?

    func store() throws -> FleetStore {
        let environment = ProcessInfo.processInfo.environment
        let endpoints = (etcd ?? environment["L3AF_ETCD"].flatMap { $0.isEmpty ? nil : $0 } ?? "http://127.0.0.1:2379")
            .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let tls = (etcdCa ?? etcdCert ?? etcdKey) == nil ? nil : FleetTLS(ca: etcdCa, certificate: etcdCert, key: etcdKey)
        let layout = try FleetLayout(prefix: prefix ?? environment["L3AF_FLEET_PREFIX"].flatMap { $0.isEmpty ? nil : $0 } ?? FleetLayout.defaultPrefix)
        let user = ProcessInfo.processInfo.environment["SUDO_USER"] ?? NSUserName()
        let machine = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "?"
        return FleetStore(client: try EtcdClient(endpoints: endpoints, tls: tls), layout: layout, actor: "\(user)@\(machine)")
    }
}

/// `60`, `60s`, `2m`: seconds.
func fleetSeconds(_ text: String, option: String, maximum: Double = HostManager.maximumWatchSeconds) throws -> Double {
    let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600]
    var scale = 1.0
    var number = Substring(text)
    if let unit = text.last, let factor = units[unit] { scale = factor; number = number.dropLast() }
    guard let value = Double(number), value.isFinite, value >= 0, value * scale <= maximum else {
        throw CLIError("bad-duration", "\(option) '\(text)' is not a duration of at most \(Int(maximum)) s", hint: "write e.g. 60, 60s or 2m")
    }
    return value * scale
}

struct FleetHostsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hosts", abstract: "The live hosts (their l3afd keeps a lease) and hosts with a desired state: what each should run and what it runs.")

    @OptionGroup var fleet: FleetOptions
    @OptionGroup var output: OutputOptions

    struct Row: Codable {
        var host: String
        var live: Bool
        var groups: [String]
        var state: String
        var inSync: Bool
        var revision: Int64?
        var desired: [String: String]
        var running: [String: String]
        var rollout: FleetStatus.RolloutReport?
        var lastError: String?
        var updatedAt: String?

        enum CodingKeys: String, CodingKey {
            case host, live, groups, state, desired, running, rollout, revision
            case inSync = "in_sync"
            case lastError = "last_error"
            case updatedAt = "updated_at"
        }
    }

    static func rows(_ store: FleetStore) async throws -> [Row] {
        let statuses = try await store.statuses()
        let documents = try await store.documents()
        var rows = statuses.map { status -> Row in
            let effective = (try? FleetName(status.host, what: "host")).map { FleetStore.effective(host: $0, groups: status.groups, documents: documents) }
            let desired = effective?.versions ?? [:]
            let configured = effective?.configured ?? false
            return Row(host: status.host, live: true, groups: status.groups, state: status.state.rawValue,
                       inSync: !configured || (status.fingerprint == effective?.fingerprint && status.state == .inSync),
                       revision: status.revision, desired: desired, running: status.versions, rollout: status.rollout, lastError: status.lastError,
                       updatedAt: status.updatedAt)
        }
        for case .host(let name) in documents.keys where !statuses.contains(where: { $0.host == name.rawValue }) {
            rows.append(Row(host: name.rawValue, live: false, groups: [], state: "not live", inSync: false, revision: nil,
                            desired: FleetStore.effective(host: name, groups: [], documents: documents).versions, running: [:], rollout: nil, lastError: nil, updatedAt: nil))
        }
        return rows.sorted { $0.host < $1.host }
    }

    func run() async throws {
        let rows = try await Self.rows(try fleet.store())
        var lines = ["HOST  LIVE  GROUPS  STATE  IN-SYNC  ETCD-REV  RUNNING"]
        for row in rows {
            let running = row.running.sorted { $0.key < $1.key }.map { "\($0.key)@\($0.value)" }.joined(separator: " ")
            lines.append("\(row.host)  \(row.live ? "yes" : "no")  \(row.groups.isEmpty ? "-" : row.groups.joined(separator: ","))  \(row.state)  \(row.inSync ? "yes" : "no")  \(row.revision.map(String.init) ?? "-")  \(running.isEmpty ? "-" : running)"
                         + (row.lastError.map { "\n    last error: \($0)" } ?? ""))
        }
        if rows.isEmpty { lines.append("(no live host, no desired state)") }
        try output.emit(rows, text: lines.joined(separator: "\n"))
    }
}

struct FleetGetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "Print a host's or a group's desired state and the revision it was written at.")

    @Argument(help: "HOST or @GROUP.") var target: String
    @OptionGroup var fleet: FleetOptions
    @OptionGroup var output: OutputOptions

    struct Reply: Codable {
        var target: String
        var revision: Int64
        var desired: FleetDesired?
    }

    func run() async throws {
        let parsed = try FleetTarget(target)
        let (desired, revision) = try await fleet.store().read(parsed)
        let text = desired.map { String(decoding: $0.encoded(), as: UTF8.self) } ?? "(no desired state)"
        try output.emit(Reply(target: parsed.description, revision: revision, desired: desired), text: "# \(parsed) at revision \(revision)\n\(text)")
    }
}

struct FleetSetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set", abstract: "Replace a host's or a group's programs with an l3afd payload ([L3afBPFPrograms], host_name empty), or its whole desired state.",
        discussion: """
            The file (or - for standard input) is a JSON list of l3afd payloads, which replaces the programs and keeps \
            the pins, or a fleet document ({"programs", "pins", "watch_seconds"}), which replaces everything. The write \
            compares the revision read (or --expect-revision): if someone else wrote in between, nothing is written and \
            the command says who.
            """)

    @Argument(help: "HOST or @GROUP.") var target: String
    @Argument(help: "The payload file, or - for standard input.") var file: String
    @Option(help: "Write only if the desired state is still at this revision (0: only if it has none), as `l3af fleet get` printed it.") var expectRevision: Int64?
    @Option(help: "Watch each change's health rules this long on every host (e.g. 30s); a change that breaks one is rolled back there.") var watch: String?
    @OptionGroup var fleet: FleetOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let parsed = try FleetTarget(target)
        let bytes: Data
        if file == "-" { bytes = FileHandle.standardInput.readDataToEndOfFile() } else {
            guard let read = FileManager.default.contents(atPath: file) else { throw CLIError("unreadable", "can't read \(file)", hint: "give a JSON file, or - for standard input") }
            bytes = read
        }
        guard bytes.count <= 1 << 20 else { throw CLIError("too-large", "\(file) is over 1 MiB", hint: "etcd refuses requests over 1.5 MiB by default; split the fleet into groups") }
        let store = try fleet.store()
        var desired: FleetDesired
        let revision: Int64
        if bytes.first(where: { !$0.isWhitespace }) == UInt8(ascii: "[") {
            // Programs replaced, the rest (pins, a rollout step) kept: the current document must be readable.
            let current: FleetDesired?
            do { (current, revision) = try await store.read(parsed) } catch let error as FleetError where error.kind == .badInput {
                throw FleetError(.badInput, error.description, hint: "replace the whole document: l3af fleet set \(parsed) document.json ({\"programs\": […], \"pins\": {…}})")
            }
            desired = current ?? FleetDesired()
            desired.programs = try DocumentDecoder.decode([L3afBPFPrograms].self, from: bytes, document: file)
        } else {
            // A whole document: what is there now is replaced, readable or not (how a damaged one is mended).
            desired = try DocumentDecoder.decode(FleetDesired.self, from: bytes, document: file)
            revision = try await store.client.get(store.layout.key(parsed)).0?.modRevision ?? 0
        }
        if let watch { desired.watchSeconds = try fleetSeconds(watch, option: "--watch") }
        let written = try await store.write(parsed, desired, ifAt: expectRevision ?? revision, cause: "set from \(file == "-" ? "standard input" : (file as NSString).lastPathComponent)")
        try output.emit(["target": parsed.description, "revision": "\(written)"], text: "\(parsed): written at revision \(written)")
    }
}

extension UInt8 {
    var isWhitespace: Bool { self == 0x20 || self == 0x0a || self == 0x0d || self == 0x09 }
}

/// `--group G` or `--host H`: whose desired state a command changes.
struct FleetWhose: ParsableArguments {
    @Option(help: "The group whose desired state to change.") var group: String?
    @Option(help: "The host whose desired state to change.") var host: String?

    func target() throws -> FleetTarget {
        switch (group, host) {
        case (let group?, nil): return .group(try FleetName(group, what: "group"))
        case (nil, let host?): return .host(try FleetName(host, what: "host"))
        default: throw CLIError("usage", "say whose desired state to change: --group G or --host H (one of them)")
        }
    }
}

struct FleetInstallCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "install", abstract: "Add a package (or change its version) on an interface of every host of a group, or of one host.")

    @Argument(help: "name@version, name@range or name@tag (default: latest).") var spec: String
    @OptionGroup var whose: FleetWhose
    @Option(help: "The interface, as the fleet names it (a host may map it to its own name).") var iface: String
    @Option(help: "The hook: xdp_ingress, tc_ingress or tc_egress.") var hook: String = "xdp_ingress"
    @Option(help: "Its place in the chain (default: after the others).") var seqId: Int?
    @Option(name: .customLong("param"), help: "A parameter, name=value (repeatable).") var parameters: [String] = []
    @Option(help: "Watch each change's health rules this long on every host (e.g. 30s).") var watch: String?
    @OptionGroup var fleet: FleetOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let target = try whose.target()
        let (nameText, version) = spec.firstIndex(of: "@").map { (String(spec[..<$0]), String(spec[spec.index(after: $0)...])) } ?? (spec, "latest")
        let name = try PackageName(nameText)
        guard !version.isEmpty else { throw CLIError("invalid-spec", "'\(spec)' has an empty version", hint: "write name@1.2.3, name@^1.2 or name@latest") }
        guard let hook = Hook(rawValue: hook) else { throw CLIError("usage", "--hook '\(self.hook)' is not a hook", hint: "one of: \(Hook.allCases.map(\.rawValue).joined(separator: ", "))") }
        var startArgs: [String: JSONValue] = [:]
        for parameter in parameters {
            guard let equals = parameter.firstIndex(of: "="), equals != parameter.startIndex else { throw CLIError("usage", "--param '\(parameter)' is not name=value") }
            startArgs[String(parameter[..<equals])] = .string(String(parameter[parameter.index(after: equals)...]))
        }
        let seconds = try watch.map { try fleetSeconds($0, option: "--watch") }
        let revision = try await fleet.store().modify(target, cause: "install \(name)@\(version) on \(iface)/\(hook.rawValue)") { desired in
            var payload = desired.programs.first { $0.iface == iface } ?? L3afBPFPrograms(hostName: "", iface: iface)
            var entries = payload.bpfPrograms[hook]
            var entry = entries.first { $0.name == name.rawValue } ?? BPFProgram(name: name.rawValue)
            entry.name = name.rawValue
            entry.version = version
            entry.adminStatus = "enabled"
            if let seqId { entry.seqID = seqId } else if entry.seqID == 0 { entry.seqID = (entries.map(\.seqID).max() ?? 0) + 1 }
            if !startArgs.isEmpty { entry.startArgs = startArgs }
            entries.removeAll { $0.name == name.rawValue }
            entries.append(entry)
            payload.bpfPrograms[hook] = entries.sorted { $0.seqID < $1.seqID }
            desired.programs.removeAll { $0.iface == iface }
            desired.programs.append(payload)
            desired.programs.sort { $0.iface < $1.iface }
            if let seconds { desired.watchSeconds = seconds }
        }
        try output.emit(["target": target.description, "revision": "\(revision)"], text: "\(target): \(name)@\(version) on \(iface)/\(hook.rawValue), revision \(revision)")
    }
}

struct FleetRemoveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove a package from a group's or a host's desired state.")

    @Argument(help: "The package.") var package: String
    @OptionGroup var whose: FleetWhose
    @Option(help: "Only on this interface.") var iface: String?
    @OptionGroup var fleet: FleetOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let target = try whose.target()
        let name = try PackageName(package)
        var found = false
        let revision = try await fleet.store().modify(target, cause: "remove \(name)\(iface.map { " from \($0)" } ?? "")") { desired in
            for i in desired.programs.indices where iface == nil || desired.programs[i].iface == iface {
                for hook in Hook.allCases {
                    let before = desired.programs[i].bpfPrograms[hook].count
                    desired.programs[i].bpfPrograms[hook].removeAll { $0.name == name.rawValue }
                    found = found || desired.programs[i].bpfPrograms[hook].count != before
                }
                let before = desired.programs[i].bpfPrograms.probes.count
                desired.programs[i].bpfPrograms.probes.removeAll { $0.name == name.rawValue }
                found = found || desired.programs[i].bpfPrograms.probes.count != before
            }
            guard found else { throw FleetError(.notFound, "\(target) doesn't run \(name)\(iface.map { " on \($0)" } ?? "")", hint: "l3af fleet get \(target) shows what it runs") }
        }
        try output.emit(["target": target.description, "revision": "\(revision)"], text: "\(target): \(name) removed, revision \(revision)")
    }
}

struct FleetPinCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pin", abstract: "Hold a package at one version on a host (or a group), whatever its groups say and whatever rolls out.")

    @Argument(help: "HOST or @GROUP.") var target: String
    @Argument(help: "name@version (exact).") var spec: String
    @OptionGroup var fleet: FleetOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let parsed = try FleetTarget(target)
        let exact = try ExactVersionSpec.parse(spec)
        let revision = try await fleet.store().modify(parsed, cause: "pin \(exact.name)@\(exact.version)") { $0.pins[exact.name.rawValue] = exact.version.description }
        try output.emit(["target": parsed.description, "revision": "\(revision)"], text: "\(parsed): \(exact.name) pinned at \(exact.version), revision \(revision)")
    }
}

struct FleetUnpinCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "unpin", abstract: "Let a pinned package follow its groups again.")

    @Argument(help: "HOST or @GROUP.") var target: String
    @Argument(help: "The package.") var package: String
    @OptionGroup var fleet: FleetOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let parsed = try FleetTarget(target)
        let name = try PackageName(package)
        let revision = try await fleet.store().modify(parsed, cause: "unpin \(name)") { desired in
            guard desired.pins.removeValue(forKey: name.rawValue) != nil else {
                throw FleetError(.notFound, "\(parsed) doesn't pin \(name)", hint: "l3af fleet get \(parsed) shows its pins")
            }
        }
        try output.emit(["target": parsed.description, "revision": "\(revision)"], text: "\(parsed): \(name) unpinned, revision \(revision)")
    }
}

struct FleetRolloutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollout", abstract: "Move a group to a package version in waves; each wave waits for its hosts to report it healthy.",
        discussion: """
            Each wave's hosts take the version and watch its health rules for --watch; the next wave starts once every \
            one of them reports it healthy. A host that rolls it back, fails to apply it or leaves the live list halts \
            the rollout: the waves already done are put back on the group's version, and the command exits non-zero. \
            Hosts that pin the package are held back. When the last wave is healthy the group takes the version.
            """)

    @Argument(help: "name@version (exact).") var spec: String
    @Option(help: "The group.") var group: String
    @Option(help: "Cumulative wave sizes: host counts or percentages (e.g. 1,10%,50%,100%).") var waves: String = "1,10%,50%,100%"
    @Option(help: "How long each host watches the new version's health rules (e.g. 60s).") var watch: String = "60s"
    @Option(help: "How long a wave may take beyond its watch before the rollout gives up (e.g. 2m).") var grace: String = "2m"
    @OptionGroup var fleet: FleetOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let exact = try ExactVersionSpec.parse(spec)
        let rollout = FleetRollout(store: try fleet.store(), package: exact.name, version: PackageVersion(exact.version), group: try FleetName(group, what: "group"),
                                   waves: try RolloutWaves.parse(waves), watchSeconds: try fleetSeconds(watch, option: "--watch"),
                                   graceSeconds: try fleetSeconds(grace, option: "--grace", maximum: 86_400))
        let quiet = output.json
        let outcome = try await rollout.run { line in if !quiet { FileHandle.standardOutput.write(Data((line + "\n").utf8)) } }
        if quiet { try output.emit(outcome, text: "") }
    }
}

struct FleetRollbackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback", abstract: "Write back the desired state a host or a group had before (or at --to REVISION).")

    @Argument(help: "HOST or @GROUP.") var target: String
    @Option(help: "The etcd revision whose version to write back (as `l3af fleet history` lists them).") var to: Int64?
    @OptionGroup var fleet: FleetOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let parsed = try FleetTarget(target)
        let (written, from) = try await fleet.store().rollback(parsed, to: to)
        try output.emit(["target": parsed.description, "revision": "\(written)", "from": "\(from)"],
                        text: "\(parsed): the version of revision \(from) written back at revision \(written)")
    }
}

struct FleetHistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history", abstract: "The versions of a host's or a group's desired state, from etcd's revisions, newest first.")

    @Argument(help: "HOST or @GROUP.") var target: String
    @Option(help: "At most this many.") var limit: Int = 20
    @OptionGroup var fleet: FleetOptions
    @OptionGroup var output: OutputOptions

    struct Entry: Codable {
        var revision: Int64
        var changedBy: String?
        var changedAt: String?
        var cause: String?
        var programs: [String]
        var pins: [String: String]
        var removed: Bool

        enum CodingKeys: String, CodingKey {
            case revision, cause, programs, pins, removed
            case changedBy = "changed_by"
            case changedAt = "changed_at"
        }
    }

    func run() async throws {
        let parsed = try FleetTarget(target)
        guard (1...1000).contains(limit) else { throw CLIError("usage", "--limit \(limit) must be 1 to 1000") }
        let (entries, compacted) = try await fleet.store().history(parsed, limit: limit)
        let rows = entries.map { revision, desired in
            Entry(revision: revision, changedBy: desired?.changedBy, changedAt: desired?.changedAt, cause: desired?.cause,
                  programs: FleetEffective.fold(groups: [], host: desired.map { ($0, revision) }).versions.sorted { $0.key < $1.key }.map { "\($0.key)@\($0.value)" },
                  pins: desired?.pins ?? [:], removed: desired == nil)
        }
        var lines = rows.map { row in
            row.removed ? "\(row.revision)  (removed)" :
                "\(row.revision)  \(row.changedAt ?? "-")  \(row.changedBy ?? "-")  \(row.cause ?? "-")\n    \(row.programs.joined(separator: " "))"
                + (row.pins.isEmpty ? "" : "  pins: " + row.pins.sorted { $0.key < $1.key }.map { "\($0.key)@\($0.value)" }.joined(separator: " "))
        }
        if compacted { lines.append("(older revisions were compacted away by etcd)") }
        if rows.isEmpty { lines.append("(no history)") }
        try output.emit(rows, text: lines.joined(separator: "\n"))
    }
}

struct FleetDiffCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "diff", abstract: "What each host should run and doesn't, and runs and shouldn't.")

    @Argument(help: "Only these hosts.") var hosts: [String] = []
    @OptionGroup var fleet: FleetOptions
    @OptionGroup var output: OutputOptions

    struct HostDiff: Codable {
        var host: String
        var live: Bool
        var missing: [String]
        var unexpected: [String]
        var different: [String]
    }

    func run() async throws {
        for host in hosts { _ = try FleetName(host, what: "host") }
        let rows = try await FleetHostsCommand.rows(try fleet.store()).filter { hosts.isEmpty || hosts.contains($0.host) }
        let diffs = rows.map { row in
            HostDiff(host: row.host, live: row.live,
                     missing: row.desired.keys.filter { row.running[$0] == nil }.sorted().map { "\($0)@\(row.desired[$0] ?? "")" },
                     unexpected: row.running.keys.filter { row.desired[$0] == nil }.sorted().map { "\($0)@\(row.running[$0] ?? "")" },
                     different: row.desired.keys.filter { row.running[$0] != nil && !FleetEffective.admits(row.desired[$0] ?? "", row.running[$0] ?? "") }.sorted()
                        .map { "\($0): runs \(row.running[$0] ?? ""), should run \(row.desired[$0] ?? "")" })
        }
        var lines: [String] = []
        for diff in diffs {
            let changes = diff.missing.map { "  + \($0)" } + diff.unexpected.map { "  - \($0)" } + diff.different.map { "  ~ \($0)" }
            lines.append("\(diff.host)\(diff.live ? "" : " (not live)"): " + (changes.isEmpty ? "in sync" : "\n" + changes.joined(separator: "\n")))
        }
        try output.emit(diffs, text: lines.isEmpty ? "(no hosts)" : lines.joined(separator: "\n"))
    }
}
