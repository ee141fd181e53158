// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
// Tracing programs that attach on their own, host-wide (l3afd's probes): every system call counted, in total and per
// process (by thread group id), and every TCP retransmission counted. Both are tracepoints, stable across kernels and
// present where kprobes are not (CONFIG_KPROBES is off on some kernels).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} syscall_total SEC(".maps");

// The processes that made the most recent calls; the least recently counted are dropped when it is full.
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 4096);
    __type(key, __u32);
    __type(value, __u64);
} syscalls_by_process SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} tcp_retransmit_total SEC(".maps");

static __always_inline void bump(void *map)
{
    __u32 zero = 0;
    __u64 *count = bpf_map_lookup_elem(map, &zero);
    if (count) *count += 1;
}

SEC("tracepoint/raw_syscalls/sys_enter")
int count_syscalls(void *ctx)
{
    bump(&syscall_total);
    __u32 process = bpf_get_current_pid_tgid() >> 32;
    __u64 one = 1;
    __u64 *count = bpf_map_lookup_elem(&syscalls_by_process, &process);
    if (count)
        __sync_fetch_and_add(count, 1);
    else
        bpf_map_update_elem(&syscalls_by_process, &process, &one, BPF_NOEXIST);
    return 0;
}

SEC("tracepoint/tcp/tcp_retransmit_skb")
int count_retransmits(void *ctx)
{
    bump(&tcp_retransmit_total);
    return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
