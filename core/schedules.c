/* core/schedules.c — schedules (SPEC §9): plans with "schedule", registered
 * in the store (table schedules) and submitted as a normal run NAME-N at
 * each time they name (core/schedule.h computes the times). Engine thread
 * only. Not the DAG scheduler (core/sched.c).
 *
 * Times are wall-clock ms in the store, so that they survive restarts;
 * one loop timer is armed for the earliest next_at (clock_wall_to_mono_ms()).
 * When it fires, sch_pass() submits what is due, at most SCH_PER_TURN
 * schedules a turn (the rest go on at the next turn), and sets each one's
 * next_at to its first time after now: the times missed while orchfs was
 * down, or while the loop was late, make one run, never one each.
 *
 * overlap: a time that finds the newest run of NAME unfinished is skipped
 * ("skip"), or waits for it ("queue": queued = 1, at most one waits; later
 * times are folded into it). run_finish() tells sch_run_ended() of the end
 * of a run whose plan has a schedule (a flag test for every other run):
 * the waiting time is then due (queued = 2). */
#include "core/clockstep.h"
#include "core/engine_i.h"
#include "core/schedule.h"

#include <errno.h>
#include <string.h>

#define SCH_PER_TURN 64	/* schedules submitted (or skipped) per turn */
#define SCH_NEVER INT64_MAX	/* next_at of a schedule with no time left */

static void sch_timer_cb(struct loop_timer *t);

/* Arm the timer for the earliest next_at, or for the next turn when a
 * queued time is due; never for this turn (run_timers() would call us
 * again before the loop moves on). */
static void sch_arm(struct orch_engine *e)
{
	if (!e->sch_any || e->stopping)
		return;
	int rc;
	int64_t at;
	if (store_int(&e->st, "SELECT 1 FROM schedules WHERE queued = 2 LIMIT 1", 0, NULL)) {
		at = 0;
	} else {
		/* (min() alone reads one entry of the index) */
		sqlite3_stmt *q = store_query(&e->st, "SELECT min(next_at) FROM schedules", &rc, NULL);
		if (!q)
			return;
		bool none = sqlite3_column_type(q, 0) == SQLITE_NULL;
		at = sqlite3_column_int64(q, 0);
		store_done(q);
		/* (sch_any stays: a failed commit may bring rows back) */
		if (none || at == SCH_NEVER) {
			loop_timer_cancel(&e->loop, &e->sch_timer);
			return;
		}
		at = clock_wall_to_mono_ms(at);
	}
	int64_t soonest = clock_mono_ms() + 1;
	if (loop_timer_set(&e->loop, &e->sch_timer, at > soonest ? at : soonest))
		eng_log(e, "schedules: cannot arm the timer (out of memory): times wait for the next change");
}

int sch_open(struct orch_engine *e)
{
	e->sch_timer = (struct loop_timer)LOOP_TIMER_INIT(sch_timer_cb, e);
	e->sch_any = store_int(&e->st, "SELECT 1 FROM schedules LIMIT 1", 0, NULL) != 0;
	if (!e->sch_any)
		return 0;
	/* a time that waited for a run: looked at again (the run may be over) */
	store_exec(&e->st, "UPDATE schedules SET queued = 2 WHERE queued = 1", NULL);
	/* the clock may have gone back while orchfs was down: a next_at
	 * further than the schedule's next time after now is brought back
	 * (a passed one fires at the first turn, once) */
	sched_clock_stepped(e, SCHEDULE_STEP_UNKNOWN);
	return 0;
}

/* Read the spec of a row: 0, or -EINVAL (logged) when it does not parse. */
static int spec_load(struct orch_engine *e, const char *name, const char *text, struct schedule *s)
{
	json_error_t jerr;
	json_t *o = text ? json_loads(text, 0, &jerr) : NULL;
	int rc = o ? schedule_load(s, o) : -EINVAL;
	json_decref(o);
	if (rc)
		eng_log(e, "schedule %s: its spec does not parse: skipped", name);
	return rc;
}

int sch_register(struct orch_engine *e, const char *stem, const struct plan *plan, uid_t uid, gid_t gid)
{
	json_t *obj = json_object_get(plan->doc, "schedule");
	struct schedule s;
	if (schedule_load(&s, obj))
		return -EINVAL;	/* cannot be: plan_parse() checked it */
	char *spec = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!spec)
		return -ENOMEM;
	int64_t now = clock_wall_ms(), next = schedule_next(&s, now, now);
	/* a new schedule replaces the one before (its times and queue), and
	 * keeps what NAME.schedule says was last run */
	int rc = store_exec(&e->st,
			    "INSERT INTO schedules(name, uid, gid, spec, anchor, next_at) VALUES(?, ?, ?, ?, ?, ?)"
			    " ON CONFLICT(name) DO UPDATE SET uid = excluded.uid, gid = excluded.gid,"
			    " spec = excluded.spec, anchor = excluded.anchor, next_at = excluded.next_at,"
			    " queued = 0",
			    "siisii", stem, (int64_t)uid, (int64_t)gid, spec, now, next < 0 ? SCH_NEVER : next);
	free(spec);
	if (!rc)
		rc = store_exec(&e->st,
				"INSERT INTO plan_names(name, uid, gid) VALUES(?, ?, ?)"
				" ON CONFLICT(name) DO UPDATE SET error = NULL, error_at = NULL,"
				" uid = excluded.uid, gid = excluded.gid",
				"sii", stem, (int64_t)uid, (int64_t)gid);
	if (rc)
		return rc;
	e->sch_any = true;
	sch_arm(e);
	orch_need_durable(e);
	return 0;
}

