/* core/windows.c — sandbox windows (SPEC §9), the engine's side: every
 * window in memory (table windows, one row per sandbox that has one,
 * written when its own fields change; table window_hits, one row per event
 * an extend_when rule counted), one loop timer per
 * window for its next deadline or idle end (the loop's heap orders them),
 * the window.extended and window.ended events, ctl extend and resume, and
 * what a window's end does to its sandbox (an on_end pause is the
 * sandbox's freeze, core/freeze.c). The arithmetic is
 * core/window.c. Engine thread only.
 *
 * Reached from core/sandbox.c (load, free, delete, events posted, ctl,
 * status), core/run.c (step output, a run's end), core/msgq.c (a message
 * queued), core/activity.c (a workspace change) and core/planstore.c (a
 * plan's window opens), each behind one test of sb->win, so a sandbox
 * without a window pays a NULL test on those paths.
 *
 * Times: deadlines are wall-clock ms in the store, armed on the loop with
 * clock_wall_to_mono_ms(); a deadline that passed while orchfs was down
 * fires at the first turn after the start, once (ended_at is durable).
 * Idle time is counted on the monotonic clock, in memory only: a restart
 * counts it afresh from the start. */
#include "core/clockstep.h"
#include "core/engine_i.h"
#include "core/lines.h"
#include "core/window.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* extensions kept in status (and the store): the newest; older ones are
 * counted in extensions_dropped */
#define WIN_EXT_KEEP 256

struct win {
	int64_t sb_rowid;
	char sb_name[SANDBOX_ID_MAX + 1];
	struct sandbox *sb;	/* while loaded */
	struct window_spec spec;
	struct window_state st;
	json_t *ext;		/* [{at, by, seconds, reason}] */
	int64_t ext_dropped;
	int64_t ended_at;	/* wall ms; 0: open */
	char end_reason[16];
	bool paused;		/* ended with on_end pause, not resumed */
	bool delete_pending;	/* ended with on_end delete: the sandbox goes once its runs end */
	bool delete_check;	/* ... and may have none left: the timer looks at once */
	int64_t active_mono;	/* its last activity (mono ms) */
	struct orch_engine *e;
	struct loop_timer timer;	/* its next deadline, idle end or delete check */
	struct win *next;
};

static void timer_cb(struct loop_timer *t);

static struct win *win_new(struct orch_engine *e)
{
	struct win *w = orch_calloc(1, sizeof(*w));
	if (w) {
		w->e = e;
		w->timer = (struct loop_timer)LOOP_TIMER_INIT(timer_cb, w);
	}
	return w;
}

static void win_free(struct win *w)
{
	loop_timer_cancel(&w->e->loop, &w->timer);
	if (w->sb)
		w->sb->win = NULL;
	window_spec_release(&w->spec);
	window_state_release(&w->st);
	json_decref(w->ext);
	orch_free(w);
}

/* ---- the row ---- */

static json_t *spec_json(const struct window_spec *s)
{
	json_t *rules = json_array();
	for (size_t i = 0; rules && i < s->nrules; i++)
		json_array_append_new(rules, json_pack("{s:s, s:i, s:I}", "event_type", s->rules[i].event_type,
						       "count", (int)s->rules[i].count, "within_ms",
						       (json_int_t)s->rules[i].within_ms));
	return json_pack("{s:I, s:I, s:I, s:I, s:s, s:o}", "duration_ms", (json_int_t)s->duration_ms, "max_ms",
			 (json_int_t)s->max_ms, "extend_ms", (json_int_t)s->extend_ms, "idle_ms",
			 (json_int_t)s->idle_ms, "on_end", window_on_end_name(s->on_end), "rules",
			 rules ? rules : json_null());
}

