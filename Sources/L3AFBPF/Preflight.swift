import Foundation
internal import CBPF
import Glibc
import L3AFModel
import Synchronization

/// One thing a package needs that this host lacks, found before anything changes.
public struct PreflightProblem: Sendable, Hashable, Codable, CustomStringConvertible {
    /// What was checked: `kernel`, `object`, `program-type`, `map-type`, `helper`, `btf`, `verifier`, and above this
    /// layer `interface`, `chain`, `parameters`.
    public let check: String
    /// What it was checked for: `ratelimiting@1.0.0: ratelimiting.bpf.o: _xdp_ratelimiting`.
    public let subject: String
    /// What is missing, and the kernel that has it.
    public let message: String

    public init(check: String, subject: String, message: String) {
        self.check = check
        self.subject = subject
        self.message = message
    }

    public var description: String { "\(subject): \(message)" }
}

/// What this kernel runs, asked once per process: its release, its BTF, and (through libbpf's feature probes, which
/// load tiny programs and maps) its program types, map types and helpers.
public enum KernelFeatures {
    /// `uname -r`.
    public static let release: String = {
        var name = utsname()
        uname(&name)
        return withUnsafeBytes(of: name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }()

    /// The release's version, `nil` when it doesn't start with one.
    public static let version: KernelVersion? = try? KernelVersion(parsing: release, release: true)

    /// Whether libbpf finds the kernel's own BTF (`/sys/kernel/btf/vmlinux`, or a vmlinux under /boot, /lib/modules or
    /// /usr/lib/debug), as CO-RE relocations need.
    /// Asked once per process: finding and parsing the kernel's BTF takes milliseconds.
    public static let hasBTF: Bool = {
        guard let btf = btf__load_vmlinux_btf(), libbpf_get_error(UnsafeRawPointer(btf)) == 0 else { return false }
        btf__free(btf)
        return true
    }()

    /// What the probes found supported (the only answer kept).
    private static let supported = Mutex<Set<String>>([])

    /// Whether the feature probes can be believed: libbpf answers "unsupported" for any failure to load its probe, a
    /// missing privilege included, so without root (CAP_BPF and friends) nothing is concluded.
    public static var canProbe: Bool { geteuid() == 0 }

    /// A probe's answer: `true` supported, `false` not, `nil` can't tell (an error, a type libbpf can't probe, no
    /// privilege). Only `true` is kept: a failure may be passing (memory), and a long-running l3afd asks again.
    private static func cached(_ key: String, _ probe: () -> Int32) -> Bool? {
        guard canProbe else { return nil }
        if supported.withLock({ $0.contains(key) }) { return true }
        let result = probe()
        let answer: Bool? = result == 1 ? true : result == 0 ? false : nil
        if answer == true { _ = supported.withLock { $0.insert(key) } }
        return answer
    }

    static func supports(programType type: UInt32) -> Bool? {
        cached("prog \(type)") { libbpf_probe_bpf_prog_type(bpf_prog_type(type), nil) }
    }

    static func supports(mapType type: UInt32) -> Bool? {
        cached("map \(type)") { libbpf_probe_bpf_map_type(bpf_map_type(type), nil) }
    }

    static func supports(helper id: Int32, in type: UInt32) -> Bool? {
        cached("helper \(id) \(type)") { libbpf_probe_bpf_helper(bpf_prog_type(type), bpf_func_id(UInt32(bitPattern: id)), nil) }
    }

    static func programTypeName(_ type: UInt32) -> String { libbpf_bpf_prog_type_str(bpf_prog_type(type)).map { String(cString: $0) } ?? "#\(type)" }
    static func mapTypeName(_ type: UInt32) -> String { libbpf_bpf_map_type_str(bpf_map_type(type)).map { String(cString: $0) } ?? "#\(type)" }
    static func helperName(_ id: Int32) -> String? { l3af_bpf_helper_name(id).map { String(cString: $0) } }

    /// "this kernel (6.1.0-13-amd64)": how a problem names the host's kernel.
    static var this: String { "this kernel (\(release))" }

    /// "; Linux 5.8 and later have it" when the table knows, and this kernel is older.
    static func since(_ version: String?) -> String {
        guard let version, let needed = try? KernelVersion(parsing: version) else { return "" }
        if let running = KernelFeatures.version, running >= needed { return " (it came in Linux \(version); this kernel doesn't offer it here)" }
        return "; Linux \(version) and later have it"
    }
}

/// Checks an object against this kernel without attaching anything: the type of each program asked for, every map
/// type, every helper those programs call (read from their instructions), BTF for CO-RE relocations, and then the
/// verifier itself (each program loaded and closed at once).
public enum ObjectPreflight {
    /// A program of the object to check: its function, and the hook that gives its type when its section names none.
    public struct Entry: Sendable {
        public let function: String
        public let hook: Hook?

        public init(function: String, hook: Hook?) {
            self.function = function
            self.hook = hook
        }
    }

