// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
// A TC egress root as L3AF writes one: a custom section name, its prog array pinned by name.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} tc_egress_root_array SEC(".maps");

SEC("tc-egress-root")
int tc_egress_root(struct __sk_buff *skb)
{
    bpf_tail_call(skb, &tc_egress_root_array, 0);
    return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
