import ArgumentParser
import Foundation
import L3AFCLISupport
import L3AFClient
import L3AFHost
import L3AFModel

/// What every command that changes or reads the host takes: the client's configuration, the lock timeout, the
/// bpffs pin root.
struct HostCommandOptions: ParsableArguments {
    @OptionGroup var client: ClientOptions

    @Option(help: "Seconds to wait for another l3af changing this host before giving up.")
    var lockTimeout: Double = 60

    @Flag(help: "No progress bar for downloads (there is one only when standard error is a terminal, and none with --json).")
    var quiet = false

    @Option(help: "Where chains are pinned on bpffs (default: $L3AF_PIN_ROOT, else /sys/fs/bpf/l3af).")
    var pinRoot: String?

    @Option(name: .customLong("host"), help: "Drive a remote l3afd at this URL, or at unix:/path/to/l3afd.sock, instead of this host (default: $L3AF_HOST).")
    var remoteURL: String?

    @Option(help: "With --host: the PEM CA l3afd's certificate must chain to.") var cacert: String?
    @Option(help: "With --host: a PEM client certificate, for l3afd's mTLS.") var cert: String?
    @Option(help: "With --host: the PEM key of --cert.") var key: String?
    @Option(help: "With --host: l3afd's bearer token, or @FILE to read it from a file (default: $L3AF_HOST_TOKEN). Never printed.")
    var token: String?
    @Option(help: "With --host: seconds to keep trying while l3afd refuses connections (as it does for a moment while it restarts).")
    var connectWait: Double = 10

    /// The remote daemon to ask, when `--host` or `$L3AF_HOST` names one.
    var remote: RemoteHost? {
        get throws {
            let environment = ProcessInfo.processInfo.environment
            guard let url = (remoteURL ?? environment["L3AF_HOST"]).flatMap({ $0.isEmpty ? nil : $0 }) else { return nil }
            var bearer = token ?? environment["L3AF_HOST_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
            if let file = bearer, file.hasPrefix("@") {
                guard let text = try? String(contentsOfFile: String(file.dropFirst()), encoding: .utf8) else {
                    throw CLIError("unreadable-file", "can't read the token file \(file.dropFirst())", hint: "give --token @FILE with a readable file")
                }
                bearer = text.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            guard connectWait.isFinite, (0...600).contains(connectWait) else {
                throw CLIError("invalid-option", "--connect-wait \(connectWait) is not 0 to 600 seconds")
            }
            var remote = try RemoteHost(address: url, token: bearer, caCertificate: cacert, clientCertificate: cert, clientKey: key)
            remote.connectWaitSeconds = connectWait
            return remote
        }
    }

    /// Where operations go: the `l3afd` that `--host` names, else this host (performed by this process).
    func target() throws -> any HostClient {
        if let remote = try remote { return remote }
        return LocalHost(host: try host())
    }

    func host() throws -> HostManager {
        let root = pinRoot ?? ProcessInfo.processInfo.environment["L3AF_PIN_ROOT"].flatMap { $0.isEmpty ? nil : $0 } ?? "/sys/fs/bpf/l3af"
        var options = HostOptions(client: try client.configuration(), pinRoot: root, lockTimeout: lockTimeout, notify: { message in
            FileHandle.standardError.write(Data("\(message)\n".utf8))
        })
        // An l3afd on this state says how the host runs (chaining, roots): changes made here follow the same rules.
        if let settings = try HostSettings.read(state: options.client.state) { options.adopt(settings) }
        // Downloads show a bar as `l3af fetch` does, on a terminal only; it is cleared when each download ends.
        guard let bar = ProgressBar.onTerminal(quiet: quiet, json: OutputOptions.requested()) else { return try HostManager(options: options) }
        return try HostManager(options: options, progress: { received, total in
            if received >= total { bar.finish() } else { bar.update(received, total) }
        })
    }
}

extension Hook: ExpressibleByArgument {
    public init?(argument: String) { self.init(rawValue: argument) }
}

/// `name=value` for `--set`.
func parseSettings(_ settings: [String]) throws -> [String: String] {
    var parameters: [String: String] = [:]
    for setting in settings {
        guard let equals = setting.firstIndex(of: "="), equals != setting.startIndex else {
            throw CLIError("bad-setting", "'\(setting)' is not name=value", hint: "write --set rate=100 or --set ports=80,443")
        }
        parameters[String(setting[..<equals])] = String(setting[setting.index(after: equals)...])
    }
    return parameters
}

func describe(_ revision: Revision) -> String {
    (["revision \(revision.number): \(revision.cause)"] + (revision.steps ?? []).map { "  \($0)" }).joined(separator: "\n")
}

/// `--dry-run`: the plan of a change instead of the change.
struct DryRunOptions: ParsableArguments {
    @Flag(help: "Show what would change (packages fetched, each chain before → after, each flip, pins written and removed, preflight, the revision) and change nothing.")
    var dryRun = false
}

extension HostCommandOptions {
    /// Sends `operation`; with `--dry-run`, prints its plan instead (exiting non-zero when preflight refuses it) and
    /// returns `nil`.
    func perform<Operation: HostOperation>(_ operation: Operation, _ dryRun: DryRunOptions, _ output: OutputOptions) async throws -> Operation.Reply? {
        guard dryRun.dryRun else { return try await target().send(operation) }
        let plan = try await target().plan(operation)
        try output.emit(plan, text: plan.text)
        if !plan.preflight.isEmpty { throw ExitCode(1) }
        return nil
    }
}

struct InstallCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "install",
        abstract: "Install a package onto an interface: fetch and verify it, then link its programs into the chains, one flip each.",
        discussion: """
            Each program of the package joins the chain of its hook (or only --hook's) on --iface, after the programs \
            with a lower seq_id. Parameters (--set name=value) are checked against the manifest before anything loads. \
            The package's probes (kprobe, tracepoint, ...) attach host-wide, so a package of probes only needs no --iface. \
            The change is recorded as a revision (`l3af history`).
            """)

