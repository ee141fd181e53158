import Foundation
import L3AFBPF
import L3AFModel
import L3AFRuntime

/// The objects a preflight loads, each once with every function wanted from it, by the package folder whose manifest
/// gives their `min_kernel`.
struct ObjectsToCheck {
    private var objects: [String: (subject: String, folder: String, entries: [ObjectPreflight.Entry])] = [:]

    mutating func want(_ path: String, _ subject: String, folder: String, _ entry: ObjectPreflight.Entry) {
        objects[path, default: (subject, folder, [])].entries.append(entry)
    }

    /// Each package's `min_kernel` first (a package this kernel is too old for has nothing else checked), then each
    /// object of the others.
    func problems(_ chains: any ChainBackend) -> [PreflightProblem] {
        var problems: [PreflightProblem] = []
        var tooOld = Set<String>(), kernelChecked = Set<String>()
        for (path, object) in objects.sorted(by: { $0.key < $1.key }) {
            if kernelChecked.insert(object.folder).inserted, let manifest = try? InstallerSource.manifest(at: object.folder),
               let problem = chains.preflight(minimumKernel: manifest.minKernel, subject: "\(manifest.name)@\(manifest.version)") {
                problems.append(problem)
                tooOld.insert(object.folder)
            }
            guard !tooOld.contains(object.folder) else { continue }
            var seen = Set<String>()
            problems += chains.preflight(objectAt: path, entries: object.entries.filter { seen.insert($0.function).inserted }, subject: object.subject)
        }
        return problems
    }
}

extension HostManager {
    /// What `new` would load that `old` doesn't run, checked against this host before anything changes: each package's
    /// `min_kernel`, each object's program types, map types, helpers and BTF, the verifier's approval (loaded and
    /// closed, never attached), each interface, and room in each chain. Programs a user program loads are its own.
    ///
    /// `loadedSinceBoot`: a snapshot this kernel ran since it booted (a revision a rollback returns to). Its objects were
    /// verified and loaded by this very kernel, so they are not loaded again to check them; the change itself still loads
    /// them and changes nothing when one fails.
    public func preflight(_ new: HostSnapshot, from old: HostSnapshot, loadedSinceBoot: HostSnapshot? = nil) -> [PreflightProblem] {
        var problems: [PreflightProblem] = []
        func runs(_ placed: PlacedProgram, in snapshot: HostSnapshot) -> Bool {
            snapshot.programs.contains { $0.key == placed.key && $0.package == placed.package && $0.version == placed.version && $0.enabled }
        }
        let verified = loadedSinceBoot ?? HostSnapshot()
        var objects = ObjectsToCheck()
        for placed in new.programs where placed.enabled && !runs(placed, in: old) {
            if let problem = missingInterface(placed.interface, subject: placed.spec) {
                problems.append(problem)
                continue
            }
            do { _ = try placed.member.parameterWrites() } catch {
                problems.append(PreflightProblem(check: "parameters", subject: placed.spec, message: error.description))
            }
            if placed.userProgram?.loadsItself == true || runs(placed, in: verified) { continue }
            let folder = placed.objectPath.hasSuffix("/" + placed.program.objectFile)
                ? String(placed.objectPath.dropLast(placed.program.objectFile.count + 1)) : (placed.objectPath as NSString).deletingLastPathComponent
            objects.want(placed.objectPath, "\(placed.spec): \(placed.program.objectFile)", folder: folder,
                 ObjectPreflight.Entry(function: placed.program.entryFunction, hook: placed.hook))
        }
        for (hook, root) in new.roots where old.roots[hook] != root && verified.roots[hook] != root {
            objects.want(root.objectPath, "\(root.package)@\(root.version): \(root.program.objectFile)", folder: (root.objectPath as NSString).deletingLastPathComponent,
                 ObjectPreflight.Entry(function: root.program.entryFunction, hook: Hook(rawValue: hook)))
        }
        let running = old.attachedProbes.union(verified.attachedProbes)
        for probe in new.probes ?? [] where probe.enabled && !running.contains(probe.member.folderName) {
            objects.want(probe.objectPath, "\(probe.package)@\(probe.version): \((probe.objectPath as NSString).lastPathComponent)",
                 folder: (probe.objectPath as NSString).deletingLastPathComponent, ObjectPreflight.Entry(function: probe.entryFunction, hook: nil))
        }
        for key in new.keys where new.chain(key).count > ChainEngine.maximumLength {
            problems.append(PreflightProblem(check: "chain", subject: "\(key)",
                                             message: "\(new.chain(key).count) programs are more than the \(ChainEngine.maximumLength) a packet can pass through (the kernel allows 33 tail calls)"))
        }
        return problems + objects.problems(chains)
    }

