// Binding a shared library on first use instead of at process start.
//
// libcurl pulls 40 shared libraries into a process (TLS, Kerberos, LDAP, SSH, IDN, brotli…) and libarchive
// another handful (libxml2 with ICU); the dynamic loader maps and relocates all of them before main, about
// 9 ms of a CLI's start on every run, even for `l3af --help` or an install that has nothing to download.
// So the CCurl and CArchive targets don't link those libraries: they define each C function the project
// calls as a forwarding stub that opens the library by its soname the first time any of them is called.
//
// The stubs are hidden (never exported), so the library's own calls to its API bind to itself, not to them.
// A library that can't be opened, or lacks a function, ends the process with a message that names the
// library, the function and the package to install: there is no meaningful way to go on without it.
#pragma once

struct l3af_lazy_library {
    const char *soname;   // e.g. "libcurl.so.4": the file the -dev package's .so link points to
    const char *package;  // the Debian/Ubuntu package that ships it, for the message
    void *handle;         // dlopen's, once opened
};

/// The address of `function` in `library`, opening the library on first use; never NULL (exits instead).
void *l3af_lazy_symbol(struct l3af_lazy_library *library, const char *function);

// Defines `static type resolve_name(void)`, returning the library's `name` as a `type` pointer, resolved once.
// For variadic functions (curl_easy_setopt), which a stub can't forward: the caller calls the pointer itself.
// Resolving twice from two threads is harmless (both store the same address), and the accesses are atomic.
#define L3AF_LAZY_RESOLVER(library, type, name)                                                  \
    static type resolve_##name(void) {                                                           \
        static type resolved;                                                                    \
        type function = __atomic_load_n(&resolved, __ATOMIC_ACQUIRE);                            \
        if (!function) {                                                                         \
            function = (type)l3af_lazy_symbol(&(library), #name);                                \
            __atomic_store_n(&resolved, function, __ATOMIC_RELEASE);                             \
        }                                                                                        \
        return function;                                                                         \
    }

// Defines `name` with the given return type, parameter list and argument list as a hidden function that
// calls the library's `name`, resolved once as L3AF_LAZY_RESOLVER does.
#define L3AF_LAZY_FORWARD(library, ret, name, params, args)                                      \
    typedef ret(*name##_pointer) params;                                                         \
    L3AF_LAZY_RESOLVER(library, name##_pointer, name)                                            \
    __attribute__((visibility("hidden"))) ret name params { return resolve_##name() args; }
