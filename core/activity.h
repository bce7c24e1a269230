/* core/activity.h — workspace activity (SPEC §11): while a step runs in a
 * sandbox, its workspace is watched with inotify(7), recursively (new
 * directories included), and what changes in it becomes workspace.changed
 * events (the paths, relative to the workspace, and a count), at most one
 * a second per sandbox, and `activity` in the sandbox's status.
 *
 * Owns the engine's one inotify instance (its fd and timers on the engine's
 * loop), the table of watched directories of every sandbox, and what
 * changed in each since its last event. Engine thread only; the act_batch_*
 * helpers are pure (any thread).
 *
 * Safety, for a daemon that runs as root over trees its users control:
 * directories are opened below the workspace through descriptors, never
 * through a symlink nor onto another file system (openat2 RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV: a FUSE mount in a workspace is
 * never entered, so it cannot stall the engine), and watched through that
 * descriptor (/proc/self/fd/N); a tree is walked a slice at a time (about
 * 2 ms, then at least 2 ms for the rest of the loop), never all at once;
 * the inotify fd is read 64 KiB (some 2,000 changes) at a time, then not
 * for 20 ms, so a storm of changes costs a bounded share of the engine (past some 100,000 changes
 * a second the kernel's queue overflows, and the event says "overflow":
 * true). When inotify watches run out (fs.inotify.max_user_watches, or
 * ORCHFS_ACTIVITY_MAX_WATCHES per sandbox), the directories past the limit
 * are not watched: logged once, counted in status `activity.unwatched`;
 * the step runs as ever. The engine takes at most half of its user's
 * watches (root's are shared with systemd and the like), a sandbox at most
 * a quarter and 65,536.
 *
 * Why not libinotifytools (the library the issue names): version 3.22 makes
 * its inotify descriptor without close-on-exec and gives no way to reach it
 * (every step would inherit every sandbox's changes, other users' too); its
 * recursive watch opens paths by name after an lstat (a directory swapped
 * for a symlink in between is followed out of the workspace), enters other
 * mounts and walks the whole tree in one call; its reader select()s, which
 * is undefined for descriptors past 1023; and it cannot forget a directory
 * the kernel removed (inotifytools_remove_watch_by_wd fails with EINVAL,
 * prints to stderr and keeps the entry): every mkdir/rmdir in a watched
 * tree would grow the daemon for good. Raw inotify(7) does what is needed. */
#ifndef ORCH_ACTIVITY_H
#define ORCH_ACTIVITY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct orch_engine;
struct sandbox;

/* A step is about to be spawned in SB: watch its workspace unless it is
 * watched already (its top directory at once, so that nothing the step
 * does is missed there; what is below it a slice at a time). Never fails:
 * a workspace that cannot be watched is logged and the step runs. */
void activity_step_start(struct orch_engine *e, struct sandbox *sb);
/* A step's process in SB has ended: once none has run there for a
 * second, watching stops. */
void activity_step_end(struct sandbox *sb);
/* SB's workspace is replaced (ctl reset): stop watching the old one now
 * (what it gathered still goes out); the next step watches the new one. */
void activity_sb_unwatch(struct sandbox *sb);
/* SB is going away (deleted, forgotten, or the engine closes): stop
 * watching it and drop what it had not reported. */
void activity_sb_gone(struct sandbox *sb);
/* Set "activity" {last_at, changes, watching, unwatched} in O, SB's status. */
void activity_render(struct orch_engine *e, struct sandbox *sb, json_t *o);
/* The engine closes, every sandbox gone: the inotify instance goes. */
void activity_release(struct orch_engine *e);

/* ---- the changes of one event (pure) ---- */

#define ACT_MAX_PATHS 100	/* distinct paths an event names */
#define ACT_PATH_MAX 4096	/* a longer path is counted, not named */

struct act_batch {
	char *paths[ACT_MAX_PATHS];	/* distinct, in the order first seen */
	uint32_t hash[ACT_MAX_PATHS];
	size_t npaths;
	int64_t count;		/* changes, named or not */
	bool overflow;		/* the kernel dropped changes (IN_Q_OVERFLOW) */
};
#define ACT_BATCH_INIT { .npaths = 0 }

/* One change of PATH (NULL: a change whose path is not known): counted, and
 * PATH kept when it is new and there is room. */
void act_batch_add(struct act_batch *b, const char *path);
/* No room for another path: changes are only counted. */
static inline bool act_batch_full(const struct act_batch *b) { return b->npaths == ACT_MAX_PATHS; }
static inline bool act_batch_empty(const struct act_batch *b) { return !b->count && !b->overflow; }
/* The event's data: {"paths": [...], "count": N} and "overflow": true when
 * the kernel dropped changes. A new reference, NULL for no memory. */
json_t *act_batch_json(const struct act_batch *b);
void act_batch_clear(struct act_batch *b);

#endif
