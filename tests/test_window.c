/* tests/test_window.c — the arithmetic of sandbox windows (core/window.h),
 * the validation of "sandbox.window" (core/plan.c), and the engine's side
 * of a clock step (core/windows.c, win_clock_stepped). */
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/engine_i.h"
#include "core/plan.h"
#include "core/window.h"
#include "core/util.h"
#include "tests/engine_fixture.h"

#define S 1000LL	/* ms */
#define DAY (86400 * S)
#define T0 1800000000000LL	/* a wall time, ms */

static struct window_rule rule(const char *type, unsigned count, int64_t within_ms)
{
	return (struct window_rule){ (char *)type, count, within_ms };
}

static void test_window__open_and_cap(void **state)
{
	(void)state;
	/* a 28-day window and a 2-second one: the same arithmetic */
	struct window_spec spec = { .set = true, .duration_ms = 7 * DAY, .max_ms = 28 * DAY, .extend_ms = 7 * DAY };
	struct window_state st;
	assert_int_equal(window_open(&st, &spec, T0), 0);
	assert_int_equal(st.opened_at, T0);
	assert_int_equal(st.deadline, T0 + 7 * DAY);
	assert_int_equal(st.max_deadline, T0 + 28 * DAY);
	assert_int_equal(window_extend(&st, 7 * DAY), 7 * DAY);
	assert_int_equal(window_extend(&st, 7 * DAY), 7 * DAY);
	/* 21 of 28 days: the next 7 fit exactly, then nothing */
	assert_int_equal(window_extend(&st, 10 * DAY), 7 * DAY);
	assert_int_equal(st.deadline, T0 + 28 * DAY);
	assert_int_equal(window_extend(&st, 1), 0);
	assert_int_equal(st.deadline, st.max_deadline);
	window_state_release(&st);

	struct window_spec small = { .set = true, .duration_ms = 2 * S, .max_ms = 3 * S };
	assert_int_equal(window_open(&st, &small, T0), 0);
	assert_int_equal(st.deadline - st.opened_at, 2 * S);
	/* a partial extension up to the cap */
	assert_int_equal(window_extend(&st, 100 * S), 1 * S);
	assert_int_equal(st.deadline, T0 + 3 * S);
	assert_int_equal(window_extend(&st, 0), 0);
	assert_int_equal(window_extend(&st, -5), 0);
	window_state_release(&st);

	/* no maximum: the duration is the maximum, nothing extends */
	struct window_spec nomax = { .set = true, .duration_ms = 5 * S };
	assert_int_equal(window_open(&st, &nomax, T0), 0);
	assert_int_equal(st.max_deadline, T0 + 5 * S);
	assert_int_equal(window_extend(&st, S), 0);
	window_state_release(&st);
}

static void test_window__rule_within_span(void **state)
{
	(void)state;
	struct window_rule r = rule("bug.reported", 3, 60 * S);
	struct window_hits h = { 0 };
	assert_false(window_rule_hit(&h, &r, T0));
	assert_false(window_rule_hit(&h, &r, T0 + 10 * S));
	/* the first falls out of the span: two counted, not three */
	assert_false(window_rule_hit(&h, &r, T0 + 61 * S));
	assert_int_equal(h.n, 2);
	/* T0+10, T0+61, T0+65: three within 60 s */
	assert_true(window_rule_hit(&h, &r, T0 + 65 * S));
	/* the count starts afresh: those three do not count again */
	assert_int_equal(h.n, 0);
	assert_false(window_rule_hit(&h, &r, T0 + 66 * S));
	assert_false(window_rule_hit(&h, &r, T0 + 67 * S));
	assert_true(window_rule_hit(&h, &r, T0 + 68 * S));
	/* exactly at the span's edge still counts */
	assert_false(window_rule_hit(&h, &r, T0 + 100 * S));
	assert_false(window_rule_hit(&h, &r, T0 + 130 * S));
	assert_true(window_rule_hit(&h, &r, T0 + 160 * S));
	orch_free(h.t);

	/* count 1: every event fires */
	struct window_rule one = rule("x", 1, S);
	struct window_hits h1 = { 0 };
	assert_true(window_rule_hit(&h1, &one, T0));
	assert_true(window_rule_hit(&h1, &one, T0));
	assert_int_equal(h1.n, 0);
	orch_free(h1.t);

	/* a large count never keeps more than count - 1 times */
	struct window_rule big = rule("x", 1000, DAY);
	struct window_hits hb = { 0 };
	for (int i = 0; i < 999; i++)
		assert_false(window_rule_hit(&hb, &big, T0 + i));
	assert_int_equal(hb.n, 999);
	assert_true(hb.cap <= 1000);
	assert_true(window_rule_hit(&hb, &big, T0 + 999));
	orch_free(hb.t);
}

