// libarchive's functions that the project calls, bound on first use: see CLazyLink.h for why.
// A function missing here is an undefined symbol at link time, never a silent fallback.
#include "CArchive.h"
#include "CLazyLink.h"

__attribute__((visibility("hidden"))) struct l3af_lazy_library l3af_libarchive = {"libarchive.so.13", "libarchive13", 0};

#define FORWARD(ret, name, params, args) L3AF_LAZY_FORWARD(l3af_libarchive, ret, name, params, args)
typedef struct archive archive;
typedef struct archive_entry entry;

FORWARD(int, archive_version_number, (void), ())
FORWARD(const char *, archive_version_string, (void), ())
FORWARD(const char *, archive_error_string, (archive * a), (a))

FORWARD(archive *, archive_read_new, (void), ())
FORWARD(int, archive_read_support_filter_gzip, (archive * a), (a))
FORWARD(int, archive_read_support_format_zip, (archive * a), (a))
FORWARD(int, archive_read_support_format_tar, (archive * a), (a))
FORWARD(int, archive_read_support_format_gnutar, (archive * a), (a))
FORWARD(int, archive_read_open_memory, (archive * a, const void *bytes, size_t size), (a, bytes, size))
FORWARD(int, archive_read_next_header, (archive * a, entry **e), (a, e))
FORWARD(la_ssize_t, archive_read_data, (archive * a, void *buffer, size_t size), (a, buffer, size))
FORWARD(int, archive_read_free, (archive * a), (a))

FORWARD(archive *, archive_write_new, (void), ())
FORWARD(int, archive_write_set_format_ustar, (archive * a), (a))
FORWARD(int, archive_write_add_filter_gzip, (archive * a), (a))
FORWARD(int, archive_write_set_filter_option, (archive * a, const char *m, const char *o, const char *v), (a, m, o, v))
FORWARD(int, archive_write_set_bytes_in_last_block, (archive * a, int bytes), (a, bytes))
FORWARD(int, archive_write_open2,
        (archive * a, void *context, archive_open_callback *open, archive_write_callback *write,
         archive_close_callback *close, archive_free_callback *free),
        (a, context, open, write, close, free))
FORWARD(int, archive_write_header, (archive * a, entry *e), (a, e))
FORWARD(la_ssize_t, archive_write_data, (archive * a, const void *bytes, size_t size), (a, bytes, size))
FORWARD(int, archive_write_close, (archive * a), (a))
FORWARD(int, archive_write_free, (archive * a), (a))

FORWARD(entry *, archive_entry_new, (void), ())
FORWARD(void, archive_entry_free, (entry * e), (e))
FORWARD(const char *, archive_entry_pathname, (entry * e), (e))
FORWARD(const char *, archive_entry_hardlink, (entry * e), (e))
FORWARD(__LA_MODE_T, archive_entry_filetype, (entry * e), (e))
FORWARD(__LA_MODE_T, archive_entry_perm, (entry * e), (e))
FORWARD(void, archive_entry_set_pathname, (entry * e, const char *path), (e, path))
FORWARD(void, archive_entry_set_filetype, (entry * e, unsigned int type), (e, type))
FORWARD(void, archive_entry_set_perm, (entry * e, __LA_MODE_T perm), (e, perm))
FORWARD(void, archive_entry_set_size, (entry * e, la_int64_t size), (e, size))
FORWARD(void, archive_entry_set_mtime, (entry * e, time_t seconds, long nanoseconds), (e, seconds, nanoseconds))
FORWARD(void, archive_entry_set_uid, (entry * e, la_int64_t uid), (e, uid))
FORWARD(void, archive_entry_set_gid, (entry * e, la_int64_t gid), (e, gid))
FORWARD(void, archive_entry_set_uname, (entry * e, const char *name), (e, name))
FORWARD(void, archive_entry_set_gname, (entry * e, const char *name), (e, name))
