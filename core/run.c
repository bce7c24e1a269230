/* core/run.c — runs and their steps: creation, loading, the scheduling pass,
 * attempts (spawn, output, exit, timeout, retry), ctl commands and recovery.
 *
 * Every step state change goes through step_set() (counters) and step_save()
 * (the store); all of a turn's saves land in the turn's one transaction.
 * Unfinished runs are always in memory; finished ones are loaded on demand
 * and kept in a small LRU cache. */
#include "core/engine_i.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/activity.h"
#include "core/ctl.h"
#include "core/exec.h"
#include "core/proc.h"
#include "core/spawner.h"

extern char **environ;

/* ---- the in-memory index: hash by rowid, active list, LRU cache ---- */

static void hash_add(struct orch_engine *e, struct run *r)
{
	size_t h = (size_t)r->rowid % RUN_HASH;
	r->hnext = e->runtab[h];
	e->runtab[h] = r;
}

static void hash_del(struct orch_engine *e, struct run *r)
{
	for (struct run **pp = &e->runtab[(size_t)r->rowid % RUN_HASH]; *pp; pp = &(*pp)->hnext)
		if (*pp == r) {
			*pp = r->hnext;
			return;
		}
}

struct run *run_find_loaded(struct orch_engine *e, int64_t rowid)
{
	for (struct run *r = e->runtab[(size_t)rowid % RUN_HASH]; r; r = r->hnext)
		if (r->rowid == rowid)
			return r;
	return NULL;
}

static void list_del(struct run **head, struct run **tail, struct run *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		*head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		*tail = r->prev;
	r->prev = r->next = NULL;
}

static void list_append(struct run **head, struct run **tail, struct run *r)
{
	r->next = NULL;
	r->prev = *tail;
	if (*tail)
		(*tail)->next = r;
	else
		*head = r;
	*tail = r;
}

/* What a loaded run costs in memory, roughly: for eng_trim_later(). */
#define STEP_MEM_BYTES 512

/* Keep at most RUN_CACHE_MAX finished runs loaded, and their steps at most
 * RUN_CACHE_STEPS (a few finished runs of 100,000 steps each would hold
 * hundreds of MB), but always the one used last. */
static void cache_trim(struct orch_engine *e)
{
	while (e->ncached > RUN_CACHE_MAX || (e->ncached > 1 && e->cached_steps > RUN_CACHE_STEPS)) {
		struct run *r = e->cache_head;
		list_del(&e->cache_head, &e->cache_tail, r);
		e->ncached--;
		e->cached_steps -= r->dag.n;
		hash_del(e, r);
		eng_trim_later(e, (int64_t)r->dag.n * STEP_MEM_BYTES);
		run_free(r);
	}
}

static void cache_add(struct orch_engine *e, struct run *r)
{
	list_append(&e->cache_head, &e->cache_tail, r);
	e->ncached++;
	e->cached_steps += r->dag.n;
	cache_trim(e);
}

/* R leaves the cache (for the active list, or to be removed). */
static void cache_del(struct orch_engine *e, struct run *r)
{
	list_del(&e->cache_head, &e->cache_tail, r);
	e->ncached--;
	e->cached_steps -= r->dag.n;
}

/* R becomes unfinished, or stops being: its submitter's counts. */
static void quota_active(struct orch_engine *e, struct run *r, int sign)
{
	quota_add(&e->quota, r->uid, QUOTA_ACTIVE_RUNS, sign);
	quota_add(&e->quota, r->uid, QUOTA_ACTIVE_STEPS, sign * (int64_t)r->dag.n);
}

void run_free(struct run *r)
{
	if (!r)
		return;
	for (size_t i = 0; r->steps && i < r->dag.n; i++)
		sup_free(r->steps[i].sup);
	orch_free(r->steps);
	orch_free(r->ready);
	sched_dag_release(&r->dag);
	plan_free(r->plan);
	orch_free(r->plan_name);
	orch_free(r);
}

static void proc_close(struct orch_engine *e, struct proc *p);

void run_unload_all(struct orch_engine *e)
{
	for (size_t h = 0; h < RUN_HASH; h++) {
		while (e->runtab[h]) {
			struct run *r = e->runtab[h];
			e->runtab[h] = r->hnext;
			for (size_t i = 0; r->steps && i < r->dag.n; i++) {
				struct proc *p = r->steps[i].proc;
				if (!p)
					continue;
				proc_close(e, p);
				orch_free(p);
			}
			run_free(r);
		}
	}
	e->active_head = e->active_tail = e->cache_head = e->cache_tail = NULL;
	e->att_head = e->att_tail = NULL;	/* the waits were the runs' */
	e->att_count = 0;
	e->ncached = 0;
	e->cached_steps = 0;
}

/* ---- the ready FIFO ---- */

static void ready_push(struct run *r, size_t i)
{
	if (r->ready_len == r->ready_cap) {
		size_t cap = r->ready_cap ? r->ready_cap * 2 : 16;
		size_t *q = orch_reallocarray(NULL, cap, sizeof(*q));
		if (!q) {
			r->ready_lost = true;	/* run_advance() rebuilds the queue */
			r->sched = true;
			return;
		}
		for (size_t k = 0; k < r->ready_len; k++)
			q[k] = r->ready[(r->ready_head + k) % r->ready_cap];
		orch_free(r->ready);
		r->ready = q;
		r->ready_cap = cap;
		r->ready_head = 0;
	}
	r->ready[(r->ready_head + r->ready_len) % r->ready_cap] = i;
	r->ready_len++;
	r->sched = true;
}

static bool ready_pop(struct run *r, size_t *i)
{
	if (!r->ready_len)
		return false;
	*i = r->ready[r->ready_head];
	r->ready_head = (r->ready_head + 1) % r->ready_cap;
	r->ready_len--;
	return true;
}

static void ready_rebuild(struct run *r)
{
	r->ready_len = r->ready_head = 0;
	for (size_t i = 0; i < r->dag.n; i++)
		if (sched_ready(&r->dag, i))
			ready_push(r, i);
}

/* ---- state and persistence ---- */

static const char *const reasons[] = { "exit", "signal", "timeout", "missed_heartbeat",
				       "spawn_failed", "cancelled", "interrupted", "aborted",
				       "rejected", "max_turns", "budget", "failed_by_user",
				       "limit:memory", "limit:pids", "limit:cpu" };

/* The lesser of two limits, 0 being none. */
static long long min_set(long long a, long long b) { return !a ? b : !b ? a : a < b ? a : b; }

static const char *reason_intern(const char *s)
{
	for (size_t i = 0; s && i < ARRAY_SIZE(reasons); i++)
		if (!strcmp(s, reasons[i]))
			return reasons[i];
	return NULL;
}

static void step_set(struct orch_engine *e, struct step *s, enum step_state st)
{
	struct run *r = s->run;
	struct sched_node *nd = &r->dag.nodes[s->idx];
	if (nd->state == st)
		return;
	r->counts[nd->state]--;
	e->step_counts[nd->state]--;
	nd->state = st;
	r->counts[st]++;
	e->step_counts[st]++;
}

static int step_save(struct orch_engine *e, struct step *s)
{
	int rc = store_exec(&e->st,
			    "UPDATE steps SET state = ?, attempt = ?, counted = ?, budget = ?,"
			    " interrupted = ?, exit_code = ?, signal = ?, reason = ?, started_at = ?,"
			    " finished_at = ?, duration_ms = ?, retry_at = ? WHERE id = ?",
			    "siiiiiisiiiii", step_state_name(step_state_of(s)), (int64_t)s->attempt,
			    (int64_t)s->counted, (int64_t)s->budget, (int64_t)s->interrupted,
			    (int64_t)s->exit_code, (int64_t)s->signal, s->reason, s->started_at,
			    s->finished_at, s->duration_ms, s->retry_at, s->rowid);
	if (rc)
		eng_log(e, "cannot save step %s of %s: %s", s->run->plan->steps[s->idx].id, s->run->name,
			strerror(-rc));
	return rc;
}

static int attempt_save(struct orch_engine *e, struct step *s, const char *state)
{
	return store_exec(&e->st,
			  "INSERT OR REPLACE INTO attempts(step, k, state, started_at, finished_at,"
			  " exit_code, signal, reason) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
			  "iisiiiis", s->rowid, (int64_t)s->attempt, state, s->started_at,
			  s->finished_at, (int64_t)s->exit_code, (int64_t)s->signal, s->reason);
}

static void run_set_state(struct orch_engine *e, struct run *r, enum run_state st)
{
	if (r->state != st) {
		e->run_counts[r->state]--;
		e->run_counts[st]++;
		r->state = st;
	}
	r->updated_at = clock_wall_ms();
}

static int run_save(struct orch_engine *e, struct run *r)
{
	int rc = store_exec(&e->st,
			    "UPDATE runs SET state = ?, started_at = ?, finished_at = ?, updated_at = ?,"
			    " aborted = ?, cancelled = ?, paused = ?, cancelled_by = nullif(?, -1) WHERE id = ?",
			    "siiiiiiii", run_state_name(r->state), r->started_at, r->finished_at,
			    r->updated_at, (int64_t)r->aborted, (int64_t)r->cancelled,
			    (int64_t)r->paused, r->cancel_by.set ? (int64_t)r->cancel_by.uid : (int64_t)-1,
			    r->rowid);
	if (rc)
		eng_log(e, "cannot save run %s: %s", r->name, strerror(-rc));
	return rc;
}


/* ---- building a run ---- */

static struct run *run_alloc(struct plan *plan)
{
	struct run *r = orch_calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->plan = plan;
	if (sched_dag_init(&r->dag, plan)) {
		r->plan = NULL;
		orch_free(r);
		return NULL;
	}
	r->steps = orch_calloc(plan->nsteps, sizeof(*r->steps));
	if (!r->steps) {
		r->plan = NULL;
		run_free(r);
		return NULL;
	}
	r->ev_epoch = -1;
	for (size_t i = 0; i < plan->nsteps; i++) {
		struct step *s = &r->steps[i];
		s->run = r;
		s->idx = i;
		s->exit_code = -1;
		s->budget = plan->steps[i].retries + 1;
	}
	r->counts[STEP_PENDING] = (unsigned)plan->nsteps;
	r->max_conc = plan->max_concurrency ? plan->max_concurrency : cpu_count();
	return r;
}

static void retry_timer_cb(struct loop_timer *t);

int run_create(struct orch_engine *e, const char *plan_name, int64_t n, struct plan *plan,
	       struct sandbox *sb, uid_t uid, gid_t gid, struct run **out)
{
	struct run *r = run_alloc(plan);
	if (!r)
		return -ENOMEM;
	int rc = -ENOMEM;
	snprintf(r->name, sizeof(r->name), "%s-%lld", plan_name, (long long)n);
	r->plan_name = orch_strdup(plan_name);
	char *json = json_dumps(plan->doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	/* plan.json is read from the store: the tree would only cost memory */
	if (json) {
		json_decref(plan->doc);
		plan->doc = NULL;
	}
	if (!r->plan_name || !json)
		goto fail;
	r->state = RUN_PENDING;
	r->created_at = r->updated_at = clock_wall_ms();
	r->uid = uid;
	r->gid = gid;
	r->sb = sb;
	r->sb_rowid = sb->rowid;
	snprintf(r->sb_name, sizeof(r->sb_name), "%s", sb->name);
	/* all rows of the run or none */
	if ((rc = store_savepoint(&e->st, "run_create")))
		goto fail;
	rc = store_exec(&e->st,
			"INSERT INTO runs(name, plan_name, plan_id, state, sandbox, created_at,"
			" updated_at, plan_json, uid, gid) VALUES(?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?)",
			"ssssiisii", r->name, plan_name, plan->plan_id, sb->name, r->created_at,
			r->updated_at, json, (int64_t)uid, (int64_t)gid);
	r->rowid = sqlite3_last_insert_rowid(e->st.db);
	for (size_t i = 0; i < plan->nsteps && !rc; i++) {
		rc = store_exec(&e->st,
				"INSERT INTO steps(run, idx, name, state, budget) VALUES(?, ?, ?, 'pending', ?)",
				"iisi", r->rowid, (int64_t)i, plan->steps[i].id,
				(int64_t)r->steps[i].budget);
		r->steps[i].rowid = sqlite3_last_insert_rowid(e->st.db);
		r->steps[i].retry_timer = (struct loop_timer)LOOP_TIMER_INIT(retry_timer_cb, &r->steps[i]);
		r->steps[i].log = -1;	/* no file yet */
	}
	/* its log directory is made with its first log (log_open): most runs
	 * of a large DAG print nothing. One left by a run of this name whose
	 * creation a crash undid goes now. */
	if (!rc)
		rc = sd_trash_put(&e->trash, e->logs_fd, r->name, geteuid());
	if (rc) {
		store_release(&e->st, "run_create", false);
		goto fail;
	}
	store_release(&e->st, "run_create", true);
	free(json);
	hash_add(e, r);
	r->active = true;
	list_append(&e->active_head, &e->active_tail, r);
	quota_active(e, r, 1);
	e->run_counts[RUN_PENDING]++;
	e->step_counts[STEP_PENDING] += (int64_t)plan->nsteps;
	e->runs_created++;
	ready_rebuild(r);
	r->sched = true;
	ev_emit(e, "run.created", r, NULL, NULL,
		json_pack("{s:s, s:s, s:i}", "plan_id", plan->plan_id, "plan_name", plan_name,
			  "steps", (json_int_t)plan->nsteps));
	*out = r;
	return 0;
fail:
	free(json);
	r->plan = NULL;	/* the caller still owns the plan */
	run_free(r);
	return rc;
}

/* Load run ROWID from the store (the plan as run, step states). New run, not
 * indexed; NULL with *rc set. */
static struct run *run_load(struct orch_engine *e, int64_t rowid, int *rcp)
{
	int rc;
	sqlite3_stmt *q = store_query(&e->st,
				      "SELECT name, plan_name, plan_json, state, sandbox, created_at,"
				      " started_at, finished_at, updated_at, uid, gid, aborted, cancelled,"
				      " paused, cancelled_by FROM runs WHERE id = ?",
				      &rc, "i", rowid);
	if (!q) {
		*rcp = rc ? rc : -ENOENT;
		return NULL;
	}
	struct sbuf errs = SBUF_INIT;
	struct plan_opts opts = { .literal = true, .bwrap_available = true };
	const char *name = (const char *)sqlite3_column_text(q, 0);
	const char *pname = (const char *)sqlite3_column_text(q, 1);
	const char *json = (const char *)sqlite3_column_text(q, 2);
	struct plan *plan = plan_parse(json, strlen(json), pname, &opts, &errs);
	if (plan) {
		json_decref(plan->doc);	/* plan.json is read from the store */
		plan->doc = NULL;
	}
	struct run *r = plan ? run_alloc(plan) : NULL;
	if (!r) {
		if (plan)
			plan_free(plan);
		else
			eng_log(e, "run %s: stored plan does not parse: %s", name, sbuf_str(&errs));
		sbuf_release(&errs);
		store_done(q);
		*rcp = plan ? -ENOMEM : -EIO;
		return NULL;
	}
	sbuf_release(&errs);
	r->rowid = rowid;
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->plan_name = orch_strdup(pname);
	int st = run_state_parse((const char *)sqlite3_column_text(q, 3));
	r->state = st < 0 ? RUN_FAILED : (enum run_state)st;
	snprintf(r->sb_name, sizeof(r->sb_name), "%s", (const char *)sqlite3_column_text(q, 4));
	r->created_at = sqlite3_column_int64(q, 5);
	r->started_at = sqlite3_column_int64(q, 6);
	r->finished_at = sqlite3_column_int64(q, 7);
	r->updated_at = sqlite3_column_int64(q, 8);
	r->uid = (uid_t)sqlite3_column_int64(q, 9);
	r->gid = (gid_t)sqlite3_column_int64(q, 10);
	r->aborted = sqlite3_column_int(q, 11) != 0;
	r->cancelled = sqlite3_column_int(q, 12) != 0;
	r->paused = sqlite3_column_int(q, 13) != 0;
	if (sqlite3_column_type(q, 14) == SQLITE_INTEGER)
		r->cancel_by = (struct actor){ (uid_t)sqlite3_column_int64(q, 14), true };
	store_done(q);
	if (!r->plan_name) {
		run_free(r);
		*rcp = -ENOMEM;
		return NULL;
	}

