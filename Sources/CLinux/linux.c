#define _GNU_SOURCE
#include <pthread.h>
#include <unistd.h>

#include "CLinux.h"

int l3af_syncfs(int fd) { return syncfs(fd); }

#include <sys/vfs.h>

int l3af_is_bpffs(const char *path)
{
    struct statfs info;
    return statfs(path, &info) == 0 && (unsigned int)info.f_type == 0xcafe4a11u;
}

#include <sys/resource.h>

int l3af_set_limit(int pid, int cpu, unsigned long long value)
{
    struct rlimit limit = { .rlim_cur = value, .rlim_max = value };
    return prlimit(pid, cpu ? RLIMIT_CPU : RLIMIT_AS, &limit, NULL);
}

#include <signal.h>
#include <string.h>

unsigned long long l3af_unblock_signals(void)
{
    sigset_t none, old;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, &old);
    unsigned long long saved = 0;
    memcpy(&saved, &old, sizeof saved);  // the kernel's mask is 64 bits; the rest of sigset_t is padding
    return saved;
}

void l3af_restore_signals(unsigned long long saved)
{
    sigset_t mask;
    sigemptyset(&mask);
    memcpy(&mask, &saved, sizeof saved);
    pthread_sigmask(SIG_SETMASK, &mask, NULL);
}
