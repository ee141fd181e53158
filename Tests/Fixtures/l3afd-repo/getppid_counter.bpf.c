// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
// A probe in the style of L3AF's: a tracepoint program, attached on its own, counting getppid(2) calls in
// getppid_count_map[0].
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} getppid_count_map SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int count_getppid(void *ctx)
{
    __u32 zero = 0;
    __u64 *count = bpf_map_lookup_elem(&getppid_count_map, &zero);
    if (count)
        __sync_fetch_and_add(count, 1);
    return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
