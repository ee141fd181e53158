internal import CBPF
import Glibc

/// Reads and writes of a map through its descriptor (`bpf_map_*_elem`), keys and values as bytes.
public struct BPFMapAccess: Sendable {
    public let descriptor: BPFDescriptor
    /// The map's name, for errors.
    public let name: String

    public init(_ descriptor: BPFDescriptor, name: String) {
        self.descriptor = descriptor
        self.name = name
    }

    /// Writes `value` at `key` (`bpf_map_update_elem`, BPF_ANY).
    public func update(key: [UInt8], value: [UInt8]) throws(BPFError) {
        let rc = key.withUnsafeBytes { k in value.withUnsafeBytes { v in bpf_map_update_elem(descriptor.fd, k.baseAddress, v.baseAddress, UInt64(BPF_ANY)) } }
        guard rc == 0 else { throw BPFError(.mapUpdate, errno: errno, context: "bpf_map_update_elem(\(name))", detail: nil) }
    }

    /// The value at `key`, `valueSize` bytes (for per-CPU maps: the value size times the possible CPUs), or `nil`.
    public func lookup(key: [UInt8], valueSize: Int) throws(BPFError) -> [UInt8]? {
        var value = [UInt8](repeating: 0, count: valueSize)
        let rc = key.withUnsafeBytes { k in value.withUnsafeMutableBytes { v in bpf_map_lookup_elem(descriptor.fd, k.baseAddress, v.baseAddress) } }
        if rc != 0 {
            if errno == ENOENT { return nil }
            throw BPFError(.mapLookup, errno: errno, context: "bpf_map_lookup_elem(\(name))", detail: nil)
        }
        return value
    }

    /// Removes `key`; a key that isn't there is not an error.
    public func delete(key: [UInt8]) throws(BPFError) {
        let rc = key.withUnsafeBytes { bpf_map_delete_elem(descriptor.fd, $0.baseAddress) }
        guard rc == 0 || errno == ENOENT else { throw BPFError(.mapDelete, errno: errno, context: "bpf_map_delete_elem(\(name))", detail: nil) }
    }

    /// Every key, `keySize` bytes each (`bpf_map_get_next_key`).
    public func keys(keySize: Int) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var current: [UInt8]? = nil
        var next = [UInt8](repeating: 0, count: keySize)
        while true {
            let rc = next.withUnsafeMutableBytes { n in
                if let current { return current.withUnsafeBytes { bpf_map_get_next_key(descriptor.fd, $0.baseAddress, n.baseAddress) } }
                return bpf_map_get_next_key(descriptor.fd, nil, n.baseAddress)
            }
            guard rc == 0 else { return out }
            out.append(next)
            current = next
        }
    }

    /// Points slot `slot` of this program array at `program`: the one atomic step every chain change is.
    public func setProgram(_ program: BPFDescriptor, at slot: UInt32 = 0) throws(BPFError) {
        try update(key: slot.bytes, value: UInt32(bitPattern: program.fd).bytes)
    }

    /// Empties slot `slot` of this program array: a tail call through it then falls through.
    public func clearProgram(at slot: UInt32 = 0) throws(BPFError) { try delete(key: slot.bytes) }

    /// The id of the program in slot `slot` of this program array (the kernel answers ids, not descriptors), or `nil`.
    public func programID(at slot: UInt32 = 0) throws(BPFError) -> UInt32? {
        try lookup(key: slot.bytes, valueSize: 4).map { $0.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) } }
    }

    /// The map's type, key size and value size, as the kernel reports them (`bpf_obj_get_info_by_fd`).
    public func info() throws(BPFError) -> (type: UInt32, keySize: Int, valueSize: Int) {
        var info = bpf_map_info()
        var length = UInt32(MemoryLayout<bpf_map_info>.size)
        guard bpf_obj_get_info_by_fd(descriptor.fd, &info, &length) == 0 else {
            throw BPFError(.inspect, errno: errno, context: "bpf_obj_get_info_by_fd(\(name))", detail: nil)
        }
        return (info.type, Int(info.key_size), Int(info.value_size))
    }

    /// The number at integer `key` (a 4-byte key for arrays, else the map's key size), read as a little-endian
    /// unsigned value of the map's value size (up to 8 bytes), summed over CPUs for per-CPU maps; 0 when absent.
    /// This is how monitor maps and health rules read counters.
    public func counter(key: Int) throws(BPFError) -> UInt64 {
        let (type, keySize, valueSize) = try info()
        var keyBytes = [UInt8](repeating: 0, count: keySize)
        withUnsafeBytes(of: UInt64(truncatingIfNeeded: key).littleEndian) { raw in
            for i in 0..<min(keySize, 8) { keyBytes[i] = raw[i] }
        }
        let perCPU = [BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH].map(\.rawValue).contains(type)
        let stride = (valueSize + 7) / 8 * 8
        let copies = perCPU ? Self.possibleCPUs : 1
        guard let bytes = try lookup(key: keyBytes, valueSize: perCPU ? stride * copies : valueSize) else { return 0 }
        var total: UInt64 = 0
        for copy in 0..<copies {
            var value: UInt64 = 0
            for i in 0..<min(valueSize, 8) { value |= UInt64(bytes[copy * (perCPU ? stride : valueSize) + i]) << (8 * UInt64(i)) }
            total &+= value
        }
        return total
    }

    /// How many CPUs per-CPU maps hold a value for (`libbpf_num_possible_cpus`).
    public static var possibleCPUs: Int { Int(max(libbpf_num_possible_cpus(), 1)) }
}

extension UInt32 {
    /// The four bytes of the value in this machine's order, as map keys and values hold them.
    public var bytes: [UInt8] { withUnsafeBytes(of: self) { Array($0) } }
}
