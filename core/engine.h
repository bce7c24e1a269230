/* core/engine.h — the orchfs engine: runs, steps, sandboxes, plans/ files
 * and events over one state directory, driven by one thread and one loop.
 *
 * Threads: orch_engine_open/start/stop/quit/join/close and orch_engine_post
 * are for the daemon's main thread (and any other). Every other function here
 * runs on the engine thread only: in the callback of a watch registered with
 * orch_engine_watch() (the daemon's FUSE channel), or in work handed over
 * with orch_engine_post().
 * Functions return 0 or -errno; pointers returned are borrowed unless marked new. */
#ifndef ORCH_ENGINE_H
#define ORCH_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "core/lines.h"
#include "core/loop.h"
#include "core/quota.h"
#include "core/util.h"

struct orch_config {
	const char *state_dir;	/* absolute, exists */
	const char *mountpoint;	/* absolute */
	unsigned jobs;		/* steps running at once across runs; 0: no limit */
	char **vars;		/* --var NAME=VALUE */
	size_t nvars;
	int port_min, port_max;	/* the range sandboxes take ports from */
	const char *exec_helper;	/* runs `--exec-step` (core/exec.h): this program */
	const char *bwrap_path;	/* bubblewrap, when it works here; NULL: it does not */
	bool bwrap_userns;	/* it takes --unshare-user --disable-userns */
	bool bwrap_users;	/* it works for other users' steps too (run as them, with
				 * a user namespace): a root daemon probed it as nobody */
	/* bytes a step's log (and a sandbox's logs) keeps, its tail: 0 is the
	 * default (LOG_CAP_DEFAULT, 64 MiB), -1 no cap (core/logfile.h) */
	int64_t log_max_bytes;
	/* per-user limits (core/quota.h), 0: none; a request past one fails
	 * with EDQUOT. Root is never refused unless LIMIT_ROOT. */
	int64_t limits[QUOTA_NKINDS];
	bool limit_root;
	/* webhook subscribers (core/webhook.h), borrowed: the engine copies them */
	const struct webhook_cfg *webhooks;
	size_t nwebhooks;
};

struct orch_engine;
struct webhook_cfg;

/* Open the state directory's database and recover: kill processes a dead
 * daemon left behind, load every unfinished run. New engine, or NULL with a
 * one-line message in ERR. */
struct orch_engine *orch_engine_open(const struct orch_config *cfg, struct sbuf *err);
/* Start the engine thread. ON_STOPPED runs on it once a stop has finished
 * (steps stopped, state committed): the daemon then unmounts and calls
 * orch_engine_quit(). */
int orch_engine_start(struct orch_engine *e, void (*on_stopped)(void *), void *arg);
/* Before start: FN runs on the engine thread when a sandbox is deleted
 * (its rmdir or its ctl "delete"), with its name, so that a front end may
 * drop what it cached of it. */
void orch_engine_on_sandbox_gone(struct orch_engine *e, void (*fn)(void *arg, const char *name), void *arg);
/* Watch the mount table: when MOUNTPOINT's mount disappears, stop. Engine thread
 * or before start. */
int orch_engine_watch_mount(struct orch_engine *e);
/* Is our mount still in the mount table? (any thread; true when unknown) */
bool orch_engine_mounted(struct orch_engine *e);
void orch_engine_post(struct orch_engine *e, struct loop_work *w);	/* any thread */
/* Before start, or on the engine thread: run W's callback on the engine
 * thread whenever its fd is readable (the front end's request channel), until
 * orch_engine_unwatch(). */
int orch_engine_watch(struct orch_engine *e, struct loop_watch *w);
void orch_engine_unwatch(struct orch_engine *e, struct loop_watch *w);
void orch_engine_stop(struct orch_engine *e);	/* any thread: graceful stop */
void orch_engine_quit(struct orch_engine *e);	/* any thread: end the loop */
void orch_engine_join(struct orch_engine *e);
/* One loop turn on the calling thread, for tests that drive an engine without
 * its thread: wait up to MAX_WAIT_MS for something to do, do it, commit. */
