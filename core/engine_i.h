/* core/engine_i.h — the engine's private structures, shared by core/engine.c
 * (lifecycle, loop, recovery), core/run.c (runs and steps), core/event.c,
 * core/render.c, core/sandbox.c and core/planstore.c. Engine thread only. */
#ifndef ORCH_ENGINE_I_H
#define ORCH_ENGINE_I_H

#include <jansson.h>
#include <pthread.h>
#include <unistd.h>

#include "core/cgroup.h"
#include "core/engine.h"
#include "core/health.h"
#include "core/http.h"
#include "core/ident.h"
#include "core/logfile.h"
#include "core/loop.h"
#include "core/plan.h"
#include "core/sched.h"
#include "core/spawner.h"
#include "core/statedir.h"
#include "core/syncer.h"
#include "core/store.h"
#include "core/supervise.h"
#include "core/webhook.h"

struct run;
struct step;
struct act;
struct act_sb;

/* Who acts (SPEC §8 "Who did it"): a user whose write to the tree the
 * engine is executing, or nobody (SET false: the engine on its own). Every
 * event emitted while one is set carries `by`, that user's name (ev_emit).
 * The front end sets it around each request that changes state
 * (orch_actor_begin/end); what a user's write causes later, in another
 * turn, sets it again from what was recorded: a run's canceller
 * (run.cancel_by, durable as runs.cancelled_by), a process's stopper
 * (proc.by, memory only). */
struct actor {
	uid_t uid;
	bool set;
};
#define ACTOR_NONE ((struct actor){ 0, false })

/* Why the engine is stopping a process. */
enum kill_why {
	KILL_NONE,
	KILL_TIMEOUT,
	KILL_CANCEL,	/* ctl cancel, an abort, sandbox stop: the step ends cancelled */
	KILL_INTERRUPT,	/* daemon stop, sandbox restart: the attempt runs again */
	KILL_HEARTBEAT,
	KILL_STOP,	/* supervision (a limit, ctl fail): failed without retry, proc->stop_reason */
};

/* A live attempt: the child, its output pipe and its log. Freed only after the
 * loop turn in which it ended (the loop may still hold its watches). */
struct proc {
	struct orch_engine *eng;
	struct step *step;
	pid_t pid;		/* also the process group */
	struct loop_watch wpid;	/* pidfd */
	struct loop_watch wout;	/* read end of the stdout+stderr pipe */
	int errfd;		/* read end of the trampoline's exec-error pipe */
	int logfd;		/* -1 until the attempt writes (see log_open()) */
	bool log_wanted;	/* logfd is still to be opened (false once that failed) */
	struct sbuf partial;	/* an output line not yet ended */
	int sblogfd;		/* the sandbox's logs */
	bool sblog_failed;	/* they could not be opened: not tried again */
	struct loop_timer timer;	/* timeout, then the grace period */
	struct loop_timer hb_timer;	/* heartbeat_ttl_sec without a heartbeat, then its grace */
	int64_t hb_mono;	/* its last heartbeat, or its start (mono ms) */
	/* stopped by its sandbox's pause (run_freeze()): since when (mono ms;
	 * 0: not), and what was left of its timeout and its heartbeat's clock
	 * (-1: not armed), armed again by the resume. cg_frozen: by the cgroup
	 * freezer (its leaf), else by SIGSTOP */
	int64_t frozen_at, frozen_timeout_left, frozen_hb_left;
	bool cg_frozen;
	bool degraded;		/* past heartbeat_ttl_sec, in heartbeat_grace_sec (counted in its sandbox's) */
	enum kill_why why;
	struct actor by;	/* who asked for WHY, when a user did */
	bool kill_sent;
	bool sandboxed;		/* pid is bubblewrap's */
	/* without pidfds: wpid is an eventfd the engine's SIGCHLD handling
	 * writes once it has reaped the child, whose status is then here */
	bool no_pidfd;
	bool reaped;
	int status;
	int64_t spawn_run;	/* while the spawner starts it: its run and attempt */
	unsigned spawn_attempt;
	int64_t start_mono;
	const char *stop_reason;	/* KILL_STOP: the step's reason (static) */
	struct cg_group cg;	/* its cgroups (SPEC §10 limits); cg.rel NULL: none */
	bool track_last;	/* keep last_line: loop detection may need it */
	char last_line[512];	/* the attempt's last non-empty output line */
	struct proc *next_dead;
};

