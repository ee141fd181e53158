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

#include <spawn.h>

int l3af_spawn_keeping(const char *path, char *const argv[], char *const envp[], const int *keep, int count, int *pid)
{
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    int result = posix_spawn_file_actions_init(&actions);
    if (result != 0) return result;
    result = posix_spawnattr_init(&attributes);
    if (result != 0) {
        posix_spawn_file_actions_destroy(&actions);
        return result;
    }
    // First every kept descriptor goes above all of them (so no move overwrites one not yet moved), then down to 3….
    int base = 3;
    for (int i = 0; i < count; i++) if (keep[i] >= base) base = keep[i] + 1;
    for (int i = 0; i < count && result == 0; i++) result = posix_spawn_file_actions_adddup2(&actions, keep[i], base + i);
    for (int i = 0; i < count && result == 0; i++) result = posix_spawn_file_actions_adddup2(&actions, base + i, 3 + i);
    if (result == 0) result = posix_spawn_file_actions_addclosefrom_np(&actions, 3 + count);
    sigset_t none, handled;
    sigemptyset(&none);
    sigemptyset(&handled);
    sigaddset(&handled, SIGTERM);
    sigaddset(&handled, SIGINT);
    sigaddset(&handled, SIGHUP);
    sigaddset(&handled, SIGCHLD);
    if (result == 0) result = posix_spawnattr_setsigmask(&attributes, &none);
    if (result == 0) result = posix_spawnattr_setsigdefault(&attributes, &handled);
    if (result == 0) result = posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t child = 0;
    if (result == 0) result = posix_spawn(&child, path, &actions, &attributes, argv, envp);
    if (result == 0) *pid = child;
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    return result;
}
