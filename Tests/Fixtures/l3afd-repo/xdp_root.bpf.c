// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
// An XDP root as L3AF writes one: a custom section name, its prog array pinned by name.
#include "l3afd_style.h"

PINNED_PROG_ARRAY(xdp_root_array);

SEC("xdp-root")
int xdp_root(struct xdp_md *ctx)
{
    bpf_tail_call(ctx, &xdp_root_array, 0);
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
