#define _GNU_SOURCE
#include <unistd.h>

#include "CLinux.h"

int l3af_syncfs(int fd) { return syncfs(fd); }