int orch_engine_turn(struct orch_engine *e, int max_wait_ms);
void orch_engine_close(struct orch_engine *e);

/* Completion after the current turn's commit. A change acknowledged to a user
 * must be durable first: mark it with orch_need_durable(), then reply from FN,
 * which gets the commit's result (0 or -errno). */
struct orch_done {
	struct orch_done *next;
	void (*fn)(struct orch_done *d, int commit_rc);
	uint64_t gen;		/* the engine's: the sync it waits for */
};
/* Run D once the current turn's changes are committed and, if any of them
 * must be durable, synced (group commit, core/syncer.h): acknowledgements. */
void orch_after_commit(struct orch_engine *e, struct orch_done *d);
/* Run D once the current turn's changes are committed (not waiting for the
 * sync): reads, which must not see what a failed commit undoes. */
void orch_after_commit_read(struct orch_engine *e, struct orch_done *d);
/* Does the current turn hold changes not yet committed? A read then waits
 * for the commit (orch_after_commit), lest a reader see what a crash undoes. */
bool orch_uncommitted(const struct orch_engine *e);
void orch_need_durable(struct orch_engine *e);

/* Who writes (SPEC §8 "Who did it"): from orch_actor_begin() to
 * orch_actor_end(), the engine executes a write to the tree by user UID,
 * and every event it emits meanwhile carries `by`: UID's user name. The
 * front end brackets each request that changes state with these. */
void orch_actor_begin(struct orch_engine *e, uid_t uid);
void orch_actor_end(struct orch_engine *e);

const char *orch_mountpoint(const struct orch_engine *e);
const char *orch_state_dir(const struct orch_engine *e);

/* ---- runs/ ---- */

struct orch_run_attr {
	int64_t rowid;
	char name[RUN_ID_MAX + 1];
	uid_t uid;
	gid_t gid;
	int64_t ctime_ms, mtime_ms;
	bool finished;
	size_t nsteps;
};

int orch_run_by_name(struct orch_engine *e, const char *name, struct orch_run_attr *a);
int orch_run_by_rowid(struct orch_engine *e, int64_t rowid, struct orch_run_attr *a);
/* Runs with rowid > AFTER in rowid order; stops when CB returns non-zero. */
int orch_run_list(struct orch_engine *e, int64_t after,
		  int (*cb)(void *ctx, int64_t rowid, const char *name), void *ctx);

enum orch_run_file { RUNF_STATUS, RUNF_SUMMARY, RUNF_PLAN, RUNF_GRAPH };
int orch_run_render(struct orch_engine *e, int64_t rowid, enum orch_run_file f, struct sbuf *out);
/* One ctl command (cancel, pause, resume, retry; surrounding blanks and one
 * trailing newline allowed): 0, or -EINVAL when unknown or not applicable. */
int orch_run_ctl(struct orch_engine *e, int64_t rowid, const char *cmd, size_t len);
/* rmdir: -EBUSY unless finished. */
int orch_run_remove(struct orch_engine *e, int64_t rowid);

/* Who writes to a file that decides something (a step's ctl): the user and
 * the groups of the writing process (SPEC §8 "approvers"). */
struct orch_who {
	uid_t uid;
	gid_t gid;
	const gid_t *groups;	/* supplementary groups */
	size_t ngroups;
};
/* runs/ID/steps/STEP/ctl: one command (approve [REASON], reject [REASON],
 * retry, fail [REASON]; SPEC §8): 0, -EINVAL when unknown or when it does
 * not apply to the step's state, -EACCES when WHO may not decide for the
 * step (core/supervise.h). */
int orch_step_ctl(struct orch_engine *e, int64_t step_rowid, const char *cmd, size_t len,
		  const struct orch_who *who);
/* MOUNT/attention: everything that waits for a person, JSONL, oldest first. */
int orch_render_attention(struct orch_engine *e, struct sbuf *out);

struct orch_step_attr {
	int64_t rowid;
	int64_t run_rowid;
	size_t idx;
	char name[STEP_ID_MAX + 1];
};
int orch_step_by_name(struct orch_engine *e, int64_t run_rowid, const char *name,
		      struct orch_step_attr *a);
