// Linux calls that glibc declares only under _GNU_SOURCE, which Swift's Glibc module doesn't define.
#pragma once

/// syncfs(2): commits the file system holding `fd` (data and metadata) to disk; -1 with errno on failure.
int l3af_syncfs(int fd);

/// Whether `path` is on a bpf file system (statfs(2) f_type BPF_FS_MAGIC): 1 yes, 0 no or unreadable.
int l3af_is_bpffs(const char *path);
