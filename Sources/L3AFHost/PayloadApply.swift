import Foundation
import L3AFModel
import L3AFRuntime
import L3AFSystem

extension HostManager {
    /// How an l3afd payload changes the host.
    public enum PayloadMode: String, Sendable {
        /// Each interface named gets exactly the payload's programs (`l3af apply`; l3afd's `/update` per interface).
        case replace
        /// The payload's programs are added; a program already configured on its hook is left as it is, and the
        /// others stay (l3afd's `/add`).
        case add
        /// The host gets exactly the payload's programs: every interface the payload doesn't name is emptied too
        /// (l3afd's `/update`).
        case host
    }

    /// Applies l3afd `L3afBPFPrograms` payloads declaratively, as one revision: `seq_id` orders each chain, `version`
    /// is what to install (a version, a range or a dist-tag such as `latest`), `admin_status: disabled` keeps a
    /// program (an empty `admin_status` counts as enabled) in the configuration but out of the chain, `start_args` become the manifest's parameters, `map_args`
    /// are written into maps, `monitor_maps` replace the manifest's, `ebpf_package_repo_url` names another repository
    /// (a signed registry, or a plain l3afd repository trusted on first use), and for a legacy artifact without a
    /// manifest `object_file`, `entry_function_name` and `map_name` say what to load. Every program is resolved,
    /// fetched and checked before the first flip.
    public func apply(_ payloads: [L3afBPFPrograms], mode: PayloadMode = .replace, hostName: String? = nil, cause: String? = nil) async throws -> Revision? {
        try await apply(payloads, mode: mode, hostName: hostName, cause: cause, watch: nil).revision
    }

    /// What a watched ``apply(_:mode:hostName:cause:watch:interval:)`` did: the revision it made (`nil`: nothing
    /// changed) and the automatic rollback that undid it when a changed program broke a health rule.
    public struct ApplyOutcome: Sendable {
        public var revision: Revision?
        public var rolledBack: Revision?
    }

