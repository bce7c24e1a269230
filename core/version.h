/* core/version.h — the version orchfs reports (`orchfs --version`,
 * MOUNT/health). The Makefile defines ORCHFS_VERSION from `git describe
 * --always --dirty` (or `make VERSION=...`); a build without either (a
 * tarball, a compiler run by hand) says "0.0.0-unknown". A constant: any
 * thread may use it. */
#ifndef ORCHFS_VERSION_H
#define ORCHFS_VERSION_H

#ifndef ORCHFS_VERSION
#define ORCHFS_VERSION "0.0.0-unknown"
#endif

#endif
