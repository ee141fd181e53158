import Foundation
internal import CBPF
import Glibc
import L3AFModel

/// A program loaded into the kernel from an object file, with every map of its object: what a chain links
/// and pins. The libbpf object is closed once loading is done; these descriptors keep everything alive.
public struct LoadedProgram: Sendable {
    public let name: String
    public let program: BPFDescriptor
    /// Every map of the object by name (internal `.rodata`/`.bss` maps included), with its shape.
    public let maps: [String: (descriptor: BPFDescriptor, info: BPFMapInfo)]

    /// Access to the map called `name`.
    public func map(_ name: String) throws(BPFError) -> BPFMapAccess {
        guard let map = maps[name] else {
            throw BPFError(.lookup, errno: ENOENT, context: "map '\(name)' of \(self.name)", detail: "the object has: \(maps.keys.sorted().joined(separator: ", "))")
        }
        return BPFMapAccess(map.descriptor, name: name)
    }
}

/// Loads programs with libbpf: `bpf_object__open_file`, map reuse, `bpf_object__load`, the verifier's log on failure.
public enum BPFLoader {
    /// Loads `entry` from the object at `path`. Maps named in `reuse` take the descriptor given (an existing map
    /// carried over to this object: `bpf_map__reuse_fd`) instead of being created; their shapes must match.
    /// Only `entry` is loaded when the object holds several programs; maps its object declares pinned by name are
    /// pinned in `pinFolder`, which must exist, except those in `neverPinned` or `reuse` (without a `pinFolder`, none). When `entry`'s section names no type libbpf
    /// knows (l3afd's programs use custom names such as `xdp-root` or `xdp_ratelimiting`), `hook` gives it: XDP,
    /// or a TC classifier.
    public static func load(
        objectAt path: String, entry: String, hook: Hook? = nil, reuse: [String: BPFDescriptor] = [:], pinFolder: String? = nil,
        neverPinned: Set<String> = []
    ) throws(BPFError) -> LoadedProgram {
        BPFLog.routeByDefault()
        let logSize = 1 << 20
        let log = UnsafeMutablePointer<CChar>.allocate(capacity: logSize)
        log.initialize(repeating: 0, count: logSize)
        defer { log.deallocate() }
        var options = bpf_object_open_opts()
        options.sz = optionsSize(\bpf_object_open_opts.kernel_log_level, UInt32.self)
        // Level 0 with a buffer: libbpf loads without a log, and only on failure loads again with one.
        options.kernel_log_buf = log
        options.kernel_log_size = logSize
        options.kernel_log_level = 0
        // Maps declared `LIBBPF_PIN_BY_NAME` are pinned (or, when a pin is there, reused) in `pinFolder`, never at
        // the bpffs root libbpf would pick.
        let pinRootPath = pinFolder.map { strdup($0) } ?? nil
        defer { free(pinRootPath) }
        options.pin_root_path = UnsafePointer(pinRootPath)
        let object = try open(path, &options)
        defer { bpf_object__close(object) }
        let found = try only(entry, in: object, path)
        if let hook, bpf_program__type(found) == BPF_PROG_TYPE_UNSPEC {
            if hook == .xdpIngress {
                bpf_program__set_type(found, BPF_PROG_TYPE_XDP)
                bpf_program__set_expected_attach_type(found, BPF_XDP)
            } else {
                bpf_program__set_type(found, BPF_PROG_TYPE_SCHED_CLS)
            }
        }
        // Maps the caller owns (a chain link, maps carried over) are never pinned or found by name: a pin left by the
        // running copy of the same program would link the new copy into the live chain.
        for name in neverPinned.union(reuse.keys) {
            if let map = bpf_object__find_map_by_name(object, name) { bpf_map__set_pin_path(map, nil) }
        }
        // No folder for maps pinned by name: none is pinned by libbpf (the caller pins what it keeps).
        if pinFolder == nil { pinNoMapByName(object) }
        for (name, descriptor) in reuse {
            guard let map = bpf_object__find_map_by_name(object, name) else {
                throw BPFError(.lookup, errno: ENOENT, context: "map '\(name)' in \(path)", detail: "the object has no such map to carry state into")
            }
            guard bpf_map__reuse_fd(map, descriptor.fd) == 0 else {
                throw BPFError(.load, errno: errno, context: "bpf_map__reuse_fd(\(name))", detail: "the map's shape differs from the one carried over")
            }
        }
        guard bpf_object__load(object) == 0 else {
            let code = errno
            let text = String(cString: log).trimmingTrailingNewlines()
            throw BPFError(.load, errno: code, context: "bpf_object__load(\(path))",
                           detail: text.isEmpty ? nil : "verifier log:\n\(text.lastLines(40))")
        }
        guard let program = bpf_object__find_program_by_name(object, entry) else {
            throw BPFError(.lookup, errno: ENOENT, context: "program '\(entry)' in \(path)", detail: nil)
        }
        let programFD = dup(bpf_program__fd(program))
        guard programFD >= 0 else { throw BPFError(.load, errno: errno, context: "dup(program fd of \(entry))", detail: nil) }
        var maps: [String: (descriptor: BPFDescriptor, info: BPFMapInfo)] = [:]
        var mapCursor = bpf_object__next_map(object, nil)
        while let map = mapCursor {
            let name = String(cString: bpf_map__name(map))
            let fd = bpf_map__fd(map)
            if fd >= 0 {
                let info = BPFMapInfo(name: name, type: bpf_map__type(map).rawValue, keySize: bpf_map__key_size(map),
                                      valueSize: bpf_map__value_size(map), maxEntries: bpf_map__max_entries(map))
                maps[name] = (BPFDescriptor(dup(fd)), info)
            }
            mapCursor = bpf_object__next_map(object, map)
        }
        return LoadedProgram(name: entry, program: BPFDescriptor(programFD), maps: maps)
    }