    /// The problem when `interface` doesn't exist on this host.
    func missingInterface(_ interface: String, subject: String) -> PreflightProblem? {
        guard !chains.interfaceExists(interface) else { return nil }
        return PreflightProblem(check: "interface", subject: subject,
                                message: "there is no network interface '\(interface)' (here: \(chains.interfaces().joined(separator: ", ")))")
    }

    /// ``preflight(_:from:)``, as the error a change fails with.
    func requirePreflight(_ new: HostSnapshot, from old: HostSnapshot, loadedSinceBoot: HostSnapshot? = nil) throws(HostError) {
        let problems = preflight(new, from: old, loadedSinceBoot: loadedSinceBoot)
        guard !problems.isEmpty else { return }
        throw HostError(.preflight, "preflight: this host can't run it, so nothing was loaded or recorded:\n" + problems.map { "  - [\($0.check)] \($0)" }.joined(separator: "\n"),
                        hint: "`l3af check NAME@VERSION` checks a package against this host without changing anything")
    }
}

/// What `l3af check` found: the package checked, against which kernel, what was checked, and what is missing.
public struct CheckReport: Codable, Sendable {
    public var package: String
    public var version: String
    public var kernel: String
    public var checked: [String]
    public var problems: [PreflightProblem]

    public var text: String {
        var lines = ["\(package)@\(version) on \(kernel): checked \(checked.joined(separator: ", "))"]
        lines += problems.isEmpty ? ["it would load here"] : problems.map { "  - [\($0.check)] \($0)" }
        return lines.joined(separator: "\n")
    }
}

extension HostManager {
    /// Checks `spec` against this host without changing anything (fetched into a folder of its own, never the repo):
    /// its `min_kernel`, each object's program types, map types, helpers and BTF, the verifier; with `interface`, that
    /// it exists and its chains have room; its parameters against its manifest.
    public func check(_ spec: PackageSpec, interface: String?, hook: Hook?, parameters: [String: String]) async throws -> CheckReport {
        let folder = FileManager.default.temporaryDirectory.appending(path: "l3af-check-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let package = try await fetch(.signed(spec.description, registry: nil), from: source.scratch(in: folder))
        let manifest = try Self.manifest(of: package)
        let subject = "\(package.name)@\(package.version)"
        var report = CheckReport(package: package.name.rawValue, version: package.version.rawValue, kernel: KernelFeatures.release,
                                 checked: ["kernel version", "program types", "map types", "helpers", "BTF", "verifier", "parameters"], problems: [])
        let programs = manifest.programs.filter { hook == nil || $0.hook == hook }
        if programs.isEmpty, hook != nil {
            throw HostError(.badInput, "\(subject) has no program for \(hook!)", hint: "it has: \(manifest.programs.map(\.hook.rawValue).joined(separator: ", "))")
        }
        var objects = ObjectsToCheck()
        for program in programs {
            objects.want("\(package.path)/\(program.objectFile)", "\(subject): \(program.objectFile)", folder: package.path,
                         ObjectPreflight.Entry(function: program.entryFunction, hook: program.hook))
        }
        for probe in hook == nil ? manifest.probes ?? [] : [] {
            objects.want("\(package.path)/\(probe.objectFile)", "\(subject): \(probe.objectFile)", folder: package.path,
                         ObjectPreflight.Entry(function: probe.entryFunction, hook: nil))
        }
        // Reads, feature probes and verifier loads: blocking work, on a thread of its own.
        report.problems += try await observe { [objects] host in objects.problems(host.chains) }
        for program in programs {
            let member = ChainMember(package: package.name.rawValue, version: package.version.rawValue, program: program, objectPath: "", parameters: parameters)
            do { _ = try member.parameterWrites() } catch { report.problems.append(PreflightProblem(check: "parameters", subject: subject, message: error.description)) }
        }
        if let interface {
            report.checked += ["interface", "chain room"]
            if let problem = missingInterface(interface, subject: subject) {
                report.problems.append(problem)
            } else {
                let current = try snapshot()
                for program in programs {
                    let key = ChainKey(interface: interface, hook: program.hook)
                    let chain = current.chain(key).filter { $0.package != package.name }
                    if chain.count >= ChainEngine.maximumLength {
                        report.problems.append(PreflightProblem(check: "chain", subject: "\(key)",
                                                                message: "it already runs \(chain.count) programs, the most a packet can pass through"))
                    }
                }
            }
        }
        return report
    }
}

/// When this kernel booted (`btime` of /proc/stat), `nil` when it can't be read.
enum BootTime {
    static let date: Date? = {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
              let seconds = BoundedInteger.parse(String(line.dropFirst(6)), in: 0...Int(Int32.max))
        else { return nil }
        return Date(timeIntervalSince1970: TimeInterval(seconds))
    }()
}