    @Argument(help: "name, name@1.2.3, name@^1.2, name@latest.") var spec: String
    @Option(help: "The network interface (not needed for a package of probes only).") var iface: String?
    @Option(help: "Only this hook: xdp_ingress, tc_ingress or tc_egress.") var hook: Hook?
    @Option(help: "Position in the chain (lower runs first; default: after the last).") var seq: Int?
    @Option(name: .customLong("set"), help: "A parameter, name=value (repeatable).") var settings: [String] = []
    @OptionGroup var options: HostCommandOptions
    @OptionGroup var dryRun: DryRunOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        _ = try PackageSpec(parsing: spec)
        guard let reply = try await options.perform(HostRequest.Install(
            spec: spec, iface: iface, hook: hook?.rawValue, seqID: seq, parameters: try parseSettings(settings)), dryRun, output) else { return }
        try output.emit(reply.revision, text: reply.revision.map(describe) ?? "nothing changed")
    }
}

struct RemoveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remove", abstract: "Take a package's programs out of an interface's chains, or (without --iface) detach its host-wide probes.")

    @Argument(help: "The package name.") var package: String
    @Option(help: "The network interface; without it, the package's host-wide probes are detached.") var iface: String?
    @Option(help: "Only this hook.") var hook: Hook?
    @OptionGroup var options: HostCommandOptions
    @OptionGroup var dryRun: DryRunOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        guard let reply = try await options.perform(HostRequest.Remove(package: package, iface: iface, hook: hook?.rawValue), dryRun, output) else { return }
        try output.emit(reply.revision, text: reply.revision.map(describe) ?? "nothing changed")
    }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show the chains: seq, package, version, parameters, program ids, counters, pins; and whether the kernel agrees.")

    @Option(help: "Only this interface.") var iface: String?
    @OptionGroup var options: HostCommandOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        // A read: no lock, nothing changed; a change in progress (or one an interrupted l3af left) is shown as such.
        let status = try await options.target().send(HostRequest.Status(iface: iface))
        var lines: [String] = []
        if let revision = status.revision {
            lines.append("revision \(revision): \(status.cause ?? "")")
        } else {
            lines.append("no revisions yet: nothing installed on this host")
        }
        for chain in status.chains {
            let root = chain.root.map { " behind \($0)" } ?? ""
            lines.append("\(chain.interface) \(chain.hook)\(root)\(chain.rootProgramID.map { " (root program id \($0))" } ?? "")")
            for program in chain.programs {
                var line = "  \(String(program.seqID).padding(toLength: 5, withPad: " ", startingAt: 0)) \(program.package)@\(program.version)"
                if !program.parameters.isEmpty { line += "  " + program.parameters.keys.sorted().map { "\($0)=\(program.parameters[$0]!)" }.joined(separator: " ") }
                line += program.enabled ? (program.programID.map { "  id \($0)" } ?? "  NOT RUNNING") : "  disabled"
                if let pin = program.pinned { line += "  pinned at \(pin)" }
                if !program.counters.isEmpty { line += "  " + program.counters.keys.sorted().map { "\($0)=\(program.counters[$0]!)" }.joined(separator: " ") }
                lines.append(line)
            }
        }
        if let probes = status.probes, !probes.isEmpty {
            lines.append("probes")
            for probe in probes {
                var line = "  \(probe.package)@\(probe.version) \(probe.entryFunction) \(probe.interface.map { "(payload of \($0))" } ?? "(host-wide)")"
                line += probe.enabled ? (probe.programID.map { "  id \($0)" } ?? "  NOT ATTACHED") : "  disabled"
                if !probe.counters.isEmpty { line += "  " + probe.counters.keys.sorted().map { "\($0)=\(probe.counters[$0]!)" }.joined(separator: " ") }
                lines.append(line)
            }
        }
        for pin in status.pins where !status.chains.contains(where: { $0.programs.contains { $0.package == pin.package.rawValue } }) {
            lines.append("pin: \(pin.package)@\(pin.version)\(pin.interface.map { " on \($0)" } ?? "")")
        }
        if let changing = status.changing {
            lines.append("a change is in progress or was interrupted (\(changing)); the next change or `l3af restore` finishes or undoes it")
        }
        lines.append(status.difference.map { "the kernel DISAGREES: \($0) (run `l3af restore`)" }
                     ?? (status.changing == nil ? "the kernel runs exactly this" : "the kernel runs this revision or the one in flight"))
        try output.emit(status, text: lines.joined(separator: "\n"))
    }
}

