internal import CBPF
import Glibc
import L3AFModel

/// The kind of a BPF program, as `bpf_program__type` reports it.
public enum BPFProgramType: Hashable, Sendable, CustomStringConvertible {
    case xdp
    case schedCls
    case schedAct
    case other(UInt32)

    init(_ raw: bpf_prog_type) {
        switch raw {
        case BPF_PROG_TYPE_XDP: self = .xdp
        case BPF_PROG_TYPE_SCHED_CLS: self = .schedCls
        case BPF_PROG_TYPE_SCHED_ACT: self = .schedAct
        default: self = .other(raw.rawValue)
        }
    }

    /// Whether a program of this type can run on `hook`.
    public func fits(_ hook: Hook) -> Bool {
        switch hook {
        case .xdpIngress: self == .xdp
        case .tcIngress, .tcEgress: self == .schedCls || self == .schedAct
        }
    }

    public var description: String {
        switch self {
        case .xdp: "xdp"
        case .schedCls: "sched_cls (tc)"
        case .schedAct: "sched_act (tc)"
        case .other(let raw): "type \(raw)"
        }
    }
}

/// A program found in an object file.
public struct BPFProgramInfo: Hashable, Sendable {
    public let name: String
    public let section: String
    public let type: BPFProgramType
}

/// A map declared in an object file.
public struct BPFMapInfo: Hashable, Sendable {
    public let name: String
    /// `BPF_MAP_TYPE_*` value.
    public let type: UInt32
    public let keySize: UInt32
    public let valueSize: UInt32
    public let maxEntries: UInt32

    /// Whether it is a `BPF_MAP_TYPE_PROG_ARRAY`, as a chain's next map must be.
    public var isProgramArray: Bool { type == BPF_MAP_TYPE_PROG_ARRAY.rawValue }
}

/// An ELF object opened with libbpf but not loaded into the kernel: what the registry and `l3af pack`
/// inspect. Owns the `struct bpf_object *` and the bytes libelf reads from.
public struct BPFObjectFile: ~Copyable {
    /// The libbpf object (open, not loaded): for readers in this module, such as ``ObjectPreflight``.
    let handle: OpaquePointer
    private let buffer: UnsafeMutableRawBufferPointer
    /// The name used in errors.
    public let name: String

    /// Opens an object from its bytes with `bpf_object__open_mem`.
    public init(bytes: [UInt8], name: String) throws(BPFError) {
        BPFLog.routeByDefault()
        if let problem = BTFCheck.problem(in: bytes) {
            throw BPFError(.open, errno: EINVAL, context: "checking \(name)", detail: "\(problem); it is not a BPF ELF object libbpf can read safely")
        }
        // libelf reads the buffer in place for the object's life, so it gets its own copy.
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 8)
        bytes.withUnsafeBytes { copy.copyMemory(from: $0) }
        guard let object = bpf_object__open_mem(copy.baseAddress, bytes.count, nil) else {
            let code = errno
            copy.deallocate()
            throw BPFError(.open, errno: code, context: "bpf_object__open_mem(\(name))",
                           detail: "it is not a BPF ELF object libbpf can read")
        }
        handle = object
        buffer = copy
        self.name = name
    }

    deinit {
        bpf_object__close(handle)
        buffer.deallocate()
    }

    /// Every program in the object.
    public var programs: [BPFProgramInfo] {
        var out: [BPFProgramInfo] = []
        var cursor = bpf_object__next_program(handle, nil)
        while let program = cursor {
            out.append(BPFProgramInfo(
                name: String(cString: bpf_program__name(program)),
                section: String(cString: bpf_program__section_name(program)),
                type: BPFProgramType(bpf_program__type(program))))
            cursor = bpf_object__next_program(handle, program)
        }
        return out
    }

    /// Every map the object declares (`.rodata`/`.bss` internal maps included).
    public var maps: [BPFMapInfo] {
        var out: [BPFMapInfo] = []
        var cursor = bpf_object__next_map(handle, nil)
        while let map = cursor {
            out.append(BPFMapInfo(
                name: String(cString: bpf_map__name(map)), type: bpf_map__type(map).rawValue,
                keySize: bpf_map__key_size(map), valueSize: bpf_map__value_size(map), maxEntries: bpf_map__max_entries(map)))
            cursor = bpf_object__next_map(handle, map)
        }
        return out
    }

    /// What a manifest's `probe` needs and this object lacks: its entry function, in a section that says where a
    /// tracing program attaches (`kprobe/`, `kretprobe/`, `tracepoint/` or `tp/`, `uprobe/`, `uretprobe/`), and its
    /// monitor maps.
    public func problems(for probe: Manifest.Probe) -> [String] {
        var problems: [String] = []
        let programs = self.programs
        if let entry = programs.first(where: { $0.name == probe.entryFunction }) {
            if !BPFProbe.sections.contains(where: { entry.section.hasPrefix($0) && entry.section.count > $0.count }) {
                problems.append("the probe '\(probe.entryFunction)' is in section '\(entry.section)', which names no attach point; "
                                + "use SEC(\"kprobe/<function>\"), SEC(\"tracepoint/<category>/<name>\") or the like")
            }
        } else {
            let found = programs.map(\.name).joined(separator: ", ")
            problems.append("\(name) has no program '\(probe.entryFunction)' (it has: \(found.isEmpty ? "none" : found))")
        }
        let maps = Set(self.maps.map(\.name))
        for monitor in probe.monitorMaps where !maps.contains(monitor.name) {
            problems.append("\(name) has no map '\(monitor.name)' (named as monitor map)")
        }
        return problems
    }

    /// What in `program` of a manifest this object does not provide: a missing entry function, a type that
    /// doesn't fit the hook, a missing or wrong-typed next map, a missing parameter, monitor or state map.
    public func problems(for program: Manifest.Program) -> [String] {
        var problems: [String] = []
        let programs = self.programs
        let maps = Dictionary(self.maps.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        if let entry = programs.first(where: { $0.name == program.entryFunction }) {
            if !entry.type.fits(program.hook) {
                problems.append("the entry function '\(program.entryFunction)' is a \(entry.type) program, which can't run on \(program.hook)")
            }
        } else {
            let found = programs.map(\.name).joined(separator: ", ")
            problems.append("\(name) has no program '\(program.entryFunction)' (it has: \(found.isEmpty ? "none" : found))")
        }
        if let next = maps[program.nextMap] {
            if !next.isProgramArray { problems.append("the next map '\(program.nextMap)' is not a BPF_MAP_TYPE_PROG_ARRAY") }
        } else {
            problems.append("\(name) has no next map '\(program.nextMap)'")
        }
        var referenced = program.parameters.map { ($0.destination.map, "parameter \($0.name)") }
        referenced += program.monitorMaps.map { ($0.name, "monitor map") }
        referenced += program.stateMaps.map { ($0, "state map") }
        referenced += program.health.flatMap(\.maps).map { ($0, "health rule map") }
        for (map, use) in referenced where maps[map] == nil {
            problems.append("\(name) has no map '\(map)' (named as \(use))")
        }
        return problems
    }
}