struct step {
	struct run *run;
	size_t idx;
	int64_t rowid;
	unsigned attempt;	/* attempts made (0: never started) */
	unsigned counted;	/* attempts that count against the budget */
	unsigned budget;	/* attempts allowed: retries + 1 (more after ctl retry) */
	unsigned interrupted;	/* attempts cut short by a daemon stop */
	int exit_code;		/* -1: none */
	int signal;		/* 0: none */
	const char *reason;	/* static string or NULL */
	int64_t started_at, finished_at, duration_ms;	/* wall ms; 0: none */
	int64_t retry_at;	/* wall ms when a waiting retry is due */
	struct proc *proc;
	struct loop_timer retry_timer;
	signed char log;	/* its log file: 1 made, -1 not yet, 0 unknown */
	struct logw logw;	/* its log's cap (core/logfile.h), over all its attempts */
	bool hdr_pending;	/* started, its separator not yet written (step_spawn) */
	struct sup *sup;	/* its supervision (core/supervise.h); NULL: none used yet */
	/* its last attempt's usage, read from its cgroup as it ended (SPEC
	 * §10); only for an attempt that had one, and not kept across a restart */
	bool usage_set, usage_mem_set, usage_cpu_set;
	int64_t usage_mem, usage_cpu_ns;
};

/* Every open inbox's lease by its id, so that a close finds its own in one
 * step however many are open: the id is a generation (high 32 bits) and a
 * slot of V (low 32). */
struct lease_tab {
	struct lease **v;
	uint32_t n, cap;
	uint32_t *free;		/* slots to use again */
	uint32_t nfree;
	uint32_t gen;
};

/* Messages handed to one open inbox, not yet delivered nor handed back. */
struct lease {
	uint64_t id;
	int64_t *msgs;		/* at most INBOX_BATCH_MSGS, oldest first */
	size_t n;
	struct lease_tab *tab;	/* where its slot is */
	int64_t sb;		/* its sandbox's rowid */
	struct lease *prev, *next;	/* the sandbox's leases */
};

/* What one open of an inbox takes at most: the rest waits for the next open
 * (README "Limits"), so that an open, and the delivery at its close, cost
 * the engine a bounded time whatever the queue holds. At least one message
 * is taken, however long. */
#define INBOX_BATCH_MSGS 256
#define INBOX_BATCH_BYTES (256 << 10)

struct sandbox {
	int64_t rowid;
	char name[SANDBOX_ID_MAX + 1];
	char *workspace;	/* its path, shown and handed to steps; the daemon
				 * itself reaches it through descriptors (sb_dirfd) */
	enum isolation isolation;
	bool network;
	int nports;
	int *ports;
	char **port_names;	/* NULL, or nports names then NULL (SPEC §11) */
	uid_t uid;
	gid_t gid;
	int64_t created_at;
	int64_t ev_bytes;	/* size of its events view, valid at ev_epoch */
	int64_t ev_epoch;
	struct run *holder;	/* the run active in it, if any */
	int64_t last_heartbeat;	/* wall ms; 0: never */
	int64_t restarts;
	bool missed;		/* an attempt missed its heartbeat, none came since */
	unsigned degraded;	/* its attempts that are degraded (struct proc) */
	bool stopped;		/* ctl stop: no run starts until restart */
	bool paused;		/* ctl pause: frozen until resume (core/freeze.c) */
	int64_t msg_queued, msg_delivered;
	int64_t msg_bytes;	/* size of the messages view */
	struct logw logw;	/* its logs' cap (core/logfile.h), over all its steps */
	struct act_sb *act;	/* its workspace's activity (core/activity.h); NULL: never watched */
	struct lease *leases;
	/* the queued messages no lease holds, oldest first: those handed back
	 * (a min-heap of ids, all below inbox_next), then every queued one from
	 * inbox_next on. back_lost: a hand-back found no memory, the heap must
	 * be made again from the store (msgq.c rebuild) */
	int64_t inbox_next;
	int64_t *back;
	size_t nback, capback;
	bool back_lost;
	struct health *health;	/* its health check (core/health.h); NULL: none */
	struct win *win;	/* its window (core/windows.c); NULL: none */
	struct sandbox *next;
};

