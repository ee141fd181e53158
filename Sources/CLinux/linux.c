#define _GNU_SOURCE
#include <unistd.h>

#include "CLinux.h"

int l3af_syncfs(int fd) { return syncfs(fd); }

#include <sys/vfs.h>

int l3af_is_bpffs(const char *path)
{
    struct statfs info;
    return statfs(path, &info) == 0 && (unsigned int)info.f_type == 0xcafe4a11u;
}