static void test_window__matching(void **state)
{
	(void)state;
	struct window_rule exact = rule("bug.reported", 1, S), glob = rule("bug.*", 1, S);
	assert_true(window_rule_matches(&exact, "bug.reported"));
	assert_false(window_rule_matches(&exact, "bug.reported2"));
	assert_false(window_rule_matches(&exact, "bug"));
	assert_true(window_rule_matches(&glob, "bug.fixed"));
	assert_false(window_rule_matches(&glob, "feature.asked"));
	assert_false(window_rule_matches(&glob, NULL));
}

/* several rules: each counts its own events, each extends */
static void test_window__several_rules(void **state)
{
	(void)state;
	struct window_rule rules[2] = { rule("bug.*", 2, 10 * S), rule("deploy", 1, S) };
	struct window_spec spec = { .set = true, .duration_ms = 10 * S, .max_ms = 100 * S, .extend_ms = 5 * S,
				    .rules = rules, .nrules = 2 };
	struct window_state st;
	assert_int_equal(window_open(&st, &spec, T0), 0);
	assert_int_equal(st.nhits, 2);
	const char *types[] = { "bug.a", "deploy", "other", "bug.b", "bug.c" };
	int fired = 0;
	for (size_t i = 0; i < 5; i++)
		for (size_t k = 0; k < 2; k++)
			if (window_rule_matches(&rules[k], types[i]) &&
			    window_rule_hit(&st.hits[k], &rules[k], T0 + (int64_t)i * S)) {
				window_extend(&st, spec.extend_ms);
				fired++;
			}
	/* deploy once, bug.a + bug.b once; bug.c waits for a partner */
	assert_int_equal(fired, 2);
	assert_int_equal(st.deadline, T0 + 20 * S);
	assert_int_equal(st.hits[0].n, 1);
	assert_int_equal(st.hits[1].n, 0);
	window_state_release(&st);
}

static void test_window__clock_step(void **state)
{
	(void)state;
	struct window_rule r = rule("x", 3, 60 * S);
	struct window_spec spec = { .set = true, .duration_ms = 10 * S, .max_ms = 30 * S, .extend_ms = 5 * S,
				    .rules = &r, .nrules = 1 };
	struct window_state st;
	assert_int_equal(window_open(&st, &spec, T0), 0);
	assert_false(window_rule_hit(&st.hits[0], &r, T0 + S));
	/* the clock jumps an hour ahead: the window keeps its remaining time */
	window_shift(&st, 3600 * S);
	assert_int_equal(st.opened_at, T0);
	assert_int_equal(st.deadline, T0 + 3600 * S + 10 * S);
	assert_int_equal(st.max_deadline, T0 + 3600 * S + 30 * S);
	assert_int_equal(st.hits[0].t[0], T0 + 3601 * S);
	/* the event counted before the step still counts right after it */
	assert_false(window_rule_hit(&st.hits[0], &r, T0 + 3602 * S));
	assert_int_equal(st.hits[0].n, 2);
	/* and back a day */
	window_shift(&st, -DAY);
	assert_int_equal(st.deadline, T0 + 3610 * S - DAY);
	assert_int_equal(st.hits[0].t[1], T0 + 3602 * S - DAY);
	window_state_release(&st);
}

