// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
// A TC ingress root as L3AF writes one: a custom section name, its prog array pinned by name.
#include <linux/pkt_cls.h>
#include "l3afd_style.h"

PINNED_PROG_ARRAY(tc_ingress_root_array);

SEC("tc-ingress-root")
int tc_ingress_root(struct __sk_buff *skb)
{
    bpf_tail_call(skb, &tc_ingress_root_array, 0);
    return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
