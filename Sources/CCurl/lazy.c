// libcurl's functions that the project calls, bound on first use: see CLazyLink.h for why.
// A function missing here is an undefined symbol at link time, never a silent fallback.
#include "CCurl.h"
#include "CLazyLink.h"

__attribute__((visibility("hidden"))) struct l3af_lazy_library l3af_libcurl = {"libcurl.so.4", "libcurl4", 0};

L3AF_LAZY_FORWARD(l3af_libcurl, CURLcode, curl_global_init, (long flags), (flags))
L3AF_LAZY_FORWARD(l3af_libcurl, curl_version_info_data *, curl_version_info, (CURLversion age), (age))
L3AF_LAZY_FORWARD(l3af_libcurl, CURL *, curl_easy_init, (void), ())
L3AF_LAZY_FORWARD(l3af_libcurl, void, curl_easy_cleanup, (CURL * handle), (handle))
L3AF_LAZY_FORWARD(l3af_libcurl, CURLcode, curl_easy_perform, (CURL * handle), (handle))
L3AF_LAZY_FORWARD(l3af_libcurl, const char *, curl_easy_strerror, (CURLcode code), (code))
L3AF_LAZY_FORWARD(l3af_libcurl, struct curl_slist *, curl_slist_append, (struct curl_slist * list, const char *text),
                  (list, text))
L3AF_LAZY_FORWARD(l3af_libcurl, void, curl_slist_free_all, (struct curl_slist * list), (list))
L3AF_LAZY_FORWARD(l3af_libcurl, CURLM *, curl_multi_init, (void), ())
L3AF_LAZY_FORWARD(l3af_libcurl, CURLMcode, curl_multi_cleanup, (CURLM * multi), (multi))
L3AF_LAZY_FORWARD(l3af_libcurl, CURLMcode, curl_multi_add_handle, (CURLM * multi, CURL *handle), (multi, handle))
L3AF_LAZY_FORWARD(l3af_libcurl, CURLMcode, curl_multi_remove_handle, (CURLM * multi, CURL *handle), (multi, handle))
L3AF_LAZY_FORWARD(l3af_libcurl, CURLMcode, curl_multi_perform, (CURLM * multi, int *running), (multi, running))
L3AF_LAZY_FORWARD(l3af_libcurl, CURLMsg *, curl_multi_info_read, (CURLM * multi, int *queued), (multi, queued))
L3AF_LAZY_FORWARD(l3af_libcurl, CURLMcode, curl_multi_poll,
                  (CURLM * multi, struct curl_waitfd *extra, unsigned int count, int timeout, int *ready),
                  (multi, extra, count, timeout, ready))

#include <pthread.h>

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_result = CURLE_FAILED_INIT;

static void global_init(void) { global_result = curl_global_init(CURL_GLOBAL_DEFAULT); }

CURLcode l3af_curl_global_init_once(void) {
    pthread_once(&global_once, global_init);
    return global_result;
}