	q = store_query(&e->st,
			"SELECT idx, id, state, attempt, counted, budget, interrupted, exit_code, signal,"
			" reason, started_at, finished_at, duration_ms, retry_at, sup FROM steps"
			" WHERE run = ? ORDER BY idx",
			&rc, "i", rowid);
	memset(r->counts, 0, sizeof(r->counts));
	for (; q; q = store_next(q) ? q : (store_done(q), NULL)) {
		int64_t i = sqlite3_column_int64(q, 0);
		if (i < 0 || (size_t)i >= r->dag.n)
			continue;
		struct step *s = &r->steps[i];
		s->rowid = sqlite3_column_int64(q, 1);
		int ss = step_state_parse((const char *)sqlite3_column_text(q, 2));
		r->dag.nodes[i].state = ss < 0 ? STEP_FAILED : (enum step_state)ss;
		s->attempt = (unsigned)sqlite3_column_int64(q, 3);
		s->counted = (unsigned)sqlite3_column_int64(q, 4);
		s->budget = (unsigned)sqlite3_column_int64(q, 5);
		s->interrupted = (unsigned)sqlite3_column_int64(q, 6);
		s->exit_code = sqlite3_column_type(q, 7) == SQLITE_NULL ? -1 : sqlite3_column_int(q, 7);
		s->signal = sqlite3_column_int(q, 8);
		s->reason = reason_intern((const char *)sqlite3_column_text(q, 9));
		s->started_at = sqlite3_column_int64(q, 10);
		s->finished_at = sqlite3_column_int64(q, 11);
		s->duration_ms = sqlite3_column_int64(q, 12);
		s->retry_at = sqlite3_column_int64(q, 13);
		s->retry_timer = (struct loop_timer)LOOP_TIMER_INIT(retry_timer_cb, s);
		if (sqlite3_column_type(q, 14) != SQLITE_NULL && (s->sup = orch_calloc(1, sizeof(*s->sup))) &&
		    sup_from_json(s->sup, (const char *)sqlite3_column_text(q, 14)))
			eng_log(e, "run %s step %s: its stored supervision state does not parse: ignored", r->name,
				r->plan->steps[i].id);
	}
	for (size_t i = 0; i < r->dag.n; i++)
		r->counts[r->dag.nodes[i].state]++;
	sup_attach(e, r);	/* (listed once active: run_load_unfinished) */
	r->ev_epoch = -1;	/* computed on first use */
	*rcp = 0;
	return r;
}

struct run *run_get(struct orch_engine *e, int64_t rowid)
{
	struct run *r = run_find_loaded(e, rowid);
	if (r) {
		if (!r->active) {	/* most recently used goes last */
			list_del(&e->cache_head, &e->cache_tail, r);
			list_append(&e->cache_head, &e->cache_tail, r);
		}
		return r;
	}
	int rc;
	r = run_load(e, rowid, &rc);
	if (!r)
		return NULL;
	hash_add(e, r);
	cache_add(e, r);
	return r;
}

/* ---- attempts ---- */

static void proc_term(struct orch_engine *e, struct proc *p, enum kill_why why);
static void proc_thaw(struct orch_engine *e, struct proc *p);
static void step_final(struct orch_engine *e, struct step *s, enum step_state st);
static void attempt_not_started(struct orch_engine *e, struct run *r, struct step *s, int rc);

/* The directory of RUN's logs, made when MAKE: a descriptor or -errno. */
static int run_logdir(struct orch_engine *e, const char *run, bool make)
{
	if (make && mkdirat(e->logs_fd, run, 0755) < 0 && errno != EEXIST)
		return -errno;
	return sd_opendir(e->logs_fd, run);
}

/* A step's log is made when something is first written to it (its output, or
 * a reader opening it), not at each start: most steps of a large DAG print
 * nothing, and creating a file per step was a quarter of the engine's time
 * running one. Made, it gets the separators of the ATTEMPTS so far; later
 * attempts append theirs when they start. O_EXCL: only one maker writes
 * them. Only the daemon writes in logs/: anything else than a regular file
 * standing in a log's place (a FIFO would block the engine) is never
 * opened, but removed and logged. An fd for appending, or -errno. */
static int log_open(struct orch_engine *e, const char *run, const char *step, unsigned attempts)
{
	char name[STEP_ID_MAX + 8];
	snprintf(name, sizeof(name), "%s.log", step);
	int dfd = run_logdir(e, run, true);
	if (dfd < 0)
		return dfd;
	mode_t found;
	bool made;
	int fd = sd_open_reg(dfd, name, O_WRONLY | O_APPEND | O_CREAT, 0644, &found, &made);
	if (fd == -EIO) {
		int r = unlinkat(dfd, name, S_ISDIR(found) ? AT_REMOVEDIR : 0) < 0 ? -errno : 0;
		eng_log(e, "logs/%s/%s was %s, not a regular file: %s", run, name, sd_type_name(found),
			r ? strerror(-r) : "removed it (not followed), a new log starts");
		if (!r)
			fd = sd_open_reg(dfd, name, O_WRONLY | O_APPEND | O_CREAT, 0644, &found, &made);
	}
	close(dfd);
	if (fd < 0 || !made)
		return fd;
	struct sbuf h = SBUF_INIT;
	for (unsigned k = 1; k <= attempts; k++)
		sbuf_addf(&h, "=== attempt %u ===\n", k);
	if (!sbuf_failed(&h))
		write_all(fd, h.buf, h.len);
	sbuf_release(&h);
	return fd;
}

/* A step's log that exists, for appending: a descriptor, -ENOENT, or -EIO
 * when it is not a regular file (log_open() replaces it). */
static int log_reopen(struct orch_engine *e, const char *run, const char *step)
{
	char name[STEP_ID_MAX + 8];
	snprintf(name, sizeof(name), "%s.log", step);
	int dfd = run_logdir(e, run, false);
	if (dfd < 0)
		return dfd;
	int fd = sd_open_reg(dfd, name, O_WRONLY | O_APPEND, 0, NULL, NULL);
	close(dfd);
	return fd;
}

static int proc_logfd(struct proc *p)
{
	if (p->logfd < 0 && p->log_wanted) {
		struct run *r = p->step->run;
		const char *id = r->plan->steps[p->step->idx].id;
		int fd = log_open(p->eng, r->name, id, p->step->attempt);
		if (fd >= 0) {
			p->logfd = fd;
			p->step->log = 1;
		} else {
			/* said once, not at every line */
			p->log_wanted = false;
			eng_log(p->eng, "run %s step %s: cannot open its log: %s", r->name, id, strerror(-fd));
		}
	}
	return p->logfd;
}

/* Write whole lines TEXT[0..N) to the step's log, and to the sandbox's logs
 * with each line prefixed "[STEP_ID] ". */
/* Keep the last non-empty line of TEXT[0..N) (whole lines, or a piece of a
 * long one) in P->last_line, for a failure's signature. */
static void track_last(struct proc *p, const char *text, size_t n)
{
	const char *end = text + n;
	while (end > text) {
		const char *le = end[-1] == '\n' ? end - 1 : end, *ls = le;
		while (ls > text && ls[-1] != '\n')
			ls--;
		const char *a = ls, *b = le;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t' || b[-1] == '\r'))
			b--;
		while (a < b && (*a == ' ' || *a == '\t'))
			a++;
		if (b > a) {
			size_t len = (size_t)(b - a);
			if (len >= sizeof(p->last_line)) {
				len = sizeof(p->last_line) - 1;
				while (len && ((unsigned char)a[len] & 0xc0) == 0x80)
					len--;	/* whole characters only */
			}
			memcpy(p->last_line, a, len);
			p->last_line[len] = '\0';
			return;
		}
		end = ls;
	}
}

static void proc_write_lines(struct proc *p, const char *text, size_t n)
{
	struct orch_engine *e = p->eng;
	if (p->step->run->sb->win)
		win_activity(p->step->run->sb);	/* output is activity (SPEC §9) */
	if (p->track_last)
		track_last(p, text, n);
	if (proc_logfd(p) >= 0)
		logfile_append(p->logfd, &p->step->logw, text, n, e->log_cap, NULL);
	if (p->sblogfd < 0 && !p->sblog_failed) {
		int fd = sb_logs_open(e, p->step->run->sb, true);
		if (fd < 0)
			p->sblog_failed = true;	/* said once (sb_logs_open), not at every line */
		else
			p->sblogfd = fd;
	}
	if (p->sblogfd < 0) {
		eng_changed(e, OCH_LOG, p->step->rowid, 0);
		return;
	}
	const char *id = p->step->run->plan->steps[p->step->idx].id;
	struct sbuf sb = SBUF_INIT;
	for (const char *line = text, *end = text + n; line < end;) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		size_t len = nl ? (size_t)(nl - line) + 1 : (size_t)(end - line);
		sbuf_addf(&sb, "[%s] ", id);
		sbuf_add(&sb, line, len);
		line += len;
	}
	if (!sbuf_failed(&sb))
		logfile_append(p->sblogfd, &p->step->run->sb->logw, sb.buf, sb.len, e->log_cap, NULL);
	sbuf_release(&sb);
	eng_changed(e, OCH_LOG, p->step->rowid, p->step->run->sb->rowid);
}

/* Finish the log of an attempt: the unterminated last line gets its newline. */
static void proc_flush(struct proc *p)
{
	if (p->partial.len) {
		sbuf_addc(&p->partial, '\n');
		if (!sbuf_failed(&p->partial))
			proc_write_lines(p, p->partial.buf, p->partial.len);
		sbuf_reset(&p->partial);
	}
}

/* Append output, writing only whole lines so readers never see a torn one.
 * A line longer than 64 KiB is written in pieces. */
static void proc_output(struct proc *p, const char *buf, size_t n)
{
	sbuf_add(&p->partial, buf, n);
	if (sbuf_failed(&p->partial)) {
		sbuf_release(&p->partial);
		return;
	}
	char *nl = memrchr(p->partial.buf, '\n', p->partial.len);
	size_t whole = nl ? (size_t)(nl - p->partial.buf) + 1 : 0;
	if (!whole && p->partial.len >= 65536)
		whole = p->partial.len;
	if (!whole)
		return;
	proc_write_lines(p, p->partial.buf, whole);
	memmove(p->partial.buf, p->partial.buf + whole, p->partial.len - whole);
	p->partial.len -= whole;
	p->partial.buf[p->partial.len] = '\0';
}