    /// Opens the object at `path` after checking its BTF (libbpf before 1.3 crashes on a type referring past the last).
    static func open(_ path: String, _ options: UnsafePointer<bpf_object_open_opts>?) throws(BPFError) -> OpaquePointer {
        if let bytes = FileManager.default.contents(atPath: path), let problem = BTFCheck.problem(in: Array(bytes)) {
            throw BPFError(.open, errno: EINVAL, context: "checking \(path)", detail: "\(problem); it is not a BPF ELF object libbpf can read safely")
        }
        guard let object = bpf_object__open_file(path, options) else {
            throw BPFError(.open, errno: errno, context: "bpf_object__open_file(\(path))", detail: "it is not a BPF ELF object libbpf can read")
        }
        return object
    }

    /// Marks `entry` the only program of `object` to load; returns it.
    /// Clears every map's pin path, so libbpf pins and reuses none by name.
    static func pinNoMapByName(_ object: OpaquePointer) {
        var map = bpf_object__next_map(object, nil)
        while let current = map {
            bpf_map__set_pin_path(current, nil)
            map = bpf_object__next_map(object, current)
        }
    }

    static func only(_ entry: String, in object: OpaquePointer, _ path: String) throws(BPFError) -> OpaquePointer {
        var found: OpaquePointer?
        var cursor = bpf_object__next_program(object, nil)
        while let program = cursor {
            let isEntry = String(cString: bpf_program__name(program)) == entry
            if isEntry { found = program }
            bpf_program__set_autoload(program, isEntry)
            cursor = bpf_object__next_program(object, program)
        }
        guard let found else {
            throw BPFError(.lookup, errno: ENOENT, context: "program '\(entry)' in \(path)", detail: "the object has no such function")
        }
        return found
    }
}

extension String {
    fileprivate func trimmingTrailingNewlines() -> String {
        var s = Substring(self)
        while s.last == "\n" || s.last == " " { s = s.dropLast() }
        return String(s)
    }

    fileprivate func lastLines(_ count: Int) -> String {
        let lines = split(separator: "\n", omittingEmptySubsequences: false)
        return lines.count <= count ? self : "…\n" + lines.suffix(count).joined(separator: "\n")
    }
}