struct UpgradeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upgrade",
        abstract: "Move packages to the newest version their requirement allows (pinned ones are passed by), one flip each.",
        discussion: """
            With --watch SECONDS, the upgraded programs' health rules (from their manifests) are checked every \
            --interval seconds for that long; if a program is gone or a rule fails, the change is flipped back at once \
            and recorded as an automatic rollback, and the command exits non-zero.
            """)

    @Argument(help: "Only this package.") var package: String?
    @Option(help: "Only this interface.") var iface: String?
    @Option(help: "Watch the health rules for this many seconds after the flip (e.g. 30 or 30s).") var watch: String?
    @Option(help: "Seconds between health samples while watching.") var interval: Double = 1
    @OptionGroup var options: HostCommandOptions
    @OptionGroup var dryRun: DryRunOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        var seconds: Double?
        if let watch {
            guard let value = Double(watch.hasSuffix("s") ? String(watch.dropLast()) : watch), value > 0 else {
                throw CLIError("bad-duration", "'\(watch)' is not a duration in seconds", hint: "write --watch 30 or --watch 30s")
            }
            seconds = value
        }
        guard let outcome = try await options.perform(HostRequest.Upgrade(package: package, iface: iface, watchSeconds: seconds, intervalSeconds: interval), dryRun, output)
        else { return }
        var lines = outcome.skipped.map { "skipped: \($0)" }
        if let revision = outcome.revision { lines.append(describe(revision)) } else { lines.append("everything is up to date") }
        if let back = outcome.rolledBack { lines.append(describe(back)) }
        try output.emit(outcome, text: lines.joined(separator: "\n"))
        if let back = outcome.rolledBack {
            throw HostError(.unhealthy, "the upgrade was rolled back automatically (revision \(back.number))", hint: "see `l3af history`")
        }
    }
}

struct PinCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pin", abstract: "Hold a package at a version (moving it there now if needed); upgrade passes it by.")

    @Argument(help: "name@1.2.3") var spec: String
    @Option(help: "Only on this interface.") var iface: String?
    @OptionGroup var options: HostCommandOptions
    @OptionGroup var dryRun: DryRunOptions
    @OptionGroup var output: OutputOptions

    struct Reply: Encodable { let package: String; let version: String; let interface: String?; let revision: Revision? }

    func run() async throws {
        let parsed = try exactSpec(spec)
        guard let reply = try await options.perform(HostRequest.Pin(package: parsed.name.rawValue, version: parsed.version.description, iface: iface), dryRun, output)
        else { return }
        let revision = reply.revision
        let text = "pinned \(parsed.name)@\(parsed.version)\(iface.map { " on \($0)" } ?? "")" + (revision.map { "\n" + describe($0) } ?? "")
        try output.emit(Reply(package: parsed.name.rawValue, version: parsed.version.description, interface: iface, revision: revision), text: text)
    }
}

