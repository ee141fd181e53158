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
