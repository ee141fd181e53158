// The same work as pass.bpf.c without a chain: what libxdp's dispatcher calls, and the floor (one program alone).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass_alone(struct xdp_md *ctx)
{
    return XDP_PASS;
}

char _license[] SEC("license") = "Dual BSD/GPL";
