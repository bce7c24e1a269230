/* core/engine.c — the engine's lifecycle and its loop thread.
 *
 * One thread runs the loop. Each turn: fd events (child exits, output, the
 * posted FUSE work, signals, the mount table), expired timers, then the
 * before-sleep work: a scheduling pass, ONE commit of everything the turn
 * changed (fsync'd only if it holds an acknowledged change), and the replies
 * waiting for that commit. Nothing sleeps or polls. */
#include "core/activity.h"
#include "core/clockstep.h"
#include "core/engine_i.h"
#include "core/mounts.h"
#include "core/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

void eng_log(struct orch_engine *e, const char *fmt, ...)
{
	char ts[ISO8601_LEN];
	char msg[1024];
	va_list ap;
	(void)e;
	fmt_iso8601(clock_wall_ms(), ts);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s orchfs: %s\n", ts, msg);
}

const char *orch_mountpoint(const struct orch_engine *e) { return e->mountpoint; }

/* Once per turn: the appends of one turn share one statvfs (they share
 * one commit too, and the reserve is megabytes). */
int64_t eng_disk_free(struct orch_engine *e)
{
	if (e->room_known)
		return e->room_free;
	struct statvfs sv;
	if (statvfs(e->state_dir, &sv) < 0)
		return -1;	/* cannot tell (asked again next time) */
	e->room_known = true;
	e->room_free = (int64_t)sv.f_bavail * (int64_t)sv.f_frsize;
	return e->room_free;
}

int eng_room(struct orch_engine *e)
{
	int64_t free_bytes = eng_disk_free(e);
	if (free_bytes < 0)
		return 0;	/* cannot tell: let the write itself say */
	return free_bytes < e->disk_reserve ? -ENOSPC : 0;
}
const char *orch_state_dir(const struct orch_engine *e) { return e->state_dir; }

int eng_quota(struct orch_engine *e, uid_t uid, enum quota_kind k, int64_t n, struct sbuf *msg)
{
	struct sbuf why = SBUF_INIT;
	int rc = quota_check(&e->quota, uid, k, n, &why);
	if (rc && !sbuf_failed(&why)) {
		if (quota_log_due(&e->quota, uid, k, clock_wall_ms()))
			eng_log(e, "refused: %s", sbuf_str(&why));
		if (msg)
			sbuf_adds(msg, sbuf_str(&why));
	}
	sbuf_release(&why);
	return rc;
}

int orch_handle_take(struct orch_engine *e, uid_t uid)
{
	int rc = eng_quota(e, uid, QUOTA_OPEN_FILES, 1, NULL);
	if (!rc)
		quota_add(&e->quota, uid, QUOTA_OPEN_FILES, 1);
	return rc;
}

void orch_handle_put(struct orch_engine *e, uid_t uid) { quota_add(&e->quota, uid, QUOTA_OPEN_FILES, -1); }

void eng_quota_recount(struct orch_engine *e)
{
	struct quota *q = &e->quota;
	int rc;
	quota_clear(q);
	sqlite3_stmt *st = store_query(&e->st, "SELECT uid, count(*) FROM sandboxes GROUP BY uid", &rc, NULL);
	for (; st; st = store_next(st) ? st : (store_done(st), NULL))
		quota_add(q, (uid_t)sqlite3_column_int64(st, 0), QUOTA_SANDBOXES, sqlite3_column_int64(st, 1));
	st = store_query(&e->st,
			 "SELECT s.uid, count(*) FROM ports p JOIN sandboxes s ON s.id = p.sandbox GROUP BY s.uid",
			 &rc, NULL);
	for (; st; st = store_next(st) ? st : (store_done(st), NULL))
		quota_add(q, (uid_t)sqlite3_column_int64(st, 0), QUOTA_PORTS, sqlite3_column_int64(st, 1));
	st = store_query(&e->st,
			 "SELECT s.uid, count(*) FROM sandboxes s JOIN messages m"
			 " ON m.sandbox = s.id AND m.state = 'queued' GROUP BY s.uid",
			 &rc, NULL);
	for (; st; st = store_next(st) ? st : (store_done(st), NULL))
		quota_add(q, (uid_t)sqlite3_column_int64(st, 0), QUOTA_QUEUED_MESSAGES,
			  sqlite3_column_int64(st, 1));
	for (struct run *r = e->active_head; r; r = r->next) {
		quota_add(q, r->uid, QUOTA_ACTIVE_RUNS, 1);
		quota_add(q, r->uid, QUOTA_ACTIVE_STEPS, (int64_t)r->dag.n);
	}
	st = store_query(&e->st, "SELECT id, uid FROM plan_files", &rc, NULL);
	for (; st; st = store_next(st) ? st : (store_done(st), NULL)) {
		uid_t uid = (uid_t)sqlite3_column_int64(st, 1);
		struct stat ds;
		quota_add(q, uid, QUOTA_PLAN_FILES, 1);
		if (orch_plans_stat(e, sqlite3_column_int64(st, 0), &ds) == 0)
			quota_add(q, uid, QUOTA_PLAN_BYTES, (int64_t)ds.st_size);
	}
}

