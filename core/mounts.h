/* core/mounts.h — the lines of /proc/PID/mountinfo (the one parser of
 * them: the engine's watch of its mount and fs/conn.c use it too), and the
 * host's FUSE mounts that a bwrap sandbox hides: a step must not reach
 * another file server (another user's, a hung one) through the read-only
 * view of the host it gets (SPEC §5). Pure parsing of text: any thread. */
#ifndef ORCH_MOUNTS_H
#define ORCH_MOUNTS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* One line of mountinfo (proc(5)), split in place:
 *   ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
 * The strings point into the text, the mount point unescaped (\040 is a
 * space...). */
struct mount_line {
	int id;
	dev_t dev;		/* MAJ:MIN */
	char *mountpoint;
	char *fstype;
	char *super;		/* the super block's options, or NULL */
};

/* The next line of the mountinfo TEXT at *POS (NUL-terminated, modified in
 * place) into *M, *POS moved past it: true, or false at the end. Lines that
 * are not mountinfo lines are skipped. */
bool mounts_next(char **pos, struct mount_line *m);
/* Is FSTYPE a FUSE file system (fuse, fuse.SUBTYPE, fuseblk)? */
bool mounts_is_fuse(const char *fstype);
/* The user_id= of a FUSE mount's super options OPTS (who mounted it), or -1. */
long mounts_user_id(const char *opts);

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