    /// ``apply(_:mode:hostName:cause:)``, then, with `watch`, the changed programs' health rules watched for that many
    /// seconds, flipping back at once when one fails (as `upgrade --watch` does).
    public func apply(_ payloads: [L3afBPFPrograms], mode: PayloadMode = .replace, hostName: String? = nil, cause: String? = nil,
                      watch: Double?, interval: Double = 1) async throws -> ApplyOutcome {
        try Self.checkWatch(watch, interval: interval)
        let problems = payloads.enumerated().flatMap { i, payload in payload.problems(at: "[\(i)].") }
        if let first = problems.first {
            throw HostError(.badInput, "the payload is not valid: \(first)", hint: problems.count > 1 ? "and \(problems.count - 1) more problem(s)" : nil)
        }
        for (i, payload) in payloads.enumerated() {
            for (j, probe) in payload.bpfPrograms.probes.enumerated() {
                guard Self.probeTypes.contains(probe.progType.lowercased()) else {
                    throw HostError(.badInput, "[\(i)].bpf_programs.probes[\(j)].prog_type: '\(probe.progType)' is not a probe type",
                                    hint: "one of: \(Self.probeTypes.sorted().joined(separator: ", "))")
                }
                guard !probe.objectFile.isEmpty, !probe.entryFunctionName.isEmpty else {
                    throw HostError(.badInput, "[\(i)].bpf_programs.probes[\(j)]: a probe needs object_file and entry_function_name",
                                    hint: "name the object in the artifact and its program")
                }
            }
        }
        let thisHost = hostName ?? options.hostName ?? ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? ""
        for (i, payload) in payloads.enumerated() {
            if !payload.hostName.isEmpty, payload.hostName != thisHost, payload.hostName != ProcessInfo.processInfo.hostName {
                throw HostError(.badInput, "[\(i)].host_name is '\(payload.hostName)', but this host is '\(thisHost)'",
                                hint: "send the payload to the host it names, or pass --host-name to say this host's name")
            }
            try checkInterface(payload.iface)
        }
        // What to fetch: every entry, but for /add not one already configured (it is left as it is).
        let configured = mode == .add ? try await observe { try $0.snapshot() } : HostSnapshot()
        var wanted: [Wanted] = []
        for payload in payloads {
            for hook in Hook.allCases {
                for entry in payload.bpfPrograms[hook]
                where configured.program(named: entry.name, on: ChainKey(interface: payload.iface, hook: hook)) == nil {
                    wanted.append(try self.wanted(entry))
                }
            }
            for entry in payload.bpfPrograms.probes where !(configured.probes ?? []).contains(where: { $0.interface == payload.iface && $0.package.rawValue == entry.name }) {
                wanted.append(try self.wanted(entry))
            }
        }
        return try await change(prefetch: wanted) { transaction in
            let old = try self.snapshot()
            var new = old
            var changed: [String] = []
            if mode == .host {
                new.programs.removeAll()
                // Host-wide probes (`l3af install`) are in no interface's payload, so a whole-host payload can't name them.
                new.probes?.removeAll { !$0.hostWide }
            }
            for payload in payloads {
                if mode == .replace {
                    new.programs.removeAll { $0.interface == payload.iface }
                    new.probes?.removeAll { $0.interface == payload.iface }
                }
                for (position, entry) in payload.bpfPrograms.probes.enumerated() {
                    let at = "\(payload.iface).bpf_programs.probes[\(position)]"
                    if mode == .add, (new.probes ?? []).contains(where: { $0.interface == payload.iface && $0.package.rawValue == entry.name }) {
                        self.options.notify("\(at): \(entry.name) is already configured; left as it is (/update changes it)")
                        continue
                    }
                    let probe = try self.placeProbe(entry, interface: payload.iface, at: at, transaction)
                    var probes = new.probes ?? []
                    probes.removeAll { $0.interface == probe.interface && $0.package == probe.package }
                    probes.append(probe)
                    new.probes = probes
                    changed.append("probe \(probe.package)@\(probe.version) (\(entry.progType))")
                }
                if !payload.ipv4Address.isEmpty || mode != .add {
                    var addresses = new.ipv4Addresses ?? [:]
                    addresses[payload.iface] = payload.ipv4Address.isEmpty ? nil : payload.ipv4Address
                    new.ipv4Addresses = addresses.isEmpty ? nil : addresses
                }
                for hook in Hook.allCases {
                    // Duplicate names and seq_ids within the payload were refused by `problems(at:)` above.
                    for (position, entry) in payload.bpfPrograms[hook].enumerated() {
                        let at = "\(payload.iface).bpf_programs.\(hook)[\(position)]"
                        if mode == .add, new.program(named: entry.name, on: ChainKey(interface: payload.iface, hook: hook)) != nil {
                            self.options.notify("\(at): \(entry.name) is already configured on \(payload.iface)/\(hook); left as it is (/update changes it)")
                            continue
                        }
                        let placed = try self.place(entry, interface: payload.iface, hook: hook, at: at, into: &new, transaction)
                        new.programs.removeAll { $0.package == placed.package && $0.key == placed.key }
                        if let clash = new.programs.first(where: { $0.key == placed.key && $0.seqID == placed.seqID && $0.enabled && placed.enabled }) {
                            throw HostError(.badInput, "\(at): seq_id \(placed.seqID) is taken by \(clash.spec) on \(placed.key)", hint: "pick another seq_id")
                        }
                        new.programs.append(placed)
                        changed.append("\(placed.spec)\(placed.enabled ? "" : " (disabled)") on \(placed.key)")
                    }
                }
            }
            if new.probes?.isEmpty == true, old.probes == nil { new.probes = nil }
            if new.sorted == old.sorted, new.roots == old.roots, new.probes == old.probes { return ApplyOutcome() }
            let interfaces = Set(payloads.map(\.iface)).sorted().joined(separator: ", ")
            let revision = try self.record(.apply, cause: cause ?? "apply an l3afd payload for \(interfaces): " + (changed.isEmpty ? "no programs" : changed.joined(separator: "; ")),
                                           from: old, to: new, by: transaction.actor)
            guard let watch, watch > 0 else { return ApplyOutcome(revision: revision) }
            return ApplyOutcome(revision: revision, rolledBack: try self.watch(revision: revision, previous: old, seconds: watch, interval: interval, by: transaction.actor))
        }
    }