void sch_end(struct orch_engine *e, const char *stem)
{
	/* (the timer stays: a pass that finds nothing due re-arms it) */
	if (e->sch_any)
		store_exec(&e->st, "DELETE FROM schedules WHERE name = ?", "s", stem);
}

static void add_time(struct sbuf *out, const char *key, sqlite3_stmt *q, int col)
{
	sbuf_addf(out, "\"%s\":", key);
	if (sqlite3_column_type(q, col) == SQLITE_NULL || sqlite3_column_int64(q, col) == SCH_NEVER) {
		sbuf_adds(out, "null");
	} else {
		char ts[ISO8601_LEN];
		fmt_iso8601(sqlite3_column_int64(q, col), ts);
		sbuf_addf(out, "\"%s\"", ts);
	}
}

int sch_render(struct orch_engine *e, int64_t id, struct sbuf *out)
{
	int rc;
	sqlite3_stmt *q = store_query(&e->st, "SELECT next_at, last_at, last_run FROM schedules WHERE id = ?",
				      &rc, "i", id);
	if (!q)
		return rc ? rc : -ENOENT;
	sbuf_addc(out, '{');
	add_time(out, "next_at", q, 0);
	sbuf_addc(out, ',');
	add_time(out, "last_at", q, 1);
	/* a run name is [A-Za-z0-9_-]: no escaping */
	if (sqlite3_column_type(q, 2) == SQLITE_NULL)
		sbuf_adds(out, ",\"last_run\":null}\n");
	else
		sbuf_addf(out, ",\"last_run\":\"%s\"}\n", (const char *)sqlite3_column_text(q, 2));
	store_done(q);
	return sbuf_failed(out) ? -ENOMEM : 0;
}

void sch_run_ended(struct orch_engine *e, const struct run *r)
{
	if (!e->sch_any)
		return;
	store_exec(&e->st, "UPDATE schedules SET queued = 2 WHERE name = ? AND queued = 1", "s", r->plan_name);
	if (sqlite3_changes(e->st.db) > 0)
		sch_arm(e);
}

struct due {
	char *name;
	uid_t uid;
	gid_t gid;
	char *spec;
	int64_t anchor, next_at;
	int queued;
};

/* Up to MAX rows due at NOW into D (*ND of them): the queued times whose
 * run ended first, then the passed times, earliest first. */
static int due_load(struct orch_engine *e, int64_t now, struct due *d, size_t max, size_t *nd)
{
	static const char *const sql[] = {
		"SELECT name, uid, gid, spec, anchor, next_at, queued FROM schedules WHERE queued = 2"
		" ORDER BY id LIMIT ?",
		"SELECT name, uid, gid, spec, anchor, next_at, queued FROM schedules WHERE next_at <= ?"
		" AND queued != 2 ORDER BY next_at LIMIT ?",
	};
	int rc = 0;
	*nd = 0;
	for (size_t k = 0; k < 2 && !rc && *nd < max; k++) {
		sqlite3_stmt *q = k == 0 ? store_query(&e->st, sql[0], &rc, "i", (int64_t)(max - *nd))
					 : store_query(&e->st, sql[1], &rc, "ii", now, (int64_t)(max - *nd));
		for (bool more = q != NULL; more && *nd < max; more = store_next(q)) {
			struct due *x = &d[(*nd)++];
			x->name = orch_strdup((const char *)sqlite3_column_text(q, 0));
			x->uid = (uid_t)sqlite3_column_int64(q, 1);
			x->gid = (gid_t)sqlite3_column_int64(q, 2);
			x->spec = orch_strdup((const char *)sqlite3_column_text(q, 3));
			x->anchor = sqlite3_column_int64(q, 4);
			x->next_at = sqlite3_column_int64(q, 5);
			x->queued = (int)sqlite3_column_int64(q, 6);
			if (!x->name || !x->spec) {
				rc = -ENOMEM;
				break;
			}
		}
		if (q)
			store_done(q);
	}
	return rc;
}

/* Is the newest run of plan NAME unfinished? */
static bool busy(struct orch_engine *e, const char *name)
{
	return store_int(&e->st,
			 "SELECT 1 FROM runs WHERE name = (SELECT newest_run FROM plan_names WHERE name = ?)"
			 " AND state IN ('pending','running','paused','needs_human')",
			 0, "s", name) != 0;
}

