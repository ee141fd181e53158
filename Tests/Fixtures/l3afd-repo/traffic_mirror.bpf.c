// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
// A TC program in the style of L3AF's: a custom section name, maps pinned by name. It counts the packets it sees
// in tc_packet_count_map[0] and goes on down the chain.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} tc_mirror_next_prog SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} tc_packet_count_map SEC(".maps");

SEC("tc_traffic_mirror")
int _tc_traffic_mirror(struct __sk_buff *skb)
{
    __u32 zero = 0;
    __u64 *count = bpf_map_lookup_elem(&tc_packet_count_map, &zero);
    if (count)
        __sync_fetch_and_add(count, 1);
    bpf_tail_call(skb, &tc_mirror_next_prog, 0);
    return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
