/* core/ident.h — who a uid is, for the words events and decisions carry:
 * user names (`by`, `decided_by`, SPEC §8) and group membership (an
 * approval's "@group" approvers).
 *
 * Names come from /etc/passwd and /etc/group read directly (fgetpwent_r,
 * fgetgrent_r), never through NSS, which may ask the network: the engine
 * thread never waits for that. A user the file does not know is named
 * "uid N" (with the space, so that it is no user name). Names are cached
 * and the cache is dropped when /etc/passwd changes (checked at most once
 * a second); a lookup that could not read the file to its end (out of
 * memory or descriptors) is not cached.
 * Owns struct ident. Engine thread only (one struct per engine); the pure
 * ident_in_group() is for any thread. */
#ifndef ORCH_IDENT_H
#define ORCH_IDENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define IDENT_NAME_MAX 40	/* a user name, or "uid 4294967295" */
#define IDENT_HASH 64

struct ident_user {
	uid_t uid;
	char name[IDENT_NAME_MAX];
	struct ident_user *next;
};

struct ident {
	const char *passwd, *group;	/* the files (tests point them elsewhere) */
	struct ident_user *tab[IDENT_HASH];
	int64_t checked_ms;		/* when the passwd file was last stat'ed */
	dev_t dev;
	ino_t ino;
	int64_t mtime_ns;
	off_t size;
};

/* PASSWD and GROUP NULL: /etc/passwd and /etc/group. */
void ident_init(struct ident *id, const char *passwd, const char *group);
void ident_release(struct ident *id);
/* UID's user name (borrowed until the next call), "uid N" when unknown. */
const char *ident_user(struct ident *id, uid_t uid);
/* Is the user USER (uid's name), whose process has primary group GID and
 * supplementary groups GROUPS[0..N), a member of group GROUP (a name)?
 * Yes when GROUP's gid is GID or among GROUPS, or when the group file lists
 * USER as a member. False when the group file does not know GROUP. */
bool ident_in_group(struct ident *id, const char *user, gid_t gid, const gid_t *groups, size_t n,
		    const char *group);

#endif