/* V within [LO, HI] (a stored row may hold anything). */
static int64_t clamp(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* A stored spec, within the plan's limits: a duration that is not
 * positive is refused, the other times are brought within a year. */
static int spec_from_json(struct window_spec *s, const char *text)
{
	json_t *o = json_loads(text ? text : "", 0, NULL);
	if (!json_is_object(o)) {
		json_decref(o);
		return -EINVAL;
	}
	s->duration_ms = json_integer_value(json_object_get(o, "duration_ms"));
	bool positive = s->duration_ms > 0;
	s->duration_ms = clamp(s->duration_ms, 1, WINDOW_MAX_MS);
	s->max_ms = clamp(json_integer_value(json_object_get(o, "max_ms")), s->duration_ms, WINDOW_MAX_MS);
	s->extend_ms = clamp(json_integer_value(json_object_get(o, "extend_ms")), 0, WINDOW_MAX_MS);
	s->idle_ms = clamp(json_integer_value(json_object_get(o, "idle_ms")), 0, WINDOW_MAX_MS);
	const char *oe = json_string_value(json_object_get(o, "on_end"));
	s->on_end = oe && !strcmp(oe, "pause") ? WINDOW_END_PAUSE
		    : oe && !strcmp(oe, "delete") ? WINDOW_END_DELETE : WINDOW_END_STOP;
	json_t *rules = json_object_get(o, "rules");
	size_t n = json_array_size(rules);
	if (n > WINDOW_MAX_RULES)
		n = WINDOW_MAX_RULES;
	int rc = 0;
	if (n && !(s->rules = orch_calloc(n, sizeof(*s->rules))))
		rc = -ENOMEM;
	for (size_t i = 0; !rc && i < n; i++) {
		json_t *r = json_array_get(rules, i);
		const char *t = json_string_value(json_object_get(r, "event_type"));
		s->rules[i].event_type = orch_strdup(t ? t : "");
		s->rules[i].count =
			(unsigned)clamp(json_integer_value(json_object_get(r, "count")), 1, WINDOW_MAX_COUNT);
		s->rules[i].within_ms = clamp(json_integer_value(json_object_get(r, "within_ms")), 1, WINDOW_MAX_MS);
		if (!s->rules[i].event_type)
			rc = -ENOMEM;
		s->nrules = i + 1;
	}
	s->set = !rc && positive;
	json_decref(o);
	return rc ? rc : s->set ? 0 : -EINVAL;
}

/* Its row (not its rules' hits: window_hits), in the turn's batch. */
static int win_save(struct orch_engine *e, struct win *w)
{
	json_t *spec = spec_json(&w->spec);
	char *ts = spec ? json_dumps(spec, JSON_COMPACT) : NULL;
	char *te = w->ext ? json_dumps(w->ext, JSON_COMPACT) : NULL;
	json_decref(spec);
	int rc = -ENOMEM;
	if (ts && te)
		rc = store_exec(&e->st,
				"INSERT OR REPLACE INTO windows(sandbox, name, spec, opened_at, deadline, max_deadline,"
				" extensions, ext_dropped, ended_at, end_reason, paused)"
				" VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
				"issiiisiIsi", w->sb_rowid, w->sb_name, ts, w->st.opened_at, w->st.deadline,
				w->st.max_deadline, te, w->ext_dropped, w->ended_at,
				w->ended_at ? w->end_reason : NULL, (int64_t)w->paused);
	free(ts);
	free(te);
	if (rc)
		eng_log(e, "sandbox %s: cannot record its window: %s", w->sb_name, strerror(-rc));
	return rc;
}

/* ---- the timer ---- */

static int64_t due_mono(const struct win *w)
{
	int64_t at = clock_wall_to_mono_ms(w->st.deadline);
	int64_t idle_end = window_add(w->active_mono, w->spec.idle_ms);
	if (w->spec.idle_ms && idle_end < at)
		at = idle_end;
	return at;
}

/* W's timer, for its next due time (none once it ended, but a delete check). */
static void win_arm(struct orch_engine *e, struct win *w)
{
	int64_t at = w->delete_check ? clock_mono_ms() : w->ended_at ? INT64_MAX : due_mono(w);
	if (at == INT64_MAX)
		loop_timer_cancel(&e->loop, &w->timer);
	else if (loop_timer_set(&e->loop, &w->timer, at))
		eng_log(e, "sandbox %s: cannot arm its window's timer (no memory)", w->sb_name);
}

/* ---- the end ---- */

/* What on_end does to W's sandbox SB (at the end, and again at a start
 * that finds a delete undone). */
static void end_action(struct orch_engine *e, struct win *w, struct sandbox *sb)
{
	switch (w->spec.on_end) {
	case WINDOW_END_PAUSE:
		sb_freeze(e, sb);
		break;
	case WINDOW_END_DELETE:
		w->delete_pending = w->delete_check = true;
		/* its runs stop first */
		__attribute__((fallthrough));
	case WINDOW_END_STOP:
		for (struct run *r = e->active_head, *next; r; r = next) {
			next = r->next;
			if (r->sb == sb && !r->cancelled)
				run_cancel(e, r);
		}
		e->sched_all = true;
		break;
	}
}

static void win_end(struct orch_engine *e, struct win *w, const char *reason)
{
	struct sandbox *sb = sb_get_rowid(e, w->sb_rowid);
	struct actor old = eng_actor_set(e, ACTOR_NONE);	/* the engine's doing */
	w->ended_at = clock_wall_ms();
	snprintf(w->end_reason, sizeof(w->end_reason), "%s", reason);
	w->paused = w->spec.on_end == WINDOW_END_PAUSE;
	win_save(e, w);
	if (sb) {
		char at[ISO8601_LEN];
		fmt_iso8601(w->st.deadline, at);
		ev_emit(e, "window.ended", NULL, NULL, sb,
			json_pack("{s:s, s:s, s:s}", "reason", reason, "on_end", window_on_end_name(w->spec.on_end),
				  "deadline", at));
		end_action(e, w, sb);
	}
	eng_actor_restore(e, old);
	orch_need_durable(e);
}

/* on_end delete, once the sandbox's runs ended: as ctl delete does. True
 * when W was freed (with its sandbox). */
static bool win_delete(struct orch_engine *e, struct win *w)
{
	w->delete_check = false;
	struct sandbox *sb = sb_get_rowid(e, w->sb_rowid);
	if (!sb) {
		w->delete_pending = false;
		return false;
	}
	if (sb_in_use(e, sb))
		return false;	/* win_run_finished() calls again */
	int rc = orch_sandbox_remove(e, sb->rowid);	/* frees w */
	if (rc) {
		eng_log(e, "sandbox %s: its window ended, cannot delete it: %s", w->sb_name, strerror(-rc));
		w->delete_pending = false;
		return false;
	}
	return true;
}

static void timer_cb(struct loop_timer *t)
{
	struct win *w = t->data;
	struct orch_engine *e = w->e;
	clockstep_check(e);	/* a step not yet seen moves the deadline first */
	if (!w->ended_at) {
		if (w->st.deadline <= clock_wall_ms())
			win_end(e, w, "deadline");
		else if (w->spec.idle_ms && window_add(w->active_mono, w->spec.idle_ms) <= clock_mono_ms())
			win_end(e, w, "idle");
	}
	if (w->delete_pending && win_delete(e, w))
		return;
	win_arm(e, w);
}

/* ---- lifecycle ---- */

static struct win *win_find(struct orch_engine *e, int64_t sb_rowid)
{
	for (struct win *w = e->wins; w; w = w->next)
		if (w->sb_rowid == sb_rowid)
			return w;
	return NULL;
}

/* The rules' counted events of the windows in E->wins, from window_hits
 * (oldest first; never a rule's count of them, nor a rule it has not). */
static int hits_load(struct orch_engine *e)
{
	int rc;
	sqlite3_stmt *q = store_query(&e->st, "SELECT sandbox, rule, at FROM window_hits ORDER BY sandbox, rule, at",
				      &rc, NULL);
	struct win *w = NULL;
	for (bool more = q != NULL; more; more = store_next(q)) {
		int64_t sbid = sqlite3_column_int64(q, 0), k = sqlite3_column_int64(q, 1);
		if (!w || w->sb_rowid != sbid)
			w = win_find(e, sbid);
		if (!w || k < 0 || (size_t)k >= w->st.nhits)
			continue;
		struct window_hits *h = &w->st.hits[k];
		if (h->n + 1 >= w->spec.rules[k].count)
			continue;
		if (h->n == h->cap) {
			unsigned cap = h->cap ? h->cap * 2 : 4;
			int64_t *t = orch_realloc(h->t, cap * sizeof(*t));
			if (!t) {
				store_done(q);
				return -ENOMEM;
			}
			h->t = t;
			h->cap = cap;
		}
		h->t[h->n++] = clamp(sqlite3_column_int64(q, 2), 0, WINDOW_WALL_MAX_MS);
	}
	return rc;
}

/* Every window of the store into E->wins (empty), attached to its loaded
 * sandbox. */
static int win_load(struct orch_engine *e)
{
	int rc;
	sqlite3_stmt *q = store_query(&e->st,
				      "SELECT sandbox, name, spec, opened_at, deadline, max_deadline, extensions,"
				      " ext_dropped, ended_at, end_reason, paused FROM windows ORDER BY sandbox",
				      &rc, NULL);
	int64_t mono = clock_mono_ms();
	for (bool more = q != NULL; more; more = store_next(q)) {
		struct win *w = win_new(e);
		if (!w) {
			store_done(q);
			return -ENOMEM;
		}
		w->sb_rowid = sqlite3_column_int64(q, 0);
		const char *name = (const char *)sqlite3_column_text(q, 1);
		snprintf(w->sb_name, sizeof(w->sb_name), "%s", name ? name : "");
		if (spec_from_json(&w->spec, (const char *)sqlite3_column_text(q, 2)) ||
		    window_open(&w->st, &w->spec, 0)) {
			eng_log(e, "sandbox %s: its window cannot be read: ignored", w->sb_name);
			win_free(w);
			continue;
		}
		/* wall times within 1970 .. 9999, the maximum not before the deadline */
		w->st.opened_at = clamp(sqlite3_column_int64(q, 3), 0, WINDOW_WALL_MAX_MS);
		w->st.deadline = clamp(sqlite3_column_int64(q, 4), 0, WINDOW_WALL_MAX_MS);
		w->st.max_deadline = clamp(sqlite3_column_int64(q, 5), w->st.deadline, WINDOW_WALL_MAX_MS);
		w->ext = json_loads((const char *)sqlite3_column_text(q, 6), 0, NULL);
		if (!json_is_array(w->ext)) {
			json_decref(w->ext);
			w->ext = json_array();
		}
		w->ext_dropped = sqlite3_column_int64(q, 7);
		w->ended_at = clamp(sqlite3_column_int64(q, 8), 0, WINDOW_WALL_MAX_MS);
		const char *why = (const char *)sqlite3_column_text(q, 9);
		snprintf(w->end_reason, sizeof(w->end_reason), "%s", why ? why : "");
		w->paused = sqlite3_column_int(q, 10) != 0;
		w->active_mono = mono;	/* idle counts from the start */
		w->next = e->wins;
		e->wins = w;
	}
	if (!rc)
		rc = hits_load(e);
	if (rc)
		return rc;
	for (struct sandbox *sb = e->sandboxes; sb; sb = sb->next)
		win_attach(e, sb);
	return 0;
}

int win_open_all(struct orch_engine *e)
{
	int rc = win_load(e);
	if (rc)
		return rc;
	int64_t now = clock_wall_ms();
	for (struct win *w = e->wins; w; w = w->next) {
		if (!w->ended_at && w->st.deadline <= now) {
			/* passed while orchfs was down: it ends now, once, before
			 * any step of its sandbox starts again */
			win_end(e, w, "deadline");
		} else if (w->ended_at && w->spec.on_end == WINDOW_END_DELETE) {
			/* an on_end delete a stop of the daemon cut short goes on */
			struct sandbox *sb = sb_get_rowid(e, w->sb_rowid);
			if (sb)
				end_action(e, w, sb);
		}
		win_arm(e, w);
	}
	return 0;
}

void win_close_all(struct orch_engine *e)
{
	while (e->wins) {
		struct win *w = e->wins;
		e->wins = w->next;
		win_free(w);
	}
}

void win_attach(struct orch_engine *e, struct sandbox *sb)
{
	struct win *w = win_find(e, sb->rowid);
	if (w) {
		w->sb = sb;
		sb->win = w;
	}
}

void win_detach(struct sandbox *sb)
{
	if (sb->win)
		sb->win->sb = NULL;
	sb->win = NULL;
}

static void win_unlink(struct orch_engine *e, struct win *w)
{
	for (struct win **pp = &e->wins; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
}

void win_sb_deleted(struct orch_engine *e, struct sandbox *sb)
{
	struct win *w = win_find(e, sb->rowid);
	if (!w)
		return;
	store_exec(&e->st, "DELETE FROM windows WHERE sandbox = ?", "i", sb->rowid);
	store_exec(&e->st, "DELETE FROM window_hits WHERE sandbox = ?", "i", sb->rowid);
	store_exec(&e->st, "DELETE FROM window_paused_runs WHERE sandbox = ?", "i", sb->rowid);
	win_unlink(e, w);
	win_free(w);
}

int win_plan(struct orch_engine *e, struct sandbox *sb, const struct window_spec *spec)
{
	struct win *old = sb->win;
	if (!spec->set || (old && (!old->ended_at || old->paused)))
		return 0;	/* a live window is kept as it is, and a paused one
			 * (its runs wait for ctl resume of the sandbox) */
	struct win *w = win_new(e);
	if (!w)
		return -ENOMEM;
	w->sb_rowid = sb->rowid;
	snprintf(w->sb_name, sizeof(w->sb_name), "%s", sb->name);
	w->ext = json_array();
	int rc = w->ext ? 0 : -ENOMEM;
	/* a copy of the plan's rules: the window outlives the run */
	w->spec = *spec;
	w->spec.rules = NULL;
	w->spec.nrules = 0;
	if (!rc && spec->nrules && !(w->spec.rules = orch_calloc(spec->nrules, sizeof(*w->spec.rules))))
		rc = -ENOMEM;
	for (size_t i = 0; !rc && i < spec->nrules; i++) {
		w->spec.rules[i] = spec->rules[i];
		w->spec.rules[i].event_type = orch_strdup(spec->rules[i].event_type);
		w->spec.nrules = i + 1;
		if (!w->spec.rules[i].event_type)
			rc = -ENOMEM;
	}
	if (!rc)
		rc = window_open(&w->st, &w->spec, clock_wall_ms());
	w->active_mono = clock_mono_ms();
	if (!rc)
		rc = win_save(e, w);
	if (!rc && old)
		rc = store_exec(&e->st, "DELETE FROM window_hits WHERE sandbox = ?", "i", sb->rowid);
	if (rc) {
		win_free(w);
		return rc;
	}
	if (old) {
		/* the ended one's row was replaced: the new window is the sandbox's */
		win_unlink(e, old);
		old->sb = NULL;
		win_free(old);
	}
	w->next = e->wins;
	e->wins = w;
	w->sb = sb;
	sb->win = w;
	char at[ISO8601_LEN];
	fmt_iso8601(w->st.deadline, at);
	ev_emit(e, "window.opened", NULL, NULL, sb, json_pack("{s:s}", "deadline", at));
	win_arm(e, w);
	return 0;
}

/* ---- activity, rules, extensions ---- */

void win_activity(struct sandbox *sb)
{
	sb->win->active_mono = clock_mono_ms();
}

/* Record an extension of ADDED ms BY (a user, or a rule) for REASON, with
 * its event; the timer armed again. */
static void extended(struct orch_engine *e, struct win *w, int64_t added, const char *by, const char *reason)
{
	int64_t now = clock_wall_ms();
	char at[ISO8601_LEN], dl[ISO8601_LEN];
	fmt_iso8601(now, at);
	fmt_iso8601(w->st.deadline, dl);
	json_t *secs = added % 1000 ? json_real((double)added / 1000.0) : json_integer(added / 1000);
	if (json_array_size(w->ext) >= WIN_EXT_KEEP) {
		json_array_remove(w->ext, 0);
		w->ext_dropped++;
	}
	json_array_append_new(w->ext, json_pack("{s:s, s:s, s:O, s:s?}", "at", at, "by", by, "seconds", secs,
						"reason", reason));
	win_save(e, w);
	if (w->sb)
		ev_emit(e, "window.extended", NULL, NULL, w->sb,
			json_pack("{s:o, s:s?, s:s, s:s}", "seconds", secs, "reason", reason, "by", by, "deadline",
				  dl));
	else
		json_decref(secs);
	win_arm(e, w);
	orch_need_durable(e);
}

void win_posted(struct orch_engine *e, struct sandbox *sb, const struct line_batch *b)
{
	struct win *w = sb->win;
	w->active_mono = clock_mono_ms();
	if (w->ended_at || !w->spec.nrules)
		return;
	int64_t now = clock_wall_ms();
	for (size_t i = 0; i < b->n; i++) {
		const char *type = json_string_value(json_object_get(b->events[i], "event_type"));
		for (size_t k = 0; k < w->spec.nrules; k++) {
			const struct window_rule *r = &w->spec.rules[k];
			if (!window_rule_matches(r, type))
				continue;
			/* its row in window_hits, and those of the ones that fell
			 * out of the span (window_rule_hit() forgets them) */
			struct window_hits *h = &w->st.hits[k];
			int64_t cutoff = window_add(now, -r->within_ms);
			unsigned drop = 0;
			while (drop < h->n && h->t[drop] < cutoff)
				drop++;
			if (drop)
				store_exec(&e->st, "DELETE FROM window_hits WHERE sandbox = ? AND rule = ? AND at < ?",
					   "iii", w->sb_rowid, (int64_t)k, cutoff);
			unsigned kept = h->n - drop;
			if (!window_rule_hit(h, r, now)) {
				if (h->n > kept)
					store_exec(&e->st, "INSERT INTO window_hits(sandbox, rule, at) VALUES(?, ?, ?)",
						   "iii", w->sb_rowid, (int64_t)k, now);
				continue;
			}
			/* it fired: the events that made it count no more */
			store_exec(&e->st, "DELETE FROM window_hits WHERE sandbox = ? AND rule = ?", "ii", w->sb_rowid,
				   (int64_t)k);
			int64_t added = window_extend(&w->st, w->spec.extend_ms);
			if (!added)
				continue;	/* at the maximum: nothing to record */
			char by[48], reason[WINDOW_EVENT_TYPE_MAX + 64];
			snprintf(by, sizeof(by), "extend_when[%zu]", k);
			snprintf(reason, sizeof(reason), "%u %s within %lld s", r->count, r->event_type,
				 (long long)(r->within_ms / 1000));
			struct actor old = eng_actor_set(e, ACTOR_NONE);	/* `by` is the rule */
			extended(e, w, added, by, reason);
			eng_actor_restore(e, old);
		}
	}
}

void win_run_finished(struct orch_engine *e, struct sandbox *sb)
{
	if (sb->win->delete_pending) {
		sb->win->delete_check = true;
		win_arm(e, sb->win);
	}
}

int win_ctl_extend(struct orch_engine *e, struct sandbox *sb, const char *arg, size_t alen)
{
	struct win *w = sb->win;
	if (!w || w->ended_at)
		return -EINVAL;
	/* SEC: a whole number of seconds, 1 to a year */
	size_t digits = 0;
	while (digits < alen && arg[digits] >= '0' && arg[digits] <= '9')
		digits++;
	if (!digits || digits > 9 || (digits < alen && arg[digits] != ' ' && arg[digits] != '\t'))
		return -EINVAL;
	char num[10];
	memcpy(num, arg, digits);
	num[digits] = '\0';
	long long sec = strtoll(num, NULL, 10);
	if (sec < 1 || sec > 31536000)
		return -EINVAL;
	const char *reason = arg + digits;
	size_t rlen = alen - digits;
	while (rlen && (*reason == ' ' || *reason == '\t'))
		reason++, rlen--;
	if (!utf8_valid(reason, rlen))
		return -EINVAL;
	char *why = rlen ? orch_strndup(reason, rlen) : NULL;
	if (rlen && !why)
		return -ENOMEM;
	char by[IDENT_NAME_MAX];
	snprintf(by, sizeof(by), "%s", ident_user(&e->ident, e->actor.set ? e->actor.uid : 0));
	/* at the maximum it adds nothing and records nothing, as a rule does */
	int64_t added = window_extend(&w->st, (int64_t)sec * 1000);
	if (added)
		extended(e, w, added, by, why);
	orch_free(why);
	return 0;
}

bool win_paused(const struct sandbox *sb) { return sb->win && sb->win->paused; }

int win_ctl_resume(struct orch_engine *e, struct sandbox *sb)
{
	struct win *w = sb->win;
	if (!w || !w->paused)
		return -EINVAL;
	w->paused = false;
	int rc = win_save(e, w);
	if (rc)
		return rc;
	sb_thaw(e, sb);
	ev_emit(e, "sandbox.resumed", NULL, NULL, sb, NULL);
	e->sched_all = true;
	orch_need_durable(e);
	return 0;
}

void win_render(struct orch_engine *e, struct sandbox *sb, json_t *o)
{
	struct win *w = sb->win;
	(void)e;
	char opened[ISO8601_LEN], dl[ISO8601_LEN], max[ISO8601_LEN], ended[ISO8601_LEN];
	fmt_iso8601(w->st.opened_at, opened);
	fmt_iso8601(w->st.deadline, dl);
	fmt_iso8601(w->st.max_deadline, max);
	fmt_iso8601(w->ended_at, ended);
	json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:O, s:s?, s:s?}", "state", w->ended_at ? "ended" : "open",
			      "opened_at", opened, "deadline", dl, "max_deadline", max, "on_end",
			      window_on_end_name(w->spec.on_end), "extensions", w->ext, "ended_at",
			      w->ended_at ? ended : NULL, "end_reason", w->ended_at ? w->end_reason : NULL);
	if (!j)
		return;
	if (w->ext_dropped)
		json_object_set_new(j, "extensions_dropped", json_integer(w->ext_dropped));
	if (w->spec.idle_ms) {
		int64_t ms = w->spec.idle_ms;
		json_object_set_new(j, "idle_sec", ms % 1000 ? json_real((double)ms / 1000.0) : json_integer(ms / 1000));
		if (!w->ended_at) {
			char last[ISO8601_LEN];
			fmt_iso8601(clock_wall_ms() - (clock_mono_ms() - w->active_mono), last);
			json_object_set_new(j, "last_activity_at", json_string(last));
		}
	}
	json_object_set_new(o, "window", j);
}

