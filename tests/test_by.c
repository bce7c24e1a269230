/* tests/test_by.c — `by` on events (SPEC §8 "Who did it"), the engine
 * without FUSE: what an actor's request emits names it, what the engine
 * does on its own names no one, an event's own fields cannot name someone
 * else, and a cancel's later events name the canceller, also after the
 * engine went away (runs.cancelled_by). */
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
#include "tests/engine_fixture.h"

/* a uid no passwd file knows: its events say "uid 4000000123" */
#define STRANGER 4000000123u
#define STRANGER_NAME "uid 4000000123"

static int setup(void **state)
{
	struct fixture *f = fixture_new("by", 32000, 32099);
	if (!f)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state) { return fixture_teardown(state); }

/* plans/NAME.json written and closed by UID (actor) or by no one (-1). */
static void submit_as(struct orch_engine *e, long uid, const char *name, const char *text)
{
	char fname[128];
	struct orch_pentry p;
	snprintf(fname, sizeof(fname), "%s.json", name);
	assert_int_equal(orch_plans_create(e, fname, 0644, getuid(), getgid(), &p), 0);
	char *path = orch_plans_path(e, p.id);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	orch_free(path);
	if (uid >= 0)
		orch_actor_begin(e, (uid_t)uid);
	assert_int_equal(orch_plans_written(e, p.id, getuid(), getgid()), 0);
	orch_actor_end(e);
	orch_engine_turn(e, 0);
}

static int64_t run_rowid(struct orch_engine *e, const char *run)
{
	struct orch_run_attr a;
	assert_int_equal(orch_run_by_name(e, run, &a), 0);
	return a.rowid;
}

static const char *state_of(struct orch_engine *e, const char *run, const char *step)
{
	static char st[32];
	struct sbuf sb = SBUF_INIT;
	int64_t r = run_rowid(e, run);
	if (step) {
		struct orch_step_attr s;
		assert_int_equal(orch_step_by_name(e, r, step, &s), 0);
		assert_int_equal(orch_step_render(e, s.rowid, &sb), 0);
	} else {
		assert_int_equal(orch_run_render(e, r, RUNF_STATUS, &sb), 0);
	}
	json_t *j = json_loads(sbuf_str(&sb), 0, NULL);
	sbuf_release(&sb);
	assert_non_null(j);
	snprintf(st, sizeof(st), "%s", json_string_value(json_object_get(j, "state")));
	json_decref(j);
	return st;
}

/* Turn the loop until STEP of RUN (the run itself: NULL) is WANT, 30 s at most. */
static void until(struct orch_engine *e, const char *run, const char *step, const char *want)
{
	int64_t end = clock_mono_ms() + 30000;
	while (strcmp(state_of(e, run, step), want)) {
		if (clock_mono_ms() > end)
			fail_msg("%s %s never became %s", run, step ? step : "", want);
		orch_engine_turn(e, 50);
	}
}

/* The `by` of the last event TYPE of RUN (about STEP if not NULL): a new
 * string, "-" when it has none; fails when there is no such event. */