/* Freed memory handed back to the system once this much is owed. */
#define TRIM_AT (8 << 20)

void eng_trim_later(struct orch_engine *e, int64_t bytes) { e->trim_debt += bytes; }

static void done_append(struct orch_done **head, struct orch_done **tail, struct orch_done *d)
{
	d->next = NULL;
	if (*tail)
		(*tail)->next = d;
	else
		*head = d;
	*tail = d;
}

void orch_after_commit(struct orch_engine *e, struct orch_done *d) { done_append(&e->done_head, &e->done_tail, d); }
void orch_after_commit_read(struct orch_engine *e, struct orch_done *d) { done_append(&e->read_head, &e->read_tail, d); }

static void done_run(struct orch_done *d, int rc)
{
	while (d) {
		struct orch_done *next = d->next;
		d->fn(d, rc);
		d = next;
	}
}

/* engine thread: the syncer finished a sync; answer what it covered */
static void synced(struct loop_work *w, void *ctx)
{
	struct orch_engine *e = ctx;
	int err = 0;
	if (!e->syncer.started)
		return;	/* stopped meanwhile: sync_drain() answered them */
	uint64_t done = syncer_done(&e->syncer, &err);
	e->synced_gen = done;	/* the starts that waited for it go this turn */
	if (err)
		eng_log(e, "cannot sync the database's log: %s", strerror(-err));
	while (e->sync_head && e->sync_head->gen <= done) {
		struct orch_done *d = e->sync_head;
		e->sync_head = d->next;
		if (!e->sync_head)
			e->sync_tail = NULL;
		d->fn(d, err);
	}
}

/* Everything waiting for a sync, now (the syncer stopped: the sync is ours). */
static void sync_drain(struct orch_engine *e)
{
	if (!e->sync_head)
		return;
	int rc = store_sync(&e->st);
	struct orch_done *d = e->sync_head;
	e->sync_head = e->sync_tail = NULL;
	done_run(d, rc);
}

void orch_need_durable(struct orch_engine *e) { store_mark_durable(&e->st); }

void orch_actor_begin(struct orch_engine *e, uid_t uid) { e->actor = (struct actor){ uid, true }; }
void orch_actor_end(struct orch_engine *e) { e->actor = ACTOR_NONE; }

bool orch_uncommitted(const struct orch_engine *e) { return e->st.in_tx; }

/* ---- control requests from other threads ---- */

static void ctl_work_fn(struct loop_work *w, void *ctx)
{
	struct orch_engine *e = ctx;
	(void)w;
	pthread_mutex_lock(&e->ctl_lock);
	bool stop = e->stop_req, quit = e->quit_req;
	e->ctl_queued = false;
	pthread_mutex_unlock(&e->ctl_lock);
	if (stop && !e->stopping) {
		eng_log(e, "stopping: interrupting running steps");
		e->stopping = true;
		run_stop_all(e);
	}
	if (quit)
		e->quit = true;
}

/* Set a request flag and make sure ctl_work is queued once to read it: the
 * one embedded work item needs no allocation, so a request is never lost. */
