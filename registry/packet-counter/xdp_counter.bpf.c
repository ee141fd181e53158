// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
// Counts packets and bytes per IP protocol on XDP ingress, then goes on down the chain.
#include "packet_counter.h"

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} xdp_counter_next_prog SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 256);
    __type(key, __u32);
    __type(value, struct counts);
} xdp_counter_map SEC(".maps");

SEC("xdp")
int xdp_counter(struct xdp_md *ctx)
{
    count_packet(&xdp_counter_map, (void *)(long)ctx->data, (void *)(long)ctx->data_end);
    bpf_tail_call(ctx, &xdp_counter_next_prog, 0);
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