struct run {
	int64_t rowid;
	char name[RUN_ID_MAX + 1];
	char *plan_name;
	struct plan *plan;	/* as run: literal strings */
	struct sched_dag dag;
	struct step *steps;
	enum run_state state;
	char sb_name[SANDBOX_ID_MAX + 1];
	int64_t sb_rowid;
	struct sandbox *sb;	/* while the run is unfinished (a sandbox in use stays) */
	int64_t created_at, started_at, finished_at, updated_at;
	uid_t uid;
	gid_t gid;
	unsigned counts[STEP_NSTATES];	/* steps by visible state */
	unsigned nrunning;	/* live processes */
	unsigned max_conc;
	bool aborted, cancelled, paused;
	struct actor cancel_by;	/* who cancelled it (runs.cancelled_by) */
	int64_t ev_bytes;	/* size of its events view, valid at ev_epoch */
	int64_t ev_epoch;
	size_t *ready;		/* FIFO of step indexes that may be ready */
	size_t ready_head, ready_len, ready_cap;
	bool ready_lost;	/* a push failed for memory: rebuild the queue */
	bool active;		/* unfinished: on the engine's active list */
	unsigned nwaits;	/* steps waiting for a person: the run is needs_human */
	bool sched;		/* wants a scheduling pass */
	struct run *prev, *next;	/* active list, or the cache's LRU list */
	struct run *hnext;	/* rowid hash chain */
};

/* An attempt recorded as started, whose process is spawned after the commit. */
struct spawn_req {
	int64_t run;
	size_t idx;
	unsigned attempt;
	uint64_t gen;		/* the WAL sync it waits for (0: none) */
};

/* The longest what spawning recorded waits for its commit when nothing
 * else happens (before_sleep, engine_wait_ms). */
#define COMMIT_LAG_MS 1

/* A Prometheus histogram of step durations, in seconds (render.c has the
 * bucket bounds): counts per bucket (not cumulative), count, sum. */
#define STEP_HIST_BUCKETS 12
struct step_hist {
	int64_t bucket[STEP_HIST_BUCKETS + 1];	/* the last: above every bound */
	int64_t count;
	double sum;
};

#define RUN_HASH 1024
#define RUN_CACHE_MAX 32
#define RUN_CACHE_STEPS 50000

struct orch_engine {
	struct orch_config cfg;	/* strings owned */
	char *state_dir, *mountpoint;
	int state_fd;		/* state_dir (O_RDONLY | O_DIRECTORY), or -1 */
	/* its directories, opened below state_fd without a symlink: every
	 * path operation in the state directory is relative to one of these
	 * (core/statedir.h) */
	int logs_fd, sbs_fd, plans_fd;
	struct sd_trash trash;	/* STATE/trash and the thread that empties it */
	int64_t log_cap;	/* bytes a step's log (a sandbox's logs) keeps; 0: no cap */
	struct loop loop;
	struct spawner spawner;	/* starts step processes (core/spawner.h) */
	struct cg cg;		/* the cgroups of limits (core/cgroup.h) */
	struct syncer syncer;	/* syncs the WAL (core/syncer.h), once the thread runs */
	uint64_t synced_gen;	/* the syncer's generations done so far */
	uint64_t sync_asked;	/* the newest generation asked of it */
	/* exits reaped (no pidfds) before the spawner handed their process
	 * back: spawn_done() takes them from here */
	struct { pid_t pid; int status; } orphans[64];
	unsigned norphans;
	/* after this turn's commit: reads; then the rest, which wait for the
	 * sync of generation gen when the turn was durable (sync_head) */
	struct orch_done *read_head, *read_tail;
	struct orch_done *sync_head, *sync_tail;
	struct store st;
	pthread_t thread;
	bool thread_started;