    /// Removes programs by name from interfaces (l3afd's `/delete` with `L3afBPFProgramNames`).
    public func delete(_ payloads: [L3afBPFProgramNames], hostName: String? = nil) async throws -> Revision? {
        try await change { transaction in
            let old = try self.snapshot()
            var new = old
            for payload in payloads {
                for hook in Hook.allCases {
                    for name in payload.bpfPrograms[hook] {
                        // As l3afd: a name that isn't there is nothing to delete, not an error.
                        let key = ChainKey(interface: payload.iface, hook: hook)
                        guard new.program(named: name, on: key) != nil else {
                            self.options.notify("\(payload.iface).bpf_programs.\(hook): \(name) is not configured there; nothing to delete")
                            continue
                        }
                        new.programs.removeAll { $0.package.rawValue == name && $0.key == key }
                    }
                }
                for name in payload.bpfPrograms.probes {
                    guard (new.probes ?? []).contains(where: { $0.interface == payload.iface && $0.package.rawValue == name }) else {
                        self.options.notify("\(payload.iface).bpf_programs.probes: \(name) is not configured there; nothing to delete")
                        continue
                    }
                    new.probes?.removeAll { $0.interface == payload.iface && $0.package.rawValue == name }
                }
            }
            if new.sorted == old.sorted, new.roots == old.roots, new.probes == old.probes { return nil }
            return try self.record(.apply, cause: "delete " + payloads.map { payload in "\(Hook.allCases.flatMap { payload.bpfPrograms[$0] }.joined(separator: ", ")) from \(payload.iface)" }.joined(separator: "; "),
                                   from: old, to: new, by: transaction.actor)
        }
    }

    /// What a payload entry needs fetched: from the repository it names (its `ebpf_package_repo_url`), or, naming none,
    /// from l3afd's default repository (`[ebpf-repo] url`) when one is configured, else from the signed registry. A
    /// repository is used as a signed registry when it serves a signed index, else as a plain l3afd repository
    /// (trusted on first use); one listed in `allow_unsigned` is plain without asking.
    func wanted(_ entry: BPFProgram) throws(HostError) -> Wanted {
        let version = entry.version.isEmpty ? "latest" : entry.version
        let artifact = entry.artifact.isEmpty ? "l3af_\(entry.name).tar.gz" : entry.artifact
        let named = entry.ebpfPackageRepoURL.trimmingCharacters(in: .whitespaces)
        func trimmed(_ url: String) -> Substring { url.hasSuffix("/") ? url.dropLast() : Substring(url) }
        func same(_ a: String, _ b: String?) -> Bool { b.map { trimmed(a) == trimmed($0) } ?? false }
        if named.isEmpty {
            if let plain = options.plainRepository { return .either(name: entry.name, version: version, artifact: artifact, repository: plain) }
            return .signed(try Self.spec("\(entry.name)@\(version)").description, registry: nil)
        }
        if same(named, options.client.registry) { return .signed(try Self.spec("\(entry.name)@\(version)").description, registry: named) }
        if source.allowsUnsigned(named) {
            return .unsigned(name: entry.name, version: version, artifact: artifact, repository: named)
        }
        return .either(name: entry.name, version: version, artifact: artifact, repository: named)
    }