static char *by_of(struct orch_engine *e, const char *run, const char *type, const char *step)
{
	struct sbuf ev = SBUF_INIT;
	assert_int_equal(orch_events_read(e, EV_RUN, run_rowid(e, run), 0, 1 << 20, &ev), 0);
	char *found = NULL, *all = strdup(sbuf_str(&ev)), *save = NULL;
	assert_non_null(all);
	for (char *line = strtok_r(all, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		json_t *j = json_loads(line, 0, NULL);
		assert_non_null(j);
		const char *t = json_string_value(json_object_get(j, "type"));
		const char *s = json_string_value(json_object_get(j, "step_id"));
		if (!strcmp(t, type) && (!step || (s && !strcmp(s, step)))) {
			free(found);
			const char *by = json_string_value(json_object_get(j, "by"));
			found = strdup(by ? by : "-");
		}
		json_decref(j);
	}
	sbuf_release(&ev);
	free(all);
	if (!found)
		fail_msg("run %s has no event %s", run, type);
	return found;
}

#define assert_by(e, run, type, step, want)                     \
	do {                                                    \
		char *by_ = by_of((e), (run), (type), (step));  \
		assert_string_equal(by_, (want));               \
		free(by_);                                      \
	} while (0)

static void ctl_as(struct orch_engine *e, long uid, const char *run, const char *cmd)
{
	if (uid >= 0)
		orch_actor_begin(e, (uid_t)uid);
	assert_int_equal(orch_run_ctl(e, run_rowid(e, run), cmd, strlen(cmd)), 0);
	orch_actor_end(e);
}

static void test_by__writer_and_engine(void **state)
{
	struct fixture *f = *state;
	submit_as(f->e, STRANGER, "w",
		  "{\"steps\":[{\"id\":\"quick\",\"command\":\"true\"},"
		  "{\"id\":\"long\",\"command\":\"sleep\",\"args\":[\"30\"],\"depends_on\":[\"quick\"]},"
		  "{\"id\":\"after\",\"command\":\"true\",\"depends_on\":[\"long\"]}]}");
	until(f->e, "w-1", "long", "running");
	assert_by(f->e, "w-1", "run.created", NULL, STRANGER_NAME);
	/* what the engine does on its own names no one */
	assert_by(f->e, "w-1", "run.started", NULL, "-");
	assert_by(f->e, "w-1", "step.succeeded", "quick", "-");
	assert_by(f->e, "w-1", "step.started", "quick", "-");
	ctl_as(f->e, 0, "w-1", "pause");
	assert_by(f->e, "w-1", "run.paused", NULL, "root");
	ctl_as(f->e, STRANGER, "w-1", "resume");
	assert_by(f->e, "w-1", "run.resumed", NULL, STRANGER_NAME);
	/* the cancel ends the running step later, in another turn */
	ctl_as(f->e, 0, "w-1", "cancel");
	assert_by(f->e, "w-1", "step.cancelled", "after", "root");	/* at once: never started */
	until(f->e, "w-1", NULL, "cancelled");
	assert_by(f->e, "w-1", "step.cancelled", "long", "root");
	assert_by(f->e, "w-1", "run.cancelled", NULL, "root");
	/* a retry names its writer; the cancel of before is forgotten: a
	 * cancel by no one (the engine driven without a front end) names no one */
	ctl_as(f->e, STRANGER, "w-1", "retry");
	assert_by(f->e, "w-1", "run.retried", NULL, STRANGER_NAME);
	until(f->e, "w-1", "long", "running");
	ctl_as(f->e, -1, "w-1", "cancel");
	until(f->e, "w-1", NULL, "cancelled");
	assert_by(f->e, "w-1", "run.cancelled", NULL, "-");
	assert_by(f->e, "w-1", "step.cancelled", "long", "-");
}

/* An event's own fields cannot name another writer; none are added
 * without an actor. */
static void test_by__not_forged(void **state)
{
	struct fixture *f = *state;
	struct orch_engine *e = f->e;
	submit_as(e, -1, "n", "{\"steps\":[{\"id\":\"s\",\"command\":\"true\"}]}");
	until(e, "n-1", NULL, "succeeded");
	assert_by(e, "n-1", "run.created", NULL, "-");
	/* a posted line may not carry by at all */
	struct sbuf err = SBUF_INIT;
	json_t *ev = NULL;
	const char *line = "{\"event_type\":\"x\",\"by\":\"mallory\"}";
	assert_int_equal(event_line_parse(line, strlen(line), &ev, &err), -EINVAL);
	assert_null(ev);
	sbuf_release(&err);
	/* and fields that say by give way to the actor's */
	struct run *r = run_get(e, run_rowid(e, "n-1"));
	assert_non_null(r);
	orch_actor_begin(e, STRANGER);
	assert_int_equal(ev_emit(e, "x.forged", r, NULL, NULL, json_pack("{s:s, s:i}", "by", "mallory", "n", 1)), 0);
	orch_actor_end(e);
	orch_engine_turn(e, 0);
	assert_by(e, "n-1", "x.forged", NULL, STRANGER_NAME);
}

/* The engine goes away while a cancel waits for its step to end (the step
 * ignores SIGTERM, its grace is long): after the restart the cancel's
 * events still name who cancelled. */
static void test_by__cancel_survives_restart(void **state)
{
	struct fixture *f = *state;
	submit_as(f->e, 0, "k",
		  "{\"steps\":[{\"id\":\"s\",\"command\":\"sh\",\"args\":[\"-c\","
		  "\"trap '' TERM; touch up; while :; do sleep 0.05; done\"],\"kill_grace_sec\":3600}]}");
	until(f->e, "k-1", "s", "running");
	/* once the trap is set */
	char up[256];
	snprintf(up, sizeof(up), "%s/sandboxes/k-1/workspace/up", f->state);
	int64_t end = clock_mono_ms() + 30000;
	while (access(up, F_OK) && clock_mono_ms() < end)
		orch_engine_turn(f->e, 50);
	assert_int_equal(access(up, F_OK), 0);
	ctl_as(f->e, STRANGER, "k-1", "cancel");
	orch_engine_turn(f->e, 0);
	assert_string_equal(state_of(f->e, "k-1", NULL), "running");
	orch_engine_close(f->e);	/* as after kill -9: the step is left behind */
	f->e = fixture_open(f);
	until(f->e, "k-1", NULL, "cancelled");
	assert_by(f->e, "k-1", "run.cancelled", NULL, STRANGER_NAME);
	assert_by(f->e, "k-1", "step.cancelled", "s", STRANGER_NAME);
	assert_by(f->e, "k-1", "run.created", NULL, "root");
}

int main(int argc, char **argv)
{
	FIXTURE_MAIN_PROLOGUE(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_by__writer_and_engine, setup, teardown),
		cmocka_unit_test_setup_teardown(test_by__not_forged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_by__cancel_survives_restart, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
