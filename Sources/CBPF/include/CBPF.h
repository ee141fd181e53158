// libbpf for Swift: its API, plus a typed way to receive its log (libbpf_set_print passes a va_list).
#pragma once
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <bpf/btf.h>

/// Receives each line libbpf logs, formatted: level is a `enum libbpf_print_level`.
typedef void (*l3af_bpf_log_sink)(int level, const char *message);

/// Routes libbpf's log to `sink` (NULL: drop it).
void l3af_bpf_set_log_sink(l3af_bpf_log_sink sink);

/// The name of helper `id` without its `bpf_` prefix (`map_lookup_elem`), NULL when these headers don't know it.
const char *l3af_bpf_helper_name(int id);
/// How many helper ids these headers know (the last is one less).
int l3af_bpf_helper_count(void);