/* ---- validation ---- */

static char *errs_of(const char *text, struct window_spec *out)
{
	struct sbuf errs = SBUF_INIT;
	struct plan_opts opts = { 0 };
	struct plan *p = plan_parse(text, strlen(text), "t", &opts, &errs);
	if (p && out) {
		*out = p->sandbox.window;
		memset(&p->sandbox.window, 0, sizeof(p->sandbox.window));
	}
	plan_free(p);
	char *s = strdup(p ? "" : sbuf_str(&errs));
	sbuf_release(&errs);
	return s;
}

#define PLAN(w) "{\"sandbox\":{\"window\":" w "},\"steps\":[{\"id\":\"a\",\"command\":\"true\"}]}"

static void expect_err(const char *text, const char *want)
{
	char *got = errs_of(text, NULL);
	if (!strstr(got, want))
		fail_msg("plan %s\n  errors: %s\n  wanted: %s", text, got, want);
	free(got);
}

static void test_window__validation(void **state)
{
	(void)state;
	struct window_spec w;
	char *ok = errs_of(PLAN("{\"duration_sec\":604800,\"max_duration_sec\":2419200,\"extend_sec\":604800,"
				"\"extend_when\":[{\"event_type\":\"bug.reported\",\"count\":3,\"within_sec\":86400}],"
				"\"idle_sec\":3600,\"on_end\":\"delete\"}"),
			   &w);
	assert_string_equal(ok, "");
	free(ok);
	assert_true(w.set);
	assert_int_equal(w.duration_ms, 7 * DAY);
	assert_int_equal(w.max_ms, 28 * DAY);
	assert_int_equal(w.extend_ms, 7 * DAY);
	assert_int_equal(w.idle_ms, 3600 * S);
	assert_int_equal(w.on_end, WINDOW_END_DELETE);
	assert_int_equal(w.nrules, 1);
	assert_string_equal(w.rules[0].event_type, "bug.reported");
	assert_int_equal(w.rules[0].count, 3);
	assert_int_equal(w.rules[0].within_ms, DAY);
	window_spec_release(&w);

	ok = errs_of(PLAN("{\"duration_sec\":2}"), &w);
	assert_string_equal(ok, "");
	free(ok);
	assert_int_equal(w.duration_ms, 2 * S);
	assert_int_equal(w.max_ms, 2 * S);
	assert_int_equal(w.on_end, WINDOW_END_STOP);
	window_spec_release(&w);

	expect_err(PLAN("{}"), "\"sandbox.window\" needs \"duration_sec\"");
	expect_err(PLAN("3"), "\"sandbox.window\" must be an object");
	expect_err(PLAN("{\"duration_sec\":0}"), "\"sandbox.window.duration_sec\" must be greater than 0");
	expect_err(PLAN("{\"duration_sec\":\"7d\"}"), "\"sandbox.window.duration_sec\" must be a number");
	expect_err(PLAN("{\"duration_sec\":1e9}"), "\"sandbox.window.duration_sec\" must be at most");
	expect_err(PLAN("{\"duration_sec\":10,\"max_duration_sec\":5}"),
		   "\"sandbox.window.max_duration_sec\" (5) must be at least \"duration_sec\" (10)");
	expect_err(PLAN("{\"duration_sec\":10,\"on_end\":\"explode\"}"),
		   "\"sandbox.window.on_end\" must be \"stop\", \"pause\" or \"delete\"");
	expect_err(PLAN("{\"duration_sec\":10,\"idle_secs\":5}"), "sandbox.window: unknown field \"idle_secs\" (did you mean \"idle_sec\"?)");
	expect_err(PLAN("{\"duration_sec\":10,\"extend_when\":[{\"event_type\":\"a\",\"count\":1,\"within_sec\":1}]}"),
		   "\"sandbox.window.extend_when\" needs \"extend_sec\"");
	expect_err(PLAN("{\"duration_sec\":10,\"extend_sec\":1,\"extend_when\":{}}"),
		   "\"sandbox.window.extend_when\" must be a list of rules");
	expect_err(PLAN("{\"duration_sec\":10,\"extend_sec\":1,\"extend_when\":[{\"event_type\":\"a\"}]}"),
		   "\"sandbox.window.extend_when[0]\" needs \"event_type\", \"count\" and \"within_sec\"");
	expect_err(PLAN("{\"duration_sec\":10,\"extend_sec\":1,\"extend_when\":[{\"event_type\":\"a\",\"count\":0,"
			"\"within_sec\":1}]}"),
		   "\"sandbox.window.extend_when[0].count\" must be between 1 and 10000");
	expect_err(PLAN("{\"duration_sec\":10,\"extend_sec\":1,\"extend_when\":[{\"event_type\":\"a\",\"count\":1,"
			"\"within_secs\":1}]}"),
		   "sandbox.window.extend_when[0]: unknown field \"within_secs\" (did you mean \"within_sec\"?)");
	expect_err(PLAN("{\"duration_sec\":10,\"extend_sec\":1,\"extend_when\":[{\"event_type\":\"\",\"count\":1,"
			"\"within_sec\":1}]}"),
		   "\"sandbox.window.extend_when[0].event_type\" must be a non-empty string");
	expect_err("{\"sandbox\":{\"windw\":{}},\"steps\":[{\"id\":\"a\",\"command\":\"true\"}]}",
		   "sandbox: unknown field \"windw\" (did you mean \"window\"?)");
}

