// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
// The root of an XDP chain: attached to the interface, it tail-calls whatever program sits in slot 0 of
// xdp_root_array, and passes the packet when the slot is empty (no chain, or a chain being rebuilt).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} xdp_root_array SEC(".maps");

SEC("xdp")
int xdp_root(struct xdp_md *ctx)
{
    bpf_tail_call(ctx, &xdp_root_array, 0);
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
