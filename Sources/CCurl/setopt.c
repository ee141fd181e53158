#include "CCurl.h"
#include "CLazyLink.h"

extern __attribute__((visibility("hidden"))) struct l3af_lazy_library l3af_libcurl;

typedef CURLcode (*easy_option_pointer)(CURL *, CURLoption, ...);
typedef CURLcode (*easy_info_pointer)(CURL *, CURLINFO, ...);
typedef CURLMcode (*multi_option_pointer)(CURLM *, CURLMoption, ...);
L3AF_LAZY_RESOLVER(l3af_libcurl, easy_option_pointer, curl_easy_setopt)
L3AF_LAZY_RESOLVER(l3af_libcurl, easy_info_pointer, curl_easy_getinfo)
L3AF_LAZY_RESOLVER(l3af_libcurl, multi_option_pointer, curl_multi_setopt)

CURLcode l3af_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return resolve_curl_easy_setopt()(handle, option, value);
}

CURLcode l3af_curl_setopt_offset(CURL *handle, CURLoption option, curl_off_t value) {
    return resolve_curl_easy_setopt()(handle, option, value);
}

CURLcode l3af_curl_setopt_pointer(CURL *handle, CURLoption option, const void *value) {
    return resolve_curl_easy_setopt()(handle, option, value);
}

CURLcode l3af_curl_setopt_write(CURL *handle, l3af_curl_data_callback callback, void *context) {
    CURLcode rc = resolve_curl_easy_setopt()(handle, CURLOPT_WRITEFUNCTION, callback);
    return rc != CURLE_OK ? rc : resolve_curl_easy_setopt()(handle, CURLOPT_WRITEDATA, context);
}

CURLcode l3af_curl_setopt_header(CURL *handle, l3af_curl_data_callback callback, void *context) {
    CURLcode rc = resolve_curl_easy_setopt()(handle, CURLOPT_HEADERFUNCTION, callback);
    return rc != CURLE_OK ? rc : resolve_curl_easy_setopt()(handle, CURLOPT_HEADERDATA, context);
}

CURLcode l3af_curl_setopt_progress(CURL *handle, l3af_curl_progress_callback callback, void *context) {
    CURLcode rc = resolve_curl_easy_setopt()(handle, CURLOPT_XFERINFOFUNCTION, callback);
    if (rc == CURLE_OK) rc = resolve_curl_easy_setopt()(handle, CURLOPT_XFERINFODATA, context);
    return rc != CURLE_OK ? rc : resolve_curl_easy_setopt()(handle, CURLOPT_NOPROGRESS, 0L);
}

CURLcode l3af_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return resolve_curl_easy_getinfo()(handle, info, value);
}

CURLcode l3af_curl_getinfo_offset(CURL *handle, CURLINFO info, curl_off_t *value) {
    return resolve_curl_easy_getinfo()(handle, info, value);
}

CURLcode l3af_curl_getinfo_pointer(CURL *handle, CURLINFO info, void *value) {
    return resolve_curl_easy_getinfo()(handle, info, value);
}

CURLMcode l3af_curl_multi_setopt_long(CURLM *multi, CURLMoption option, long value) {
    return resolve_curl_multi_setopt()(multi, option, value);
}
