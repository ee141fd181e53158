// libarchive for Swift: its API as archive.h and archive_entry.h declare it, bound on first use (see lazy.c).
#pragma once
#include <archive.h>
#include <archive_entry.h>