/* ---- the engine: a clock step ---- */

static int submit_uncommitted(struct orch_engine *e, const char *name, const char *text)
{
	char fname[128];
	struct orch_pentry p;
	snprintf(fname, sizeof(fname), "%s.json", name);
	int rc = orch_plans_create(e, fname, 0644, getuid(), getgid(), &p);
	assert_int_equal(rc, 0);
	char *path = orch_plans_path(e, p.id);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	orch_free(path);
	return orch_plans_written(e, p.id, getuid(), getgid());
}

static int submit(struct orch_engine *e, const char *name, const char *text)
{
	int rc = submit_uncommitted(e, name, text);
	orch_engine_turn(e, 0);
	return rc;
}

static json_t *window_of(struct orch_engine *e, const char *name)
{
	struct orch_sandbox_attr a;
	assert_int_equal(orch_sandbox_by_name(e, name, &a), 0);
	struct sbuf sb = SBUF_INIT;
	assert_int_equal(orch_sandbox_render(e, a.rowid, &sb), 0);
	json_t *j = json_loads(sbuf_str(&sb), 0, NULL);
	sbuf_release(&sb);
	assert_non_null(j);
	json_t *w = json_incref(json_object_get(j, "window"));
	json_decref(j);
	assert_non_null(w);
	return w;
}

static int64_t ms_of(json_t *w, const char *field)
{
	const char *t = json_string_value(json_object_get(w, field));
	assert_non_null(t);
	struct tm tm = { 0 };
	int ms = 0;
	assert_int_equal(sscanf(t, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
				&tm.tm_min, &tm.tm_sec, &ms), 7);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm) * 1000 + ms;
}