struct UnpinCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "unpin", abstract: "Let upgrade move a package again.")

    @Argument(help: "The package name.") var package: String
    @Option(help: "Only the pin on this interface.") var iface: String?
    @OptionGroup var options: HostCommandOptions
    @OptionGroup var output: OutputOptions

    struct Reply: Encodable { let package: String; let removed: Int }

    func run() async throws {
        let removed = try await options.target().send(HostRequest.Unpin(package: package, iface: iface)).removed
        try output.emit(Reply(package: package, removed: removed), text: "unpinned \(package) (\(removed) pin\(removed == 1 ? "" : "s"))")
    }
}

struct HistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "history", abstract: "Numbered revisions: time, who, cause, the chains after it.")

    @Option(help: "Only revisions that touched this interface.") var iface: String?
    @Option(help: "How many, newest first.") var limit: Int = 50
    @OptionGroup var options: HostCommandOptions
    @OptionGroup var output: OutputOptions

    struct Row: Encodable {
        let number: Int
        let time: String
        let kind: String
        let cause: String
        let actor: String
        let chains: [String: [String]]
    }

    func run() async throws {
        guard (1...HostRequest.History.maximumLimit).contains(limit) else {
            throw CLIError("bad-limit", "--limit \(limit) is out of range", hint: "use 1 to \(HostRequest.History.maximumLimit)")
        }
        let revisions = try await options.target().send(HostRequest.History(limit: limit))
        let formatter = ISO8601DateFormatter()
        let rows = revisions.compactMap { revision -> Row? in
            var chains: [String: [String]] = [:]
            for key in revision.snapshot.keys where iface == nil || key.interface == iface {
                chains[key.description] = revision.snapshot.chain(key).map(\.spec)
            }
            if iface != nil, chains.isEmpty, !revision.cause.contains(iface!) { return nil }
            return Row(number: revision.number, time: formatter.string(from: revision.time), kind: revision.kind.rawValue, cause: revision.cause,
                       actor: revision.actor, chains: chains)
        }
        let text = rows.isEmpty ? "no revisions yet" : rows.map { row in
            let chains = row.chains.keys.sorted().map { "    \($0): \(row.chains[$0]!.isEmpty ? "(empty)" : row.chains[$0]!.joined(separator: " → "))" }
            return (["\(row.number)  \(row.time)  \(row.actor)  \(row.cause)"] + chains).joined(separator: "\n")
        }.joined(separator: "\n")
        try output.emit(rows, text: text)
    }
}

struct RollbackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Return to the previous revision, to revision N, or a package to its previous version; works with the registry down.")

    @Argument(help: "Nothing (the previous revision), a revision number, or a package name.") var target: String?
    @OptionGroup var options: HostCommandOptions
    @OptionGroup var dryRun: DryRunOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let which: HostManager.RollbackTarget = switch target {
        case nil: .previous
        case let text? where Int(text) != nil: .revision(Int(text)!)
        case let text?: .package(try PackageName(text))
        }
        guard let reply = try await options.perform(HostRequest.Rollback(which), dryRun, output) else { return }
        try output.emit(reply.revision, text: reply.revision.map(describe) ?? "nothing changed")
    }
}

struct RestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore", abstract: "Make the kernel run the last revision again (at boot: bpffs starts empty); changes nothing when it already does.")

    @OptionGroup var options: HostCommandOptions
    @OptionGroup var dryRun: DryRunOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        guard let reply = try await options.perform(HostRequest.Restore(), dryRun, output) else { return }
        let text = reply.changed ? (["restored revision \(reply.revision ?? 0)"] + (reply.steps ?? []).map { "  \($0)" }).joined(separator: "\n")
            : "nothing to do: the kernel already runs revision \(reply.revision.map { String($0) } ?? "(none)")"
        try output.emit(reply, text: text)
    }
}

