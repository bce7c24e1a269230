/* core/quota.h — per-user limits on what one user may hold of what all users
 * share (README "Limits"): sandboxes, their ports, unfinished runs and their
 * steps, queued messages, files and bytes in plans/, files open in the
 * mount. What each user holds is counted in memory (the engine keeps the
 * counts as things change and counts again from the store at start); a
 * request that would take a user past a limit is refused with EDQUOT before
 * anything changes.
 * Owns struct quota. Engine thread only; no I/O but the passwd file, read
 * once per user for the name a refusal shows. */
#ifndef ORCH_QUOTA_H
#define ORCH_QUOTA_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/util.h"

enum quota_kind {
	QUOTA_SANDBOXES,	/* sandboxes the user owns */
	QUOTA_PORTS,		/* TCP ports those sandboxes hold */
	QUOTA_ACTIVE_RUNS,	/* the user's unfinished runs */
	QUOTA_ACTIVE_STEPS,	/* steps of those runs (what costs the daemon memory) */
	QUOTA_QUEUED_MESSAGES,	/* messages queued in the user's sandboxes */
	QUOTA_PLAN_FILES,	/* files the user owns in plans/ */
	QUOTA_PLAN_BYTES,	/* bytes of those files */
	QUOTA_OPEN_FILES,	/* files the user holds open in the mount (each may hold a
				 * descriptor or a rendered copy of the daemon's) */
	QUOTA_NKINDS
};

/* The names in --config's "limits" object, and what a refusal says the
 * user holds ("64 active runs"). */
extern const char *const quota_names[QUOTA_NKINDS];
/* The defaults (fs/main.c applies them; 0 in a struct orch_config: no limit). */
extern const int64_t quota_defaults[QUOTA_NKINDS];
int quota_kind_parse(const char *name);	/* -1 when unknown */

struct quota_user {
	uid_t uid;
	int64_t used[QUOTA_NKINDS];
	int64_t logged_ms[QUOTA_NKINDS];	/* the last refusal written to the log */
	char name[48];		/* `user "NAME"` (or `uid N`), once a refusal needs it */
	struct quota_user *next;
};

#define QUOTA_HASH 64

struct quota {
	int64_t max[QUOTA_NKINDS];	/* 0: no limit */
	bool limit_root;		/* false: uid 0 is never refused */
	struct quota_user *tab[QUOTA_HASH];
};

/* MAX: QUOTA_NKINDS limits (0: none), or NULL for none at all. */
void quota_init(struct quota *q, const int64_t *max, bool limit_root);
void quota_release(struct quota *q);
/* Every count back to zero (before counting again from the store), but
 * QUOTA_OPEN_FILES: open handles are nowhere in the store. */
void quota_clear(struct quota *q);
/* UID holds DELTA more (or fewer) of K. Never fails: a count that cannot
 * get memory for its user is not kept (that user is then not limited). */
void quota_add(struct quota *q, uid_t uid, enum quota_kind k, int64_t delta);
int64_t quota_used(const struct quota *q, uid_t uid, enum quota_kind k);
/* May UID take N more of K? 0, or -EDQUOT with one line appended to MSG
 * (may be NULL) naming the user (`uid N` when /etc/passwd does not know
 * it), what they hold, the limit and its setting:
 * `user "alice" has 64 active runs; 1 more would pass the limit of 64
 * (limits.active_runs in --config)`. */
int quota_check(struct quota *q, uid_t uid, enum quota_kind k, int64_t n, struct sbuf *msg);
/* Should a refusal of K to UID go to the log now? At most one a minute per
 * user and limit, so that a user who keeps trying cannot fill the log. */
bool quota_log_due(struct quota *q, uid_t uid, enum quota_kind k, int64_t now_ms);

#endif