static void post_ctl(struct orch_engine *e, bool stop, bool quit)
{
	pthread_mutex_lock(&e->ctl_lock);
	e->stop_req |= stop;
	e->quit_req |= quit;
	bool post = !e->ctl_queued;
	e->ctl_queued = true;
	pthread_mutex_unlock(&e->ctl_lock);
	if (post) {
		e->ctl_work.fn = ctl_work_fn;
		loop_post(&e->loop, &e->ctl_work);
	}
}

void orch_engine_stop(struct orch_engine *e) { post_ctl(e, true, false); }
void orch_engine_quit(struct orch_engine *e) { post_ctl(e, false, true); }
void orch_engine_post(struct orch_engine *e, struct loop_work *w) { loop_post(&e->loop, w); }
int orch_engine_watch(struct orch_engine *e, struct loop_watch *w) { return loop_watch_add(&e->loop, w, EPOLLIN); }
void orch_engine_unwatch(struct orch_engine *e, struct loop_watch *w) { loop_watch_del(&e->loop, w); }

/* ---- signals and the mount table ---- */

static void sig_cb(struct loop_watch *w, uint32_t events)
{
	struct orch_engine *e = w->data;
	struct signalfd_siginfo si;
	(void)events;
	while (read(w->fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGCHLD) {
			/* only where pidfds are missing do steps' exits come this way:
			 * elsewhere waitid(P_PIDFD) reaps them, and nothing else may */
			pid_t pid;
			int status;
			struct proc *p;
			while (e->no_pidfd && proc_wait_any(&pid, &status) == 1)
				if ((p = run_proc_by_pid(e, pid)) && p->no_pidfd) {
					uint64_t one = 1;
					p->status = status;
					p->reaped = true;
					if (write(p->wpid.fd, &one, sizeof(one)) < 0)
						eng_log(e, "cannot wake the watch of pid %d", (int)pid);
				} else if (!p) {
					/* a step whose start the spawner has not handed back yet */
					unsigned k = e->norphans < ARRAY_SIZE(e->orphans) ? e->norphans++
											  : e->norphans - 1;
					e->orphans[k].pid = pid;
					e->orphans[k].status = status;
				}
			continue;
		}
		if ((si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) && !e->stopping) {
			eng_log(e, "%s: stopping", strsignal((int)si.ssi_signo));
			e->stopping = true;
			run_stop_all(e);
		}
	}
}

/* The mount ID of the newest fuse mount at MOUNTPOINT in FD's table, or -1;
 * with WANT >= 0, whether mount WANT is still there (returns WANT or -1). */
static int mountinfo_find(int fd, const char *mountpoint, int want)
{
	struct sbuf sb = SBUF_INIT;
	char buf[65536];
	ssize_t n;
	if (lseek(fd, 0, SEEK_SET) < 0)
		return -1;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		sbuf_add(&sb, buf, (size_t)n);
	if (sbuf_failed(&sb)) {
		sbuf_release(&sb);
		return want;	/* cannot tell: assume it is still there */
	}
	int found = -1;
	struct mount_line m;
	for (char *pos = sb.buf; mounts_next(&pos, &m);) {
		if (want >= 0) {
			if (m.id == want) {
				found = want;
				break;
			}
			continue;
		}
		if (mounts_is_fuse(m.fstype) && !strcmp(m.mountpoint, mountpoint))
			found = m.id;
	}
	sbuf_release(&sb);
	return found;
}

bool orch_engine_mounted(struct orch_engine *e)
{
	if (e->mount_id < 0)
		return true;
	int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return true;
	bool there = mountinfo_find(fd, e->mountpoint, e->mount_id) >= 0;
	close(fd);
	return there;
}

/* The FUSE mounts our own bwrap steps hide, from FD's table: read when the
 * table changes (a few KiB of procfs), never per step. */