    /// The problems of the object at `path` for `entries`, each under `subject` (`package@version: object`); none when
    /// it would load. The verifier runs only when nothing else is missing (its complaint would be about that).
    public static func check(objectAt path: String, entries: [Entry], subject: String) -> [PreflightProblem] {
        guard let bytes = FileManager.default.contents(atPath: path) else {
            return [PreflightProblem(check: "object", subject: subject, message: "\(path) can't be read")]
        }
        let all = Array(bytes)
        // Checked and opened as the registry and `l3af pack` open objects (BTF bounds first, then libbpf, never loaded).
        let file: BPFObjectFile
        do { file = try BPFObjectFile(bytes: all, name: path) } catch {
            return [PreflightProblem(check: "object", subject: subject, message: error.description)]
        }
        let object = file.handle
        var problems: [PreflightProblem] = []
        for entry in entries {
            guard let program = bpf_object__find_program_by_name(object, entry.function) else {
                problems.append(PreflightProblem(check: "object", subject: subject, message: "it has no function '\(entry.function)'"))
                continue
            }
            var type = bpf_program__type(program).rawValue
            if type == BPF_PROG_TYPE_UNSPEC.rawValue, let hook = entry.hook {
                type = hook == .xdpIngress ? BPF_PROG_TYPE_XDP.rawValue : BPF_PROG_TYPE_SCHED_CLS.rawValue
            }
            let typeName = KernelFeatures.programTypeName(type)
            if KernelFeatures.supports(programType: type) == false {
                problems.append(PreflightProblem(check: "program-type", subject: "\(subject): \(entry.function)",
                                                 message: "its program type \(typeName) is not supported by \(KernelFeatures.this)\(KernelFeatures.since(KernelHistory.programTypes[typeName]))"))
                continue
            }
            var seen = Set<Int32>()
            // A sleepable program (`.s` sections) may call helpers the probe, which isn't sleepable, is refused.
            let sleepable = bpf_program__flags(program) & UInt32(BPF_F_SLEEPABLE) != 0
            if !sleepable, let instructions = bpf_program__insns(program) {
                for index in 0..<bpf_program__insn_cnt(program) {
                    let instruction = instructions[index]
                    // BPF_JMP | BPF_CALL with source 0 calls a helper, its id in imm (1: a subprogram, 2: a kfunc).
                    guard instruction.code == 0x85, instruction.src_reg == 0, seen.insert(instruction.imm).inserted else { continue }
                    let id = instruction.imm
                    guard KernelFeatures.supports(helper: id, in: type) == false else { continue }
                    // libbpf rewrites bpf_probe_read_{kernel,user}[_str] to bpf_probe_read[_str] where the kernel lacks them.
                    if let fallback = Self.fallbacks[id], KernelFeatures.supports(helper: fallback, in: type) != false { continue }
                    let message: String
                    if let name = KernelFeatures.helperName(id) {
                        message = "it calls bpf_\(name) (helper \(id)), which \(KernelFeatures.this) doesn't offer \(typeName) programs\(KernelFeatures.since(KernelHistory.helpers[name]))"
                    } else {
                        message = "it calls helper \(id), which \(KernelFeatures.this) doesn't offer \(typeName) programs; l3af knows helpers up to \(l3af_bpf_helper_count() - 1), so it is a newer kernel's"
                    }
                    problems.append(PreflightProblem(check: "helper", subject: "\(subject): \(entry.function)", message: message))
                }
            }
        }
        for map in file.maps {
            let type = map.type, name = map.name
            let supported = KernelFeatures.supports(mapType: type)
            // Unknown to libbpf and not shown to work: refused (a type libbpf can't name but the kernel creates passes).
            if supported == false || (supported == nil && KernelFeatures.canProbe && libbpf_bpf_map_type_str(bpf_map_type(type)) == nil) {
                let typeName = KernelFeatures.mapTypeName(type)
                problems.append(PreflightProblem(check: "map-type", subject: "\(subject): map \(name)",
                                                 message: "its map type \(typeName) is not supported by \(KernelFeatures.this)\(KernelFeatures.since(KernelHistory.mapTypes[typeName]))"))
            }
        }
        if BTFCheck.hasCORERelocations(all), !KernelFeatures.hasBTF {
            problems.append(PreflightProblem(check: "btf", subject: subject,
                                             message: "it has CO-RE relocations, and \(KernelFeatures.this) has no BTF (/sys/kernel/btf/vmlinux); a kernel built with CONFIG_DEBUG_INFO_BTF (Linux 5.4 and later) has it"))
        }
        guard problems.isEmpty else { return problems }
        for entry in entries {
            do { _ = try BPFLoader.load(objectAt: path, entry: entry.function, hook: entry.hook) } catch {
                problems.append(PreflightProblem(check: "verifier", subject: "\(subject): \(entry.function)", message: "\(KernelFeatures.this) refuses it: \(error.description)"))
            }
        }
        return problems
    }

    /// Helpers libbpf turns into older ones when the kernel lacks them: probe_read_kernel/user → probe_read, their
    /// `_str` forms → probe_read_str.
    static let fallbacks: [Int32: Int32] = [112: 4, 113: 4, 114: 45, 115: 45]

    /// The problem when `minimum` (a manifest's `min_kernel`) is newer than this kernel.
    public static func kernel(_ minimum: KernelVersion?, subject: String) -> PreflightProblem? {
        guard let minimum, let version = KernelFeatures.version, version < minimum else { return nil }
        return PreflightProblem(check: "kernel", subject: subject, message: "it needs Linux \(minimum) or later (min_kernel), and \(KernelFeatures.this) is \(version)")
    }
}
