// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
// Maps as L3AF's programs declare them: pinned by name, so l3afd (and we) pin them in the program's own folder.
#pragma once
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/// A one-slot prog array: a root's, or a program's link to the next one.
#define PINNED_PROG_ARRAY(name)                   \
    struct {                                      \
        __uint(type, BPF_MAP_TYPE_PROG_ARRAY);    \
        __uint(max_entries, 1);                   \
        __type(key, __u32);                       \
        __type(value, __u32);                     \
        __uint(pinning, LIBBPF_PIN_BY_NAME);      \
    } name SEC(".maps")

/// A one-entry array of a 64-bit value: a counter or a setting.
#define PINNED_COUNTER(name)                      \
    struct {                                      \
        __uint(type, BPF_MAP_TYPE_ARRAY);         \
        __uint(max_entries, 1);                   \
        __type(key, __u32);                       \
        __type(value, __u64);                     \
        __uint(pinning, LIBBPF_PIN_BY_NAME);      \
    } name SEC(".maps")