static void fuse_hide_load(struct orch_engine *e, int fd)
{
	char buf[65536];
	struct sbuf sb = SBUF_INIT;
	ssize_t n;
	if (!e->bwrap_ok || lseek(fd, 0, SEEK_SET) < 0)
		return;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		sbuf_add(&sb, buf, (size_t)n);
	char **v;
	size_t nv;
	/* what the sandbox hides anyway: no stat of them by bubblewrap (one
	 * more FUSE request, a server that never answers stalls the step) */
	const char *skip[] = { "/tmp", e->state_dir, e->mountpoint, NULL };
	if (!sbuf_failed(&sb) && sb.buf && !mounts_fuse(sb.buf, geteuid(), getegid(), skip, &v, &nv)) {
		mounts_free(e->fuse_hide);
		e->fuse_hide = v;
		e->nfuse_hide = nv;
	}
	sbuf_release(&sb);
}

static void mnt_cb(struct loop_watch *w, uint32_t events)
{
	struct orch_engine *e = w->data;
	(void)events;
	if (e->mount_id < 0 || e->stopping)
		return;
	fuse_hide_load(e, w->fd);
	if (mountinfo_find(w->fd, e->mountpoint, e->mount_id) < 0) {
		eng_log(e, "%s was unmounted: stopping", e->mountpoint);
		e->stopping = true;
		run_stop_all(e);
	}
}

int orch_engine_watch_mount(struct orch_engine *e)
{
	int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	e->mount_id = mountinfo_find(fd, e->mountpoint, -1);
	if (e->mount_id < 0) {
		close(fd);
		return -ENOENT;
	}
	fuse_hide_load(e, fd);
	e->mntw = (struct loop_watch){ .fd = fd, .cb = mnt_cb, .data = e };
	/* the mount table signals a change with POLLPRI (EPOLLPRI) */
	int r = loop_watch_add(&e->loop, &e->mntw, EPOLLPRI | EPOLLERR);
	if (r) {
		close(fd);
		e->mntw.fd = -1;
	}
	return r;
}

/* ---- the loop ---- */

static void free_dead(struct orch_engine *e)
{
	while (e->dead) {
		struct proc *p = e->dead;
		e->dead = p->next_dead;
		orch_free(p);
	}
}

/* After the fd events and timers of a turn: schedule, commit, reply. */
static void before_sleep(struct orch_engine *e)
{
	e->room_known = false;
	if (!e->stopping)
		run_schedule_all(e);
	/* the events of this turn fire their triggers in its commit */
	if (e->trig_any && trig_pass(e))
		run_schedule_all(e);
	if (e->resync)
		run_resync(e);
	bool durable = false;
	int rc = store_commit_nosync(&e->st, &durable);
	if (rc) {
		eng_log(e, "commit failed: %s: the state will be written again", strerror(-rc));
		e->resync = true;
	} else {
		e->resync = false;
	}
	/* reads see what is committed */
	struct orch_done *d = e->read_head;
	e->read_head = e->read_tail = NULL;
	done_run(d, rc);
	/* acknowledgements wait for the sync of a durable commit: the
	 * syncer's, while the loop goes on (changes committed meanwhile share
	 * the next sync), or ours when there is no syncer thread, or when
	 * nothing waits for the loop and no sync is in flight (a lone writer:
	 * two thread hand-offs fewer, and no one to share the sync with) */
	d = e->done_head;
	e->done_head = e->done_tail = NULL;
	uint64_t g = 0;
	if (!rc && durable && e->syncer.started &&
	    (e->sync_asked > e->synced_gen || loop_ready(&e->loop))) {
		g = e->sync_asked = syncer_request(&e->syncer);
		for (struct orch_done *next; d; d = next) {
			next = d->next;
			d->gen = g;
			done_append(&e->sync_head, &e->sync_tail, d);
		}
	} else if (!rc && e->sync_asked > e->synced_gen) {
		/* nothing of this turn to sync, but an earlier turn's sync is not
		 * done: what is answered now comes after that, in order */
		for (struct orch_done *next; d; d = next) {
			next = d->next;
			d->gen = e->sync_asked;
			done_append(&e->sync_head, &e->sync_tail, d);
		}
	} else {
		if (!rc && durable)
			rc = store_sync(&e->st);
		done_run(d, rc);
	}
	/* the starts are committed now: spawn their processes (what spawning
	 * ended right away is scheduled next turn). Starts of a turn whose
	 * commit waits for a sync wait for it too: no step of a submission a
	 * crash could still undo begins (synced() lets them go). What spawning
	 * records (step.started and its pid) rides on the next turn's commit,
	 * at most COMMIT_LAG_MS away (engine_wait_ms): a busy DAG writes the
	 * pages it shares with the next exit once, not twice. */
	for (size_t k = 0; e->sync_asked > e->synced_gen && k < e->nspawn; k++)
		if (!e->spawnq[k].gen)
			e->spawnq[k].gen = e->sync_asked;
	if (!rc && run_spawn_ready(e))
		run_spawn_queued(e);
	free_dead(e);
	if (e->trim_debt >= TRIM_AT) {
		/* a large plan's tree, the steps of large runs: back to the
		 * system now, not kept as the daemon's peak forever */
		e->trim_debt = 0;
		malloc_trim(0);
	}
	if (e->stopping && !e->stopped && e->running == 0) {
		e->stopped = true;
		store_commit(&e->st);
		eng_log(e, "stopped: every step is stopped and recorded");
		if (e->on_stopped)
			e->on_stopped(e->on_stopped_arg);
	}
}

