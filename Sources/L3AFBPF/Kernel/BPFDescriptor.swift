internal import CBPF
import Glibc

/// One file descriptor of a BPF program, map or link, closed when its last reference goes. A reference type
/// so that a chain can hold descriptors in collections; nothing else closes them.
public final class BPFDescriptor: @unchecked Sendable {
    public let fd: Int32

    init(_ fd: Int32) { self.fd = fd }

    deinit { close(fd) }

    /// Opens what is pinned at `path` with `bpf_obj_get`.
    public static func pinned(at path: String) throws(BPFError) -> BPFDescriptor {
        let fd = bpf_obj_get(path)
        guard fd >= 0 else { throw BPFError(.lookup, errno: errno, context: "bpf_obj_get(\(path))", detail: nil) }
        return BPFDescriptor(fd)
    }

    /// Opens the loaded program with kernel id `id` (`bpf_prog_get_fd_by_id`).
    public static func program(id: UInt32) throws(BPFError) -> BPFDescriptor {
        let fd = bpf_prog_get_fd_by_id(id)
        guard fd >= 0 else { throw BPFError(.lookup, errno: errno, context: "bpf_prog_get_fd_by_id(\(id))", detail: nil) }
        return BPFDescriptor(fd)
    }

    /// Pins the object at `path` (`bpf_obj_pin`); the path's folder must exist on a bpf file system.
    public func pin(at path: String) throws(BPFError) {
        guard bpf_obj_pin(fd, path) == 0 else { throw BPFError(.pin, errno: errno, context: "bpf_obj_pin(\(path))", detail: nil) }
    }

    /// The kernel's id of the program behind this descriptor (`bpf_obj_get_info_by_fd`).
    public func programID() throws(BPFError) -> UInt32 {
        var info = bpf_prog_info()
        var length = UInt32(MemoryLayout<bpf_prog_info>.size)
        guard bpf_obj_get_info_by_fd(fd, &info, &length) == 0 else {
            throw BPFError(.inspect, errno: errno, context: "bpf_obj_get_info_by_fd(program)", detail: nil)
        }
        return info.id
    }
}