int orch_step_by_rowid(struct orch_engine *e, int64_t rowid, struct orch_step_attr *a);
/* Steps of a run from index FROM on, in plan order; stops when CB returns non-zero. */
int orch_step_list(struct orch_engine *e, int64_t run_rowid, size_t from,
		   int (*cb)(void *ctx, size_t idx, int64_t rowid, const char *name), void *ctx);
int orch_step_render(struct orch_engine *e, int64_t rowid, struct sbuf *out);
/* The log file of a step (it may not exist yet): new string, for tests and
 * messages; the daemon opens it only through the two below. */
char *orch_step_log_path(struct orch_engine *e, int64_t rowid);
/* A step's log opened for reading (made, with its separators, when the step
 * ran without a word): a descriptor, or -errno (-EIO when something else
 * than a regular file stands there: never opened, logged). */
int orch_step_log_open(struct orch_engine *e, int64_t rowid);
/* lstat of a step's log: 0, -ENOENT when there is none yet. */
int orch_step_log_stat(struct orch_engine *e, int64_t rowid, struct stat *st);
/* What a log keeps (bytes, its tail; 0: no cap), as readers' markers say. */
int64_t orch_log_cap(const struct orch_engine *e);

/* ---- events ---- */

/* EV_MESSAGES: not events, a sandbox's messages view, read the same way
 * (orch_messages_read; the front end's reads of either go one way) */
enum orch_ev_scope { EV_GLOBAL, EV_RUN, EV_SANDBOX, EV_MESSAGES };
/* Size in bytes of a JSONL view; ID is a run or sandbox rowid. */
int64_t orch_events_size(struct orch_engine *e, enum orch_ev_scope scope, int64_t id);
/* Bytes [OFF, OFF+SIZE) of a JSONL view. */
int orch_events_read(struct orch_engine *e, enum orch_ev_scope scope, int64_t id, int64_t off,
		     size_t size, struct sbuf *out);

/* ---- sandboxes/ ---- */

struct orch_sandbox_attr {
	int64_t rowid;
	char name[SANDBOX_ID_MAX + 1];
	uid_t uid;
	gid_t gid;
	int64_t ctime_ms;
};
int orch_sandbox_by_name(struct orch_engine *e, const char *name, struct orch_sandbox_attr *a);
int orch_sandbox_by_rowid(struct orch_engine *e, int64_t rowid, struct orch_sandbox_attr *a);
int orch_sandbox_list(struct orch_engine *e, int64_t after,
		      int (*cb)(void *ctx, int64_t rowid, const char *name), void *ctx);
int orch_sandbox_render(struct orch_engine *e, int64_t rowid, struct sbuf *out);
/* mkdir sandboxes/NAME: -EINVAL for a bad id, -EEXIST. */
int orch_sandbox_create(struct orch_engine *e, const char *name, uid_t uid, gid_t gid,
			struct orch_sandbox_attr *a);
/* rmdir: -EBUSY while a run is active in it. */
int orch_sandbox_remove(struct orch_engine *e, int64_t rowid);
/* The workspace directory: new string. */
char *orch_sandbox_workspace(struct orch_engine *e, int64_t rowid);

/* sandboxes/ID/ctl: stop, restart, reset or delete (-EINVAL otherwise). */
int orch_sandbox_ctl(struct orch_engine *e, int64_t rowid, const char *cmd, size_t len);
/* sandboxes/ID/logs opened for reading (made empty when missing): a
 * descriptor, or -errno (-EIO when it is not a regular file: logged). */
int orch_sandbox_logs_open(struct orch_engine *e, int64_t rowid);
/* lstat of sandboxes/ID/logs: 0, -ENOENT when there is none yet. */
int orch_sandbox_logs_stat(struct orch_engine *e, int64_t rowid, struct stat *st);

/* sandboxes/ID/messages: queue the messages of B, FIFO. Durable once the
 * turn's commit is (reply after it). */