static void test_window__engine_clock_step(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(submit(f->e, "p", "{\"sandbox\": {\"id\": \"w\", \"window\": {\"duration_sec\": 100,"
				" \"max_duration_sec\": 200}}, \"steps\": [{\"id\": \"s\", \"command\": \"true\"}]}"),
			 0);
	json_t *w = window_of(f->e, "w");
	int64_t opened = ms_of(w, "opened_at"), dl = ms_of(w, "deadline"), max = ms_of(w, "max_deadline");
	assert_int_equal(dl - opened, 100 * S);
	assert_int_equal(max - opened, 200 * S);
	json_decref(w);

	/* the clock jumps an hour ahead: the window keeps its remaining time,
	 * durably (a new engine on the same state sees it) */
	win_clock_stepped(f->e, 3600 * S);
	fixture_reopen(f);
	w = window_of(f->e, "w");
	assert_int_equal(ms_of(w, "opened_at"), opened);
	assert_int_equal(ms_of(w, "deadline"), dl + 3600 * S);
	assert_int_equal(ms_of(w, "max_deadline"), max + 3600 * S);
	assert_string_equal(json_string_value(json_object_get(w, "state")), "open");
	json_decref(w);

	/* moved into the past, it ends at the next turn: the timer was armed again */
	win_clock_stepped(f->e, -3800 * S);
	for (int i = 0; i < 50; i++)
		orch_engine_turn(f->e, 10);
	w = window_of(f->e, "w");
	assert_string_equal(json_string_value(json_object_get(w, "state")), "ended");
	assert_string_equal(json_string_value(json_object_get(w, "end_reason")), "deadline");
	json_decref(w);
	/* an ended window does not move */
	win_clock_stepped(f->e, 3600 * S);
	w = window_of(f->e, "w");
	assert_int_equal(ms_of(w, "deadline"), dl - 200 * S);
	json_decref(w);
}

/* N events of TYPE posted to sandbox SB, committed. */
static void post(struct orch_engine *e, const char *sb, const char *type, size_t n)
{
	struct sandbox *s = sb_get(e, sb);
	assert_non_null(s);
	assert_non_null(s->win);
	struct line_batch b = { n, NULL, orch_calloc(n, sizeof(json_t *)) };
	assert_non_null(b.events);
	for (size_t i = 0; i < n; i++)
		b.events[i] = json_pack("{s:s}", "event_type", type);
	win_posted(e, s, &b);
	line_batch_release(&b);
	orch_engine_turn(e, 0);
}

