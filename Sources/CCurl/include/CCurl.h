// libcurl for Swift: its API as curl.h declares it, bound on first use (see lazy.c), plus typed entry points
// for its variadic functions, which Swift cannot call directly.
#pragma once
#include <curl/curl.h>

typedef size_t (*l3af_curl_data_callback)(char *data, size_t size, size_t count, void *context);
typedef int (*l3af_curl_progress_callback)(void *context, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                                           curl_off_t ulnow);

CURLcode l3af_curl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode l3af_curl_setopt_offset(CURL *handle, CURLoption option, curl_off_t value);
CURLcode l3af_curl_setopt_pointer(CURL *handle, CURLoption option, const void *value);
CURLcode l3af_curl_setopt_write(CURL *handle, l3af_curl_data_callback callback, void *context);
CURLcode l3af_curl_setopt_header(CURL *handle, l3af_curl_data_callback callback, void *context);
CURLcode l3af_curl_setopt_progress(CURL *handle, l3af_curl_progress_callback callback, void *context);
CURLcode l3af_curl_getinfo_long(CURL *handle, CURLINFO info, long *value);
CURLcode l3af_curl_getinfo_offset(CURL *handle, CURLINFO info, curl_off_t *value);
CURLcode l3af_curl_getinfo_pointer(CURL *handle, CURLINFO info, void *value);
CURLMcode l3af_curl_multi_setopt_long(CURLM *multi, CURLMoption option, long value);

/// curl_global_init(CURL_GLOBAL_DEFAULT), run once per process (pthread_once): callers race safely, and a
/// caller that arrives while another thread runs it waits for it to finish.
CURLcode l3af_curl_global_init_once(void);

