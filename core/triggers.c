/* core/triggers.c — triggers (SPEC §9): plans with "on" rules, registered
 * in the store (table triggers) and submitted once for each recorded event
 * that matches (core/trigger.h). Engine thread only.
 *
 * ev_emit() knows nothing of triggers: events are matched afterwards, at
 * one point of the engine turn (trig_pass(), from before_sleep(), before
 * the commit), from the durable cursor meta.trigger_off (the global view's
 * offset of the first event not yet matched) up to the last event. The
 * runs a pass submits, the counts of NAME.trigger and the cursor are
 * written in one transaction: an event committed fires its triggers
 * exactly once, even across kill -9 (a restart matches what lies past the
 * cursor). With no trigger registered no pass runs and nothing is read:
 * the cursor moves to the end of the log when the first trigger comes. */
#include "core/engine_i.h"
#include "core/trigger.h"

#include <errno.h>
#include <string.h>

/* At most this many runs submitted by triggers per turn, and events
 * matched per turn: a chain of triggers that fire on each other's events
 * (allowed: A -> B -> A) goes on at the next turn, never unbounded in one. */
#define TRIG_RUNS_PER_TURN 64
#define TRIG_EVENTS_PER_TURN 4096
#define TRIG_BATCH 256

struct trig {
	char *name;
	uid_t uid;
	gid_t gid;
	json_t *on;
};

static void set_cursor(struct orch_engine *e, int64_t off)
{
	e->trig_off = off;
	store_exec(&e->st, "INSERT INTO meta(key, value) VALUES('trigger_off', ?)"
		   " ON CONFLICT(key) DO UPDATE SET value = excluded.value", "i", off);
}

int trig_open(struct orch_engine *e)
{
	e->trig_any = store_int(&e->st, "SELECT 1 FROM triggers LIMIT 1", 0, NULL) != 0;
	e->trig_off = store_int(&e->st, "SELECT value FROM meta WHERE key = 'trigger_off'", 0, NULL);
	if (e->trig_off > e->g_bytes)
		e->trig_off = e->g_bytes;
	return 0;
}

int trig_register(struct orch_engine *e, const char *stem, const struct plan *plan, uid_t uid, gid_t gid)
{
	char *on = json_dumps(json_object_get(plan->doc, "on"), JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!on)
		return -ENOMEM;
	if (e->ev_epoch != e->st.rollbacks)
		ev_open(e);
	/* the first trigger matches the events from now on, not the log's past */
	bool first = !store_int(&e->st, "SELECT 1 FROM triggers LIMIT 1", 0, NULL);
	int rc = store_exec(&e->st,
			    "INSERT INTO triggers(name, uid, gid, on_rules, created_at) VALUES(?, ?, ?, ?, ?)"
			    " ON CONFLICT(name) DO UPDATE SET uid = excluded.uid, gid = excluded.gid,"
			    " on_rules = excluded.on_rules",
			    "siisi", stem, (int64_t)uid, (int64_t)gid, on, clock_wall_ms());
	free(on);
	if (!rc)
		rc = store_exec(&e->st,
				"INSERT INTO plan_names(name, uid, gid) VALUES(?, ?, ?)"
				" ON CONFLICT(name) DO UPDATE SET error = NULL, error_at = NULL,"
				" uid = excluded.uid, gid = excluded.gid",
				"sii", stem, (int64_t)uid, (int64_t)gid);
	if (rc)
		return rc;
	if (first)
		set_cursor(e, e->g_bytes);
	e->trig_any = true;
	orch_need_durable(e);
	return 0;
}

void trig_end(struct orch_engine *e, const char *stem)
{
	if (e->trig_any)
		store_exec(&e->st, "DELETE FROM triggers WHERE name = ?", "s", stem);
}

int trig_render(struct orch_engine *e, int64_t id, struct sbuf *out)
{
	int rc;
	sqlite3_stmt *q = store_query(&e->st, "SELECT fired, last_at, last_run FROM triggers WHERE id = ?",
				      &rc, "i", id);
	if (!q)
		return rc ? rc : -ENOENT;
	sbuf_addf(out, "{\"fired\":%lld,\"last_at\":", (long long)sqlite3_column_int64(q, 0));
	if (sqlite3_column_type(q, 1) == SQLITE_NULL) {
		sbuf_adds(out, "null,\"last_run\":null}\n");
	} else {
		char ts[ISO8601_LEN];
		fmt_iso8601(sqlite3_column_int64(q, 1), ts);
		/* a run name is [A-Za-z0-9_-]: no escaping */
		sbuf_addf(out, "\"%s\",\"last_run\":\"%s\"}\n", ts, (const char *)sqlite3_column_text(q, 2));
	}
	store_done(q);
	return sbuf_failed(out) ? -ENOMEM : 0;
}