void win_resync(struct orch_engine *e)
{
	/* memory holds what the undone batch did, which its users were told
	 * failed: the windows again as the store has them (a window made in it
	 * goes, an extension goes, an end it recorded comes again) */
	struct win *old = e->wins;
	e->wins = NULL;
	for (struct win *o = old; o; o = o->next)
		if (o->sb)
			o->sb->win = NULL;
	int rc = win_load(e);	/* attaches the new ones to their sandboxes */
	if (rc)
		eng_log(e, "windows: cannot read them again: %s", strerror(-rc));
	while (old) {
		struct win *o = old, *w = o->sb ? o->sb->win : NULL;
		old = o->next;
		/* what memory alone knows: its last activity, a delete waiting */
		if (w && w->sb_rowid == o->sb_rowid) {
			w->active_mono = o->active_mono;
			if (o->delete_pending && o->ended_at == w->ended_at)
				w->delete_pending = w->delete_check = true;
		}
		o->sb = NULL;
		win_free(o);
	}
	for (struct win *w = e->wins; w; w = w->next)
		win_arm(e, w);
}

void win_clock_stepped(struct orch_engine *e, int64_t delta_ms)
{
	bool any = false;
	for (struct win *w = e->wins; w; w = w->next) {
		if (w->ended_at)
			continue;
		window_shift(&w->st, delta_ms);
		win_save(e, w);
		if (w->spec.nrules)
			store_exec(&e->st, "UPDATE window_hits SET at = at + ? WHERE sandbox = ?", "ii", delta_ms,
				   w->sb_rowid);
		win_arm(e, w);
		any = true;
	}
	if (any) {
		orch_need_durable(e);
	}
}