/* Is there work for a scheduling pass already (from after this turn's
 * pass: spawns that failed at once)? Then the loop must not sleep. */
static bool sched_pending(struct orch_engine *e)
{
	if (e->stopping)
		return false;
	if (e->sched_all || run_spawn_ready(e) || trig_pending(e))
		return true;
	for (struct run *r = e->active_head; r; r = r->next)
		if (r->sched)
			return true;
	return false;
}

/* How long the loop may sleep: not at all with work pending; until the
 * commit of what the last turn left uncommitted is due; else MAX_MS (-1:
 * until something happens). */
static int engine_wait_ms(struct orch_engine *e, int max_ms)
{
	if (sched_pending(e) || e->read_head)
		return 0;
	if (e->st.in_tx && (max_ms < 0 || max_ms > COMMIT_LAG_MS))
		return COMMIT_LAG_MS;
	return max_ms;
}

int orch_engine_turn(struct orch_engine *e, int max_wait_ms)
{
	int r = loop_turn(&e->loop, engine_wait_ms(e, max_wait_ms));
	if (!r)
		before_sleep(e);
	return r;
}

static void *engine_main(void *arg)
{
	struct orch_engine *e = arg;
	while (!e->quit) {
		int r = loop_turn(&e->loop, engine_wait_ms(e, -1));
		if (r) {
			/* cannot happen short of a broken epoll fd: let the daemon end
			 * (steps die with it) rather than hang */
			eng_log(e, "event loop: %s: giving up", strerror(-r));
			break;
		}
		before_sleep(e);
	}
	store_commit(&e->st);
	syncer_stop(&e->syncer);
	sync_drain(e);
	if (!e->stopped) {
		e->stopped = true;
		if (e->on_stopped)
			e->on_stopped(e->on_stopped_arg);
	}
	return NULL;
}

void orch_engine_on_change(struct orch_engine *e, orch_change_fn fn, void *arg)
{
	e->on_change = fn;
	e->on_change_arg = arg;
}

void orch_engine_waiting(struct orch_engine *e, size_t n) { e->waiting = e->on_change ? n : 0; }

uint64_t orch_attention_gen(const struct orch_engine *e) { return e->att_gen; }

void orch_engine_on_sandbox_gone(struct orch_engine *e, void (*fn)(void *arg, const char *name), void *arg)
{
	e->on_sb_gone = fn;
	e->on_sb_gone_arg = arg;
}

int orch_engine_start(struct orch_engine *e, void (*on_stopped)(void *), void *arg)
{
	e->on_stopped = on_stopped;
	e->on_stopped_arg = arg;
	char *wal = orch_asprintf("%s/orchfs.db-wal", e->state_dir);
	int r = wal ? syncer_start(&e->syncer, &e->loop, wal, synced) : -ENOMEM;
	orch_free(wal);
	if (r)
		return r;
	r = pthread_create(&e->thread, NULL, engine_main, e);
	if (r) {
		syncer_stop(&e->syncer);
		return -r;
	}
	pthread_setname_np(e->thread, "orchfs-engine");
	e->thread_started = true;
	return 0;
}

