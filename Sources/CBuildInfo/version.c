#include "CBuildInfo.h"

#ifndef L3AF_VERSION
#define L3AF_VERSION "0.0.0-dev"
#endif

const char *l3af_build_version(void) { return L3AF_VERSION; }
