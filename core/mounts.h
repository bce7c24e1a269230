/* core/mounts.h — the host's FUSE mounts that a bwrap sandbox hides: a step
 * must not reach another file server (another user's, a hung one) through
 * the read-only view of the host it gets (SPEC §5). Pure parsing of
 * /proc/PID/mountinfo text: any thread. */
#ifndef ORCH_MOUNTS_H
#define ORCH_MOUNTS_H

#include <stddef.h>
#include <sys/types.h>

/* The mount points of the FUSE file systems (fuse, fuse.*, fuseblk) in the
 * mountinfo TEXT (modified) that UID/GID may use (mounted by them, or with
 * allow_other), each once, but for those at or beneath a directory of SKIP
 * (NULL-terminated, or NULL: what the sandbox hides anyway) and those
 * beneath another FUSE mount (hidden with it, and maybe out of reach). 0
 * with a new NULL-terminated array of new strings in *OUT (mounts_free())
 * and its length in *N, or -ENOMEM. */
int mounts_fuse(char *text, uid_t uid, gid_t gid, const char *const *skip, char ***out, size_t *n);
void mounts_free(char **v);

#endif