void orch_engine_join(struct orch_engine *e)
{
	if (e->thread_started) {
		pthread_join(e->thread, NULL);
		e->thread_started = false;
	}
}

/* ---- open and close ---- */

static void trash_log(void *arg, const char *fmt, ...)
{
	char msg[900];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	eng_log(arg, "%s", msg);
}

/* Make FD (NAME in the state directory) the daemon's user's and no looser
 * than MODE, saying so when it was not. */
static int own_as(struct orch_engine *e, int fd, const char *name, mode_t mode)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_uid != geteuid()) {
		if (fchown(fd, geteuid(), getegid()) < 0)
			return -errno;
		eng_log(e, "%s/%s belonged to uid %u: now the daemon's", e->state_dir, name, (unsigned)st.st_uid);
	}
	mode_t want = st.st_mode & mode;
	if ((st.st_mode & 07777) != want) {
		if (fchmod(fd, want) < 0)
			return -errno;
		eng_log(e, "%s/%s was mode %04o: now %04o", e->state_dir, name, (unsigned)(st.st_mode & 07777),
			(unsigned)want);
	}
	return 0;
}

/* The state directory and its directories, opened without following a
 * symlink below it, and made what they must be: the daemon's, writable by
 * it alone. Users pass through the state directory (0711) to their
 * workspace, read logs/ and sandboxes/ (0755, as they may read runs and
 * sandboxes in the mount), and reach nothing else: plans/, trash/ and the
 * database are the daemon's alone (a reader of the database could hold a
 * lock on it). The trash's descriptor goes to *TRASH_FD. */
static int state_open(struct orch_engine *e, int *trash_fd, struct sbuf *err)
{
	uid_t self = geteuid();
	e->state_fd = open(e->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct stat st;
	if (e->state_fd < 0 || fstat(e->state_fd, &st) < 0) {
		int r = -errno;
		sbuf_addf(err, "cannot open state directory %s: %s", e->state_dir, strerror(errno));
		return r;
	}
	if (st.st_uid != self && (self == 0 || (st.st_mode & 022))) {
		sbuf_addf(err, "state directory %s belongs to uid %u: it must be the daemon's (uid %u)",
			  e->state_dir, (unsigned)st.st_uid, (unsigned)self);
		return -EPERM;
	}
	if (st.st_uid == self && (st.st_mode & 07777 & ~0711)) {
		if (fchmod(e->state_fd, st.st_mode & 0711) < 0) {
			int r = -errno;
			sbuf_addf(err, "cannot make state directory %s mode 0711: %s", e->state_dir, strerror(errno));
			return r;
		}
		eng_log(e, "state directory %s was mode %04o: now %04o (users only pass through it to their"
			" workspace)", e->state_dir, (unsigned)(st.st_mode & 07777), (unsigned)(st.st_mode & 0711));
	}
	int tfd = -1;
	const struct { const char *name; mode_t mode; int *fd; } dirs[] = {
		{ "plans", 0700, &e->plans_fd }, { "logs", 0755, &e->logs_fd },
		{ "sandboxes", 0755, &e->sbs_fd }, { "trash", 0700, &tfd },
	};
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		int r = 0;
		if (mkdirat(e->state_fd, dirs[i].name, dirs[i].mode) < 0 && errno != EEXIST)
			r = -errno;
		int fd = r ? r : sd_opendir(e->state_fd, dirs[i].name);
		if (fd >= 0 && (r = own_as(e, fd, dirs[i].name, dirs[i].mode)))
			close(fd);
		if (fd < 0 || r) {
			r = r ? r : fd;
			sbuf_addf(err, "cannot open %s/%s: %s%s", e->state_dir, dirs[i].name, strerror(-r),
				  r == -ELOOP ? " (a symlink: it must be a directory)" : "");
			if (tfd >= 0)
				close(tfd);
			return r;
		}
		*dirs[i].fd = fd;
	}
	/* the database's files: the daemon's alone; orchfs.db made 0600 now
	 * (SQLite gives its WAL the database's mode) */
	static const char *const files[] = { "orchfs.db", "orchfs.db-wal", "orchfs.db-shm" };
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		mode_t found;
		int fd = sd_open_reg(e->state_fd, files[i], O_RDONLY | (i == 0 ? O_CREAT : 0), 0600, &found,
				     NULL);
		int r = fd == -ENOENT ? 0 : fd < 0 ? fd : own_as(e, fd, files[i], 0600);
		if (fd >= 0)
			close(fd);
		if (r) {
			sbuf_addf(err, "cannot open %s/%s: %s", e->state_dir, files[i],
				  r == -EIO ? sd_type_name(found) : strerror(-r));
			close(tfd);
			return r;
		}
	}
	*trash_fd = tfd;
	return 0;
}