/* Read what the pipe holds now; close it at EOF. */
static void proc_drain(struct orch_engine *e, struct proc *p, int max_reads)
{
	char buf[65536];
	while (p->wout.fd >= 0 && max_reads-- > 0) {
		ssize_t n = read(p->wout.fd, buf, sizeof(buf));
		if (n > 0) {
			proc_output(p, buf, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		loop_watch_close(&e->loop, &p->wout);	/* EOF or error */
	}
}

static void out_cb(struct loop_watch *w, uint32_t events)
{
	struct proc *p = w->data;
	(void)events;
	/* bounded, so one chatty step cannot starve the loop */
	proc_drain(p->eng, p, 4);
}

/* The attempt's process has ended (reaped): record what it means. */
static void attempt_ended(struct orch_engine *e, struct step *s, int status, enum kill_why why,
			  const struct proc *p);

/* The attempt is no longer degraded: its sandbox counts one fewer. */
static void proc_undegrade(struct proc *p)
{
	if (!p->degraded)
		return;
	p->degraded = false;
	struct sandbox *sb = p->step->run->sb;
	if (sb && sb->degraded)
		sb->degraded--;
}

/* Close what an attempt holds open: its watches, timers and fds. An attempt
 * that ends degraded leaves its sandbox's count. */
static void proc_close(struct orch_engine *e, struct proc *p)
{
	proc_undegrade(p);
	loop_watch_close(&e->loop, &p->wpid);
	loop_watch_close(&e->loop, &p->wout);
	loop_timer_cancel(&e->loop, &p->timer);
	loop_timer_cancel(&e->loop, &p->hb_timer);
	if (p->logfd >= 0)
		close(p->logfd);
	if (p->sblogfd >= 0)
		close(p->sblogfd);
	if (p->errfd >= 0)
		close(p->errfd);
	p->logfd = p->sblogfd = p->errfd = -1;
	p->log_wanted = false;
	sbuf_release(&p->partial);
	cg_attempt_end(&e->cg, &p->cg);
}

/* An attempt with limits ended with STATUS (SPEC §10): its usage, from its
 * cgroup, and when it failed by a limit (not by orchfs's doing) the reason
 * and a policy.violation event naming the limit. */
static void limits_ended(struct orch_engine *e, struct step *s, struct proc *p, int status)
{
	struct run *r = s->run;
	const struct plan_step *ps = &r->plan->steps[s->idx];
	struct cg_usage u = { .have_mem = false };
	cg_usage_read(&e->cg, &p->cg, &u);
	s->usage_set = p->cg.rel != NULL;
	s->usage_mem_set = u.have_mem;
	s->usage_cpu_set = u.have_cpu;
	s->usage_mem = u.memory_peak;
	s->usage_cpu_ns = u.cpu_ns;
	if (p->why != KILL_NONE || s->reason || (WIFEXITED(status) && WEXITSTATUS(status) == 0))
		return;
	long long cpu_sec = min_set(ps->limits.cpu_sec, r->plan->sandbox.limits.cpu_sec);
	int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	const char *limit = NULL;
	if (u.oom)
		limit = "memory";
	else if (cpu_sec && (sig == SIGXCPU || (WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGXCPU) ||
			     (sig == SIGKILL && u.have_cpu && u.cpu_ns >= cpu_sec * 1000000000LL)))
		limit = "cpu";
	else if (u.pids_max)
		limit = "pids";
	if (!limit)
		return;
	s->reason = !strcmp(limit, "memory") ? "limit:memory" : !strcmp(limit, "cpu") ? "limit:cpu" : "limit:pids";
	struct actor old = eng_actor_set(e, ACTOR_NONE);	/* the engine's doing */
	json_t *x = json_pack("{s:s, s:s, s:i}", "limit", limit, "reason", s->reason, "attempt",
			      (json_int_t)s->attempt);
	const struct plan_limits *sl = &ps->limits, *sbl = &r->plan->sandbox.limits;
	long long v = !strcmp(limit, "memory") ? min_set(sl->memory_mb, sbl->memory_mb)
		    : !strcmp(limit, "cpu")  ? cpu_sec
					      : min_set(sl->pids, sbl->pids);
	if (x && v)
		json_object_set_new(x, !strcmp(limit, "memory") ? "memory_mb" : !strcmp(limit, "cpu") ? "cpu_sec" : "pids",
				    json_integer(v));
	ev_emit(e, "policy.violation", r, s, r->sb, x);
	eng_actor_restore(e, old);
}

static void pid_cb(struct loop_watch *w, uint32_t events)
{
	struct proc *p = w->data;
	struct orch_engine *e = p->eng;
	struct step *s = p->step;
	struct run *r = s->run;
	int status = 0;
	(void)events;
	/* The leader is a zombie: its PID, hence the group, cannot be reused
	 * yet. Whatever it left running in its group goes with it. */
	proc_kill_group(p->pid, SIGKILL);
	int rc;
	if (p->no_pidfd) {
		/* the SIGCHLD handling reaped it already */
		if (!p->reaped)
			return;
		status = p->status;
		rc = 0;
	} else {
		rc = proc_reap(w->fd, &status);
	}
	if (rc == -EAGAIN)
		return;
	if (rc)
		status = W_EXITCODE(255, 0);
	/* what is in the pipe now, within reason: a process that left the group
	 * may hold it open and keep writing */
	proc_drain(e, p, 16);
	proc_flush(p);
	int err = 0;
	if (p->errfd >= 0 && read(p->errfd, &err, sizeof(err)) == sizeof(err))
		s->reason = "spawn_failed";	/* the trampoline could not exec: it said why in the log */
	enum kill_why why = p->why;
	if (p->cg.rel || plan_limits_any(&r->plan->steps[s->idx].limits) ||
	    plan_limits_any(&r->plan->sandbox.limits))
		limits_ended(e, s, p, status);
	proc_close(e, p);
	s->proc = NULL;
	p->next_dead = e->dead;	/* the loop may still hold its watches this turn */
	e->dead = p;
	r->nrunning--;
	e->running--;
	if (r->sb && r->sb->health)
		health_sync(e, r->sb);	/* nothing runs in it any more: checks stop */
	activity_step_end(r->sb);
	if (e->cfg.jobs)
		e->sched_all = true;
	r->sched = true;
	struct actor old = eng_actor_set(e, p->by);
	attempt_ended(e, s, status, why, p);
	eng_actor_restore(e, old);
}

/* Send SIG to an attempt's processes. A plain step is its process group. A
 * sandboxed one is bubblewrap and what runs under it, all in bubblewrap's
 * group (see step_argv_build): SIGKILL goes to the group, the sandbox's
 * init with it (its PID namespace dies with it, whatever of it has left the
 * group). Bubblewrap forwards no signal and SIGTERM would end the init at
 * once, so another signal goes to the processes under bubblewrap; with none
 * there yet (bubblewrap is setting the sandbox up), the group gets SIGKILL. */
static void proc_signal(struct proc *p, int sig)
{
	if (!p->sandboxed || sig == SIGKILL) {
		proc_kill_group(p->pid, sig);
		return;
	}
	if (proc_signal_tree(p->pid, sig, "bwrap") == 0)
		proc_kill_group(p->pid, SIGKILL);
}

/* The step's timer: first its timeout, then the end of the grace period. */
static void proc_timer_cb(struct loop_timer *t)
{
	struct proc *p = t->data;
	if (!p->kill_sent) {
		proc_term(p->eng, p, KILL_TIMEOUT);
		return;
	}
	proc_signal(p, SIGKILL);
}

/* No heartbeat for heartbeat_ttl_sec: with a heartbeat_grace_sec the attempt
 * (and so its sandbox) is degraded and the timer waits for the grace's end;
 * without one, or at that end, the attempt is stopped. */
static void hb_timer_cb(struct loop_timer *t)
{
	struct proc *p = t->data;
	struct orch_engine *e = p->eng;
	struct step *s = p->step;
	struct run *r = s->run;
	const struct plan_step *ps = &r->plan->steps[s->idx];
	int64_t silent = clock_mono_ms() - p->hb_mono;
	if (ps->heartbeat_grace_sec > 0 && !p->degraded && r->sb &&
	    !loop_timer_set(&e->loop, &p->hb_timer,
			    p->hb_mono + (int64_t)((ps->heartbeat_ttl_sec + ps->heartbeat_grace_sec) * 1000))) {
		p->degraded = true;
		r->sb->degraded++;
		ev_emit(e, "sandbox.degraded", r, s, NULL,
			json_pack("{s:i, s:I, s:f, s:f}", "attempt", (json_int_t)s->attempt, "silent_ms",
				  (json_int_t)silent, "heartbeat_ttl_sec", ps->heartbeat_ttl_sec,
				  "heartbeat_grace_sec", ps->heartbeat_grace_sec));
		return;
	}
	eng_log(e, "run %s step %s: no heartbeat for %gs: stopping it", r->name, ps->id, silent / 1000.0);
	proc_term(e, p, KILL_HEARTBEAT);
}

/* Ask an attempt to stop: SIGTERM now, SIGKILL when the step's
 * kill_grace_sec has passed. The first reason sticks, except that a cancel or
 * an interruption overrides a timeout or a missed heartbeat in progress (and
 * an interruption, which the daemon's stop is, overrides a cancel). */
static void proc_term(struct orch_engine *e, struct proc *p, enum kill_why why)
{
	/* it may have ended on its own in this very turn: then its exit, not
	 * this reason, says how the attempt went (pid_cb reaps it) */
	if (p->no_pidfd ? p->reaped : proc_exited(p->wpid.fd))
		return;
	if (p->why == KILL_NONE || why == KILL_INTERRUPT ||
	    (why == KILL_CANCEL && p->why != KILL_INTERRUPT)) {
		p->why = why;
		p->by = e->actor;	/* its end, later, names who stopped it */
	}
	loop_timer_cancel(&e->loop, &p->hb_timer);
	if (p->kill_sent)
		return;
	p->kill_sent = true;
	double grace = p->step->run->plan->steps[p->step->idx].kill_grace_sec;
	if (grace <= 0 || loop_timer_set(&e->loop, &p->timer, clock_mono_ms() + (int64_t)(grace * 1000))) {
		proc_signal(p, SIGKILL);	/* no grace period (or no way to time one) */
	} else {
		proc_signal(p, SIGTERM);
	}
	/* frozen by its sandbox's pause (run_freeze): it must run to its end */
	if (p->frozen_at)
		proc_thaw(e, p);
}

/* "KEY=VALUE" list with later entries replacing earlier ones of the same KEY.
 * The daemon's own entries are borrowed from environ, not copied (a step's
 * environment is built at every spawn). */
struct envv {
	char **v;
	bool *owned;		/* v[i] is ours to free */
	size_t n, cap;
	bool oom;
};

static void env_add(struct envv *ev, const char *kv, bool owned, bool dedup)
{
	const char *eq = strchr(kv, '=');
	size_t klen = eq ? (size_t)(eq - kv) : strlen(kv);
	char *copy = (char *)kv;
	for (size_t i = 0; dedup && i < ev->n; i++)
		if (!strncmp(ev->v[i], kv, klen) && ev->v[i][klen] == '=') {
			if (ev->owned[i])
				orch_free(ev->v[i]);
			ev->v[i] = copy;
			ev->owned[i] = owned;
			return;
		}
	if (ev->n + 2 > ev->cap) {
		size_t cap = ev->cap ? ev->cap * 2 : 64;
		char **nv = orch_reallocarray(ev->v, cap, sizeof(char *));
		if (nv)
			ev->v = nv;
		bool *no = nv ? orch_reallocarray(ev->owned, cap, sizeof(bool)) : NULL;
		if (!no) {
			if (owned)
				orch_free(copy);
			ev->oom = true;
			return;
		}
		ev->owned = no;
		ev->cap = cap;
	}
	ev->owned[ev->n] = owned;
	ev->v[ev->n++] = copy;
	ev->v[ev->n] = NULL;
}

static void env_put(struct envv *ev, const char *kv, bool owned) { env_add(ev, kv, owned, true); }

static void env_putf(struct envv *ev, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void env_putf(struct envv *ev, const char *fmt, ...)
{
	struct sbuf sb = SBUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	sbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	if (sbuf_failed(&sb)) {
		sbuf_release(&sb);
		ev->oom = true;
		return;
	}
	env_put(ev, sbuf_detach(&sb, NULL), true);
}

static void env_release(struct envv *ev)
{
	for (size_t i = 0; i < ev->n; i++)
		if (ev->owned[i])
			orch_free(ev->v[i]);
	orch_free(ev->v);
	orch_free(ev->owned);
	memset(ev, 0, sizeof(*ev));
}

/* The environment of SPEC §3: orchfs's own, the plan's env, the step's env,
 * then ORCHFS_* and PORTn, and PORT_NAME for named ports (SPEC §11). PS
 * is R's step (ATTEMPT its attempt), or a health check's stand-in
 * (core/health.h: no id, no env of its own). */
static int step_env(struct orch_engine *e, struct run *r, const struct plan_step *ps, unsigned attempt,
		    struct envv *ev)
{
	struct sandbox *sb = r->sb;
	/* the daemon's own names are unique: only what follows may replace one */
	for (char **p = environ; p && *p; p++)
		env_add(ev, *p, false, false);
	for (size_t i = 0; i < r->plan->nenv; i++)
		env_put(ev, r->plan->env[i], false);
	for (size_t i = 0; i < ps->nenv; i++)
		env_put(ev, ps->env[i], false);
	env_putf(ev, "ORCHFS_RUN_ID=%s", r->name);
	if (ps->id) {
		env_putf(ev, "ORCHFS_STEP_ID=%s", ps->id);
		env_putf(ev, "ORCHFS_ATTEMPT=%u", attempt);
	}
	env_putf(ev, "ORCHFS_SANDBOX=%s/sandboxes/%s", e->mountpoint, sb->name);
	env_putf(ev, "ORCHFS_WORKSPACE=%s", sb->workspace);
	env_putf(ev, "ORCHFS_MOUNT=%s", e->mountpoint);
	/* the mark by which the next daemon finds what a dead one left running */
	env_putf(ev, "ORCHFS_STEP_OF=%s", e->state_dir);
	for (int i = 0; i < sb->nports; i++)
		env_putf(ev, "PORT%d=%d", i, sb->ports[i]);
	for (int i = 0; sb->port_names && i < sb->nports; i++) {
		char var[PLAN_PORT_VAR_MAX];
		plan_port_var(var, sb->port_names[i]);
		env_putf(ev, "%s=%d", var, sb->ports[i]);
	}
	return ev->oom ? -ENOMEM : 0;
}

/* The command line of an attempt, one of:
 *   COMMAND...                                   the daemon's own user's step
 *   BWRAP OPTIONS [--tmpfs FUSE]... -- COMMAND... the same, sandboxed
 *   HELPER --exec-step ... -- COMMAND...         another user's (a root daemon):
 *   HELPER --exec-step ... -- BWRAP ... -- COMMAND...  the trampoline of
 *       core/exec.h switches to the user first, then starts bubblewrap as
 *       that user (a user namespace), having put in the FUSE mounts it sees.
 * Nothing privileged sees the step's environment: the trampoline gets it on
 * a descriptor, bubblewrap runs as the user (or as the daemon's own user). */
struct step_argv {
	char **v;		/* borrowed or in owned[] */
	size_t n, cap;
	char *owned[8];
	size_t nowned;
	bool oom;
};

static char *own(struct step_argv *a, char *s)
{
	if (!s || a->nowned == ARRAY_SIZE(a->owned)) {
		orch_free(s);
		a->oom = true;
		return NULL;
	}
	return a->owned[a->nowned++] = s;
}

static void av_add(struct step_argv *a, const char *s)
{
	if (!s || a->oom) {
		a->oom = true;
		return;
	}
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		char **v = orch_reallocarray(a->v, cap, sizeof(char *));
		if (!v) {
			a->oom = true;
			return;
		}
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n++] = (char *)s;
}

static void av_addv(struct step_argv *a, const char *const *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		av_add(a, v[i]);
}

static void step_argv_release(struct step_argv *a)
{
	for (size_t i = 0; i < a->nowned; i++)
		orch_free(a->owned[i]);
	orch_free(a->v);
}

/* What the trampoline enforces of an attempt's limits (SPEC §10): the
 * cgroup.procs files it joins, the setrlimit() ones (0: none). */
struct step_limits {
	char **procs;
	size_t nprocs;
	long long cpu_sec, open_files;
};

static void step_limits_release(struct step_limits *l)
{
	for (size_t k = 0; k < l->nprocs; k++)
		orch_free(l->procs[k]);
	orch_free(l->procs);
	l->procs = NULL;
	l->nprocs = 0;
}

/* Build the fixed part (TRAMP: through the trampoline, as the run's user),
 * with LIM (NULL: none). 0 or -ENOMEM. */
static int step_argv_build(struct orch_engine *e, struct run *r, const struct plan_step *ps, bool sandboxed,
			   bool tramp, const struct step_limits *lim, struct step_argv *a)
{
	struct sandbox *sb = r->sb;
	size_t hide = 0, base = 0;
	a->n = 0;
	if (tramp) {
		/* as the run's user, where the daemon may switch; else (limits
		 * alone bring the trampoline in) as the daemon's */
		bool as_user = geteuid() == 0 && r->uid != 0;
		const char *t[] = { e->exec_helper, EXEC_STEP_FLAG,
				    own(a, orch_asprintf("%d", (int)getpid())),
				    as_user ? own(a, orch_asprintf("%u", (unsigned)r->uid)) : "-",
				    as_user ? own(a, orch_asprintf("%u", (unsigned)r->gid)) : "-",
				    sb->workspace, ps->cwd ? ps->cwd : ".", "-" };
		av_addv(a, t, ARRAY_SIZE(t));
		hide = a->n - 1;	/* the HIDE argument, set below */
		for (size_t k = 0; lim && k < lim->nprocs; k++) {
			av_add(a, EXEC_OPT_CGROUP);
			av_add(a, lim->procs[k]);
		}
		if (lim && lim->cpu_sec) {
			av_add(a, EXEC_OPT_RLIMIT_CPU);
			av_add(a, own(a, orch_asprintf("%lld", lim->cpu_sec)));
		}
		if (lim && lim->open_files) {
			av_add(a, EXEC_OPT_RLIMIT_NOFILE);
			av_add(a, own(a, orch_asprintf("%lld", lim->open_files)));
		}
		av_add(a, "--");
		base = a->n;
	}
	if (sandboxed) {
		/* SPEC §5: the system read-only, a private /tmp, the state directory
		 * and the mount hidden but for the workspace and the sandbox's own
		 * directory, read-write at their own paths, other FUSE mounts
		 * hidden; a PID namespace, and a network one with only loopback
		 * when "network" is false; no capabilities, no user namespaces. The
		 * cwd is the one bubblewrap was started in (it goes back there by
		 * its path, inside: the workspace is at its own path) */
		char *sbdir = own(a, orch_asprintf("%s/sandboxes/%s", e->mountpoint, sb->name));
		/* bubblewrap makes the directories leading to a bind's destination
		 * in a tmpfs mode 0700: a step that is not root could not pass.
		 * --dir with --perms makes them (and their parents) 0755 first. */
		char *wsup = own(a, orch_strndup(sb->workspace, (size_t)(strrchr(sb->workspace, '/') - sb->workspace)));
		char *sbup = own(a, orch_strndup(sbdir ? sbdir : "", sbdir ? (size_t)(strrchr(sbdir, '/') - sbdir) : 0));
		if (!sbdir || !wsup || !sbup)
			return -ENOMEM;
		/* no --new-session: bubblewrap's setsid() would take the
		 * sandbox's init out of the process group the daemon kills, and
		 * the init ties its life to bubblewrap's only at the end of the
		 * setup: bubblewrap killed before that left it running (and it
		 * went on to start the step). The daemon starts bubblewrap in a
		 * session of its own instead (step_spawn): the step has no
		 * terminal all the same, and the whole sandbox stays in
		 * bubblewrap's group, down to its init, which takes the PID
		 * namespace along */
		const char *b[] = { e->bwrap_path, "--die-with-parent", "--unshare-pid" };
		av_addv(a, b, ARRAY_SIZE(b));
		if (e->cfg.bwrap_userns) {
			const char *u[] = { "--unshare-user", "--disable-userns" };
			av_addv(a, u, ARRAY_SIZE(u));
		}
		const char *c[] = { "--cap-drop", "ALL", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc" };
		av_addv(a, c, ARRAY_SIZE(c));
		if (tramp) {
			char *at = own(a, orch_asprintf("%zu", a->n - base));
			if (at && !a->oom)
				a->v[hide] = at;
		} else {
			for (size_t i = 0; i < e->nfuse_hide; i++) {
				av_add(a, "--tmpfs");
				av_add(a, e->fuse_hide[i]);
			}
		}
		const char *d[] = {
			"--perms", "01777", "--tmpfs", "/tmp",	/* the step may not be root */
			"--tmpfs", e->state_dir, "--tmpfs", e->mountpoint,
			"--perms", "0755", "--dir", wsup, "--bind", sb->workspace, sb->workspace,
			"--perms", "0755", "--dir", sbup, "--bind", sbdir, sbdir,
			/* the tmpfs hiding them were writable for the binds; not after */
			"--remount-ro", e->state_dir, "--remount-ro", e->mountpoint,
		};
		av_addv(a, d, ARRAY_SIZE(d));
		if (!sb->network)
			av_add(a, "--unshare-net");
		av_add(a, "--");
	}
	if (ps->shell) {
		av_add(a, "/bin/sh");
		av_add(a, "-c");
	}
	av_add(a, ps->command);
	return a->oom ? -ENOMEM : 0;
}

/* What J runs, as R's steps run (core/spawner.h): PS's command line (through
 * the trampoline as R's user with TRAMP, under bubblewrap with SANDBOXED),
 * its environment, its cwd. 0 or -errno. */
static int job_fill(struct orch_engine *e, struct run *r, const struct plan_step *ps, unsigned attempt,
		    bool sandboxed, bool tramp, const struct step_limits *lim, struct spawn_job *j)
{
	struct envv ev = { 0 };
	struct step_argv sa = { .v = NULL };
	int rc;
	if ((rc = step_argv_build(e, r, ps, sandboxed, tramp, lim, &sa)) || (rc = step_env(e, r, ps, attempt, &ev)))
		goto out;
	j->argv = orch_calloc(sa.n + ps->nargs + 1, sizeof(char *));
	if (!j->argv) {
		rc = -ENOMEM;
		goto out;
	}
	size_t n = 0;
	for (size_t k = 0; k < sa.n; k++)
		if (!(j->argv[n++] = orch_strdup(sa.v[k])))
			rc = -ENOMEM;
	for (size_t k = 0; !ps->shell && k < ps->nargs; k++)
		if (!(j->argv[n++] = orch_strdup(ps->args[k])))
			rc = -ENOMEM;
	if (tramp) {
		/* it starts as root: orchfs's own environment; the step's on
		 * EXEC_ENV_FD, read once it is the user's. It finds the cwd and
		 * the command (along the step's PATH) itself, as the user */
		j->envp = exec_clean_env(e->state_dir, r->name, ps->id);
		if (!j->envp)
			rc = -ENOMEM;
		else if ((j->env_fd = exec_env_fd(ev.v, ev.n)) < 0)
			rc = j->env_fd;
	} else {
		const char *path_env = NULL;
		for (size_t k = 0; k < ev.n; k++)
			if (!strncmp(ev.v[k], "PATH=", 5))
				path_env = ev.v[k] + 5;
		if (path_env && !(j->path = orch_strdup(path_env)))
			rc = -ENOMEM;
		/* the child starts in the workspace (bubblewrap keeps it), or
		 * in the step's cwd beneath it, found by the spawner thread */
		if (!(j->cwd = orch_strdup(r->sb->workspace)) || (ps->cwd && !(j->cwd_rel = orch_strdup(ps->cwd))))
			rc = -ENOMEM;
		if (!rc && !(j->envp = orch_strv_pack(ev.v, ev.n)))
			rc = -ENOMEM;
	}
out:
	step_argv_release(&sa);
	env_release(&ev);
	return rc;
}

/* Begin attempt s->attempt+1 of step I: recorded now, its process spawned by
 * run_spawn_queued() once this turn's commit has made the start durable.
 * Spawning first would let a crash in between leave a process nothing knows
 * of, reuse the attempt's number, or run a step of a submission the crash
 * undid. The attempt counts against the run's and the global limits from now. */
/* S begins (an attempt, or an approval's wait): no outcome yet. */
static void step_begin(struct step *s)
{
	s->exit_code = -1;
	s->signal = 0;
	s->reason = NULL;
	s->started_at = clock_wall_ms();
	s->finished_at = s->duration_ms = s->retry_at = 0;
}

static void step_start(struct orch_engine *e, struct run *r, size_t i)
{
	struct step *s = &r->steps[i];
	if (r->plan->steps[i].approval) {
		/* a person decides: no process, no slot (core/supervise.h) */
		step_begin(s);
		step_set(e, s, STEP_AWAITING_APPROVAL);
		step_save(e, s);
		sup_approval_begin(e, s);
		return;
	}
	if (e->nspawn == e->capspawn) {
		size_t cap = e->capspawn ? e->capspawn * 2 : 64;
		struct spawn_req *q = orch_reallocarray(e->spawnq, cap, sizeof(*q));
		if (!q) {
			ready_push(r, i);	/* try again on a later pass */
			return;
		}
		e->spawnq = q;
		e->capspawn = cap;
	}
	s->attempt++;
	s->hdr_pending = true;
	s->counted++;
	step_begin(s);
	step_set(e, s, STEP_RUNNING);
	r->nrunning++;
	e->running++;
	step_save(e, s);	/* its attempt's row is written when it ends */
	e->spawnq[e->nspawn++] = (struct spawn_req){ r->rowid, i, s->attempt, 0 };
}

static void spawn_done(struct loop_work *w, void *ctx);

static void kill_and_reap(struct orch_engine *e, pid_t pid);

/* DIR, a directory of the state directory, opened O_PATH without
 * following a symlink on the way below the state directory or leaving its
 * file system (a step may have replaced one with a link into the mount: the
 * engine would wait for itself), or -1. */
static int open_state_dir(struct orch_engine *e, const char *dir)
{
	size_t n = strlen(e->state_dir);
	if (e->state_fd < 0 || strncmp(dir, e->state_dir, n) || dir[n] != '/')
		return -1;
	struct open_how how = { .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
				.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV };
	return (int)syscall(SYS_openat2, e->state_fd, dir + n + 1, &how, sizeof(how));
}

/* Spawn J on the engine's thread, sparing two thread hand-offs, where the
 * exec cannot wait for our own mount (see core/spawner.h): its command is
 * one a spawner thread found trusted (proc_exe_trusted) lately (bubblewrap,
 * the trampoline, or the step's own), and its cwd is the daemon's (the
 * trampoline finds the step's itself), or the workspace reached without a
 * symlink; a cwd beneath the workspace is the spawner's to find. True when
 * J is done with (spawned, or failed past retrying elsewhere: j->err);
 * false: J goes to a spawner thread, which sees whether its command may
 * come here next time. */
static bool spawn_here(struct orch_engine *e, struct spawn_job *j)
{
	const char *exe = spawner_trusted(&e->spawner, j->argv[0], j->path, clock_mono_ms());
	j->want_trust = true;
	if (!exe || j->cwd_rel)
		return false;
	int dfd = -1;
	if (j->cwd && (dfd = open_state_dir(e, j->cwd)) < 0)
		return false;
	struct proc_spec spec = { .path = exe, .argv = j->argv, .envp = j->envp, .out_fd = j->out_fd,
				  .err_fd = j->err_fd, .env_fd = j->env_fd, .cwd = NULL, .cwd_fd = dfd,
				  .no_wait = true, .new_session = j->new_session };
	j->pid = 0;
	j->pidfd = -1;
	int rc = proc_spawn(&spec, &j->pid, &j->pidfd);
	if (dfd >= 0)
		close(dfd);
	if (rc && j->pid > 0) {
		/* it started, but we cannot follow it (no pidfd): it is killed;
		 * starting it again elsewhere would run it twice */
		kill_and_reap(e, j->pid);
		j->err = rc;
	} else if (rc) {
		/* gone, or no longer what it was: the spawner looks again */
		spawner_distrust(&e->spawner, j->argv[0], j->path);
		return false;
	}
	j->want_trust = false;
	spawn_job_close_fds(j);
	return true;
}

/* Hand the process of an attempt step_start() recorded to the spawner: the
 * engine prepares the log and the pipe (paths of the state directory only),
 * the spawner thread does what touches the plan's paths. */
static void step_spawn(struct orch_engine *e, struct run *r, size_t i)
{
	struct step *s = &r->steps[i];
	const struct plan_step *ps = &r->plan->steps[i];
	int outp[2] = { -1, -1 }, errp[2] = { -1, -1 };
	int rc = 0;
	struct step_limits lim = { .procs = NULL };
	struct proc *p = orch_calloc(1, sizeof(*p));
	struct spawn_job *j = orch_calloc(1, sizeof(*j));

	if (p) {
		/* no fd yet: proc_close() must not take 0 for one */
		p->logfd = p->sblogfd = p->errfd = -1;
		p->wpid.fd = p->wout.fd = -1;
	}
	if (j)
		j->out_fd = j->err_fd = j->env_fd = -1;
	if (!p || !j) {
		rc = -ENOMEM;
		goto spawn_failed;
	}
	p->eng = e;
	p->step = s;
	p->track_last = ps->same_failures && ps->retries;
	/* its workspace is watched before the step can change it */
	activity_step_start(e, r->sb);
	/* through descriptors, never following a symlink: the engine opens
	 * nothing a step could point into the mount. A log made already (an
	 * earlier attempt wrote, a reader opened it) gets this attempt's
	 * separator now; else it is made with all of them when first written
	 * (log_open), which also replaces what is not a regular file. */
	p->log_wanted = true;
	s->hdr_pending = false;
	int lfd = s->log < 0 ? -ENOENT : log_reopen(e, r->name, ps->id);
	if (lfd >= 0) {
		p->logfd = lfd;
		s->log = 1;
		char hdr[64];
		int hn = snprintf(hdr, sizeof(hdr), "=== attempt %u ===\n", s->attempt);
		write_all(p->logfd, hdr, (size_t)hn);
		eng_changed(e, OCH_LOG, s->rowid, 0);
	} else if (lfd == -ENOENT || lfd == -EIO) {
		s->log = -1;
	} else {
		rc = lfd;
		eng_log(e, "run %s step %s: cannot open its log: %s", r->name, ps->id, strerror(-rc));
		goto spawn_failed;
	}

	bool sandboxed = r->sb->isolation == ISOLATION_BWRAP && e->bwrap_path;
	/* steps run as the plan's submitter: only a daemon running as root can
	 * switch (submit() refuses other users' plans otherwise), through the
	 * trampoline; otherwise the command (or bubblewrap) is exec'd directly */
	bool tramp = geteuid() == 0 && r->uid != 0;
	/* limits (SPEC §10): the trampoline enforces them, a cgroup where the
	 * machine gives orchfs one (also for the usage); nothing of this for
	 * a step without limits */
	const struct plan_limits *sbl = &r->plan->sandbox.limits, *sl = &ps->limits;
	bool limited = plan_limits_any(sl) || plan_limits_any(sbl);
	if (limited) {
		tramp = true;
		lim.cpu_sec = min_set(sl->cpu_sec, sbl->cpu_sec);
		lim.open_files = min_set(sl->open_files, sbl->open_files);
		if (e->cg.version) {
			rc = cg_attempt_make(&e->cg, r->sb->rowid, sbl, s->rowid, s->attempt, sl, &p->cg);
			if (!rc && !(lim.procs = cg_procs_files(&e->cg, &p->cg, &lim.nprocs)))
				rc = -ENOMEM;
			if (rc && (plan_limits_cgroup(sl) || plan_limits_cgroup(sbl))) {
				eng_log(e, "run %s step %s: cannot make its cgroup: %s", r->name, ps->id,
					strerror(-rc));
				goto spawn_failed;
			}
			if (rc)
				cg_attempt_end(&e->cg, &p->cg);
			rc = 0;	/* only the usage is missing */
		} else if (plan_limits_cgroup(sl) || plan_limits_cgroup(sbl)) {
			/* a plan from before cgroups went away (a restart) */
			rc = -ENOTSUP;
			eng_log(e, "run %s step %s: its limits need a cgroup: %s", r->name, ps->id, e->cg.why);
			goto spawn_failed;
		}
	}
	if (sandboxed && !eng_bwrap_for(e, r->uid)) {
		/* a bwrap sandbox of a user, from when it could run them (or
		 * another machine): not run unconfined behind the user's back */
		rc = -EPERM;
		if (proc_logfd(p) >= 0) {
			static const char why[] = "orchfs: cannot start the step: " ENG_BWRAP_USERS_WHY "\n";
			write_all(p->logfd, why, sizeof(why) - 1);
		}
		eng_log(e, "run %s step %s: %s", r->name, ps->id, ENG_BWRAP_USERS_WHY);
		goto spawn_failed;
	}
	rc = job_fill(e, r, ps, s->attempt, sandboxed, tramp, limited ? &lim : NULL, j);
	step_limits_release(&lim);
	if (rc)
		goto spawn_failed;
	/* the output; and for the trampoline, where it says why it could not exec */
	if (pipe2(outp, O_CLOEXEC) < 0 || (tramp && pipe2(errp, O_CLOEXEC) < 0)) {
		rc = -errno;
		goto spawn_failed;
	}
	fcntl(outp[0], F_SETFL, O_NONBLOCK);
	if (tramp)
		fcntl(errp[0], F_SETFL, O_NONBLOCK);
	p->wout = (struct loop_watch){ .fd = outp[0], .cb = out_cb, .data = p };
	p->errfd = errp[0];
	p->sandboxed = sandboxed;
	j->new_session = sandboxed;	/* see step_argv_build */
	j->out_fd = outp[1];
	j->err_fd = errp[1];
	outp[0] = outp[1] = errp[0] = errp[1] = -1;
	j->owner = p;
	j->done.fn = spawn_done;
	/* the key, as the run may be forgotten before the job comes back */
	p->spawn_run = r->rowid;
	p->spawn_attempt = s->attempt;
	if (spawn_here(e, j))
		spawn_done(&j->done, e);
	else
		spawner_submit(&e->spawner, j);
	return;

spawn_failed:
	step_limits_release(&lim);
	if (p && proc_logfd(p) >= 0) {
		char msg[512];
		int m = snprintf(msg, sizeof(msg), "orchfs: cannot start the step: %s\n", strerror(-rc));
		write_all(p->logfd, msg, (size_t)(m < (int)sizeof(msg) ? m : (int)sizeof(msg) - 1));
	}
	if (p)
		proc_close(e, p);
	for (int k = 0; k < 2; k++) {
		if (outp[k] >= 0)
			close(outp[k]);
		if (errp[k] >= 0)
			close(errp[k]);
	}
	orch_free(p);
	spawn_job_free(j);
	attempt_not_started(e, r, s, rc);
}

/* An attempt that got no process: a failed attempt (spawn_failed). */
static void attempt_not_started(struct orch_engine *e, struct run *r, struct step *s, int rc)
{
	eng_log(e, "run %s step %s: cannot start: %s", r->name, r->plan->steps[s->idx].id, strerror(-rc));
	ev_emit(e, "step.started", r, s, NULL, json_pack("{s:i}", "attempt", (json_int_t)s->attempt));
	s->reason = "spawn_failed";
	r->nrunning--;
	e->running--;
	if (r->sb && r->sb->health)
		health_sync(e, r->sb);
	activity_step_end(r->sb);
	r->sched = true;
	attempt_ended(e, s, W_EXITCODE(rc == -ENOENT ? 127 : 126, 0), KILL_NONE, NULL);
}

static void reap_done(struct loop_work *w, void *ctx) { spawn_job_free((struct spawn_job *)w); }

/* Kill PID, with what it started in its process group (it leads one: not
 * yet reaped, the group cannot be another's), and leave its reaping to a
 * spawner thread: the engine must not wait for a process that may be
 * closing a file of our own mount (its FLUSH would wait for the engine). */
static void kill_and_reap(struct orch_engine *e, pid_t pid)
{
	proc_kill_group(pid, SIGKILL);
	struct spawn_job *j = orch_calloc(1, sizeof(*j));
	if (!j)
		return;	/* a zombie until the daemon ends */
	j->out_fd = j->err_fd = j->env_fd = -1;
	j->reap = true;
	j->pid = pid;
	j->done.fn = reap_done;
	spawner_submit(&e->spawner, j);
}

void run_kill_and_reap(struct orch_engine *e, pid_t pid) { kill_and_reap(e, pid); }

int run_spawn_check(struct orch_engine *e, struct run *holder, char *const *argv, size_t argc, int out_fd,
		    void (*done)(struct loop_work *, void *), void *owner)
{
	/* a check runs as the sandbox's owner, whoever's run holds it now: a
	 * check a user set must never run as root because root's run came by
	 * (job_fill keeps nothing of R but copies) */
	struct run as_owner = *holder, *r = &as_owner;
	r->uid = holder->sb->uid;
	r->gid = holder->sb->gid;
	bool sandboxed = r->sb->isolation == ISOLATION_BWRAP && e->bwrap_path;
	bool tramp = geteuid() == 0 && r->uid != 0;
	struct spawn_job *j = sandboxed && !eng_bwrap_for(e, r->uid) ? NULL : orch_calloc(1, sizeof(*j));
	if (!j) {
		close(out_fd);
		return sandboxed && !eng_bwrap_for(e, r->uid) ? -EPERM : -ENOMEM;
	}
	j->out_fd = out_fd;
	j->err_fd = j->env_fd = -1;
	/* a step without id, env or cwd of its own: argv as it is */
	struct plan_step ps = { .command = argv[0], .args = (char **)argv + 1, .nargs = argc - 1 };
	int rc = job_fill(e, r, &ps, 0, sandboxed, tramp, NULL, j);
	if (rc) {
		spawn_job_free(j);
		return rc;
	}
	j->new_session = sandboxed;	/* see step_argv_build */
	j->owner = owner;
	j->done.fn = done;
	spawner_submit(&e->spawner, j);
	return 0;
}

/* The spawner is done with a job: attach the process to its attempt. */
static void spawn_done(struct loop_work *w, void *ctx)
{
	struct orch_engine *e = ctx;
	struct spawn_job *j = (struct spawn_job *)w;
	struct proc *p = j->owner;
	struct run *r = run_find_loaded(e, p->spawn_run);
	struct step *s = r && r->active ? p->step : NULL;
	if (j->trusted_exe)
		spawner_trust(&e->spawner, j->argv[0], j->path, j->trusted_exe, clock_mono_ms());
	if (!s || s->proc || s->attempt != p->spawn_attempt || step_state_of(s) != STEP_RUNNING) {
		/* its run was forgotten meanwhile (a failed commit undid it) */
		if (!j->err) {
			if (j->pidfd >= 0)
				close(j->pidfd);
			kill_and_reap(e, j->pid);
		}
		proc_close(e, p);
		orch_free(p);
		spawn_job_free(j);
		return;
	}
	if (j->err) {
		char msg[512];
		const char *cwd = j->cwd_rel ? j->cwd_rel : j->cwd;
		int m = j->err == -EXDEV && j->cwd_rel
				? snprintf(msg, sizeof(msg), "orchfs: cannot run \"%s\": cwd \"%s\" leads outside the"
					   " workspace\n", j->argv[0], j->cwd_rel)
				: snprintf(msg, sizeof(msg), "orchfs: cannot run \"%s\"%s%s%s: %s\n", j->argv[0],
					   cwd ? " in \"" : "", cwd ? cwd : "", cwd ? "\"" : "", strerror(-j->err));
		if (proc_logfd(p) >= 0)
			write_all(p->logfd, msg, (size_t)(m < (int)sizeof(msg) ? m : (int)sizeof(msg) - 1));
		int rc = j->err;
		proc_close(e, p);
		orch_free(p);
		spawn_job_free(j);
		attempt_not_started(e, r, s, rc);
		return;
	}
	const struct plan_step *ps = &r->plan->steps[s->idx];
	p->pid = j->pid;
	int pidfd = j->pidfd;
	spawn_job_free(j);
	if (pidfd < 0) {
		/* no pidfds here: an eventfd stands in, written at SIGCHLD */
		p->no_pidfd = true;
		e->no_pidfd = true;
		pidfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (pidfd < 0)
			eng_log(e, "run %s step %s: no eventfd: its end will not be seen", r->name, ps->id);
		/* it may have ended already: reaped at SIGCHLD before it was
		 * ours (e->orphans), or not reaped at all (no_pidfd was unset) */
		int st;
		for (unsigned k = 0; k < e->norphans; k++)
			if (e->orphans[k].pid == p->pid) {
				p->status = e->orphans[k].status;
				p->reaped = true;
				e->orphans[k] = e->orphans[--e->norphans];
				break;
			}
		if (!p->reaped && waitpid(p->pid, &st, WNOHANG) == p->pid) {
			p->status = st;
			p->reaped = true;
		}
		uint64_t one = 1;
		if (p->reaped && pidfd >= 0 && write(pidfd, &one, sizeof(one)) < 0)
			eng_log(e, "cannot wake the watch of pid %d", (int)p->pid);
	}
	p->wpid = (struct loop_watch){ .fd = pidfd, .cb = pid_cb, .data = p };
	p->timer = (struct loop_timer)LOOP_TIMER_INIT(proc_timer_cb, p);
	p->hb_timer = (struct loop_timer)LOOP_TIMER_INIT(hb_timer_cb, p);
	p->start_mono = clock_mono_ms();
	p->hb_mono = p->start_mono;
	int rc;
	if ((rc = loop_watch_add(&e->loop, &p->wpid, EPOLLIN)) ||
	    (rc = loop_watch_add(&e->loop, &p->wout, EPOLLIN))) {
		/* we could not learn of its end: end it now */
		eng_log(e, "run %s step %s: cannot watch the process: %s", r->name, ps->id, strerror(-rc));
		kill_and_reap(e, p->pid);
		proc_close(e, p);
		orch_free(p);
		attempt_not_started(e, r, s, rc);
		return;
	}
	if ((ps->timeout_sec > 0 &&
	     loop_timer_set(&e->loop, &p->timer, p->start_mono + (int64_t)(ps->timeout_sec * 1000))) ||
	    (ps->heartbeat_ttl_sec > 0 &&
	     loop_timer_set(&e->loop, &p->hb_timer,
			    p->start_mono + (int64_t)(ps->heartbeat_ttl_sec * 1000)))) {
		/* a step whose limits cannot be enforced does not run: its exit
		 * (by SIGKILL) comes through pid_cb as a failed attempt */
		eng_log(e, "run %s step %s: no memory for its timers: stopping it", r->name, ps->id);
		kill(p->pid, SIGKILL);
	}
	s->proc = p;
	if (r->sb->health)
		health_sync(e, r->sb);	/* a step runs in it: checks start */
	ev_emit(e, "step.started", r, s, NULL,
		json_pack("{s:i, s:i}", "attempt", (json_int_t)s->attempt, "pid", (json_int_t)p->pid));
	/* stopped while it was being started */
	if (e->stopping)
		proc_term(e, p, KILL_INTERRUPT);
	else if (r->cancelled || r->aborted)
		proc_term(e, p, KILL_CANCEL);
}

struct settle_ctx {
	struct orch_engine *e;
	struct run *r;
};

static void ready_cb(void *ctx, size_t i)
{
	struct settle_ctx *c = ctx;
	ready_push(c->r, i);
}

static void skipped_cb(void *ctx, size_t i)
{
	struct settle_ctx *c = ctx;
	struct run *r = c->r;
	struct step *s = &r->steps[i];
	/* sched_settle already moved the node from PENDING to SKIPPED */
	r->counts[STEP_PENDING]--;
	r->counts[STEP_SKIPPED]++;
	c->e->step_counts[STEP_PENDING]--;
	c->e->step_counts[STEP_SKIPPED]++;
	loop_timer_cancel(&c->e->loop, &s->retry_timer);
	r->dag.nodes[i].waiting = false;
	s->retry_at = 0;
	s->finished_at = clock_wall_ms();
	step_save(c->e, s);
	ev_emit(c->e, "step.skipped", r, s, NULL, NULL);
}

static void run_stop_steps(struct orch_engine *e, struct run *r);

/* Step S has reached final state ST: record it and let the DAG react. */
static void step_final(struct orch_engine *e, struct step *s, enum step_state st)
{
	struct run *r = s->run;
	if (s->sup && s->sup->wait)
		sup_wait_end(e, s, st == STEP_CANCELLED ? "cancelled" : "step ended");
	step_set(e, s, st);
	r->dag.nodes[s->idx].waiting = false;
	loop_timer_cancel(&e->loop, &s->retry_timer);
	s->retry_at = 0;
	s->finished_at = clock_wall_ms();
	s->duration_ms = s->started_at ? s->finished_at - s->started_at : 0;
	step_save(e, s);
	if (s->started_at)
		step_hist_add(&e->step_hist[st], s->duration_ms);
	if (s->started_at && s->attempt)
		attempt_save(e, s, step_state_name(st));
	char type[32];
	snprintf(type, sizeof(type), "step.%s", step_state_name(st));
	json_t *x = json_pack("{s:i}", "attempt", (json_int_t)s->attempt);
	if (x && s->started_at && st != STEP_CANCELLED) {
		json_object_set_new(x, "exit_code", s->exit_code >= 0 ? json_integer(s->exit_code) : json_null());
		if (s->signal)
			json_object_set_new(x, "signal", json_integer(s->signal));
		json_object_set_new(x, "duration_ms", json_integer(s->duration_ms));
	}
	if (x && s->reason)
		json_object_set_new(x, "reason", json_string(s->reason));
	ev_emit(e, type, r, s, NULL, x);
	struct settle_ctx c = { e, r };
	if (sched_settle(&r->dag, s->idx, ready_cb, skipped_cb, &c) == SCHED_ABORT && !r->aborted &&
	    !r->cancelled) {
		r->aborted = true;
		run_save(e, r);
		run_stop_steps(e, r);
	}
	r->sched = true;
}

/* Failed attempt of S (OUTCOME), which would be retried: does it complete a
 * loop (SPEC §8: same_failures in a row with one signature)? Then the step
 * waits for a person in state needs_human, and true. */
static bool loop_detected(struct orch_engine *e, struct step *s, const struct proc *p,
			  enum step_state outcome)
{
	struct run *r = s->run;
	const struct plan_step *ps = &r->plan->steps[s->idx];
	struct sup *su = sup_of(e, s);
	if (!su)
		return false;
	char *sig = sup_signature(s->exit_code, s->signal, p ? p->last_line : NULL);
	bool loop = sup_failed(su, sig, s->attempt, ps->same_failures);
	sup_save(e, s);
	if (!loop)
		return false;
	attempt_save(e, s, step_state_name(outcome));
	step_set(e, s, STEP_NEEDS_HUMAN);
	step_save(e, s);
	json_t *att = json_array();
	for (unsigned k = s->attempt + 1 - su->same; att && k <= s->attempt; k++)
		json_array_append_new(att, json_integer(k));
	ev_emit(e, "step.loop_detected", r, s, NULL,
		json_pack("{s:s, s:o?, s:i}", "signature", su->sig, "attempts", att, "same_failures",
			  (json_int_t)ps->same_failures));
	sup_wait_begin(e, s, SUP_WAIT_LOOP);
	return true;
}

/* What a cancel causes later (its running steps' ends, the run's own)
 * names who cancelled: R's canceller becomes the actor when R is
 * cancelled. Returns the actor before, for eng_actor_restore(). */
static struct actor cancel_actor(struct orch_engine *e, const struct run *r)
{
	return r->cancelled ? eng_actor_set(e, r->cancel_by) : e->actor;
}

static void attempt_ended(struct orch_engine *e, struct step *s, int status, enum kill_why why,
			  const struct proc *p)
{
	struct run *r = s->run;
	const struct plan_step *ps = &r->plan->steps[s->idx];
	int64_t now = clock_wall_ms();
	s->finished_at = now;
	s->duration_ms = now - s->started_at;
	if (WIFEXITED(status)) {
		s->exit_code = WEXITSTATUS(status);
		s->signal = 0;
	} else {
		s->exit_code = -1;
		s->signal = WTERMSIG(status);
	}

	if (why == KILL_INTERRUPT && (r->cancelled || r->aborted) && !e->stopping)
		why = KILL_CANCEL;	/* a restart during a cancel: the cancel stands */
	if (why != KILL_CANCEL && !r->cancelled && !r->aborted && p && p->stop_reason) {
		/* supervision stopped it (a limit, a person), whatever else was
		 * stopping it too (a timeout, the daemon's stop), or asked to as
		 * it ended by itself: what was acknowledged stands, no retry */
		s->reason = p->stop_reason;
		step_final(e, s, STEP_FAILED);
		return;
	}
	if (why == KILL_INTERRUPT) {
		/* the daemon stopped it (or its sandbox restarted): an interrupted
		 * attempt, run again, not counted against retries */
		s->counted--;
		s->interrupted++;
		s->reason = "interrupted";
		step_set(e, s, STEP_PENDING);
		attempt_save(e, s, "interrupted");
		step_save(e, s);
		ev_emit(e, "step.interrupted", r, s, NULL,
			json_pack("{s:i}", "attempt", (json_int_t)s->attempt));
		ready_push(r, s->idx);
		return;
	}
	/* a question ends with the attempt that asked it (an interrupted one
	 * runs again: its question stays open) */
	if (s->sup && s->sup->wait == SUP_WAIT_QUESTION)
		sup_wait_end(e, s, "attempt ended");
	if (why == KILL_CANCEL || r->cancelled || r->aborted) {
		s->reason = r->cancelled ? "cancelled" : "aborted";
		struct actor old = cancel_actor(e, r);
		step_final(e, s, STEP_CANCELLED);
		eng_actor_restore(e, old);
		return;
	}
	if (why == KILL_STOP) {	/* (without its reason: p is gone) */
		s->reason = "failed_by_user";
		step_final(e, s, STEP_FAILED);
		return;
	}
	enum step_state outcome = STEP_FAILED;
	if (why == KILL_TIMEOUT) {
		outcome = STEP_TIMED_OUT;
		s->reason = "timeout";
	} else if (why == KILL_HEARTBEAT) {
		s->reason = "missed_heartbeat";
		if (r->sb) {
			r->sb->restarts++;
			r->sb->missed = true;
			sb_save(e, r->sb);
		}
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && !s->reason) {
		step_final(e, s, STEP_SUCCEEDED);
		return;
	} else if (!s->reason) {
		s->reason = WIFEXITED(status) ? "exit" : "signal";
	}

	if (s->counted < s->budget && ps->same_failures && loop_detected(e, s, p, outcome))
		return;
	if (s->counted < s->budget) {
		int64_t delay = sched_retry_delay_ms(ps->retry_delay_sec, ps->retry_backoff, s->counted);
		attempt_save(e, s, step_state_name(outcome));
		json_t *x = json_pack("{s:i, s:i, s:s, s:I}", "attempt", (json_int_t)s->attempt + 1,
				      "failed_attempt", (json_int_t)s->attempt, "reason", s->reason,
				      "delay_ms", (json_int_t)delay);
		if (x) {
			json_object_set_new(x, "exit_code",
					    s->exit_code >= 0 ? json_integer(s->exit_code) : json_null());
			if (s->signal)
				json_object_set_new(x, "signal", json_integer(s->signal));
		}
		ev_emit(e, "step.retrying", r, s, NULL, x);
		step_set(e, s, STEP_PENDING);
		if (delay > 0 && !loop_timer_set(&e->loop, &s->retry_timer, clock_mono_ms() + delay)) {
			r->dag.nodes[s->idx].waiting = true;
			s->retry_at = now + delay;
		} else {
			ready_push(r, s->idx);	/* no delay (or no memory to wait) */
		}
		step_save(e, s);
		return;
	}
	step_final(e, s, outcome);
}

static void retry_timer_cb(struct loop_timer *t)
{
	struct step *s = t->data;
	struct run *r = s->run;
	r->dag.nodes[s->idx].waiting = false;
	s->retry_at = 0;
	ready_push(r, s->idx);
}

/* Cancel what has not started, stop what runs (abort, or a user's cancel). */
static void run_stop_steps(struct orch_engine *e, struct run *r)
{
	for (size_t i = 0; i < r->dag.n; i++) {
		struct step *s = &r->steps[i];
		enum step_state st = r->dag.nodes[i].state;
		if (s->proc) {
			proc_term(e, s->proc, KILL_CANCEL);
		} else if (st == STEP_PENDING || st == STEP_AWAITING_APPROVAL || st == STEP_NEEDS_HUMAN) {
			s->reason = r->cancelled ? "cancelled" : "aborted";
			s->started_at = 0;
			step_final(e, s, STEP_CANCELLED);
		}
	}
}

/* ---- the scheduling pass ---- */

/* No step is left to end (what still runs is counted in nrunning). */
static bool run_all_final(const struct run *r)
{
	for (int st = 0; st < STEP_NSTATES; st++)
		if (!step_state_final((enum step_state)st) && r->counts[st])
			return false;
	return true;
}

/* Has R started, unpaused? (needs_human: its other steps go on) */
static bool run_may_start(const struct run *r)
{
	return r->state == RUN_RUNNING || (r->state == RUN_NEEDS_HUMAN && !r->paused);
}

static void run_finish(struct orch_engine *e, struct run *r)
{
	enum run_state st = sched_outcome(&r->dag, r->aborted, r->cancelled);
	run_set_state(e, r, st);
	r->finished_at = r->updated_at;
	e->runs_finished[st]++;
	r->paused = false;
	run_save(e, r);
	char type[32];
	snprintf(type, sizeof(type), "run.%s", run_state_name(st));
	struct actor old = cancel_actor(e, r);
	ev_emit(e, type, r, NULL, NULL,
		json_pack("{s:s?, s:I}", "plan_id", r->plan->plan_id, "duration_ms",
			  (json_int_t)(r->started_at ? r->finished_at - r->started_at : 0)));
	eng_actor_restore(e, old);
	if (r->plan->scheduled)
		sch_run_ended(e, r);	/* a time queued for it (SPEC §9) */
	struct sandbox *sb = r->sb;
	if (r->sb && r->sb->holder == r)
		r->sb->holder = NULL;
	r->sb = NULL;
	r->active = false;
	list_del(&e->active_head, &e->active_tail, r);
	if (sb && sb->win)
		win_run_finished(e, sb);	/* its window's on_end delete may go on */
	quota_active(e, r, -1);
	cache_add(e, r);
	e->sched_all = true;	/* its sandbox may let the next run start */
	eng_changed(e, OCH_RUN_END, r->rowid, 0);
}

/* Start what may start in run R; finish it when nothing is left. Returns
 * false when R was finished (and moved off the active list). */
static bool run_advance(struct orch_engine *e, struct run *r)
{
	if (r->ready_lost) {
		r->ready_lost = false;
		ready_rebuild(r);
	}
	if ((r->cancelled || r->aborted) && r->nrunning == 0 &&
	    (r->counts[STEP_PENDING] || r->counts[STEP_AWAITING_APPROVAL] || r->counts[STEP_NEEDS_HUMAN])) {
		/* steps an interruption put back while the run was being stopped */
		struct actor old = cancel_actor(e, r);
		for (size_t i = 0; i < r->dag.n; i++)
			if (r->dag.nodes[i].state == STEP_PENDING ||
			    r->dag.nodes[i].state == STEP_AWAITING_APPROVAL ||
			    r->dag.nodes[i].state == STEP_NEEDS_HUMAN) {
				r->steps[i].reason = r->cancelled ? "cancelled" : "aborted";
				r->steps[i].started_at = 0;
				step_final(e, &r->steps[i], STEP_CANCELLED);
			}
		eng_actor_restore(e, old);
	}
	/* a cancelled run waiting for its sandbox ends without ever starting */
	if (r->state == RUN_PENDING && !r->paused && !r->cancelled) {
		if (r->sb->holder && r->sb->holder != r)
			return true;	/* an earlier run has the sandbox */
		if (r->sb->stopped)
			return true;	/* until a restart */
		if (sb_frozen(r->sb))
			return true;	/* its sandbox's pause: until ctl resume */
		r->sb->holder = r;
		/* its plan's health check becomes the sandbox's (core/health.h) */
		if (r->plan->sandbox.health.set && health_set(e, r->sb, &r->plan->sandbox.health))
			eng_log(e, "run %s: cannot set the health check of sandbox %s", r->name, r->sb->name);
		run_set_state(e, r, RUN_RUNNING);
		if (!r->started_at)
			r->started_at = r->updated_at;
		run_save(e, r);
		store_exec(&e->st, "UPDATE sandboxes SET owner_run = ? WHERE id = ?", "si", r->name,
			   r->sb->rowid);
		ev_emit(e, "run.started", r, NULL, NULL, NULL);
	}
	/* no step starts while its sandbox is paused (by ctl or its window) */
	if (run_may_start(r) && !r->aborted && !r->cancelled && !(r->sb && sb_frozen(r->sb))) {
		size_t i;
		while (r->nrunning < r->max_conc && (!e->cfg.jobs || e->running < e->cfg.jobs) &&
		       ready_pop(r, &i))
			if (sched_ready(&r->dag, i))
				step_start(e, r, i);
	}
	if (run_all_final(r) && r->nrunning == 0) {
		run_finish(e, r);
		return false;
	}
	return true;
}

void run_schedule_all(struct orch_engine *e)
{
	/* a step finishing inside the pass may free a slot or a sandbox for a
	 * run the pass already passed: go round until nothing more changes */
	for (int round = 0; round < 8; round++) {
		bool all = e->sched_all;
		e->sched_all = false;
		bool any = false;
		for (struct run *r = e->active_head, *next; r; r = next) {
			next = r->next;
			if (!all && !r->sched)
				continue;
			r->sched = false;
			any = true;
			run_advance(e, r);
		}
		if (!any || (!e->sched_all && !e->active_head))
			break;
		bool more = e->sched_all;
		for (struct run *r = e->active_head; r && !more; r = r->next)
			more = r->sched;
		if (!more)
			break;
	}
}

void run_stop_all(struct orch_engine *e)
{
	for (struct run *r = e->active_head; r; r = r->next)
		run_interrupt(e, r);
}

/* ---- recovery ---- */

void run_kill_stale(struct orch_engine *e)
{
	/* Every process of a step of this state directory carries its mark in
	 * its environment (sandboxed ones too: bubblewrap passes it on): what a
	 * dead daemon left behind, recorded or not, in its group or not. */
	char *mark = orch_asprintf("ORCHFS_STEP_OF=%s", e->state_dir);
	if (mark) {
		const char *marks[] = { mark };
		int n = proc_kill_marked(0, marks, 1);
		if (n)
			eng_log(e, "killed %d process(es) left by the previous daemon", n);
		orch_free(mark);
	}
	store_exec(&e->st, "UPDATE steps SET pid = NULL, pgid = NULL, pstart = NULL WHERE pid IS NOT NULL",
		   NULL);
}

int run_load_unfinished(struct orch_engine *e)
{
	int rc;
	size_t n = 0, cap = 0;
	int64_t *ids = NULL;
	sqlite3_stmt *q = store_query(&e->st,
				      "SELECT id FROM runs WHERE state IN ('pending','running','paused','needs_human')"
				      " ORDER BY id",
				      &rc, NULL);
	for (; q; q = store_next(q) ? q : (store_done(q), NULL)) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			int64_t *ni = orch_reallocarray(ids, cap, sizeof(*ids));
			if (!ni) {
				store_done(q);
				orch_free(ids);
				return -ENOMEM;
			}
			ids = ni;
		}
		ids[n++] = sqlite3_column_int64(q, 0);
	}
	if (rc) {
		orch_free(ids);
		return rc;
	}
	for (size_t k = 0; k < n; k++) {
		struct run *r = run_load(e, ids[k], &rc);
		if (!r) {
			eng_log(e, "cannot resume run %lld: %s", (long long)ids[k], strerror(-rc));
			continue;
		}
		r->sb = sb_get(e, r->sb_name);
		if (!r->sb) {
			/* the ports its plan was given (its ${PORT...} are in it) */
			rc = sb_create(e, r->sb_name, ISOLATION_UNSET, true, r->plan->sandbox.ports,
				       r->plan->sandbox.port_names, r->uid, r->gid, &r->sb);
			if (rc) {
				eng_log(e, "run %s: cannot recreate sandbox %s: %s", r->name, r->sb_name,
					strerror(-rc));
				run_free(r);
				continue;
			}
		}
		r->sb_rowid = r->sb->rowid;
		int64_t now = clock_wall_ms(), mono = clock_mono_ms();
		for (size_t i = 0; i < r->dag.n; i++) {
			struct step *s = &r->steps[i];
			struct sched_node *nd = &r->dag.nodes[i];
			if (nd->state == STEP_RUNNING) {
				/* its process died with the previous daemon (or was killed
				 * above): an interrupted attempt */
				r->counts[STEP_RUNNING]--;
				if (r->cancelled || r->aborted) {
					nd->state = STEP_CANCELLED;
					s->reason = r->cancelled ? "cancelled" : "aborted";
					sup_wait_end(e, s, "cancelled");	/* a question it asked */
					attempt_save(e, s, "cancelled");
					/* its end, as step_final() says it, naming the canceller */
					struct actor old = cancel_actor(e, r);
					ev_emit(e, "step.cancelled", r, s, NULL,
						json_pack("{s:i, s:s}", "attempt", (json_int_t)s->attempt, "reason",
							  s->reason));
					eng_actor_restore(e, old);
				} else {
					nd->state = STEP_PENDING;
					if (s->counted)
						s->counted--;
					s->interrupted++;
					s->reason = "interrupted";
					attempt_save(e, s, "interrupted");
					ev_emit(e, "step.interrupted", r, s, NULL,
						json_pack("{s:i}", "attempt", (json_int_t)s->attempt));
				}
				r->counts[nd->state]++;
				step_save(e, s);
			}
			if (nd->state == STEP_PENDING && s->retry_at) {
				int64_t left = s->retry_at - now;
				nd->waiting = !loop_timer_set(&e->loop, &s->retry_timer,
							      mono + (left > 0 ? left : 0));
			}
		}
		if (r->cancelled || r->aborted)
			for (size_t i = 0; i < r->dag.n; i++)
				if (r->dag.nodes[i].state == STEP_PENDING ||
				    r->dag.nodes[i].state == STEP_AWAITING_APPROVAL ||
				    r->dag.nodes[i].state == STEP_NEEDS_HUMAN) {
					sup_wait_end(e, &r->steps[i], "cancelled");
					r->counts[r->dag.nodes[i].state]--;
					r->dag.nodes[i].state = STEP_CANCELLED;
					r->dag.nodes[i].waiting = false;
					r->counts[STEP_CANCELLED]++;
					loop_timer_cancel(&e->loop, &r->steps[i].retry_timer);
					r->steps[i].retry_at = 0;
					step_save(e, &r->steps[i]);
				}
		/* a run that had started holds its sandbox again (runs load in
		 * submission order: the first such run is the one that held it) */
		if (r->started_at && !r->sb->holder &&
		    (r->state == RUN_RUNNING || r->state == RUN_PAUSED || r->state == RUN_NEEDS_HUMAN))
			r->sb->holder = r;
		sched_recount(&r->dag);
		ready_rebuild(r);
		r->max_conc = r->plan->max_concurrency ? r->plan->max_concurrency : cpu_count();
		r->active = true;
		r->sched = true;
		hash_add(e, r);
		list_append(&e->active_head, &e->active_tail, r);
		eng_log(e, "resuming run %s", r->name);
		/* its waits, and the stops acknowledged before the restart: such
		 * a step fails (it was made pending above, as interrupted) */
		sup_load(e, r);
		for (size_t i = 0; i < r->dag.n && !r->cancelled && !r->aborted; i++) {
			struct step *s = &r->steps[i];
			if (s->sup && s->sup->stop && r->dag.nodes[i].state == STEP_PENDING) {
				s->reason = s->sup->stop;
				step_final(e, s, STEP_FAILED);
			}
		}
		run_waits_changed(e, r);
	}
	orch_free(ids);
	/* the counters reflect the store after the fixes above */
	memset(e->run_counts, 0, sizeof(e->run_counts));
	memset(e->step_counts, 0, sizeof(e->step_counts));
	q = store_query(&e->st, "SELECT state, count(*) FROM runs GROUP BY state", &rc, NULL);
	for (; q; q = store_next(q) ? q : (store_done(q), NULL)) {
		int st = run_state_parse((const char *)sqlite3_column_text(q, 0));
		if (st >= 0)
			e->run_counts[st] = sqlite3_column_int64(q, 1);
	}
	q = store_query(&e->st, "SELECT state, count(*) FROM steps GROUP BY state", &rc, NULL);
	for (; q; q = store_next(q) ? q : (store_done(q), NULL)) {
		int st = step_state_parse((const char *)sqlite3_column_text(q, 0));
		if (st >= 0)
			e->step_counts[st] = sqlite3_column_int64(q, 1);
	}
	e->runs_created = store_int(&e->st, "SELECT count(*) FROM runs", 0, NULL);
	e->msg_queued = store_int(&e->st, "SELECT count(*) FROM messages WHERE state = 'queued'", 0, NULL);
	return 0;
}

/* ---- ctl ---- */

int run_cancel(struct orch_engine *e, struct run *r)
{
	if (!r->active || r->cancelled)
		return -EINVAL;
	r->cancelled = true;
	r->cancel_by = e->actor;
	r->paused = false;
	run_set_state(e, r, r->state == RUN_PAUSED ? (r->started_at ? RUN_RUNNING : RUN_PENDING)
						    : r->state);
	run_save(e, r);
	run_stop_steps(e, r);
	r->sched = true;
	return 0;
}

static int ctl_pause(struct orch_engine *e, struct run *r)
{
	if (!r->active || r->paused || r->cancelled || r->aborted)
		return -EINVAL;
	r->paused = true;
	run_set_state(e, r, r->nwaits ? RUN_NEEDS_HUMAN : RUN_PAUSED);
	run_save(e, r);
	ev_emit(e, "run.paused", r, NULL, NULL, NULL);
	return 0;
}

static int ctl_resume(struct orch_engine *e, struct run *r)
{
	if (!r->active || !r->paused)
		return -EINVAL;
	r->paused = false;
	bool holds = r->sb->holder == r;
	run_set_state(e, r, !(r->started_at && holds) ? RUN_PENDING : r->nwaits ? RUN_NEEDS_HUMAN : RUN_RUNNING);
	run_save(e, r);
	ev_emit(e, "run.resumed", r, NULL, NULL, NULL);
	r->sched = true;
	return 0;
}

/* A timer's time left when it is stopped (-1: not armed). */
static int64_t timer_left(struct orch_engine *e, struct loop_timer *t, int64_t now)
{
	if (!loop_timer_armed(t))
		return -1;
	int64_t left = t->deadline - now;
	loop_timer_cancel(&e->loop, t);
	return left > 0 ? left : 0;
}

/* P's processes stopped (ON) or let go on: all at once by the cgroup
 * freezer where P has a leaf with one, else by signals (SIGSTOP to each
 * process of the step's tree). */
static void proc_stop(struct orch_engine *e, struct proc *p, bool on)
{
	if (on ? cg_freeze(&e->cg, &p->cg, true) == 0 : p->cg_frozen) {
		if (!on)
			cg_freeze(&e->cg, &p->cg, false);
		p->cg_frozen = on;
		return;
	}
	/* not proc_signal(): with nothing under bubblewrap yet it kills */
	if (p->sandboxed)
		proc_signal_tree(p->pid, on ? SIGSTOP : SIGCONT, "bwrap");
	else
		proc_kill_group(p->pid, on ? SIGSTOP : SIGCONT);
}

static void proc_thaw(struct orch_engine *e, struct proc *p)
{
	proc_stop(e, p, false);
}

bool run_freeze(struct orch_engine *e, struct run *r, bool on, bool resume)
{
	bool paused = false;
	if (on && !r->paused && !r->cancelled && !r->aborted)
		paused = ctl_pause(e, r) == 0;
	else if (!on && r->paused && resume)
		ctl_resume(e, r);
	int64_t now = clock_mono_ms();
	for (size_t i = 0; i < r->dag.n; i++) {
		struct proc *p = r->steps[i].proc;
		if (!p || p->kill_sent)
			continue;
		proc_stop(e, p, on);
		/* a stopped step's timeout and heartbeat clocks stop with it */
		if (on && !p->frozen_at) {
			p->frozen_at = now;
			p->frozen_timeout_left = timer_left(e, &p->timer, now);
			p->frozen_hb_left = timer_left(e, &p->hb_timer, now);
		} else if (!on && p->frozen_at) {
			p->hb_mono += now - p->frozen_at;
			p->frozen_at = 0;
			if (p->frozen_timeout_left >= 0)
				loop_timer_set(&e->loop, &p->timer, now + p->frozen_timeout_left);
			if (p->frozen_hb_left >= 0)
				loop_timer_set(&e->loop, &p->hb_timer, now + p->frozen_hb_left);
		}
	}
	return paused;
}

/* retry: a finished run runs its failed, timed-out, cancelled and skipped
 * steps again, each with a fresh retry budget; succeeded ones stay. */
static int ctl_retry(struct orch_engine *e, struct run *r)
{
	if (r->active)
		return -EINVAL;
	size_t again = 0;
	for (size_t i = 0; i < r->dag.n; i++)
		if (r->dag.nodes[i].state != STEP_SUCCEEDED)
			again++;
	if (!again)
		return -EINVAL;
	/* the run is unfinished again: within its submitter's limits */
	int rc = eng_quota(e, r->uid, QUOTA_ACTIVE_RUNS, 1, NULL);
	if (!rc)
		rc = eng_quota(e, r->uid, QUOTA_ACTIVE_STEPS, (int64_t)r->dag.n, NULL);
	struct sandbox *sb = sb_get(e, r->sb_name);
	struct plan_sandbox *ps = &r->plan->sandbox;
	if (!rc && !sb && !(rc = eng_quota(e, r->uid, QUOTA_SANDBOXES, 1, NULL)))
		rc = eng_quota(e, r->uid, QUOTA_PORTS, ps->ports < 0 ? 1 : ps->ports, NULL);
	if (rc)
		return rc;
	if (!sb) {
		rc = sb_create(e, r->sb_name, ps->isolation, ps->network != 0, ps->ports, ps->port_names,
			       r->uid, r->gid, &sb);
		if (rc)
			return rc;
	}
	/* leave the cache for the active list */
	cache_del(e, r);
	r->active = true;
	list_append(&e->active_head, &e->active_tail, r);
	quota_active(e, r, 1);
	r->sb = sb;
	r->sb_rowid = sb->rowid;
	r->aborted = r->cancelled = r->paused = false;
	r->cancel_by = ACTOR_NONE;
	r->finished_at = 0;
	run_set_state(e, r, RUN_PENDING);
	for (size_t i = 0; i < r->dag.n; i++) {
		struct step *s = &r->steps[i];
		if (r->dag.nodes[i].state == STEP_SUCCEEDED)
			continue;
		step_set(e, s, STEP_PENDING);
		if (s->sup) {
			/* a fresh start: the failures, turns and spending so far do not count */
			sup_series_reset(s->sup);
			s->sup->turns = 0;
			s->sup->cost_usd = 0;
			s->sup->tokens = 0;
			s->sup->warned = 0;
			s->sup->actions = 0;
			s->sup->stop = NULL;
			sup_save(e, s);
		}
		s->budget = s->counted + r->plan->steps[i].retries + 1;
		s->exit_code = -1;
		s->signal = 0;
		s->reason = NULL;
		s->finished_at = s->duration_ms = 0;
		step_save(e, s);
	}
	sched_recount(&r->dag);
	ready_rebuild(r);
	run_save(e, r);
	ev_emit(e, "run.retried", r, NULL, NULL, json_pack("{s:i}", "steps", (json_int_t)again));
	r->sched = true;
	return 0;
}

int orch_run_ctl(struct orch_engine *e, int64_t rowid, const char *cmd, size_t len)
{
	static const char *const verbs[] = { "cancel", "pause", "resume", "retry" };
	static int (*const fns[])(struct orch_engine *, struct run *) = { run_cancel, ctl_pause,
									  ctl_resume, ctl_retry };
	int v = ctl_parse(cmd, len, verbs, ARRAY_SIZE(verbs));
	if (v < 0)
		return v;
	struct run *r = run_get(e, rowid);
	if (!r)
		return -ENOENT;
	if (v == 2 && r->active && r->sb && sb_frozen(r->sb)) {
		eng_log(e, "run %s: not resumed: its sandbox %s is paused%s; resume the sandbox"
			   " (ctl resume of sandboxes/%s)", r->name, r->sb->name,
			r->sb->paused ? "" : " by its window", r->sb->name);
		return -EINVAL;
	}
	/* a cancel stops what fills the disk: it needs no room first */
	int rc = v ? eng_room(e) : 0;
	if (!rc)
		rc = fns[v](e, r);
	if (!rc)
		orch_need_durable(e);
	return rc;
}

int orch_run_remove(struct orch_engine *e, int64_t rowid)
{
	struct run *r = run_get(e, rowid);
	if (!r)
		return -ENOENT;
	if (r->active)
		return -EBUSY;
	int rc = store_exec(&e->st, "DELETE FROM attempts WHERE step IN (SELECT id FROM steps WHERE run = ?)",
			    "i", rowid);
	if (!rc)
		rc = store_exec(&e->st, "DELETE FROM steps WHERE run = ?", "i", rowid);
	if (!rc)
		rc = store_exec(&e->st, "DELETE FROM runs WHERE id = ?", "i", rowid);
	if (!rc)
		rc = store_exec(&e->st, "UPDATE plan_names SET newest_run = NULL WHERE newest_run = ?", "s",
				r->name);
	if (rc)
		return rc;
	orch_need_durable(e);
	e->run_counts[r->state]--;
	for (int st = 0; st < STEP_NSTATES; st++)
		e->step_counts[st] -= r->counts[st];
	int x = sd_trash_put(&e->trash, e->logs_fd, r->name, geteuid());
	if (x)
		eng_log(e, "cannot remove logs/%s: %s", r->name, strerror(-x));
	cache_del(e, r);
	hash_del(e, r);
	eng_trim_later(e, (int64_t)r->dag.n * STEP_MEM_BYTES);
	run_free(r);
	return 0;
}

/* ---- queries for the tree ---- */

static int run_attr_from_store(struct orch_engine *e, sqlite3_stmt *q, struct orch_run_attr *a)
{
	a->rowid = sqlite3_column_int64(q, 0);
	snprintf(a->name, sizeof(a->name), "%s", (const char *)sqlite3_column_text(q, 1));
	a->uid = (uid_t)sqlite3_column_int64(q, 2);
	a->gid = (gid_t)sqlite3_column_int64(q, 3);
	a->ctime_ms = sqlite3_column_int64(q, 4);
	a->mtime_ms = sqlite3_column_int64(q, 5);
	int st = run_state_parse((const char *)sqlite3_column_text(q, 6));
	a->finished = st < 0 || run_state_final((enum run_state)st);
	a->nsteps = 0;
	store_done(q);
	struct run *r = run_find_loaded(e, a->rowid);
	if (r) {	/* memory is ahead of nothing, but has the live times */
		a->mtime_ms = r->updated_at;
		a->finished = !r->active;
		a->nsteps = r->dag.n;
	}
	return 0;
}

int orch_run_by_name(struct orch_engine *e, const char *name, struct orch_run_attr *a)
{
	if (!id_valid(name, RUN_ID_MAX))
		return -ENOENT;
	int rc;
	sqlite3_stmt *q = store_query(&e->st,
				      "SELECT id, name, uid, gid, created_at, updated_at, state FROM runs"
				      " WHERE name = ?",
				      &rc, "s", name);
	return q ? run_attr_from_store(e, q, a) : (rc ? rc : -ENOENT);
}

int orch_run_by_rowid(struct orch_engine *e, int64_t rowid, struct orch_run_attr *a)
{
	int rc;
	sqlite3_stmt *q = store_query(&e->st,
				      "SELECT id, name, uid, gid, created_at, updated_at, state FROM runs"
				      " WHERE id = ?",
				      &rc, "i", rowid);
	return q ? run_attr_from_store(e, q, a) : (rc ? rc : -ENOENT);
}

int orch_run_list(struct orch_engine *e, int64_t after,
		  int (*cb)(void *ctx, int64_t rowid, const char *name), void *ctx)
{
	return store_list(&e->st, "SELECT id, name FROM runs WHERE id > ? ORDER BY id", after, cb, ctx);
}

int orch_run_render(struct orch_engine *e, int64_t rowid, enum orch_run_file f, struct sbuf *out)
{
	struct run *r = run_get(e, rowid);
	if (!r)
		return -ENOENT;
	switch (f) {
	case RUNF_STATUS:
		return render_run_status(e, r, out);
	case RUNF_SUMMARY:
		return render_run_summary(e, r, out);
	case RUNF_GRAPH:
		return render_run_graph(e, r, out);
	case RUNF_PLAN: {
		/* as stored (what json_dumps made of the plan as run): the parsed
		 * document is not kept in memory, it would double a run's cost */
		int rc;
		sqlite3_stmt *q = store_query(&e->st, "SELECT plan_json FROM runs WHERE id = ?", &rc, "i",
					      rowid);
		if (!q)
			return rc ? rc : -ENOENT;
		sbuf_add(out, sqlite3_column_text(q, 0), (size_t)sqlite3_column_bytes(q, 0));
		sbuf_addc(out, '\n');
		store_done(q);
		return sbuf_failed(out) ? -ENOMEM : 0;
	}
	}
	return -EINVAL;
}

static int step_attr(sqlite3_stmt *q, struct orch_step_attr *a)
{
	a->rowid = sqlite3_column_int64(q, 0);
	a->run_rowid = sqlite3_column_int64(q, 1);
	a->idx = (size_t)sqlite3_column_int64(q, 2);
	snprintf(a->name, sizeof(a->name), "%s", (const char *)sqlite3_column_text(q, 3));
	store_done(q);
	return 0;
}

int orch_step_by_name(struct orch_engine *e, int64_t run_rowid, const char *name,
		      struct orch_step_attr *a)
{
	if (!id_valid(name, STEP_ID_MAX))
		return -ENOENT;
	int rc;
	sqlite3_stmt *q = store_query(&e->st, "SELECT id, run, idx, name FROM steps WHERE run = ? AND name = ?",
				      &rc, "is", run_rowid, name);
	return q ? step_attr(q, a) : (rc ? rc : -ENOENT);
}

int orch_step_by_rowid(struct orch_engine *e, int64_t rowid, struct orch_step_attr *a)
{
	int rc;
	sqlite3_stmt *q = store_query(&e->st, "SELECT id, run, idx, name FROM steps WHERE id = ?", &rc,
				      "i", rowid);
	return q ? step_attr(q, a) : (rc ? rc : -ENOENT);
}

int orch_step_list(struct orch_engine *e, int64_t run_rowid, size_t from,
		   int (*cb)(void *ctx, size_t idx, int64_t rowid, const char *name), void *ctx)
{
	int rc;
	sqlite3_stmt *q = store_query(&e->st,
				      "SELECT idx, id, name FROM steps WHERE run = ? AND idx >= ? ORDER BY idx",
				      &rc, "ii", run_rowid, (int64_t)from);
	if (!q)
		return rc;
	do {
		if (cb(ctx, (size_t)sqlite3_column_int64(q, 0), sqlite3_column_int64(q, 1),
		       (const char *)sqlite3_column_text(q, 2)))
			break;
	} while (store_next(q));
	store_done(q);
	return 0;
}

int orch_step_render(struct orch_engine *e, int64_t rowid, struct sbuf *out)
{
	struct orch_step_attr a;
	int rc = orch_step_by_rowid(e, rowid, &a);
	if (rc)
		return rc;
	struct run *r = run_get(e, a.run_rowid);
	if (!r || a.idx >= r->dag.n)
		return -ENOENT;
	return render_step_status(e, &r->steps[a.idx], out);
}

/* The run and step of step ROWID's log. With MAKE, the log is marked made
 * and, when the step ran without a word, made with its attempts'
 * separators (log_open). 0 or -errno. */
static int step_log_names(struct orch_engine *e, int64_t rowid, bool make, char run[RUN_ID_MAX + 1],
			  char step[STEP_ID_MAX + 1])
{
	int rc;
	sqlite3_stmt *q = store_query(&e->st,
				      "SELECT runs.name, steps.name, steps.attempt, steps.run, steps.idx FROM steps"
				      " JOIN runs ON runs.id = steps.run WHERE steps.id = ?",
				      &rc, "i", rowid);
	if (!q)
		return rc ? rc : -ENOENT;
	snprintf(run, RUN_ID_MAX + 1, "%s", (const char *)sqlite3_column_text(q, 0));
	snprintf(step, STEP_ID_MAX + 1, "%s", (const char *)sqlite3_column_text(q, 1));
	int64_t attempts = sqlite3_column_int64(q, 2);
	struct run *r = run_find_loaded(e, sqlite3_column_int64(q, 3));
	int64_t idx = sqlite3_column_int64(q, 4);
	store_done(q);
	if (!make)
		return 0;
	if (r && idx >= 0 && (size_t)idx < r->dag.n) {
		r->steps[idx].log = 1;	/* made below if need be */
		/* an attempt recorded but not spawned yet writes its own
		 * separator when it is (step_spawn) */
		if (r->steps[idx].hdr_pending && attempts > 0)
			attempts--;
	}
	/* a step that ran without a word has no file yet: make it, with its
	 * attempts' separators */
	if (attempts > 0) {
		char name[STEP_ID_MAX + 8];
		snprintf(name, sizeof(name), "%s.log", step);
		struct stat st;
		int dfd = run_logdir(e, run, false);
		bool missing = dfd == -ENOENT ||
			       (dfd >= 0 && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT);
		if (dfd >= 0)
			close(dfd);
		int fd = missing ? log_open(e, run, step, (unsigned)attempts) : -1;
		if (fd >= 0)
			close(fd);
	}
	return 0;
}

char *orch_step_log_path(struct orch_engine *e, int64_t rowid)
{
	char run[RUN_ID_MAX + 1], step[STEP_ID_MAX + 1];
	if (step_log_names(e, rowid, true, run, step))
		return NULL;
	return orch_asprintf("%s/logs/%s/%s.log", e->state_dir, run, step);
}

int orch_step_log_open(struct orch_engine *e, int64_t rowid)
{
	char run[RUN_ID_MAX + 1], step[STEP_ID_MAX + 1], name[STEP_ID_MAX + 8];
	int rc = step_log_names(e, rowid, true, run, step);
	if (rc)
		return rc;
	snprintf(name, sizeof(name), "%s.log", step);
	/* a step that has not started has no log yet: read it as empty */
	int dfd = run_logdir(e, run, true);
	if (dfd < 0)
		return dfd;
	mode_t found;
	int fd = sd_open_reg(dfd, name, O_RDONLY | O_CREAT, 0644, &found, NULL);
	close(dfd);
	if (fd == -EIO)
		eng_log(e, "logs/%s/%s is %s, not a regular file: not opened", run, name, sd_type_name(found));
	return fd;
}

int orch_step_log_stat(struct orch_engine *e, int64_t rowid, struct stat *st)
{
	char run[RUN_ID_MAX + 1], step[STEP_ID_MAX + 1], name[STEP_ID_MAX + 8];
	int rc = step_log_names(e, rowid, false, run, step);
	if (rc)
		return rc;
	snprintf(name, sizeof(name), "%s.log", step);
	int dfd = run_logdir(e, run, false);
	if (dfd < 0)
		return dfd;
	rc = fstatat(dfd, name, st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
	close(dfd);
	return rc;
}

int64_t orch_log_cap(const struct orch_engine *e) { return e->log_cap; }

bool run_step_visible_running(const struct run *r, size_t i)
{
	return r->dag.nodes[i].state == STEP_RUNNING;
}

void run_forget(struct orch_engine *e, struct run *r)
{
	sup_unload(e, r);	/* its waits (an approval step awaited at once) */
	list_del(&e->active_head, &e->active_tail, r);
	quota_active(e, r, -1);
	eng_trim_later(e, (int64_t)r->dag.n * STEP_MEM_BYTES);
	hash_del(e, r);
	e->run_counts[r->state]--;
	for (int st = 0; st < STEP_NSTATES; st++)
		e->step_counts[st] -= r->counts[st];
	e->runs_created--;
	sd_trash_put(&e->trash, e->logs_fd, r->name, geteuid());
	eng_changed(e, OCH_RUN_END, r->rowid, 0);
	run_free(r);
}

void run_interrupt(struct orch_engine *e, struct run *r)
{
	for (size_t i = 0; i < r->dag.n; i++)
		if (r->steps[i].proc)
			proc_term(e, r->steps[i].proc, KILL_INTERRUPT);
}

/* the step of SB whose process is PID, or NULL */
static struct step *step_of_pid(struct orch_engine *e, struct sandbox *sb, pid_t pid)
{
	for (struct run *r = e->active_head; r; r = r->next) {
		if (r->sb != sb || !r->nrunning)
			continue;
		for (size_t i = 0; i < r->dag.n; i++)
			if (r->steps[i].proc && r->steps[i].proc->pid == pid)
				return &r->steps[i];
	}
	return NULL;
}

#define PID_CHAIN_MAX 16

struct step *run_step_by_pid(struct orch_engine *e, struct sandbox *sb, pid_t writer)
{
	bool any = false;
	for (struct run *r = e->active_head; r && !any; r = r->next)
		any = r->sb == sb && r->nrunning;
	if (!any)
		return NULL;	/* no step of SB runs: nothing to read /proc for */
	int n = 0;
	for (pid_t p = writer; p > 1 && n < PID_CHAIN_MAX; p = proc_parent(p), n++) {
		struct step *s = step_of_pid(e, sb, p);
		if (s)
			return s;
	}
	return NULL;
}

/* A heartbeat of S's attempt: its clock starts again; a degraded attempt is
 * not any more, and the sandbox is healthy again when none of its is. One
 * being stopped stays as it is. */
static void heartbeat_one(struct orch_engine *e, struct step *s)
{
	struct proc *p = s->proc;
	double ttl = s->run->plan->steps[s->idx].heartbeat_ttl_sec;
	if (!p || ttl <= 0 || p->kill_sent)
		return;
	int64_t now = clock_mono_ms(), silent = now - p->hb_mono;
	p->hb_mono = now;
	if (p->frozen_at) {
		/* stopped by its window's pause: the clock starts again at
		 * the resume (run_freeze()) */
		p->frozen_at = now;
		p->frozen_hb_left = (int64_t)(ttl * 1000);
	} else {
		loop_timer_set(&e->loop, &p->hb_timer, now + (int64_t)(ttl * 1000));
	}
	if (!p->degraded)
		return;
	proc_undegrade(p);
	if (s->run->sb && !s->run->sb->degraded)
		ev_emit(e, "sandbox.healthy", s->run, s, NULL,
			json_pack("{s:i, s:I}", "attempt", (json_int_t)s->attempt, "silent_ms",
				  (json_int_t)silent));
}

void run_heartbeat(struct orch_engine *e, struct sandbox *sb, struct step *s)
{
	if (s) {
		heartbeat_one(e, s);
		return;
	}
	for (struct run *r = e->active_head; r; r = r->next)
		if (r->sb == sb)
			for (size_t i = 0; i < r->dag.n; i++)
				heartbeat_one(e, &r->steps[i]);
}

/* ---- supervision's entry points (core/supervise.h) ---- */

void run_waits_changed(struct orch_engine *e, struct run *r)
{
	if (!r->active)
		return;
	enum run_state want;
	if (r->nwaits && (r->state == RUN_RUNNING || r->state == RUN_PAUSED))
		want = RUN_NEEDS_HUMAN;
	else if (!r->nwaits && r->state == RUN_NEEDS_HUMAN)
		want = r->paused ? RUN_PAUSED : RUN_RUNNING;
	else
		return;
	run_set_state(e, r, want);
	run_save(e, r);
	r->sched = true;
}

void run_step_decided(struct orch_engine *e, struct step *s, bool approved)
{
	s->reason = approved ? NULL : "rejected";
	step_final(e, s, approved ? STEP_SUCCEEDED : STEP_FAILED);
}

void run_step_stop(struct orch_engine *e, struct step *s, const char *reason)
{
	struct proc *p = s->proc;
	if (!p) {
		/* its process is still being spawned: the next event stops it */
		eng_log(e, "run %s step %s: cannot stop it for %s yet (still starting)", s->run->name,
			s->run->plan->steps[s->idx].id, reason);
		return;
	}
	if (!p->stop_reason)
		p->stop_reason = reason;
	/* durable with the acknowledgement: a restart fails the step with it */
	struct sup *su = sup_of(e, s);
	if (su && !su->stop) {
		su->stop = p->stop_reason;
		sup_save(e, s);
	}
	proc_term(e, p, KILL_STOP);
}

void run_step_retry(struct orch_engine *e, struct step *s)
{
	struct run *r = s->run;
	const struct plan_step *ps = &r->plan->steps[s->idx];
	s->budget = s->counted + ps->retries + 1;
	s->reason = NULL;
	step_set(e, s, STEP_PENDING);
	step_save(e, s);
	ready_push(r, s->idx);
	r->sched = true;
}

void run_step_fail(struct orch_engine *e, struct step *s, const char *reason)
{
	s->reason = reason;
	step_final(e, s, STEP_FAILED);
}

void run_resync(struct orch_engine *e)
{
	/* runs made in the undone batch exist in memory only: stop and forget
	 * them (their submitters were told the commit failed) */
	for (struct run *r = e->active_head, *next; r; r = next) {
		next = r->next;
		if (store_int(&e->st, "SELECT 1 FROM runs WHERE id = ?", 0, "i", r->rowid))
			continue;
		eng_log(e, "run %s was not stored: forgetting it", r->name);
		for (size_t i = 0; i < r->dag.n; i++)
			if (r->steps[i].proc) {
				proc_signal(r->steps[i].proc, SIGKILL);
				proc_close(e, r->steps[i].proc);
				orch_free(r->steps[i].proc);
				r->steps[i].proc = NULL;
			}
		/* every attempt it started: those with a process, and those whose
		 * spawn is queued or with the spawner (spawn_done kills what it
		 * started) */
		e->running -= r->nrunning;
		if (r->sb && r->sb->holder == r)
			r->sb->holder = NULL;
		run_forget(e, r);
		e->sched_all = true;
	}
	for (struct sandbox *sb = e->sandboxes, *next; sb; sb = next) {
		next = sb->next;
		if (!store_int(&e->st, "SELECT 1 FROM sandboxes WHERE id = ?", 0, "i", sb->rowid) &&
		    !sb_in_use(e, sb)) {
			sb_forget(e, sb);
			continue;
		}
		sb_save(e, sb);
		sb->msg_queued = store_int(&e->st,
					   "SELECT count(*) FROM messages WHERE sandbox = ? AND state = 'queued'",
					   0, "i", sb->rowid);
		sb->msg_delivered = store_int(&e->st,
					      "SELECT count(*) FROM messages WHERE sandbox = ? AND state = 'delivered'",
					      0, "i", sb->rowid);
		sb->msg_bytes = msgq_bytes_load(e, sb->rowid);
		msgq_resync(e, sb);
	}
	e->msg_queued = store_int(&e->st, "SELECT count(*) FROM messages WHERE state = 'queued'", 0, NULL);
	win_resync(e);
	eng_quota_recount(e);
	/* every other loaded run: all of its state again */
	for (size_t h = 0; h < RUN_HASH; h++)
		for (struct run *r = e->runtab[h]; r; r = r->hnext) {
			run_save(e, r);
			for (size_t i = 0; i < r->dag.n; i++) {
				step_save(e, &r->steps[i]);
				if (r->steps[i].sup)
					sup_save(e, &r->steps[i]);
			}
		}
}

struct proc *run_proc_by_pid(struct orch_engine *e, pid_t pid)
{
	for (struct run *r = e->active_head; r; r = r->next)
		for (size_t i = 0; r->nrunning && i < r->dag.n; i++)
			if (r->steps[i].proc && r->steps[i].proc->pid == pid)
				return r->steps[i].proc;
	return NULL;
}

size_t run_spawn_ready(const struct orch_engine *e)
{
	size_t n = 0;
	for (size_t k = 0; k < e->nspawn; k++)
		n += e->spawnq[k].gen <= e->synced_gen;
	return n;
}

void run_spawn_queued(struct orch_engine *e)
{
	/* spawning may start nothing new, but may end attempts (a failed spawn
	 * is a failed attempt): take the queue first; what waits for a sync
	 * of the WAL (its run's submission, say) goes back to it */
	struct spawn_req *q = e->spawnq;
	size_t n = e->nspawn;
	e->spawnq = NULL;
	e->nspawn = e->capspawn = 0;
	for (size_t k = 0; k < n; k++) {
		if (q[k].gen > e->synced_gen) {
			if (e->nspawn == e->capspawn) {
				size_t cap = e->capspawn ? e->capspawn * 2 : 64;
				struct spawn_req *nq = orch_reallocarray(e->spawnq, cap, sizeof(*nq));
				if (!nq) {
					/* no room to wait: the sync is that much less likely to be needed */
					q[k].gen = 0;
					goto spawn;
				}
				e->spawnq = nq;
				e->capspawn = cap;
			}
			e->spawnq[e->nspawn++] = q[k];
			continue;
		}
spawn:;
		struct run *r = run_find_loaded(e, q[k].run);
		if (!r || !r->active || q[k].idx >= r->dag.n)
			continue;	/* forgotten meanwhile (its creation was undone) */
		struct step *s = &r->steps[q[k].idx];
		if (s->proc || s->attempt != q[k].attempt || step_state_of(s) != STEP_RUNNING)
			continue;
		if (e->stopping || r->cancelled || r->aborted) {
			/* stopped before it began: as if interrupted (or cancelled) */
			r->nrunning--;
			e->running--;
			r->sched = true;
			attempt_ended(e, s, 0, e->stopping ? KILL_INTERRUPT : KILL_CANCEL, NULL);
			continue;
		}
		step_spawn(e, r, q[k].idx);
	}
	orch_free(q);
}
