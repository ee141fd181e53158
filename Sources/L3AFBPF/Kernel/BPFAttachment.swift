internal import CBPF
import Glibc
import L3AFModel

/// Attaching a chain's root program to an interface: XDP through a bpf_link (pinnable, so it outlives the
/// process), TC through libbpf's tc hook API on the clsact qdisc.
public enum BPFAttachment {
    /// The handle and priority of l3af's TC filter: fixed, so a new process finds the filter it attached.
    public static let tcHandle: UInt32 = 0x1af
    public static let tcPriority: UInt32 = 0x1af

    /// The interface index of `name`, or an error that names it.
    public static func interfaceIndex(_ name: String) throws(BPFError) -> Int32 {
        let index = if_nametoindex(name)
        guard index != 0 else {
            throw BPFError(.lookup, errno: ENODEV, context: "interface '\(name)'", detail: "no such network interface on this host (see `ip link`)")
        }
        return Int32(index)
    }

    /// Attaches an XDP program with `bpf_link_create(BPF_XDP)`; returns the link, to pin.
    public static func attachXDP(_ program: BPFDescriptor, interface: String) throws(BPFError) -> BPFDescriptor {
        let index = try interfaceIndex(interface)
        let fd = bpf_link_create(program.fd, index, BPF_XDP, nil)
        guard fd >= 0 else {
            let code = errno
            throw BPFError(.attach, errno: code, context: "bpf_link_create(XDP, \(interface))",
                           detail: code == EBUSY || code == EEXIST ? "another XDP program is attached to \(interface) (see `ip link show \(interface)`)" : nil)
        }
        return BPFDescriptor(fd)
    }

    /// Detaches the XDP link pinned at `linkPin` now, with `bpf_link_detach`: unpinning alone drops the last
    /// reference, but the kernel frees a link from a work queue, so the program can stay on the interface for a
    /// moment after the pin is gone. A pin that isn't there is not an error.
    public static func detachLink(pin linkPin: String) throws(BPFError) {
        let link: BPFDescriptor
        do { link = try BPFDescriptor.pinned(at: linkPin) } catch { return }
        guard bpf_link_detach(link.fd) == 0 else {
            let code = errno
            guard code == ENOLINK || code == ENOENT else { throw BPFError(.detach, errno: code, context: "bpf_link_detach(\(linkPin))", detail: nil) }
            return
        }
    }

    /// Swaps the program an XDP link runs for `program` in one step (`bpf_link_update`): no packet goes without one.
    public static func updateXDP(linkPin: String, to program: BPFDescriptor) throws(BPFError) {
        let link = try BPFDescriptor.pinned(at: linkPin)
        guard bpf_link_update(link.fd, program.fd, nil) == 0 else {
            throw BPFError(.attach, errno: errno, context: "bpf_link_update(\(linkPin))", detail: nil)
        }
    }

    /// The id of the program the link pinned at `linkPin` runs (an XDP link, a probe's), `nil` when there is no such link.
    public static func linkProgramID(pin linkPin: String) -> UInt32? {
        guard let link = try? BPFDescriptor.pinned(at: linkPin) else { return nil }
        var info = bpf_link_info()
        var length = UInt32(MemoryLayout<bpf_link_info>.size)
        guard bpf_obj_get_info_by_fd(link.fd, &info, &length) == 0 else { return nil }
        return info.prog_id
    }

    private static func tcHook(_ index: Int32, _ hook: Hook) -> bpf_tc_hook {
        var tcHook = bpf_tc_hook()
        tcHook.sz = optionsSize(\bpf_tc_hook.parent, UInt32.self)
        tcHook.ifindex = index
        tcHook.attach_point = hook == .tcEgress ? BPF_TC_EGRESS : BPF_TC_INGRESS
        return tcHook
    }

    private static func tcOptions(_ programFD: Int32) -> bpf_tc_opts {
        var options = bpf_tc_opts()
        options.sz = optionsSize(\bpf_tc_opts.priority, UInt32.self)
        options.handle = tcHandle
        options.priority = tcPriority
        options.prog_fd = programFD
        return options
    }

    /// Attaches a TC program on `hook` of `interface` (creating the clsact qdisc when absent), replacing
    /// l3af's filter there if one is left over.
    public static func attachTC(_ program: BPFDescriptor, interface: String, hook: Hook) throws(BPFError) {
        let index = try interfaceIndex(interface)
        var tcHook = tcHook(index, hook)
        let created = bpf_tc_hook_create(&tcHook)
        guard created == 0 || created == -EEXIST else {
            throw BPFError(.attach, errno: -created, context: "bpf_tc_hook_create(clsact, \(interface))", detail: nil)
        }
        var options = tcOptions(program.fd)
        options.flags = UInt32(BPF_TC_F_REPLACE.rawValue)
        let rc = bpf_tc_attach(&tcHook, &options)
        guard rc == 0 else { throw BPFError(.attach, errno: -rc, context: "bpf_tc_attach(\(hook), \(interface))", detail: nil) }
    }

    /// Removes l3af's TC filter from `hook` of `interface`; one that isn't there is not an error.
    public static func detachTC(interface: String, hook: Hook) throws(BPFError) {
        let index = try interfaceIndex(interface)
        var tcHook = tcHook(index, hook)
        var options = tcOptions(0)
        let rc = bpf_tc_detach(&tcHook, &options)
        guard rc == 0 || rc == -ENOENT || rc == -EINVAL else {
            throw BPFError(.detach, errno: -rc, context: "bpf_tc_detach(\(hook), \(interface))", detail: nil)
        }
    }

    /// The id of the program in l3af's TC filter on `hook` of `interface`, or `nil` when there is none.
    public static func tcProgramID(interface: String, hook: Hook) throws(BPFError) -> UInt32? {
        let index = try interfaceIndex(interface)
        var tcHook = tcHook(index, hook)
        var options = tcOptions(0)
        let rc = bpf_tc_query(&tcHook, &options)
        return rc == 0 ? options.prog_id : nil
    }
}

/// The `sz` to give a libbpf options struct: the end of the last field set. Not `MemoryLayout.size`: libbpf
/// refuses options whose bytes past the fields it knows are not zero, and Swift copies a struct field by field,
/// leaving its trailing padding undefined.
func optionsSize<Options, Field>(_ field: KeyPath<Options, Field>, _: Field.Type) -> Int {
    MemoryLayout<Options>.offset(of: field)! + MemoryLayout<Field>.size
}
