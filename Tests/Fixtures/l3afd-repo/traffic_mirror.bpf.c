// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
// A TC program in the style of L3AF's: a custom section name, maps pinned by name. It counts the packets it sees
// in tc_packet_count_map[0] and goes on down the chain.
#include <linux/pkt_cls.h>
#include "l3afd_style.h"

PINNED_PROG_ARRAY(tc_mirror_next_prog);
PINNED_COUNTER(tc_packet_count_map);

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
