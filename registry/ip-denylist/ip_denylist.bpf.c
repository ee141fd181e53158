// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
// Drops packets whose IPv4 or IPv6 source address falls in a listed network (longest-prefix-match tries
// filled from the `ipv4` and `ipv6` parameters), counting the drops per family. Everything else goes on down
// the chain (slot 0 of xdp_denylist_next_prog), or passes when nothing is chained after this program.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} xdp_denylist_next_prog SEC(".maps");

struct v4_key {
    __u32 prefixlen;
    __u8 address[4];
};

struct v6_key {
    __u32 prefixlen;
    __u8 address[16];
};

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, 4096);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct v4_key);
    __type(value, __u8);
} denylist_v4 SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, 4096);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct v6_key);
    __type(value, __u8);
} denylist_v6 SEC(".maps");

// Key 0: IPv4 packets dropped; key 1: IPv6 packets dropped.
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u64);
} denylist_drop_count SEC(".maps");

static __always_inline int drop(__u32 family)
{
    __u64 *count = bpf_map_lookup_elem(&denylist_drop_count, &family);
    if (count) __sync_fetch_and_add(count, 1);
    return XDP_DROP;
}

SEC("xdp")
int ip_denylist(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) <= end) {
        if (eth->h_proto == bpf_htons(ETH_P_IP)) {
            struct iphdr *ip = (void *)(eth + 1);
            if ((void *)(ip + 1) <= end) {
                struct v4_key key = {.prefixlen = 32};
                __builtin_memcpy(key.address, &ip->saddr, 4);
                if (bpf_map_lookup_elem(&denylist_v4, &key)) return drop(0);
            }
        } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
            struct ipv6hdr *ip6 = (void *)(eth + 1);
            if ((void *)(ip6 + 1) <= end) {
                struct v6_key key = {.prefixlen = 128};
                __builtin_memcpy(key.address, &ip6->saddr, 16);
                if (bpf_map_lookup_elem(&denylist_v6, &key)) return drop(1);
            }
        }
    }
    bpf_tail_call(ctx, &xdp_denylist_next_prog, 0);
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