	struct loop_watch sigw;	/* signalfd: SIGTERM, SIGINT */
	struct loop_watch mntw;	/* /proc/self/mountinfo */
	int mount_id;		/* of our mount in the mount table; -1 unknown */

	struct run *runtab[RUN_HASH];	/* every run in memory, by rowid */
	struct run *active_head, *active_tail;	/* unfinished runs, submission order */
	struct run *cache_head, *cache_tail;	/* finished runs kept loaded, LRU first */
	size_t ncached;
	size_t cached_steps;	/* steps of the finished runs kept loaded */
	unsigned running;	/* processes across all runs */
	bool sched_all;		/* a global slot freed: every active run may start steps */

	struct sandbox *sandboxes;	/* loaded sandboxes */
	struct act *act;	/* workspace activity (core/activity.h); NULL until a step runs */

	/* every open wait for a person, oldest first (core/supervise.h) */
	struct sup *att_head, *att_tail;
	size_t att_count;

	int64_t next_seq;	/* the next event's seq */
	int64_t g_bytes;	/* size of the global events view, valid at ev_epoch */
	int64_t ev_epoch;	/* the store's rollback count the event caches match */
	int64_t events_total;
	int64_t run_counts[RUN_NSTATES];	/* every run in the store */
	int64_t step_counts[STEP_NSTATES];	/* every step in the store */
	int64_t runs_created;
	int64_t msg_queued;	/* queued messages in every sandbox */
	/* since this engine opened (metrics; SPEC §11): runs finished by final
	 * state, and the durations of the steps that ran, by final state */
	int64_t runs_finished[RUN_NSTATES];
	struct step_hist step_hist[STEP_NSTATES];
	int64_t opened_mono;	/* when it opened (uptime) */
	uint64_t att_gen;	/* MOUNT/attention's generation: each change of the list */
	/* readers that wait for more (engine.h, orch_engine_on_change) */
	orch_change_fn on_change;
	void *on_change_arg;
	size_t waiting;

	struct lease_tab leases;	/* every open inbox's lease (msgq.c) */
	struct spawn_req *spawnq;	/* attempts to spawn after this turn's commit */
	size_t nspawn, capspawn;
	struct orch_done *done_head, *done_tail;
	struct proc *dead;	/* procs to free after this turn */

	bool stopping, stopped, quit;
	bool resync;		/* the last commit failed: see run_resync() */
	bool no_pidfd;		/* the kernel has no pidfds: exits come by SIGCHLD */
	int64_t disk_reserve;
	bool room_known;	/* eng_disk_free() asked statvfs this turn: room_free */
	int64_t room_free;
	pthread_mutex_t ctl_lock;	/* guards stop_req and quit_req */
	bool stop_req, quit_req, ctl_queued;
	struct loop_work ctl_work;
	void (*on_stopped)(void *);
	void *on_stopped_arg;
	void (*on_sb_gone)(void *, const char *);
	void *on_sb_gone_arg;
	bool bwrap_ok;
	char *bwrap_path;	/* NULL: bubblewrap cannot run here */
	struct quota quota;	/* what each user holds, against cfg.limits */
	struct ident ident;	/* user names for `by` and decisions (core/ident.h) */
	struct actor actor;	/* who acts now (struct actor) */
	int64_t trim_debt;	/* bytes freed since the heap was last trimmed */
	char *exec_helper;	/* the step trampoline, canonical path */
	/* the FUSE mounts (but ours) the daemon's own bwrap steps hide, from
	 * the mount table when it last changed (core/mounts.h); steps of
	 * other users find theirs in the trampoline */
	char **fuse_hide;
	size_t nfuse_hide;
	/* integration (SPEC §11): the one curl multi handle, made with the first
	 * request; the webhooks (core/webhook.h; NULL: none configured) */
	struct http http;
	struct webhooks *hooks;
	struct health_engine health;	/* health checks' processes and counts */
	/* triggers (SPEC §9, core/triggers.c): any registered (else no pass
	 * runs), and the global view's offset of the first event not matched */
	bool trig_any;
	int64_t trig_off;
	/* wall-clock steps (core/clockstep.h): the watch, wall - monotonic
	 * when the last step was acted upon, and how many were */
	struct loop_watch clockw;
	int64_t clock_off;
	int64_t clock_steps;
	/* schedules (SPEC §9, core/schedules.c): any registered (else run
	 * ends look no further), and the one timer, armed for the earliest
	 * next_at */
	bool sch_any;
	struct loop_timer sch_timer;
	/* windows (SPEC §9, core/windows.c): every sandbox's that has one,
	 * and the one timer for the earliest deadline or idle end */
	struct win *wins;
};

