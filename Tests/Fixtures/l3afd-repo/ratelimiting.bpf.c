// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
// An XDP program in the style of L3AF's ratelimiting: a custom section name, maps pinned by name. It counts
// every packet in rl_recv_count_map[0]; when rl_config_map[0] is not zero (set through map_args) it drops ICMP
// echo requests, counting them in rl_drop_count_map[0]; everything else goes on down the chain.
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_endian.h>
#include "l3afd_style.h"

PINNED_PROG_ARRAY(xdp_rl_ingress_next_prog);
PINNED_COUNTER(rl_config_map);
PINNED_COUNTER(rl_recv_count_map);
PINNED_COUNTER(rl_drop_count_map);

SEC("xdp_ratelimiting")
int _xdp_ratelimiting(struct xdp_md *ctx)
{
    __u32 zero = 0;
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    __u64 *received = bpf_map_lookup_elem(&rl_recv_count_map, &zero);
    if (received)
        __sync_fetch_and_add(received, 1);
    __u64 *dropping = bpf_map_lookup_elem(&rl_config_map, &zero);
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    __u8 *icmp_type = (void *)(ip + 1);
    // ICMP type 8: echo request.
    if (dropping && *dropping && (void *)(icmp_type + 1) <= end && eth->h_proto == bpf_htons(ETH_P_IP) && ip->ihl == 5
        && ip->protocol == IPPROTO_ICMP && *icmp_type == 8) {
        __u64 *dropped = bpf_map_lookup_elem(&rl_drop_count_map, &zero);
        if (dropped)
            __sync_fetch_and_add(dropped, 1);
        return XDP_DROP;
    }
    bpf_tail_call(ctx, &xdp_rl_ingress_next_prog, 0);
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
