/* core/version.h — the version orchfs says it is (`orchfs --version`,
 * MOUNT/health's "version"). The Makefile writes build/version.h, which
 * defines ORCHFS_VERSION from `git describe` when built from a git checkout
 * (ORCHFS_RELEASE and the commit, "-dirty" when it has changes); anywhere
 * else it is ORCHFS_RELEASE. Any thread. */
#ifndef ORCH_VERSION_H
#define ORCH_VERSION_H

#define ORCHFS_RELEASE "0.1.0"

#if defined(__has_include)
#if __has_include("build/version.h")
#include "build/version.h"
#endif
#endif

#ifndef ORCHFS_VERSION
#define ORCHFS_VERSION ORCHFS_RELEASE
#endif

#endif
