#include <stdarg.h>
#include <stdio.h>

#include "CBPF.h"

static l3af_bpf_log_sink current_sink;

static int forward(enum libbpf_print_level level, const char *format, va_list arguments) {
    l3af_bpf_log_sink sink = __atomic_load_n(&current_sink, __ATOMIC_ACQUIRE);
    if (!sink) return 0;
    char line[2048];
    int length = vsnprintf(line, sizeof line, format, arguments);
    sink((int)level, line);
    return length;
}

void l3af_bpf_set_log_sink(l3af_bpf_log_sink sink) {
    __atomic_store_n(&current_sink, sink, __ATOMIC_RELEASE);
    libbpf_set_print(forward);
}

// Helper names by id, from the kernel headers' list (`bpf_map_lookup_elem` for 1…).
#define L3AF_HELPER_NAME(name, ...) [BPF_FUNC_##name] = #name
static const char *const l3af_helper_names[] = { __BPF_FUNC_MAPPER(L3AF_HELPER_NAME) };
#undef L3AF_HELPER_NAME

const char *l3af_bpf_helper_name(int id) {
    if (id < 0 || id >= (int)(sizeof(l3af_helper_names) / sizeof(l3af_helper_names[0]))) return NULL;
    return l3af_helper_names[id];
}

int l3af_bpf_helper_count(void) { return (int)(sizeof(l3af_helper_names) / sizeof(l3af_helper_names[0])); }