static char *xstrdup_or(const char *s, bool *oom)
{
	char *d = orch_strdup(s);
	if (s && !d)
		*oom = true;
	return d;
}

struct orch_engine *orch_engine_open(const struct orch_config *cfg, struct sbuf *err)
{
	struct orch_engine *e = orch_calloc(1, sizeof(*e));
	if (!e) {
		sbuf_adds(err, "out of memory");
		return NULL;
	}
	bool oom = false;
	e->cfg = *cfg;
	e->state_dir = xstrdup_or(cfg->state_dir, &oom);
	e->mountpoint = xstrdup_or(cfg->mountpoint, &oom);
	e->cfg.state_dir = e->state_dir;
	e->cfg.mountpoint = e->mountpoint;
	e->cfg.vars = orch_calloc(cfg->nvars + 1, sizeof(char *));
	if (!e->cfg.vars)
		oom = true;
	for (size_t i = 0; !oom && i < cfg->nvars; i++)
		e->cfg.vars[i] = xstrdup_or(cfg->vars[i], &oom);
	/* the helper runs inside sandboxes too: a canonical path, bound there */
	e->exec_helper = cfg->exec_helper ? realpath(cfg->exec_helper, NULL) : NULL;
	if (!e->exec_helper) {
		sbuf_addf(err, "no step helper: %s: %s", cfg->exec_helper ? cfg->exec_helper : "(none)",
			  strerror(cfg->exec_helper ? errno : EINVAL));
		goto fail_early;
	}
	e->bwrap_path = xstrdup_or(cfg->bwrap_path, &oom);
	e->bwrap_ok = e->bwrap_path != NULL;
	e->cfg.exec_helper = e->exec_helper;
	e->cfg.bwrap_path = e->bwrap_path;
	e->mount_id = -1;
	e->state_fd = e->logs_fd = e->sbs_fd = e->plans_fd = -1;
	e->trash.fd = -1;
	e->log_cap = cfg->log_max_bytes == 0 ? LOG_CAP_DEFAULT : cfg->log_max_bytes < 0 ? 0 : cfg->log_max_bytes;
	e->sigw.fd = -1;
	const char *reserve = getenv("ORCHFS_DISK_RESERVE");
	e->disk_reserve = reserve ? strtoll(reserve, NULL, 10) : 4 << 20;
	e->mntw.fd = -1;
	e->clockw.fd = -1;
	e->opened_mono = clock_mono_ms();
	quota_init(&e->quota, cfg->limits, cfg->limit_root);
	ident_init(&e->ident, NULL, NULL);
	pthread_mutex_init(&e->ctl_lock, NULL);
	if (oom) {
		sbuf_adds(err, "out of memory");
		goto fail_early;
	}
	int r = loop_init(&e->loop, e);
	if (r) {
		sbuf_addf(err, "cannot create the event loop: %s", strerror(-r));
		goto fail_early;
	}
	http_init(&e->http, &e->loop);
	health_engine_init(e);
	if ((r = spawner_start(&e->spawner, &e->loop))) {
		sbuf_addf(err, "cannot start the spawner thread: %s", strerror(-r));
		loop_release(&e->loop);
		goto fail_early;
	}

	int trash_fd = -1;
	if ((r = state_open(e, &trash_fd, err)))
		goto fail;
	e->trash.log = trash_log;
	e->trash.log_arg = e;
	if ((r = sd_trash_start(&e->trash, trash_fd))) {
		sbuf_addf(err, "cannot start the trash's thread: %s", strerror(-r));
		e->trash.fd = trash_fd;
		goto fail;
	}

