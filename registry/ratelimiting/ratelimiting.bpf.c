// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
// Limits the rate of new TCP connections (SYN without ACK) per destination port, over a sliding one-second
// window, for the ports listed in rl_ports_map. The window is the usual two-bucket estimate: the count of
// the previous second, weighted by how much of it still overlaps the last second, plus the current count.
// A SYN that would push the estimate over `rate` is dropped. Everything else goes on down the chain
// (slot 0 of xdp_rl_ingress_next_prog), or passes when nothing is chained after this program.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define NS_PER_SEC 1000000000ULL

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} xdp_rl_ingress_next_prog SEC(".maps");

// Key 0: the rate, in new connections per second per port (0: no limit).
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} rl_config_map SEC(".maps");

// The limited ports (host byte order), value 1.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, __u16);
    __type(value, __u8);
} rl_ports_map SEC(".maps");

// Key 0: SYNs seen on limited ports; key 1: of those, dropped.
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} rl_recv_count_map SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} rl_drop_count_map SEC(".maps");

struct window {
    __u64 start;     // start of the current one-second bucket, in ns
    __u64 current;   // SYNs accepted in it
    __u64 previous;  // SYNs accepted in the bucket before
};

// Per port: state that an upgrade carries over, so a new version doesn't reset the limiter.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, __u16);
    __type(value, struct window);
} rl_window_map SEC(".maps");

static __always_inline int next(struct xdp_md *ctx)
{
    bpf_tail_call(ctx, &xdp_rl_ingress_next_prog, 0);
    return XDP_PASS;
}

static __always_inline void count(void *map)
{
    __u32 zero = 0;
    __u64 *value = bpf_map_lookup_elem(map, &zero);
    if (value) __sync_fetch_and_add(value, 1);
}

// Whether one more connection on `port` stays within `rate` per second; records it when it does.
static __always_inline int admit(__u16 port, __u32 rate)
{
    __u64 now = bpf_ktime_get_ns();
    struct window *w = bpf_map_lookup_elem(&rl_window_map, &port);
    if (!w) {
        struct window fresh = {.start = now, .current = 0, .previous = 0};
        bpf_map_update_elem(&rl_window_map, &port, &fresh, BPF_NOEXIST);
        w = bpf_map_lookup_elem(&rl_window_map, &port);
        if (!w) return 1;
    }
    __u64 elapsed = now - w->start;
    if (elapsed >= 2 * NS_PER_SEC) {
        w->previous = 0;
        w->current = 0;
        w->start = now;
        elapsed = 0;
    } else if (elapsed >= NS_PER_SEC) {
        w->previous = w->current;
        w->current = 0;
        w->start += NS_PER_SEC;
        elapsed -= NS_PER_SEC;
    }
    // previous × (1 − elapsed/1s) + current, in integers.
    __u64 estimate = (w->previous * (NS_PER_SEC - elapsed)) / NS_PER_SEC + w->current;
    if (estimate >= rate) return 0;
    __sync_fetch_and_add(&w->current, 1);
    return 1;
}

SEC("xdp")
int ratelimiting(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end) return next(ctx);

    struct tcphdr *tcp;
    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = (void *)(eth + 1);
        if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP || ip->ihl < 5) return next(ctx);
        tcp = (void *)ip + ip->ihl * 4;
    } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = (void *)(eth + 1);
        if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_TCP) return next(ctx);
        tcp = (void *)(ip6 + 1);
    } else {
        return next(ctx);
    }
    if ((void *)(tcp + 1) > end || !tcp->syn || tcp->ack) return next(ctx);

    __u16 port = bpf_ntohs(tcp->dest);
    if (!bpf_map_lookup_elem(&rl_ports_map, &port)) return next(ctx);
    __u32 zero = 0;
    __u32 *rate = bpf_map_lookup_elem(&rl_config_map, &zero);
    if (!rate || *rate == 0) return next(ctx);

    count(&rl_recv_count_map);
#ifdef L3AF_BAD_RELEASE
    // A deliberately bad build for the demo and the health-watch tests (pack --cflag=-DL3AF_BAD_RELEASE): it drops
    // every limited SYN, which the manifest's health rule catches.
    count(&rl_drop_count_map);
    return XDP_DROP;
#endif
    if (!admit(port, *rate)) {
        count(&rl_drop_count_map);
        return XDP_DROP;
    }
    return next(ctx);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
