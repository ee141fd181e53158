// Linux calls that glibc declares only under _GNU_SOURCE, which Swift's Glibc module doesn't define.
#pragma once

/// syncfs(2): commits the file system holding `fd` (data and metadata) to disk; -1 with errno on failure.
int l3af_syncfs(int fd);