	char *path = orch_asprintf("%s/orchfs.db", e->state_dir);
	if (!path) {
		sbuf_adds(err, "out of memory");
		goto fail;
	}
	r = store_open(&e->st, path, err);
	orch_free(path);
	if (r)
		goto fail;

	/* signals: the daemon blocks these in every thread; the engine reads them */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd >= 0) {
		e->sigw = (struct loop_watch){ .fd = sfd, .cb = sig_cb, .data = e };
		loop_watch_add(&e->loop, &e->sigw, EPOLLIN);
	}

	if ((r = ev_open(e))) {
		sbuf_addf(err, "cannot read the event log: %s", strerror(-r));
		goto fail;
	}
	if ((r = webhook_open(e, cfg->webhooks, cfg->nwebhooks, err)))
		goto fail;
	trig_open(e);
	clockstep_open(e);
	sch_open(e);
	run_kill_stale(e);
	cg_open(&e->cg, e->state_dir, &e->loop);	/* and the groups of the stale steps go */
	sb_repair_all(e);
	if ((r = run_load_unfinished(e))) {
		sbuf_addf(err, "cannot resume runs: %s", strerror(-r));
		goto fail;
	}
	if ((r = win_open_all(e))) {
		sbuf_addf(err, "cannot read the windows: %s", strerror(-r));
		goto fail;
	}
	eng_quota_recount(e);
	r = store_commit(&e->st);
	if (r) {
		sbuf_addf(err, "cannot record recovery: %s", strerror(-r));
		goto fail;
	}
	/* counting a large state's steps by state sorts them all (tens of MB,
	 * freed at once): hand that memory back rather than keep it resident */
	malloc_trim(0);
	return e;
fail:
	orch_engine_close(e);
	return NULL;
fail_early:
	for (size_t i = 0; e->cfg.vars && i < cfg->nvars; i++)
		orch_free(e->cfg.vars[i]);
	orch_free(e->cfg.vars);
	orch_free(e->state_dir);
	orch_free(e->mountpoint);
	free(e->exec_helper);
	orch_free(e->bwrap_path);
	mounts_free(e->fuse_hide);
	quota_release(&e->quota);
	ident_release(&e->ident);
	pthread_mutex_destroy(&e->ctl_lock);
	orch_free(e);
	return NULL;
}

void orch_engine_close(struct orch_engine *e)
{
	if (!e)
		return;
	orch_engine_join(e);
	/* jobs still with the spawner come back as posted work: take them in,
	 * so that what they started is known (and let go with the rest) */
	spawner_stop(&e->spawner);
	loop_turn(&e->loop, 0);
	webhook_close(e);
	run_unload_all(e);
	free_dead(e);
	cg_close(&e->cg);
	orch_free(e->spawnq);
	win_close_all(e);
	sb_free_all(e);
	activity_release(e);
	msgq_tab_release(&e->leases);
	store_close(&e->st);
	sd_trash_stop(&e->trash);
	int *fds[] = { &e->state_fd, &e->logs_fd, &e->sbs_fd, &e->plans_fd };
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		if (*fds[i] >= 0)
			close(*fds[i]);
	loop_watch_close(&e->loop, &e->sigw);
	loop_watch_close(&e->loop, &e->mntw);
	clockstep_close(e);
	health_engine_release(e);	/* after the sandboxes: their checks' processes */
	http_release(&e->http);	/* after every module with a request in it */
	/* posted work nobody will run: ctl requests are ours to free */
	loop_release(&e->loop);
	for (size_t i = 0; i < e->cfg.nvars; i++)
		orch_free(e->cfg.vars[i]);
	orch_free(e->cfg.vars);
	orch_free(e->state_dir);
	orch_free(e->mountpoint);
	free(e->exec_helper);
	orch_free(e->bwrap_path);
	mounts_free(e->fuse_hide);
	quota_release(&e->quota);
	ident_release(&e->ident);
	pthread_mutex_destroy(&e->ctl_lock);
	orch_free(e);
}