struct ApplyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Apply an l3afd L3afBPFPrograms payload declaratively: each interface named gets exactly its programs.",
        discussion: """
            The payload is what l3afd's REST API takes (an array of {host_name, iface, bpf_programs}). seq_id orders each \
            chain; version is a version, range or dist-tag; admin_status "disabled" keeps a program configured but out \
            of the chain; start_args become the manifest's parameters; map_args are written into maps; monitor_maps \
            replace the manifest's; ebpf_package_repo_url names another repository (a signed registry when it serves a \
            signed index, else a plain l3afd repository, trusted on first use); object_file, entry_function_name and \
            map_name describe a legacy artifact \
            without a manifest. Everything is fetched and checked before the first flip; the change is one revision. \
            With --add, programs not in the payload stay and a program already configured is left as it is \
            (l3afd's /add); with --delete, the file is an L3afBPFProgramNames payload and the named programs are \
            removed (names that aren't there are ignored).
            """)

    @Argument(help: "The payload file (- for standard input).") var file: String
    @Flag(help: "Add the payload's programs; keep the others, and leave one already configured as it is (l3afd's /add).") var add = false
    @Flag(help: "The file names programs to remove (L3afBPFProgramNames, l3afd's /delete).") var delete = false
    @Option(help: "This host's name, which payloads' host_name must match (default: the system's host name).") var hostName: String?
    @OptionGroup var options: HostCommandOptions
    @OptionGroup var dryRun: DryRunOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let bytes = Array(try readInput(file))
        let request: HostRequest.Apply = if delete {
            HostRequest.Apply(mode: "delete", names: try DocumentDecoder.decode([L3afBPFProgramNames].self, from: bytes, document: "payload \(file)"), hostName: hostName)
        } else {
            HostRequest.Apply(mode: add ? "add" : "replace", payloads: try DocumentDecoder.decode([L3afBPFPrograms].self, from: bytes, document: "payload \(file)"),
                              hostName: hostName)
        }
        guard let reply = try await options.perform(request, dryRun, output) else { return }
        try output.emit(reply.revision, text: reply.revision.map(describe) ?? "nothing to change: the host already runs this")
    }
}

struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check a package against this host before changing anything: kernel version, program and map types, helpers, BTF, the verifier, the interface.",
        discussion: """
            The package is fetched into a folder of its own (never the repo) and checked: its min_kernel against this \
            kernel; each object's program types, map types and the helpers its programs call, probed with libbpf \
            against this kernel; BTF where the object has CO-RE relocations; the verifier (each program loaded and \
            closed, never attached); its parameters (--set); with --iface, that the interface exists and its chains \
            have room. Each failure names what is missing and the kernel that has it; the exit status is 1 when \
            anything is. Every change (install, upgrade, apply, pin, rollback) runs the same checks first.
            """)

    @Argument(help: "name, name@1.2.3, name@^1.2, name@latest.") var spec: String
    @Option(help: "The interface it would go on.") var iface: String?
    @Option(help: "Only this hook: xdp_ingress, tc_ingress or tc_egress.") var hook: Hook?
    @Option(name: .customLong("set"), help: "A parameter, name=value (repeatable).") var settings: [String] = []
    @OptionGroup var options: HostCommandOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        if try options.remote != nil {
            throw CLIError("local-only", "l3af check checks this host's kernel, not the one --host names",
                           hint: "run it on that host, or ask that l3afd for a plan: l3af install … --dry-run --host URL")
        }
        let report = try await options.host().check(try PackageSpec(parsing: spec), interface: iface, hook: hook, parameters: try parseSettings(settings))
        try output.emit(report, text: report.text)
        if !report.problems.isEmpty { throw ExitCode(1) }
    }
}

struct DiffCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Compare two revisions chain by chain; with one, that revision against the kernel; with none, the last revision against the kernel.")

    @Argument(help: "A revision number (default: the last).") var from: Int?
    @Argument(help: "Another revision number (default: what the kernel runs now).") var to: Int?
    @OptionGroup var options: HostCommandOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        if try options.remote != nil {
            throw CLIError("local-only", "l3af diff reads this host's revisions and kernel, not the ones --host names", hint: "run it on that host")
        }
        let diff = try await options.host().observe { [from, to] host in try host.diff(from, to) }
        try output.emit(diff, text: diff.text)
    }
}