int orch_messages_append(struct orch_engine *e, int64_t sb, const struct line_batch *b);
/* Every message of the sandbox as JSONL, oldest first (a queued message's
 * line ends in 3 spaces, so that it keeps its length when delivered); its
 * size; and bytes [OFF, OFF+SIZE) of it (at most 32 KiB: a read renders
 * only the lines it covers, whatever the sandbox holds). */
int64_t orch_messages_size(struct orch_engine *e, int64_t sb);
int orch_messages_render(struct orch_engine *e, int64_t sb, struct sbuf *out);
int orch_messages_read(struct orch_engine *e, int64_t sb, int64_t off, size_t size, struct sbuf *out);
/* sandboxes/ID/inbox opened: hand the queued messages no other open inbox
 * holds to this one, as JSONL in OUT; *LEASE names them (0: none). */
int orch_inbox_take(struct orch_engine *e, int64_t sb, uint64_t *lease, struct sbuf *out);
/* The inbox handle of LEASE closed: DELIVER (it was read to its end) marks its
 * messages delivered, durably; otherwise they go back to the queue. */
int orch_inbox_done(struct orch_engine *e, int64_t sb, uint64_t lease, bool deliver);
/* sandboxes/ID/events: record posted events. WRITER is the posting process:
 * it, or its nearest ancestor that is a running step's process of the
 * sandbox, tells which step posted (the ancestors are read from /proc only
 * while the sandbox has steps running). Durable like messages; "heartbeat"
 * events refresh the sandbox's and the step's heartbeat. */
int orch_events_post(struct orch_engine *e, int64_t sb, const struct line_batch *b, pid_t writer);

/* ---- plans/ ---- */

enum orch_pkind { PK_FILE, PK_ERROR, PK_RUNLINK, PK_TRIGGER, PK_SCHEDULE };
struct orch_pentry {
	enum orch_pkind kind;
	int64_t id;		/* plan_files.id (PK_FILE), triggers.id (PK_TRIGGER), schedules.id
			 * (PK_SCHEDULE) or plan_names.id */
	char name[256];		/* the name in plans/ */
	uid_t uid;
	gid_t gid;
	unsigned mode;		/* permission bits (PK_FILE) */
	int64_t mtime_ms;	/* PK_ERROR: when written; PK_RUNLINK: when its run was made */
	int64_t size;		/* PK_ERROR: bytes of the message */
};
int orch_plans_lookup(struct orch_engine *e, const char *name, struct orch_pentry *p);
int orch_plans_get(struct orch_engine *e, enum orch_pkind kind, int64_t id, struct orch_pentry *p);
/* Entries after the cookie AFTER (0 = from the start), each with its own
 * cookie; stops when CB returns non-zero. */
int orch_plans_list(struct orch_engine *e, uint64_t after,
		    int (*cb)(void *ctx, uint64_t cookie, const struct orch_pentry *p), void *ctx);
/* The text of a generated entry: a PK_ERROR's message, a PK_RUNLINK's
 * target, a PK_TRIGGER's or PK_SCHEDULE's JSON (SPEC §9). */
int orch_plans_generated(struct orch_engine *e, enum orch_pkind kind, int64_t id, struct sbuf *out);
/* The disk file holding a PK_FILE's bytes: new string, for tests; the
 * daemon goes through the functions below. */
char *orch_plans_path(struct orch_engine *e, int64_t id);
/* That file opened with FLAGS (access mode, O_APPEND, O_TRUNC; a regular
 * file only): a descriptor or -errno. */
int orch_plans_open(struct orch_engine *e, int64_t id, int flags);
int orch_plans_stat(struct orch_engine *e, int64_t id, struct stat *st);
/* utimensat semantics (UTIME_NOW, UTIME_OMIT) on the file */
int orch_plans_utimens(struct orch_engine *e, int64_t id, const struct timespec ts[2]);
/* Create a plain file (O_CREAT): -EEXIST, -EACCES for a generated name. */
int orch_plans_create(struct orch_engine *e, const char *name, unsigned mode, uid_t uid, gid_t gid,
		      struct orch_pentry *p);
