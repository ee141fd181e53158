#ifndef CBUILDINFO_H
#define CBUILDINFO_H

/// The version this build was stamped with: `git describe` of the tree scripts/build-release built (via the
/// L3AF_VERSION environment variable, read by Package.swift), or "0.0.0-dev" for a build that wasn't stamped.
const char *l3af_build_version(void);

#endif