    /// The user program of a legacy artifact (`cmd_start`), run as l3afd runs it: from the artifact's folder, argv only,
    /// `--iface`, `--direction` (`xdpingress`, `ingress` or `egress`), `--version` (dots as underscores, as in its map
    /// pin paths), `--log-dir` when `bpf-log-dir` is set, `--rules-file` (written from `rules`) when the payload has
    /// rules, then `--key=value` per `start_args`; `--map-name` (after `--version`) only when it loads its own object:
    /// the prog array (`inlet`) to put its program into.
    /// `cmd_stop` gets `--iface`, `--direction` and `stop_args`; `cmd_status` gets `status_args`; `cmd_update` gets
    /// `--iface`, `--direction`, `--cmd=update`, `--version`, `--log-dir` and `update_args`; `cpu` and `memory` become RLIMIT_CPU and RLIMIT_AS. What l3afd would run that isn't run here
    /// yet (`cmd_config`) is refused, naming the field, rather than accepted and ignored.
    func userProgram(_ entry: BPFProgram, in installed: FetchedPackage, interface: String, hook: Hook, at: String, inlet: String?) throws(HostError) -> UserProgram {
        for (field, value) in [("cmd_config", entry.cmdConfig)] where !value.trimmingCharacters(in: .whitespaces).isEmpty {
            throw HostError(.badInput, "\(at).\(field): '\(value)' is not run by this l3afd yet",
                            hint: "leave \(field) empty; the user program is supervised (restarted when it exits) without it")
        }
        for (field, value) in [("cpu", entry.cpu), ("memory", entry.memory)] where value < 0 {
            throw HostError(.badInput, "\(at).\(field): \(value) is negative", hint: "give a limit (cpu in seconds, memory in bytes), or 0 for none")
        }
        /// A program named by `field`: a plain name, proven to resolve inside the artifact's folder, executable.
        func executable(_ field: String, _ name: String) throws(HostError) -> String {
            let command = name.trimmingCharacters(in: .whitespaces)
            let resolved: String
            do { resolved = try ContainedPath.resolve(RelativePath(command, field: "\(at).\(field)"), in: installed.path, field: "\(at).\(field)") } catch {
                throw HostError(.badInput, error.description, hint: error.hint)
            }
            guard FileManager.default.isExecutableFile(atPath: resolved) else {
                throw HostError(.badInput, "\(at).\(field): '\(command)' is not an executable file in \(installed.name)@\(installed.version)'s artifact",
                                hint: "name the program's file in the artifact's top folder (no path, no arguments: those come from the payload's args)")
            }
            return resolved
        }
        let direction = hook == .xdpIngress ? "xdpingress" : hook == .tcEgress ? "egress" : "ingress"
        let base = ["--iface=\(interface)", "--direction=\(direction)"]
        // The asked-for version, as in the map pin paths the program opens (`…/<name>/<version>/<map>`).
        let version = "--version=\(PinName.of(entry.version.isEmpty ? "latest" : entry.version))"
        var arguments = base + [version]
        if let inlet { arguments.append("--map-name=\(inlet)") }
        if let logDir = options.userProgramLogDir { arguments.append("--log-dir=\(logDir)") }
        var rules: UserProgram.Rules?
        if !entry.rulesFile.isEmpty, !entry.rules.isEmpty {
            do { _ = try FileName(entry.rulesFile, field: "\(at).rules_file") } catch { throw HostError(.badInput, error.description, hint: error.hint) }
            let path = "\(options.client.state)/user-programs/\(interface)/\(direction)/\(installed.name)/\(entry.rulesFile)"
            rules = UserProgram.Rules(path: path, content: entry.rules)
            arguments.append("--rules-file=\(path)")
        }
        arguments += entry.startParameters.map { "--\($0.name)=\($0.value)" }
        let stop = entry.cmdStop.isEmpty ? nil
            : UserProgram.Command(path: try executable("cmd_stop", entry.cmdStop), arguments: base + BPFProgram.parameters(entry.stopArgs).map { "--\($0.name)=\($0.value)" })

        func flags(_ args: [String: JSONValue]) -> [String] { BPFProgram.parameters(args).map { "--\($0.name)=\($0.value)" } }
        let status = entry.cmdStatus.isEmpty ? nil : UserProgram.Command(path: try executable("cmd_status", entry.cmdStatus), arguments: flags(entry.statusArgs))
        let update = entry.cmdUpdate.isEmpty ? nil
            : UserProgram.Command(path: try executable("cmd_update", entry.cmdUpdate),
                                  arguments: base + ["--cmd=update", version] + (options.userProgramLogDir.map { ["--log-dir=\($0)"] } ?? []) + flags(entry.updateArgs))
        return UserProgram(path: try executable("cmd_start", entry.cmdStart), arguments: arguments, daemon: entry.userProgramDaemon, stop: stop,
                           status: status, update: update, cpuSeconds: entry.cpu > 0 ? entry.cpu : nil, memoryBytes: entry.memory > 0 ? entry.memory : nil,
                           rules: rules, selfLoading: inlet != nil)
    }