int orch_plans_unlink(struct orch_engine *e, const char *name);
int orch_plans_chmod(struct orch_engine *e, int64_t id, unsigned mode);
int orch_plans_chown(struct orch_engine *e, int64_t id, uid_t uid, gid_t gid);
/* Write to file ID through FD, its bytes on disk (APPEND: at their end):
 * -EFBIG past PLAN_MAX_BYTES, -EDQUOT past its owner's limits.plan_bytes,
 * or when it grows a file no longer in plans/ (removed while open).
 * Bytes written, or -errno. */
ssize_t orch_plans_pwrite(struct orch_engine *e, int64_t id, int fd, const void *buf, size_t size,
			  off_t off, bool append);
/* Truncate (or extend) file ID to SIZE, through FD when >= 0: -EFBIG,
 * -EDQUOT as above. */
int orch_plans_truncate(struct orch_engine *e, int64_t id, int fd, off_t size);
/* rename within plans/. Onto NAME.json it submits the plan first: an invalid
 * plan is refused with -EINVAL (NAME.error written) and nothing moves.
 * *SUBMITTED (if not NULL) says whether it started a run. */
int orch_plans_rename(struct orch_engine *e, const char *from, const char *to, unsigned flags,
		      uid_t uid, gid_t gid, bool *submitted);
/* The first close() after writes: submit plans/NAME.json if file ID is one.
 * 0 (also when it is no plan), or -EINVAL with NAME.error written (-EDQUOT
 * when the run would take its submitter past a limit, -EACCES when UID is
 * not the file's owner and the owner is not root: the owner could have
 * changed its bytes up to this close; said there too). Renames alike. */
int orch_plans_written(struct orch_engine *e, int64_t id, uid_t uid, gid_t gid);

/* A file of the mount opened by UID (any kind: each holds a descriptor of
 * the daemon's or a rendered copy): 0, or -EDQUOT past its owner's
 * limits.open_files (logged). orch_handle_put() when it is released. */
int orch_handle_take(struct orch_engine *e, uid_t uid);
void orch_handle_put(struct orch_engine *e, uid_t uid);

/* ---- the top of the tree ---- */
int orch_render_metrics(struct orch_engine *e, struct sbuf *out);
/* MOUNT/health: the daemon's own health, JSON (SPEC §11): cheap, no scan. */
int orch_render_health(struct orch_engine *e, struct sbuf *out);
void orch_render_readme(struct sbuf *out);

/* ---- readers waiting for more (SPEC §11 "Waiting without polling") ----
 * The front end parks readers that wait (poll() on a file they follow, a
 * read of runs/ID/wait); the engine says where what they wait for changes.
 * A is a run's or a step's rowid, B a sandbox's (0: none). */
enum orch_change {
	OCH_EVENT,	/* an event recorded: A its run (0: none), B its sandbox */
	OCH_LOG,	/* output lines written: A the step (its log), B its sandbox (logs) */
	OCH_MESSAGES,	/* B's messages: one queued, or handed back to the queue */
	OCH_ATTENTION,	/* MOUNT/attention's list changed */
	OCH_RUN_END,	/* run A finished, or went away */
};
typedef void (*orch_change_fn)(void *arg, enum orch_change what, int64_t a, int64_t b);
/* Before start: FN runs on the engine thread right where such a change is
 * made (before its commit), while the front end says N > 0 readers wait
 * (orch_engine_waiting); with none, a change costs one test. FN must not
 * call back into the engine but to read (orch_after_commit_read aside). */
void orch_engine_on_change(struct orch_engine *e, orch_change_fn fn, void *arg);
void orch_engine_waiting(struct orch_engine *e, size_t n);
/* Queued messages of sandbox SB that no open inbox holds: what an open of
 * its inbox would take now (0 when there is no such sandbox). */
int64_t orch_inbox_free(struct orch_engine *e, int64_t sb);
/* MOUNT/attention's generation: it changes whenever the list does. */
uint64_t orch_attention_gen(const struct orch_engine *e);

#endif
