// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
// Shared by the XDP and TC counters: packets and bytes per IP protocol (key: the protocol number; 0 also
// collects what isn't IP), in a per-CPU array so that counting never contends.
#pragma once
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct counts {
    __u64 packets;
    __u64 bytes;
};

static __always_inline __u32 protocol_of(void *data, void *end)
{
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end) return 0;
    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = (void *)(eth + 1);
        return (void *)(ip + 1) <= end ? ip->protocol : 0;
    }
    if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = (void *)(eth + 1);
        return (void *)(ip6 + 1) <= end ? ip6->nexthdr : 0;
    }
    return 0;
}

static __always_inline void count_packet(void *map, void *data, void *end)
{
    __u32 protocol = protocol_of(data, end);
    struct counts *c = bpf_map_lookup_elem(map, &protocol);
    if (c) {
        c->packets += 1;
        c->bytes += (__u64)(end - data);
    }
}