    /// l3afd's probe program types.
    static let probeTypes: Set<String> = ["kprobe", "kretprobe", "tracepoint", "uprobe", "uretprobe"]

    /// A `probes` entry as a placed probe: an artifact without a manifest whose payload names its object and entry
    /// function; where it attaches is its ELF section (`kprobe/<function>`, `tracepoint/<category>/<name>`).
    func placeProbe(_ entry: BPFProgram, interface: String, at: String, _ transaction: Transaction) throws -> PlacedProbe {
        do { _ = try PackageName(entry.name) } catch { throw HostError(.badInput, "\(at).name: \(error.description)", hint: error.hint) }
        for (field, value) in [("cmd_start", entry.cmdStart), ("cmd_stop", entry.cmdStop), ("cmd_status", entry.cmdStatus), ("cmd_update", entry.cmdUpdate)]
        where !value.isEmpty {
            // l3afd loads a probe's object and runs no user program for it; one named here would do nothing.
            throw HostError(.badInput, "\(at).\(field): l3afd runs no user program for a probe", hint: "leave \(field) empty, or make it a chain program's")
        }
        let installed = try transaction.package(try wanted(entry))
        let objectPath: String
        do {
            objectPath = try ContainedPath.resolve(RelativePath(entry.objectFile, field: "\(at).object_file"), in: installed.path, field: "\(at).object_file")
        } catch { throw HostError(.badInput, "\(at): \(installed.name)@\(installed.version): \(error.description)", hint: "check object_file") }
        return PlacedProbe(interface: interface, package: installed.name, version: installed.version, objectPath: objectPath,
                           entryFunction: entry.entryFunctionName, payload: entry)
    }