static int64_t db_int(struct orch_engine *e, const char *sql)
{
	sqlite3_stmt *q = NULL;
	assert_int_equal(sqlite3_prepare_v2(e->st.db, sql, -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return v;
}

/* A counted event costs a row of window_hits (and the deletion of those that
 * fell out of the span), not a rewrite of the window's row with all its
 * rules' events; the counts survive a new engine (kill -9). */
static void test_window__engine_hits_rows(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(submit(f->e, "h", "{\"sandbox\": {\"id\": \"h\", \"window\": {\"duration_sec\": 100,"
				" \"max_duration_sec\": 200, \"extend_sec\": 10, \"extend_when\": ["
				"{\"event_type\": \"a\", \"count\": 10000, \"within_sec\": 3600},"
				"{\"event_type\": \"b\", \"count\": 3, \"within_sec\": 3600},"
				"{\"event_type\": \"c\", \"count\": 3, \"within_sec\": 1}]}},"
				" \"steps\": [{\"id\": \"s\", \"command\": \"true\"}]}"),
			 0);
	/* every write of the window's row, counted */
	assert_int_equal(sqlite3_exec(f->e->st.db,
				      "CREATE TEMP TABLE wr(n INTEGER); INSERT INTO wr VALUES(0);"
				      "CREATE TEMP TRIGGER wr_i AFTER INSERT ON main.windows BEGIN"
				      " UPDATE wr SET n = n + 1; END;"
				      "CREATE TEMP TRIGGER wr_u AFTER UPDATE ON main.windows BEGIN"
				      " UPDATE wr SET n = n + 1; END;",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	for (int i = 0; i < 10; i++)
		post(f->e, "h", "a", 50);
	post(f->e, "h", "b", 2);
	assert_int_equal(db_int(f->e, "SELECT n FROM wr"), 0);
	assert_int_equal(db_int(f->e, "SELECT count(*) FROM window_hits WHERE rule = 0"), 500);
	assert_int_equal(db_int(f->e, "SELECT count(*) FROM window_hits WHERE rule = 1"), 2);
	json_t *w = window_of(f->e, "h");
	int64_t opened = ms_of(w, "opened_at");
	assert_int_equal(ms_of(w, "deadline") - opened, 100 * S);
	json_decref(w);

	/* a new engine counts them: the third b extends */
	fixture_reopen(f);
	post(f->e, "h", "b", 1);
	w = window_of(f->e, "h");
	assert_int_equal(ms_of(w, "deadline") - opened, 110 * S);
	json_decref(w);
	assert_int_equal(db_int(f->e, "SELECT count(*) FROM window_hits WHERE rule = 1"), 0);
	assert_int_equal(db_int(f->e, "SELECT count(*) FROM window_hits WHERE rule = 0"), 500);
	post(f->e, "h", "a", 1);
	assert_int_equal(db_int(f->e, "SELECT count(*) FROM window_hits WHERE rule = 0"), 501);
	/* those that fell out of the span go */
	post(f->e, "h", "c", 2);
	assert_int_equal(db_int(f->e, "SELECT count(*) FROM window_hits WHERE rule = 2"), 2);
	int64_t t0 = clock_wall_ms();
	while (clock_wall_ms() - t0 < 1100)	/* a lower bound: longer changes nothing */
		usleep(20000);
	post(f->e, "h", "c", 1);
	assert_int_equal(db_int(f->e, "SELECT count(*) FROM window_hits WHERE rule = 2"), 1);
	w = window_of(f->e, "h");
	assert_int_equal(ms_of(w, "deadline") - opened, 110 * S);
	json_decref(w);
}

/* The commit of a turn fails (SQLite rolled it back): the windows are what
 * the store has, not what the undone turn did. */
static void fail_commit(struct orch_engine *e)
{
	store_rollback(&e->st);
	e->resync = true;
	orch_engine_turn(e, 0);
}

static void test_window__engine_failed_commit(void **state)
{
	struct fixture *f = *state;
	struct orch_engine *e = f->e;
	assert_int_equal(submit(e, "d", "{\"sandbox\": {\"id\": \"d\", \"window\": {\"duration_sec\": 100,"
				" \"max_duration_sec\": 200}}, \"steps\": [{\"id\": \"s\", \"command\": \"true\"}]}"),
			 0);
	json_t *w = window_of(e, "d");
	int64_t opened = ms_of(w, "opened_at");
	json_decref(w);
	/* a ctl extend whose commit failed is not applied */
	struct orch_sandbox_attr a;
	assert_int_equal(orch_sandbox_by_name(e, "d", &a), 0);
	assert_int_equal(orch_sandbox_ctl(e, a.rowid, "extend 50", 9), 0);
	fail_commit(e);
	w = window_of(e, "d");
	assert_int_equal(ms_of(w, "deadline") - opened, 100 * S);
	assert_int_equal(json_array_size(json_object_get(w, "extensions")), 0);
	json_decref(w);
	/* ... and the next one is, once */
	assert_int_equal(orch_sandbox_ctl(e, a.rowid, "extend 20", 9), 0);
	orch_engine_turn(e, 0);
	fixture_reopen(f);
	e = f->e;
	w = window_of(e, "d");
	assert_int_equal(ms_of(w, "deadline") - opened, 120 * S);
	assert_int_equal(json_array_size(json_object_get(w, "extensions")), 1);
	json_decref(w);

	/* a refused submission leaves no window on a sandbox that exists */
	assert_int_equal(submit(e, "p", "{\"sandbox\": {\"id\": \"p\"}, \"steps\": [{\"id\": \"s\", \"command\": \"true\"}]}"), 0);
	assert_int_equal(submit_uncommitted(e, "pw", "{\"sandbox\": {\"id\": \"p\", \"window\": {\"duration_sec\": 100}},"
					     " \"steps\": [{\"id\": \"s\", \"command\": \"true\"}]}"),
			 0);
	struct sandbox *sb = sb_get(e, "p");
	assert_non_null(sb);
	assert_non_null(sb->win);
	fail_commit(e);
	sb = sb_get(e, "p");
	assert_non_null(sb);
	assert_null(sb->win);
	struct sbuf out = SBUF_INIT;
	assert_int_equal(orch_sandbox_by_name(e, "p", &a), 0);
	assert_int_equal(orch_sandbox_render(e, a.rowid, &out), 0);
	json_t *j = json_loads(sbuf_str(&out), 0, NULL);
	sbuf_release(&out);
	assert_non_null(j);
	assert_true(json_is_null(json_object_get(j, "window")) || !json_object_get(j, "window"));
	json_decref(j);
}

/* The loop timer of sandbox NAME's window: its deadline (mono ms), or -1. */
static int64_t timer_of(struct orch_engine *e, const char *name)
{
	struct sandbox *sb = sb_get(e, name);
	assert_non_null(sb);
	assert_non_null(sb->win);
	int64_t at = -1;
	for (size_t i = 0; i < e->loop.nheap; i++)
		if (e->loop.heap[i]->data == sb->win) {
			assert_int_equal(at, -1);
			at = e->loop.heap[i]->deadline;
		}
	return at;
}

/* Each window has its own timer, for its own next due time: the loop's
 * heap orders them (no walk of every window per extension or wakeup). */
static void test_window__engine_timer_per_window(void **state)
{
	struct fixture *f = *state;
	struct orch_engine *e = f->e;
	const char *names[] = { "t1", "t2", "t3" };
	for (int i = 0; i < 3; i++) {
		char plan[256];
		snprintf(plan, sizeof(plan),
			 "{\"sandbox\": {\"id\": \"%s\", \"window\": {\"duration_sec\": %d, \"max_duration_sec\": 900%s}},"
			 " \"steps\": [{\"id\": \"s\", \"command\": \"true\"}]}",
			 names[i], 100 * (i + 1), i == 2 ? ", \"idle_sec\": 50" : "");
		assert_int_equal(submit(e, names[i], plan), 0);
	}
	int64_t at[3];
	for (int i = 0; i < 3; i++) {
		json_t *w = window_of(e, names[i]);
		int64_t due = clock_wall_to_mono_ms(ms_of(w, "deadline"));
		json_decref(w);
		at[i] = timer_of(e, names[i]);
		if (i < 2)
			assert_in_range(at[i], due - 50, due + 50);
		else	/* its idle end comes first */
			assert_in_range(at[i], clock_mono_ms() + 40 * S, clock_mono_ms() + 50 * S);
	}
	/* an extension moves its window's timer, no other */
	struct orch_sandbox_attr a;
	assert_int_equal(orch_sandbox_by_name(e, "t1", &a), 0);
	assert_int_equal(orch_sandbox_ctl(e, a.rowid, "extend 30", 9), 0);
	orch_engine_turn(e, 0);
	assert_in_range(timer_of(e, "t1"), at[0] + 30 * S - 5, at[0] + 30 * S + 5);
	assert_int_equal(timer_of(e, "t2"), at[1]);
}

/* Stored rows are hostile input: times at the int64_t limits neither
 * overflow (the asan build traps signed overflow) nor crash; they are
 * brought within the plan's limits. */
static void test_window__engine_hostile_rows(void **state)
{
	struct fixture *f = *state;
	for (int i = 0; i < 2; i++) {
		char plan[512], name[16];
		snprintf(name, sizeof(name), "x%d", i);
		snprintf(plan, sizeof(plan),
			 "{\"sandbox\": {\"id\": \"%s\", \"window\": {\"duration_sec\": 100, \"max_duration_sec\": 200,"
			 " \"extend_sec\": 10, \"idle_sec\": 50, \"extend_when\": [{\"event_type\": \"a\", \"count\": 2,"
			 " \"within_sec\": 60}]}}, \"steps\": [{\"id\": \"s\", \"command\": \"true\"}]}",
			 name);
		assert_int_equal(submit(f->e, name, plan), 0);
	}
	post(f->e, "x0", "a", 1);
	post(f->e, "x1", "a", 1);
	orch_engine_turn(f->e, 0);
	orch_engine_close(f->e);
	sqlite3 *db = NULL;
	char path[256];
	snprintf(path, sizeof(path), "%s/orchfs.db", f->state);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
		sqlite3_exec(db,
			     "UPDATE windows SET spec = '{\"duration_ms\": 9223372036854775807,"
			     " \"max_ms\": -9223372036854775808, \"extend_ms\": 9223372036854775807,"
			     " \"idle_ms\": 9223372036854775807, \"on_end\": \"stop\", \"rules\": [{\"event_type\": \"a\","
			     " \"count\": -1, \"within_ms\": 9223372036854775807}]}',"
			     " opened_at = -9223372036854775808, deadline = 9223372036854775807,"
			     " max_deadline = -9223372036854775808 WHERE name = 'x0';"
			     "UPDATE windows SET spec = '{\"duration_ms\": 1000, \"max_ms\": 9223372036854775807,"
			     " \"extend_ms\": 9223372036854775807, \"idle_ms\": -5, \"rules\": [{\"event_type\": \"a\","
			     " \"count\": 4294967297, \"within_ms\": -9223372036854775808}]}',"
			     " deadline = 9223372036854775000, max_deadline = 9223372036854775807 WHERE name = 'x1';"
			     "UPDATE window_hits SET at = -9223372036854775808;",
			     NULL, NULL, NULL),
		SQLITE_OK);
	sqlite3_close(db);
	f->e = fixture_open(f);
	for (int i = 0; i < 3; i++)
		orch_engine_turn(f->e, 10);
	const char *names[] = { "x0", "x1" };
	for (int i = 0; i < 2; i++) {
		post(f->e, names[i], "a", 3);
		struct orch_sandbox_attr a;
		assert_int_equal(orch_sandbox_by_name(f->e, names[i], &a), 0);
		orch_sandbox_ctl(f->e, a.rowid, "extend 31536000", 15);
		orch_engine_turn(f->e, 0);
		json_t *w = window_of(f->e, names[i]);
		int64_t dl = ms_of(w, "deadline"), max = ms_of(w, "max_deadline");
		assert_true(dl <= max);
		assert_true(max <= 253402300799999LL);	/* the end of 9999 */
		json_decref(w);
	}
	win_clock_stepped(f->e, INT64_MAX / 2);
	win_clock_stepped(f->e, INT64_MIN / 2);
	for (int i = 0; i < 3; i++)
		orch_engine_turn(f->e, 10);
}

static int setup(void **state)
{
	struct fixture *f = fixture_new("window", 32000, 32099);
	if (!f)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state) { return fixture_teardown(state); }

int main(int argc, char **argv)
{
	FIXTURE_MAIN_PROLOGUE(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_window__open_and_cap),
		cmocka_unit_test(test_window__rule_within_span),
		cmocka_unit_test(test_window__matching),
		cmocka_unit_test(test_window__several_rules),
		cmocka_unit_test(test_window__clock_step),
		cmocka_unit_test(test_window__validation),
		cmocka_unit_test_setup_teardown(test_window__engine_clock_step, setup, teardown),
		cmocka_unit_test_setup_teardown(test_window__engine_hits_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_window__engine_failed_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_window__engine_timer_per_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_window__engine_hostile_rows, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
