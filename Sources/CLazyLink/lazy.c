#include "CLazyLink.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static pthread_mutex_t opening = PTHREAD_MUTEX_INITIALIZER;

static void *open_library(struct l3af_lazy_library *library, const char **reason) {
    void *handle = __atomic_load_n(&library->handle, __ATOMIC_ACQUIRE);
    if (handle) return handle;
    pthread_mutex_lock(&opening);
    handle = library->handle;
    if (!handle) {
        // RTLD_LAZY: the library's own imports bind as they are called, not all up front.
        // RTLD_LOCAL: its symbols stay out of the global scope, so nothing else binds to them by accident.
        handle = dlopen(library->soname, RTLD_LAZY | RTLD_LOCAL);
        if (handle) __atomic_store_n(&library->handle, handle, __ATOMIC_RELEASE);
        else *reason = dlerror();
    }
    pthread_mutex_unlock(&opening);
    return handle;
}

void *l3af_lazy_symbol(struct l3af_lazy_library *library, const char *function) {
    const char *reason = "unknown error";
    void *handle = open_library(library, &reason);
    if (!handle) {
        fprintf(stderr, "error: cannot load %s, needed for %s: %s\nhint: install the %s package\n",
                library->soname, function, reason, library->package);
        exit(127);
    }
    dlerror();
    void *address = dlsym(handle, function);
    if (!address) {
        const char *why = dlerror();
        fprintf(stderr, "error: %s has no function %s: %s\nhint: install a newer %s package\n", library->soname,
                function, why ? why : "not found", library->package);
        exit(127);
    }
    return address;
}
