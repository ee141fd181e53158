// A pass-through chain member for bench/chain: tail-calls slot 0 of its next map, passes when it is empty.
// Built with -DTAG=n it also writes n into the packet's last byte, so a test run shows which version ran.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} pass_next SEC(".maps");

SEC("xdp")
int pass(struct xdp_md *ctx)
{
#ifdef TAG
    unsigned char *data = (void *)(long)ctx->data;
    unsigned char *end = (void *)(long)ctx->data_end;
    if (data + 64 <= end)
        data[63] = TAG;
#endif
    bpf_tail_call(ctx, &pass_next, 0);
    return XDP_PASS;
}

char _license[] SEC("license") = "Dual BSD/GPL";
