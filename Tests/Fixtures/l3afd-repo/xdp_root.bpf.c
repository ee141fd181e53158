// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
// An XDP root as L3AF writes one: a custom section name, its prog array pinned by name.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} xdp_root_array SEC(".maps");

SEC("xdp-root")
int xdp_root(struct xdp_md *ctx)
{
    bpf_tail_call(ctx, &xdp_root_array, 0);
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
