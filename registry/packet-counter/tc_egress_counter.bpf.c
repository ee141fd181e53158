// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
// Counts packets and bytes per IP protocol on TC egress, then goes on down the chain.
#include <linux/pkt_cls.h>
#include "packet_counter.h"

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} tc_counter_egress_next_prog SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 256);
    __type(key, __u32);
    __type(value, struct counts);
} tc_egress_counter_map SEC(".maps");

SEC("tc")
int tc_egress_counter(struct __sk_buff *skb)
{
    count_packet(&tc_egress_counter_map, (void *)(long)skb->data, (void *)(long)skb->data_end);
    bpf_tail_call(skb, &tc_counter_egress_next_prog, 0);
    return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