    /// One payload entry as a placed program: its package (fetched before the lock), its program found in its
    /// manifest, or as the entry says for a legacy artifact.
    func place(_ entry: BPFProgram, interface: String, hook: Hook, at: String, into snapshot: inout HostSnapshot, _ transaction: Transaction) throws -> PlacedProgram {
        do { _ = try PackageName(entry.name) } catch { throw HostError(.badInput, "\(at).name: \(error.description)", hint: error.hint) }
        let version = entry.version.isEmpty ? "latest" : entry.version
        let installed = try transaction.package(try wanted(entry))
        var program: Manifest.Program
        var parameters: [String: String] = [:]
        var loadsItself = false
        if let manifest = installed.manifest {
            guard let found = manifest.programs.first(where: { $0.hook == hook }) else {
                throw HostError(.badInput, "\(at): \(installed.name)@\(installed.version) has no program for \(hook)",
                                hint: "it has: \(manifest.programs.map(\.hook.rawValue).joined(separator: ", "))")
            }
            program = found
            // map_args may write only what the manifest says is configuration or state, never another of the
            // package's maps (its chain link, its counters' internals).
            let writable = Set(program.parameters.map(\.destination.map) + program.stateMaps + program.monitorMaps.map(\.name))
            for (index, argument) in entry.mapArgs.enumerated() where !writable.contains(argument.name) {
                throw HostError(.badInput, "\(at).map_args[\(index)].name: \(installed.name)@\(installed.version)'s manifest names no map '\(argument.name)' that a payload may write",
                                hint: writable.isEmpty ? "its manifest names none" : "it may write: \(writable.sorted().joined(separator: ", "))")
            }
            let known = Set(program.parameters.map(\.name))
            for (key, value) in entry.startParameters {
                guard known.contains(key) else {
                    throw HostError(.badInput, "\(at).start_args.\(key): \(installed.name)@\(installed.version) has no parameter '\(key)'",
                                    hint: known.isEmpty ? "it takes none" : "it takes: \(known.sorted().joined(separator: ", "))")
                }
                parameters[key] = value
            }
        } else if entry.objectFile.isEmpty, !entry.cmdStart.isEmpty {
            // A user program that loads its own object and chains itself through --map-name, as l3afd runs one.
            guard !entry.mapName.isEmpty else {
                throw HostError(.badInput, "\(at).map_name: \(installed.name) has a cmd_start and no object_file, so its user program loads its eBPF program, and map_name must name that program's next-program map",
                                hint: "add map_name (the prog array its program tail-calls through), or object_file, entry_function_name and map_name for l3afd to load it")
            }
            guard options.chaining else {
                throw HostError(.badInput, "\(at).object_file: \(installed.name)'s user program loads its own eBPF program and chains itself through --map-name, which needs bpf-chaining-enabled: true",
                                hint: "give the payload its object_file, entry_function_name and map_name so l3afd loads it, or turn chaining on")
            }
            // Its eBPF program comes from its user program: that file stands for the object, and the function is the
            // payload's when it names one (l3afd ignores it).
            if !entry.mapArgs.isEmpty {
                // As in l3afd, whose map_args go through the object it loaded: the user program sets its own maps.
                throw HostError(.badInput, "\(at).map_args: \(installed.name)'s user program loads its own eBPF program, whose maps l3afd doesn't write",
                                hint: "leave map_args out and have the user program set them (start_args reach it), or give the payload its object_file")
            }
            program = Manifest.Program(hook: hook, objectFile: (entry.cmdStart.trimmingCharacters(in: .whitespaces) as NSString).lastPathComponent,
                                       entryFunction: entry.entryFunctionName.isEmpty ? "loaded_by_user_program" : entry.entryFunctionName,
                                       nextMap: entry.mapName)
            loadsItself = true
        } else {
            // A legacy l3afd artifact: the payload says what to load.
            guard !entry.objectFile.isEmpty, !entry.entryFunctionName.isEmpty, !entry.mapName.isEmpty else {
                throw HostError(.badInput, "\(at): \(installed.name)@\(installed.version) has no \(Manifest.fileName), and the payload doesn't name its object_file, entry_function_name and map_name",
                                hint: "add those three fields for a legacy artifact")
            }
            program = Manifest.Program(hook: hook, objectFile: entry.objectFile, entryFunction: entry.entryFunctionName, nextMap: entry.mapName)
            if !entry.startArgs.isEmpty && entry.cmdStart.isEmpty {
                throw HostError(.badInput, "\(at).start_args: \(installed.name) is a legacy artifact without a manifest and no cmd_start to pass them to",
                                hint: "add cmd_start, or package it with a manifest whose parameters take these values (l3af pack)")
            }
        }
        var userProgram: UserProgram?
        if !entry.cmdStart.isEmpty && installed.manifest == nil {
            userProgram = try self.userProgram(entry, in: installed, interface: interface, hook: hook, at: at,
                                               inlet: loadsItself ? ChainEngine.inletPath(pinRoot: options.pinRoot, interface: interface, hook: hook, package: installed.name.rawValue,
                                                                                          version: installed.version.rawValue) : nil)
        }
        if !entry.monitorMaps.isEmpty { program.monitorMaps = entry.monitorMaps }
        try ensureRoot(hook, in: &snapshot, transaction)
        var placed = PlacedProgram(
            interface: interface, hook: hook, package: installed.name, version: installed.version, requirement: version, seqID: entry.seqID,
            parameters: parameters, enabled: entry.adminStatus.isEmpty || entry.isEnabled, program: program, objectPath: "\(installed.path)/\(program.objectFile)",
            source: installed.source, payload: entry)
        placed.mapArguments = entry.mapArgs
        placed.userProgram = userProgram
        do {
            // A program its user program loads has no object here: the user program stands for it.
            placed.objectPath = loadsItself ? userProgram?.path ?? installed.path
                : try ContainedPath.resolve(RelativePath(program.objectFile, field: "\(at).object_file"), in: installed.path, field: "\(at).object_file")
        } catch {
            throw HostError(.badInput, "\(at): \(installed.name)@\(installed.version): \(error.description)", hint: "check object_file")
        }
        try Self.checkParameters(placed)
        return placed
    }
}