/* Is RUN_ID a run of plan NAME ("NAME-N")? */
static bool own_run(const char *name, const char *run_id)
{
	size_t n = strlen(name);
	if (!run_id || strncmp(run_id, name, n) || run_id[n] != '-' || !run_id[n + 1])
		return false;
	for (const char *p = run_id + n + 1; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

static void trigs_free(struct trig *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		orch_free(t[i].name);
		json_decref(t[i].on);
	}
	orch_free(t);
}

/* Every registered trigger, its rules parsed. */
static int trigs_load(struct orch_engine *e, struct trig **out, size_t *nout)
{
	int rc;
	struct trig *t = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *q = store_query(&e->st, "SELECT name, uid, gid, on_rules FROM triggers ORDER BY id", &rc,
				      NULL);
	for (bool more = q != NULL; more; more = store_next(q)) {
		if (n == cap) {
			size_t c = cap ? cap * 2 : 8;
			struct trig *nt = orch_realloc(t, c * sizeof(*t));
			if (!nt) {
				rc = -ENOMEM;
				break;
			}
			t = nt;
			cap = c;
		}
		json_error_t jerr;
		t[n].name = orch_strdup((const char *)sqlite3_column_text(q, 0));
		t[n].uid = (uid_t)sqlite3_column_int64(q, 1);
		t[n].gid = (gid_t)sqlite3_column_int64(q, 2);
		t[n].on = json_loads((const char *)sqlite3_column_text(q, 3), 0, &jerr);
		if (!t[n].on) {
			/* cannot be (trig_register() wrote it): skipped, not fatal,
			 * lest every pass stop at it */
			eng_log(e, "trigger %s: its rules do not parse: %s", (const char *)sqlite3_column_text(q, 0),
				jerr.text);
			orch_free(t[n].name);
			continue;
		}
		n++;
		if (!t[n - 1].name) {
			rc = -ENOMEM;
			break;
		}
	}
	if (q)
		store_done(q);
	if (rc) {
		trigs_free(t, n);
		return rc;
	}
	*out = t;
	*nout = n;
	return 0;
}

struct pending {
	int64_t end;	/* the offset after this event */
	char *line;
};

/* Up to TRIG_BATCH events from the cursor on. */
static int batch_load(struct orch_engine *e, struct pending *b, size_t *nb)
{
	int rc;
	*nb = 0;
	sqlite3_stmt *q = store_query(&e->st, "SELECT g_off, line FROM events WHERE g_off >= ? ORDER BY g_off",
				      &rc, "i", e->trig_off);
	for (bool more = q != NULL; more && *nb < TRIG_BATCH; more = store_next(q)) {
		int64_t len = sqlite3_column_bytes(q, 1);
		b[*nb].end = sqlite3_column_int64(q, 0) + len + 1;
		b[*nb].line = orch_strdup((const char *)sqlite3_column_text(q, 1));
		if (!b[(*nb)++].line) {
			rc = -ENOMEM;
			break;
		}
	}
	if (q)
		store_done(q);
	return rc;
}

/* Submit trigger T for EVENT (its LINE). */
static void fire(struct orch_engine *e, struct trig *t, json_t *event, const char *line, unsigned *runs)
{
	const char *run_id = json_string_value(json_object_get(event, "run_id"));
	const char *sb = json_string_value(json_object_get(event, "sandbox"));
	char made[RUN_ID_MAX + 1];
	const char *const trig[3] = { line, run_id, sb };
	int rc = plans_fire(e, PLANS_BY_TRIGGER, t->name, t->uid, t->gid, trig, made);
	if (rc) {
		if (rc != -ENOENT)
			eng_log(e, "trigger %s: event %s: no run: %s (see plans/%s.error)", t->name,
				json_string_value(json_object_get(event, "type")), strerror(-rc), t->name);
		return;
	}
	(*runs)++;
	store_exec(&e->st, "UPDATE triggers SET fired = fired + 1, last_at = ?, last_run = ? WHERE name = ?",
		   "iss", clock_wall_ms(), made, t->name);
}

bool trig_pending(const struct orch_engine *e)
{
	return e->trig_any && !e->stopping && (e->trig_off < e->g_bytes || e->ev_epoch != e->st.rollbacks);
}

bool trig_pass(struct orch_engine *e)
{
	if (!e->trig_any || e->stopping)
		return false;
	if (e->ev_epoch != e->st.rollbacks)
		ev_open(e);
	if (e->trig_off >= e->g_bytes)
		return false;
	struct trig *t = NULL;
	size_t nt = 0;
	if (trigs_load(e, &t, &nt))
		return false;	/* tried again next turn */
	if (nt == 0) {
		/* every trigger ended: nothing to match, and no pass until one comes */
		e->trig_any = false;
		trigs_free(t, nt);
		return false;
	}
	unsigned runs = 0, events = 0;
	struct pending *b = orch_calloc(TRIG_BATCH, sizeof(*b));
	int64_t off = e->trig_off;
	while (b && runs < TRIG_RUNS_PER_TURN && events < TRIG_EVENTS_PER_TURN && off < e->g_bytes) {
		size_t nb;
		int rc = batch_load(e, b, &nb);
		size_t i = 0;
		for (; !rc && i < nb && runs < TRIG_RUNS_PER_TURN; i++, events++) {
			json_error_t jerr;
			json_t *ev = json_loads(b[i].line, 0, &jerr);
			if (!ev)
				break;	/* out of memory: this event again next turn */
			/* a plan's own: its runs' events, and its runs' own
			 * sandboxes' (named after the run) */
			const char *run_id = json_string_value(json_object_get(ev, "run_id"));
			const char *of = run_id ? run_id : json_string_value(json_object_get(ev, "sandbox"));
			for (size_t k = 0; k < nt; k++)
				if (!own_run(t[k].name, of) && trigger_matches(t[k].on, ev))
					fire(e, &t[k], ev, b[i].line, &runs);
			json_decref(ev);
			off = b[i].end;
			e->trig_off = off;	/* batch_load()'s next start */
		}
		for (size_t k = 0; k < nb; k++)
			orch_free(b[k].line);
		if (rc || i < nb || nb == 0)
			break;
	}
	orch_free(b);
	trigs_free(t, nt);
	set_cursor(e, off);
	return runs > 0;
}
