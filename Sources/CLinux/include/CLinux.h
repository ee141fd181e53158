// Linux calls that glibc declares only under _GNU_SOURCE, which Swift's Glibc module doesn't define.
#pragma once

/// syncfs(2): commits the file system holding `fd` (data and metadata) to disk; -1 with errno on failure.
int l3af_syncfs(int fd);

/// Whether `path` is on a bpf file system (statfs(2) f_type BPF_FS_MAGIC): 1 yes, 0 no or unreadable.
int l3af_is_bpffs(const char *path);

/// prlimit(2) for RLIMIT_CPU (`cpu` 1) or RLIMIT_AS (`cpu` 0) of `pid`, soft and hard both `value`; -1 with errno on failure.
int l3af_set_limit(int pid, int cpu, unsigned long long value);

/// Unblocks every signal in the calling thread, returning the mask it had (an opaque value for l3af_restore_signals):
/// a child spawned from this thread then starts with no signal blocked. l3afd's threads block SIGTERM and friends
/// for its own signal handling, and a child inherits the spawning thread's mask across exec.
unsigned long long l3af_unblock_signals(void);
void l3af_restore_signals(unsigned long long saved);

/// posix_spawn(3) of `path` with `argv` and `envp`, no signal blocked and SIGTERM, SIGINT, SIGHUP and SIGCHLD at their
/// default actions, and only these descriptors open besides 0, 1 and 2: `keep[0..count)`, renumbered 3, 4, … in that
/// order (whatever else this process has open, close-on-exec or not, is not inherited). Returns 0 and sets `*pid`, or
/// an errno value.
int l3af_spawn_keeping(const char *path, char *const argv[], char *const envp[], const int *keep, int count, int *pid);