/* D is due at NOW: submit it, or skip or queue its time. */
static void fire(struct orch_engine *e, struct due *d, int64_t now)
{
	struct schedule s;
	int64_t next = d->next_at;
	if (spec_load(e, d->name, d->spec, &s)) {
		store_exec(&e->st, "UPDATE schedules SET next_at = ?, queued = 0 WHERE name = ?", "is", SCH_NEVER,
			   d->name);
		return;
	}
	if (next <= now) {
		next = schedule_fired(&s, d->anchor, now);
		if (next <= now) {
			/* no time left (or a stored anchor out of this world):
			 * never again, rather than at every turn */
			if (next >= 0)
				eng_log(e, "schedule %s: its next time is not after now: it will not fire again"
					" (submit plans/%s.json again to start it afresh)", d->name, d->name);
			next = SCH_NEVER;
		}
	}
	if (busy(e, d->name)) {
		/* skip: this time is gone; queue: it waits (one at most) */
		int q = s.overlap == SCHEDULE_QUEUE ? 1 : 0;
		store_exec(&e->st, "UPDATE schedules SET next_at = ?, queued = ? WHERE name = ?", "iis", next,
			   (int64_t)q, d->name);
		return;
	}
	char made[RUN_ID_MAX + 1];
	int rc = plans_fire(e, PLANS_BY_SCHEDULE, d->name, d->uid, d->gid, NULL, made);
	if (rc) {
		/* the time is spent all the same: no retry at every turn (a
		 * plan gone took its row with it: then this changes nothing) */
		if (rc != -ENOENT || store_int(&e->st, "SELECT 1 FROM schedules WHERE name = ?", 0, "s", d->name))
			eng_log(e, "schedule %s: no run: %s (see plans/%s.error)", d->name, strerror(-rc),
				d->name);
		store_exec(&e->st, "UPDATE schedules SET next_at = ?, queued = 0 WHERE name = ?", "is", next,
			   d->name);
		return;
	}
	store_exec(&e->st,
		   "UPDATE schedules SET next_at = ?, queued = 0, last_at = ?, last_run = ? WHERE name = ?",
		   "iiss", next, now, made, d->name);
}

/* Submit what is due, SCH_PER_TURN at most (the timer, armed again for
 * the next turn, finds the rest). */
static void sch_pass(struct orch_engine *e)
{
	if (!e->sch_any || e->stopping)
		return;
	struct due *d = orch_calloc(SCH_PER_TURN, sizeof(*d));
	size_t nd = 0;
	if (!d)
		return;
	int64_t now = clock_wall_ms();
	int rc = due_load(e, now, d, SCH_PER_TURN, &nd);
	for (size_t i = 0; !rc && i < nd; i++)
		fire(e, &d[i], now);
	for (size_t i = 0; i < nd; i++) {
		orch_free(d[i].name);
		orch_free(d[i].spec);
	}
	orch_free(d);
}

static void sch_timer_cb(struct loop_timer *t)
{
	struct orch_engine *e = t->data;
	clockstep_check(e);	/* a step not yet seen moves next_at first */
	sch_pass(e);
	sch_arm(e);
}

void sched_clock_stepped(struct orch_engine *e, int64_t delta_ms)
{
	if (!e->sch_any)
		return;
	int64_t now = clock_wall_ms();
	bool known = delta_ms != SCHEDULE_STEP_UNKNOWN;
	int rc;
	/* rare (a clock step, a start): every schedule, in one go */
	sqlite3_stmt *q = store_query(&e->st,
				      "SELECT id, name, spec, anchor, next_at, coalesce(last_at, -1) FROM schedules", &rc,
				      NULL);
	size_t n = 0, cap = 0;
	struct upd {
		int64_t id, next_at, anchor;
	} *u = NULL;
	for (bool more = q != NULL; more; more = store_next(q)) {
		struct schedule s;
		if (spec_load(e, (const char *)sqlite3_column_text(q, 1), (const char *)sqlite3_column_text(q, 2),
			      &s))
			continue;
		int64_t anchor = sqlite3_column_int64(q, 3), next_at = sqlite3_column_int64(q, 4);
		if (next_at == SCH_NEVER)
			continue;
		int64_t want = schedule_stepped(&s, anchor, next_at, sqlite3_column_int64(q, 5), now, delta_ms);
		if (want < 0)
			want = SCH_NEVER;
		if (want == next_at)
			continue;
		/* every_sec's grid moves with its times (schedule_stepped()) */
		if (known && s.every_ms && __builtin_add_overflow(anchor, delta_ms, &anchor))
			anchor = sqlite3_column_int64(q, 3);
		if (n == cap) {
			size_t c = cap ? cap * 2 : 16;
			struct upd *nu = orch_realloc(u, c * sizeof(*u));
			if (!nu)
				break;
			u = nu;
			cap = c;
		}
		u[n++] = (struct upd){ sqlite3_column_int64(q, 0), want, anchor };
	}
	if (q)
		store_done(q);
	for (size_t i = 0; i < n; i++)
		store_exec(&e->st, "UPDATE schedules SET next_at = ?, anchor = ? WHERE id = ?", "iii", u[i].next_at,
			   u[i].anchor, u[i].id);
	orch_free(u);
	if (n)
		orch_need_durable(e);
	sch_arm(e);
}