/* May steps of user UID run under bubblewrap here? */
static inline bool eng_bwrap_for(const struct orch_engine *e, uid_t uid)
{
	return e->bwrap_ok && (uid == geteuid() || e->cfg.bwrap_users);
}
/* Make A the actor; returns the one before, for eng_actor_restore(). */
static inline struct actor eng_actor_set(struct orch_engine *e, struct actor a)
{
	struct actor old = e->actor;
	e->actor = a;
	return old;
}
static inline void eng_actor_restore(struct orch_engine *e, struct actor old) { e->actor = old; }

/* Why not, for a message */
#define ENG_BWRAP_USERS_WHY \
	"bubblewrap cannot run as an unprivileged user here (no user namespaces for them), and" \
	" orchfs runs other users' steps under it as those users"


/* engine.c */
/* Something readers may wait for changed (engine.h, enum orch_change):
 * tell the front end, only when a reader waits. */
static inline void eng_changed(struct orch_engine *e, enum orch_change what, int64_t a, int64_t b)
{
	if (e->waiting)
		e->on_change(e->on_change_arg, what, a, b);
}
/* Bytes free for the daemon on the state directory's file system (statvfs,
 * once a turn), or -1 when it cannot tell. */
int64_t eng_disk_free(struct orch_engine *e);
void eng_log(struct orch_engine *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Room on the state directory's file system for an acknowledged change?
 * 0, or -ENOSPC when free space is below the reserve (ORCHFS_DISK_RESERVE
 * bytes, default 4 MiB): refused before anything changes, such a change
 * never rides in a commit the disk cannot take. */
int eng_room(struct orch_engine *e);
/* May UID take N more of K (core/quota.h)? 0, or -EDQUOT: the refusal's line
 * goes to the log (at most once a minute per user and limit) and, when MSG
 * is not NULL, to MSG (for a plan's NAME.error). */
int eng_quota(struct orch_engine *e, uid_t uid, enum quota_kind k, int64_t n, struct sbuf *msg);
/* Count what every user holds again, from the store and the runs in memory
 * (at start, and after a failed commit). */
void eng_quota_recount(struct orch_engine *e);
/* BYTES of memory went back to the allocator (a large plan parsed, large
 * runs freed): once enough has, the end of the turn hands it back to the
 * system (malloc_trim), rather than keeping the peak resident. */
void eng_trim_later(struct orch_engine *e, int64_t bytes);

/* run.c */
struct run *run_get(struct orch_engine *e, int64_t rowid);	/* borrowed; loads if needed */
struct run *run_find_loaded(struct orch_engine *e, int64_t rowid);
/* Spawns queued that wait for no sync (run_spawn_queued() starts those). */
size_t run_spawn_ready(const struct orch_engine *e);
int run_load_unfinished(struct orch_engine *e);
int run_create(struct orch_engine *e, const char *plan_name, int64_t n, struct plan *plan,
	       struct sandbox *sb, uid_t uid, gid_t gid, struct run **out);
void run_schedule_all(struct orch_engine *e);
void run_spawn_queued(struct orch_engine *e);	/* after the commit: spawn what started */
void run_stop_all(struct orch_engine *e);	/* daemon stop: interrupt every attempt */
void run_free(struct run *r);
void run_unload_all(struct orch_engine *e);
bool run_step_visible_running(const struct run *r, size_t i);
void run_kill_stale(struct orch_engine *e);	/* at open: processes of a dead daemon */
/* After a failed commit: forget runs and sandboxes whose creation it undid,
 * and write the whole state of every other loaded one again, so that the
 * next commit brings the store back to what memory holds. */
void run_resync(struct orch_engine *e);
/* ctl cancel (and a sandbox's stop): the actor, if any, is recorded as its
 * canceller, whom its later events name (run.cancel_by). */
int run_cancel(struct orch_engine *e, struct run *r);
/* Undo run_create() of this turn after its rows were rolled back: off every
 * list and counter, its log directory removed, freed with its plan. */
void run_forget(struct orch_engine *e, struct run *r);
void run_interrupt(struct orch_engine *e, struct run *r);	/* stop its attempts; they run again */
/* A window's on_end pause (core/windows.c), ON, and its end, off: R paused
 * (no step starts) and its running steps' processes stopped (SIGSTOP), or
 * continued (SIGCONT) and, when RESUME, resumed (a run the window paused,
 * not one a user had paused). True when ON paused R (it was not paused).
 * Issue 16 puts the cgroup freezer here. */
bool run_freeze(struct orch_engine *e, struct run *r, bool on, bool resume);
/* The running step, among the runs active in SB, whose process is WRITER or
 * its nearest ancestor that is one (read from /proc, only while SB has
 * steps running); NULL when none. */
struct step *run_step_by_pid(struct orch_engine *e, struct sandbox *sb, pid_t writer);
/* A heartbeat in SB: restart the heartbeat clock of step S, or of every
 * running step in SB when S is NULL. */
void run_heartbeat(struct orch_engine *e, struct sandbox *sb, struct step *s);

/* event.c */
/* Record an event: TYPE with the run/step/sandbox it is about (any may be NULL)
 * and EXTRA fields (stolen, may be NULL), and `by` when an actor is set
 * (EXTRA cannot replace it). 0 or -errno. */
int ev_emit(struct orch_engine *e, const char *type, struct run *r, struct step *s,
	    struct sandbox *sb, json_t *extra);
int ev_open(struct orch_engine *e);	/* seq and sizes from the store */
/* Sizes of a run's and a sandbox's events views, from the cache or, after
 * a rollback made the cache stale, from the store. */
int64_t ev_run_bytes(struct orch_engine *e, struct run *r);
int64_t ev_sb_bytes(struct orch_engine *e, struct sandbox *sb);

/* triggers.c */
int trig_open(struct orch_engine *e);	/* trig_any and the cursor from the store */
/* Register (or renew) the trigger of plan STEM, checked PLAN with "on",
 * submitted by UID:GID. 0 or -errno. */
int trig_register(struct orch_engine *e, const char *stem, const struct plan *plan, uid_t uid, gid_t gid);
void trig_end(struct orch_engine *e, const char *stem);	/* plans/STEM.json went */
int trig_render(struct orch_engine *e, int64_t id, struct sbuf *out);	/* NAME.trigger */
/* Match the events recorded since the last pass and submit the triggers
 * they fire (bounded per turn). True when it submitted a run. */
bool trig_pass(struct orch_engine *e);
bool trig_pending(const struct orch_engine *e);	/* events left to match */

/* schedules.c: schedules (SPEC §9), the table schedules and its one loop
 * timer; engine thread only (the timer's callback submits what is due). */
int sch_open(struct orch_engine *e);	/* sch_any, the timer; catch-up at the first turn */
/* Register (or replace) the schedule of plan STEM, checked PLAN with
 * "schedule", submitted by UID:GID: its first time after now. 0 or -errno. */
int sch_register(struct orch_engine *e, const char *stem, const struct plan *plan, uid_t uid, gid_t gid);
void sch_end(struct orch_engine *e, const char *stem);	/* plans/STEM.json went, or lost "schedule" */
int sch_render(struct orch_engine *e, int64_t id, struct sbuf *out);	/* NAME.schedule */
/* Run R, whose plan has "schedule", ended: a time queued for it is due. */
void sch_run_ended(struct orch_engine *e, const struct run *r);
/* The wall clock stepped by DELTA_MS: every next_at from the new clock (a
 * step forward past times fires once; a step back repeats no time already
 * fired), the timer armed again. */
void sched_clock_stepped(struct orch_engine *e, int64_t delta_ms);
/* windows.c (SPEC §9): sandbox windows. The hooks below cost a sandbox
 * without a window one NULL test (sb->win) at their call sites. */
int win_open_all(struct orch_engine *e);	/* at open: every window, the timer armed */
void win_close_all(struct orch_engine *e);	/* at close */
/* A run whose plan has window SPEC starts in SB (made for it or not): the
 * window opens now when SB has none, or only an ended one (a sandbox's next
 * phase); a live window is kept as it is. 0 or -errno (nothing changed). */
int win_plan(struct orch_engine *e, struct sandbox *sb, const struct window_spec *spec);
void win_attach(struct orch_engine *e, struct sandbox *sb);	/* SB loaded: sb->win */
void win_detach(struct sandbox *sb);	/* SB freed */
void win_sb_deleted(struct orch_engine *e, struct sandbox *sb);	/* its row went */
/* Activity in SB (step output, a message, a workspace change): idle_sec
 * counts from now. Memory only. */
void win_activity(struct sandbox *sb);
/* Events posted to SB (B): activity, and extend_when rules counted. */
void win_posted(struct orch_engine *e, struct sandbox *sb, const struct line_batch *b);
/* A run in SB finished (a delete that waits for it may go on). */
void win_run_finished(struct orch_engine *e, struct sandbox *sb);
/* Sandbox ctl: extend SEC [REASON] (ARG, ALEN), and resume of a paused
 * window. 0 or -errno. */
int win_ctl_extend(struct orch_engine *e, struct sandbox *sb, const char *arg, size_t alen);
int win_ctl_resume(struct orch_engine *e, struct sandbox *sb);
bool win_paused(const struct sandbox *sb);
/* status "window" into O. */
void win_render(struct orch_engine *e, struct sandbox *sb, json_t *o);
void win_resync(struct orch_engine *e);	/* after a failed commit: every window read again from the store */
/* The wall clock stepped by DELTA_MS (a detector saw it): every live
 * window keeps its remaining real time (deadlines, maxima and counted
 * events' times move by DELTA_MS), written and the timer armed again. */
void win_clock_stepped(struct orch_engine *e, int64_t delta_ms);

/* freeze.c (SPEC §10): a sandbox's pause, by ctl or by its window. */
bool sb_frozen(const struct sandbox *sb);	/* paused: no step starts, its processes stopped */
/* Freeze SB: its runs paused (those it paused recorded) and their live
 * attempts stopped, clocks with them; thaw: the reverse. */
void sb_freeze(struct orch_engine *e, struct sandbox *sb);
void sb_thaw(struct orch_engine *e, struct sandbox *sb);
/* Sandbox ctl pause and resume (resume lifts a window's pause too): 0 or
 * -errno (EINVAL: not running-or-ready / not paused). */
int sb_ctl_pause(struct orch_engine *e, struct sandbox *sb);
int sb_ctl_resume(struct orch_engine *e, struct sandbox *sb);

/* planstore.c */
enum plans_by { PLANS_BY_TRIGGER, PLANS_BY_SCHEDULE };
/* Submit plans/STEM.json for its trigger or schedule (BY) as UID:GID; a
 * trigger's run gets TRIGGER_EVENT, TRIGGER_RUN_ID and TRIGGER_SANDBOX
 * from TRIG (the event's line, run and sandbox; NULL: ""), a schedule's
 * passes NULL. The run's name in MADE. -ENOENT: the file is gone or no
 * longer has "on" (BY trigger) or "schedule" (BY schedule), which is then
 * ended; another -errno with STEM.error written. */
int plans_fire(struct orch_engine *e, enum plans_by by, const char *stem, uid_t uid, gid_t gid,
	       const char *const trig[3], char made[RUN_ID_MAX + 1]);

/* sandbox.c */
struct sandbox *sb_get(struct orch_engine *e, const char *name);	/* loads; NULL: none */
struct sandbox *sb_get_rowid(struct orch_engine *e, int64_t rowid);
bool sb_in_use(struct orch_engine *e, const struct sandbox *sb);
int sb_save(struct orch_engine *e, struct sandbox *sb);	/* state, heartbeat, restarts */
/* Undo sb_create() of this turn after its rows were rolled back. */
void sb_forget(struct orch_engine *e, struct sandbox *sb);
/* NPORTS ports (-1: the default, 1), named by PORT_NAMES when not NULL
 * (NPORTS names, as plan_sandbox.port_names) */
int sb_create(struct orch_engine *e, const char *name, enum isolation iso, bool network,
	      int nports, char *const *port_names, uid_t uid, gid_t gid, struct sandbox **out);
void sb_free_all(struct orch_engine *e);
/* At open: bring the sandboxes' directories back to what they must be
 * (older versions let users own them): the daemon's, with a workspace
 * directory of the sandbox's owner and a regular logs file; whatever else
 * stood there is removed or moved aside without being followed, and logged. */
void sb_repair_all(struct orch_engine *e);
/* The sandbox's logs, opened for appending (WRITER: made when missing, and
 * replaced when something else than a regular file stands there) or for
 * reading: a descriptor or -errno (-EIO: not a regular file, logged). */
int sb_logs_open(struct orch_engine *e, struct sandbox *sb, bool writer);

/* msgq.c */
void msgq_forget(struct sandbox *sb);	/* drop every lease (the sandbox goes away) */
void msgq_tab_release(struct lease_tab *t);	/* at close, once every sandbox is freed */
/* After a failed commit undid deliveries: the queue's order from the store. */
void msgq_resync(struct orch_engine *e, struct sandbox *sb);
int64_t msgq_bytes_load(struct orch_engine *e, int64_t sbid);	/* size of its messages view */

/* Supervision (core/supervise.c) reaches the state machine here. */
/* R's count of waits changed: its state follows (needs_human while any). */
void run_waits_changed(struct orch_engine *e, struct run *r);
/* An approval step was decided: succeeded, or failed with reason "rejected". */
void run_step_decided(struct orch_engine *e, struct step *s, bool approved);
/* Stop S's running attempt (SIGTERM, SIGKILL after its grace): it fails with
 * REASON (a static string), without retry. */
void run_step_stop(struct orch_engine *e, struct step *s, const char *reason);
/* A step that needs a human: a fresh series of attempts (its retries count
 * again), or failed for good with REASON (its on_failure applies). */
void run_step_retry(struct orch_engine *e, struct step *s);
void run_step_fail(struct orch_engine *e, struct step *s, const char *reason);
/* msgq.c: queue a message from orchfs itself into SB (its caller checks
 * the owner's limits: core/supervise.c guardian()). */
int msgq_post(struct orch_engine *e, struct sandbox *sb, enum msg_type type, const char *content);

/* A health check's command (core/health.h): ARGV (ARGC strings) started as
 * R's steps start (its sandbox's workspace, isolation and a step's
 * environment but ORCHFS_STEP_ID), as the sandbox's owner (never as the
 * user of a run that came by: root's), its output to OUT_FD (taken), by a
 * spawner thread; the job comes back to DONE with OWNER. 0, or -errno with
 * nothing started. */
int run_spawn_check(struct orch_engine *e, struct run *r, char *const *argv, size_t argc, int out_fd,
		    void (*done)(struct loop_work *, void *), void *owner);
/* Kill PID and its process group, and have a spawner thread reap it. */
void run_kill_and_reap(struct orch_engine *e, pid_t pid);

/* The attempt whose process PID is, if any (the no-pidfd case). */
struct proc *run_proc_by_pid(struct orch_engine *e, pid_t pid);

/* render.c */
/* Count a step that ran MS milliseconds in histogram H (metrics). */
void step_hist_add(struct step_hist *h, int64_t ms);
int render_run_status(struct orch_engine *e, struct run *r, struct sbuf *out);
int render_run_summary(struct orch_engine *e, struct run *r, struct sbuf *out);
int render_run_graph(struct orch_engine *e, struct run *r, struct sbuf *out);
int render_step_status(struct orch_engine *e, struct step *s, struct sbuf *out);

static inline enum step_state step_state_of(const struct step *s)
{
	return s->run->dag.nodes[s->idx].state;
}

#endif
