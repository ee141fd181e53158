// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
// The root of a TC ingress chain: attached to clsact ingress, it tail-calls slot 0 of tc_ingress_root_array
// and lets the packet through (TC_ACT_OK) when the slot is empty.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} tc_ingress_root_array SEC(".maps");

SEC("tc")
int tc_ingress_root(struct __sk_buff *skb)
{
    bpf_tail_call(skb, &tc_ingress_root_array, 0);
    return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