/// Tracing programs attached on their own (l3afd's `probes`): kprobe, kretprobe, tracepoint, uprobe, uretprobe, with
/// the attach point their ELF section names (`kprobe/tcp_retransmit_skb`, `tracepoint/syscalls/sys_enter_getppid`).
public enum BPFProbe {
    /// The sections of tracing programs that attach on their own.
    public static let sections = ["kprobe/", "kretprobe/", "tracepoint/", "tp/", "uprobe/", "uretprobe/"]

    /// Loads the object at `path` once and attaches `entries` (and, with `everyProbe`, every other program whose section
    /// names a tracing attach point, as l3afd loads a probe's object) as their sections say (`bpf_program__attach`),
    /// pinning each link at `<folder>/<function>/link` (so it outlives the process, and a new one finds it) and every
    /// named map once under `<folder>/maps/`, shared by them all. `folder` must exist on bpffs. Nothing stays attached
    /// when one of them fails.
    public static func attach(objectAt path: String, entries: [String], everyProbe: Bool, folder: String) throws(BPFError) {
        BPFLog.routeByDefault()
        let object = try BPFLoader.open(path, nil)
        defer { bpf_object__close(object) }
        var chosen: [OpaquePointer] = []
        for entry in entries {
            guard let program = bpf_object__find_program_by_name(object, entry) else {
                throw BPFError(.lookup, errno: ENOENT, context: "program '\(entry)' in \(path)", detail: "the object has no such function")
            }
            chosen.append(program)
        }
        // Every chosen program, and with `everyProbe` every tracing one, loads; nothing else does.
        var program = bpf_object__next_program(object, nil)
        while let current = program {
            let name = String(cString: bpf_program__name(current)), section = String(cString: bpf_program__section_name(current))
            let isProbe = sections.contains { section.hasPrefix($0) }
            let wanted = entries.contains(name) || (everyProbe && isProbe)
            bpf_program__set_autoload(current, wanted)
            if wanted, !chosen.contains(current) { chosen.append(current) }
            program = bpf_object__next_program(object, current)
        }
        BPFLoader.pinNoMapByName(object)
        guard bpf_object__load(object) == 0 else {
            throw BPFError(.load, errno: errno, context: "bpf_object__load(\(path))", detail: nil)
        }
        // Tracepoints are found through tracefs: mounted where the kernel offers it, when nothing mounted it yet.
        if !FileManager.default.fileExists(atPath: "/sys/kernel/tracing/events"), FileManager.default.fileExists(atPath: "/sys/kernel/tracing") {
            _ = mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, nil)
        }
        var pinned: [String] = []
        for current in chosen {
            let name = String(cString: bpf_program__name(current))
            do throws(BPFError) {
                guard let link = bpf_program__attach(current) else {
                    let code = errno
                    throw BPFError(.attach, errno: code, context: "bpf_program__attach(\(name))",
                                   detail: "its section ('\(String(cString: bpf_program__section_name(current)))') must name where it attaches, e.g. kprobe/<function> or tracepoint/<category>/<name>")
                }
                defer { bpf_link__destroy(link) }
                try? FileManager.default.createDirectory(atPath: "\(folder)/\(name)", withIntermediateDirectories: true)
                guard bpf_link__pin(link, "\(folder)/\(name)/link") == 0 else {
                    throw BPFError(.pin, errno: errno, context: "bpf_link__pin(\(folder)/\(name)/link)", detail: nil)
                }
                // Pinned: the kernel link outlives this process; destroying the handle must not detach it.
                bpf_link__disconnect(link)
                pinned.append("\(folder)/\(name)/link")
            } catch {
                for link in pinned { try? BPFAttachment.detachLink(pin: link) }
                throw error
            }
        }
        try? FileManager.default.createDirectory(atPath: "\(folder)/maps", withIntermediateDirectories: true)
        var map = bpf_object__next_map(object, nil)
        while let current = map {
            let name = String(cString: bpf_map__name(current))
            if !name.contains("."), bpf_map__fd(current) >= 0 { _ = bpf_obj_pin(bpf_map__fd(current), "\(folder)/maps/\(name)") }
            map = bpf_object__next_map(object, current)
        }
    }
}
