internal import CBPF
import Glibc
import L3AFModel

/// Programs loaded by someone else (a user program that loads its own object, as l3afd's `cmd_start` programs may) and
/// the one-slot prog array such a program is handed to put itself into.
extension LoadedProgram {
    /// The program with kernel id `id` and every map it uses, found by id (`bpf_prog_get_info_by_fd` map ids). The
    /// kernel keeps a map's name cut to 15 bytes: a map whose name is such a cut of one of `names` is keyed by that
    /// full name, the others by the kernel's.
    public static func adopt(programID id: UInt32, names: [String]) throws(BPFError) -> (program: LoadedProgram, type: UInt32) {
        let program = try BPFDescriptor.program(id: id)
        var info = bpf_prog_info()
        var length = UInt32(MemoryLayout<bpf_prog_info>.size)
        guard bpf_obj_get_info_by_fd(program.fd, &info, &length) == 0 else {
            throw BPFError(.inspect, errno: errno, context: "bpf_obj_get_info_by_fd(program \(id))")
        }
        let count = Int(info.nr_map_ids)
        var ids = [UInt32](repeating: 0, count: max(count, 1))
        let type = info.type
        let name = withUnsafeBytes(of: info.name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        info = bpf_prog_info()
        info.nr_map_ids = UInt32(count)
        length = UInt32(MemoryLayout<bpf_prog_info>.size)
        let status = ids.withUnsafeMutableBufferPointer { buffer in
            info.map_ids = UInt64(UInt(bitPattern: buffer.baseAddress))
            return bpf_obj_get_info_by_fd(program.fd, &info, &length)
        }
        guard status == 0 else { throw BPFError(.inspect, errno: errno, context: "bpf_obj_get_info_by_fd(map ids of program \(id))") }
        var maps: [String: (descriptor: BPFDescriptor, info: BPFMapInfo)] = [:]
        for mapID in ids.prefix(min(count, Int(info.nr_map_ids))) {
            let fd = bpf_map_get_fd_by_id(mapID)
            guard fd >= 0 else { throw BPFError(.lookup, errno: errno, context: "bpf_map_get_fd_by_id(\(mapID)) of program \(id)") }
            let descriptor = BPFDescriptor(fd)
            var mapInfo = bpf_map_info()
            var mapLength = UInt32(MemoryLayout<bpf_map_info>.size)
            guard bpf_obj_get_info_by_fd(fd, &mapInfo, &mapLength) == 0 else {
                throw BPFError(.inspect, errno: errno, context: "bpf_obj_get_info_by_fd(map \(mapID))")
            }
            let kernelName = withUnsafeBytes(of: mapInfo.name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            let key = names.first { $0 == kernelName || ($0.utf8.count > 15 && String(decoding: $0.utf8.prefix(15), as: UTF8.self) == kernelName) } ?? kernelName
            guard maps[key] == nil else {
                throw BPFError(.lookup, errno: EINVAL, context: "the maps of program \(id)",
                               detail: "two of its maps are called '\(kernelName)' by the kernel (which keeps 15 bytes of a name), so '\(key)' is ambiguous")
            }
            maps[key] = (descriptor, BPFMapInfo(name: key, type: mapInfo.type, keySize: mapInfo.key_size, valueSize: mapInfo.value_size,
                                                maxEntries: mapInfo.max_entries))
        }
        return (LoadedProgram(name: name, program: program, maps: maps), type)
    }
}

extension BPFDescriptor {
    /// A new prog array of one slot (`bpf_map_create`), named `name` (at most 15 bytes kept).
    public static func programArray(name: String) throws(BPFError) -> BPFDescriptor {
        let fd = bpf_map_create(BPF_MAP_TYPE_PROG_ARRAY, String(name.prefix(15)), 4, 4, 1, nil)
        guard fd >= 0 else { throw BPFError(.load, errno: errno, context: "bpf_map_create(prog array \(name))") }
        return BPFDescriptor(fd)
    }

    /// Whether `type` (a `bpf_prog_info` type) is what `hook` runs: XDP, or a TC classifier (a tail call needs the
    /// type of the program it leaves).
    public static func programType(_ type: UInt32, runsOn hook: Hook) -> Bool {
        hook == .xdpIngress ? type == BPF_PROG_TYPE_XDP.rawValue : type == BPF_PROG_TYPE_SCHED_CLS.rawValue
    }
}
