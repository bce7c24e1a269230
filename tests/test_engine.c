/* tests/test_engine.c — the engine without FUSE: plan submission, real step
 * processes, events, ctl, and resume after the engine goes away mid-run.
 * The test thread drives the loop with orch_engine_turn(). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/engine_i.h"
#include "tests/engine_fixture.h"

static int setup(void **state)
{
	struct fixture *f = fixture_new("engine", 31000, 31999);
	if (!f)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state) { return fixture_teardown(state); }

/* Write TEXT to plans/NAME.json and close it: what `cp` does, without the
 * turn that commits it. */
static int submit_uncommitted(struct orch_engine *e, const char *name, const char *text)
{
	char fname[128];
	struct orch_pentry p;
	snprintf(fname, sizeof(fname), "%s.json", name);
	int rc = orch_plans_lookup(e, fname, &p);
	if (rc)
		rc = orch_plans_create(e, fname, 0644, getuid(), getgid(), &p);
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
	orch_engine_turn(e, 0);	/* commit, as the reply would wait for */
	return rc;
}

/* The JSON of a run's status (new reference). */
static json_t *run_status(struct orch_engine *e, const char *run)
{
	struct orch_run_attr a;
	if (orch_run_by_name(e, run, &a))
		return NULL;
	struct sbuf sb = SBUF_INIT;
	assert_int_equal(orch_run_render(e, a.rowid, RUNF_STATUS, &sb), 0);
	json_t *j = json_loads(sbuf_str(&sb), 0, NULL);
	sbuf_release(&sb);
	assert_non_null(j);
	return j;
}

static json_t *step_status(struct orch_engine *e, const char *run, const char *step)
{
	struct orch_run_attr a;
	struct orch_step_attr s;
	assert_int_equal(orch_run_by_name(e, run, &a), 0);
	assert_int_equal(orch_step_by_name(e, a.rowid, step, &s), 0);
	struct sbuf sb = SBUF_INIT;
	assert_int_equal(orch_step_render(e, s.rowid, &sb), 0);
	json_t *j = json_loads(sbuf_str(&sb), 0, NULL);
	sbuf_release(&sb);
	return j;
}

static bool state_is(json_t *j, const char *want)
{
	const char *s = json_string_value(json_object_get(j, "state"));
	return s && !strcmp(s, want);
}

static bool run_is(struct orch_engine *e, const char *run, const char *want)
{
	json_t *j = run_status(e, run);
	bool ok = j && state_is(j, want);
	json_decref(j);
	return ok;
}

static bool step_is(struct orch_engine *e, const char *run, const char *step, const char *want)
{
	json_t *j = step_status(e, run, step);
	bool ok = j && state_is(j, want);
	json_decref(j);
	return ok;
}

/* Turn the loop until the run is in state WANT, for at most 30 s. */
static void run_until(struct orch_engine *e, const char *run, const char *want)
{
	int64_t end = clock_mono_ms() + 30000;
	while (!run_is(e, run, want)) {
		if (clock_mono_ms() > end) {
			json_t *j = run_status(e, run);
			char *s = j ? json_dumps(j, 0) : NULL;
			fail_msg("run %s never became %s: %s", run, want, s ? s : "(none)");
		}
		orch_engine_turn(e, 50);
	}
}

static void step_until(struct orch_engine *e, const char *run, const char *step, const char *want)
{
	int64_t end = clock_mono_ms() + 30000;
	while (!step_is(e, run, step, want)) {
		if (clock_mono_ms() > end)
			fail_msg("step %s of %s never became %s", step, run, want);
		orch_engine_turn(e, 50);
	}
}

static char *workspace_file(struct fixture *f, const char *sb, const char *name)
{
	static char path[256];
	snprintf(path, sizeof(path), "%s/sandboxes/%s/workspace/%s", f->state, sb, name);
	return path;
}

static int count_lines(const char *path)
{
	FILE *fp = fopen(path, "r");
	int n = 0, c;
	if (!fp)
		return 0;
	while ((c = fgetc(fp)) != EOF)
		n += c == '\n';
	fclose(fp);
	return n;
}

static void test_engine__diamond_runs_and_records(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(submit(f->e, "dia",
				"{\"steps\":[{\"id\":\"a\",\"command\":\"sh\",\"args\":[\"-c\",\"echo a >>order\"]},"
				"{\"id\":\"b\",\"command\":\"sh\",\"args\":[\"-c\",\"echo b >>order\"],\"depends_on\":[\"a\"]},"
				"{\"id\":\"c\",\"command\":\"sh\",\"args\":[\"-c\",\"echo c >>order\"],\"depends_on\":[\"a\"]},"
				"{\"id\":\"d\",\"command\":\"sh\",\"args\":[\"-c\",\"cat order\"],\"depends_on\":[\"b\",\"c\"]}]}"),
			 0);
	run_until(f->e, "dia-1", "succeeded");
	json_t *j = run_status(f->e, "dia-1");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "progress"), "succeeded")), 4);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "progress"), "percent")), 100);
	json_decref(j);
	/* d ran last: its log holds every line */
	struct orch_run_attr a;
	struct orch_step_attr s;
	orch_run_by_name(f->e, "dia-1", &a);
	orch_step_by_name(f->e, a.rowid, "d", &s);
	char *log = orch_step_log_path(f->e, s.rowid), *text;
	size_t len;
	assert_int_equal(read_file(log, 1 << 20, &text, &len), 0);
	assert_non_null(strstr(text, "=== attempt 1 ===\na\n"));
	orch_free(text);
	orch_free(log);
	/* every event of the run parses, seq strictly increasing */
	struct sbuf ev = SBUF_INIT;
	assert_int_equal(orch_events_read(f->e, EV_RUN, a.rowid, 0, 1 << 20, &ev), 0);
	assert_int_equal((int64_t)ev.len, orch_events_size(f->e, EV_RUN, a.rowid));
	json_int_t last = 0;
	int n = 0;
	for (char *line = ev.buf, *nl; line && *line; line = nl + 1) {
		nl = strchr(line, '\n');
		assert_non_null(nl);
		*nl = '\0';
		json_t *o = json_loads(line, 0, NULL);
		assert_non_null(o);
		assert_true(json_integer_value(json_object_get(o, "seq")) > last);
		last = json_integer_value(json_object_get(o, "seq"));
		json_decref(o);
		n++;
	}
	assert_int_equal(n, 2 + 4 * 2 + 1);	/* created, started, 4 x (started, succeeded), succeeded */
	sbuf_release(&ev);
	/* a read at an odd offset gives the same bytes as the whole */
	struct sbuf part = SBUF_INIT;
	assert_int_equal(orch_events_read(f->e, EV_RUN, a.rowid, 17, 10, &part), 0);
	assert_int_equal(part.len, 10);
	sbuf_release(&part);
}

static void test_engine__invalid_plan_writes_error(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(submit(f->e, "bad", "{\"steps\":[{\"id\":\"a\",\"command\":\"true\",\"depends_on\":[\"zz\"]}]}"),
			 -EINVAL);
	struct orch_pentry p;
	assert_int_equal(orch_plans_lookup(f->e, "bad.error", &p), 0);
	struct sbuf sb = SBUF_INIT;
	assert_int_equal(orch_plans_generated(f->e, PK_ERROR, p.id, &sb), 0);
	assert_string_equal(sbuf_str(&sb), "step \"a\": depends on unknown step \"zz\"\n");
	sbuf_release(&sb);
	struct orch_run_attr a;
	assert_int_equal(orch_run_by_name(f->e, "bad-1", &a), -ENOENT);
	/* the fix removes the error, and numbering starts at 1 */
	assert_int_equal(submit(f->e, "bad", "{\"steps\":[{\"id\":\"a\",\"command\":\"true\"}]}"), 0);
	assert_int_equal(orch_plans_lookup(f->e, "bad.error", &p), -ENOENT);
	run_until(f->e, "bad-1", "succeeded");
	assert_int_equal(orch_plans_lookup(f->e, "bad.run", &p), 0);
	sbuf_reset(&sb);
	assert_int_equal(orch_plans_generated(f->e, PK_RUNLINK, p.id, &sb), 0);
	assert_string_equal(sbuf_str(&sb), "../runs/bad-1");
	sbuf_release(&sb);
}

static void test_engine__resume_after_engine_dies(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(submit(f->e, "res",
				"{\"steps\":[{\"id\":\"a\",\"command\":\"sh\",\"args\":[\"-c\",\"echo ran >>a.count\"]},"
				"{\"id\":\"b\",\"command\":\"sh\",\"args\":[\"-c\",\"echo ran >>b.count; sleep 2\"],\"depends_on\":[\"a\"]},"
				"{\"id\":\"c\",\"command\":\"sh\",\"args\":[\"-c\",\"echo ran >>c.count\"],\"depends_on\":[\"b\"]}]}"),
			 0);
	step_until(f->e, "res-1", "b", "running");
	int64_t end = clock_mono_ms() + 30000;
	while (count_lines(workspace_file(f, "res-1", "b.count")) < 1 && clock_mono_ms() < end)
		usleep(10000);
	struct sbuf ev = SBUF_INIT, old = SBUF_INIT, now = SBUF_INIT;
	int64_t before = orch_events_size(f->e, EV_GLOBAL, 0);
	assert_int_equal(orch_events_read(f->e, EV_GLOBAL, 0, 0, (size_t)before, &old), 0);
	/* the engine goes away with b running, as after kill -9 of the daemon
	 * (what it had committed stays; its child is left behind) */
	orch_engine_close(f->e);
	f->e = fixture_open(f);
	/* nothing recorded before is lost or changed; the interruption is added */
	assert_true(orch_events_size(f->e, EV_GLOBAL, 0) > before);
	assert_int_equal(orch_events_read(f->e, EV_GLOBAL, 0, 0, 1 << 20, &now), 0);
	assert_memory_equal(now.buf, old.buf, old.len);
	assert_non_null(strstr(now.buf + old.len, "\"type\":\"step.interrupted\",\"run_id\":\"res-1\",\"step_id\":\"b\""));
	sbuf_release(&old);
	sbuf_release(&now);
	run_until(f->e, "res-1", "succeeded");
	assert_int_equal(count_lines(workspace_file(f, "res-1", "a.count")), 1);
	assert_int_equal(count_lines(workspace_file(f, "res-1", "b.count")), 2);
	assert_int_equal(count_lines(workspace_file(f, "res-1", "c.count")), 1);
	json_t *j = step_status(f->e, "res-1", "b");
	assert_int_equal(json_integer_value(json_object_get(j, "attempt")), 2);
	assert_int_equal(json_integer_value(json_object_get(j, "max_attempts")), 2);	/* retries 0 + 1 interrupted */
	json_decref(j);
	/* event seq never repeats across the restart */
	assert_int_equal(orch_events_read(f->e, EV_GLOBAL, 0, 0, 1 << 20, &ev), 0);
	json_int_t last = 0;
	for (char *line = ev.buf, *nl; line && *line; line = nl + 1) {
		nl = strchr(line, '\n');
		*nl = '\0';
		json_t *o = json_loads(line, 0, NULL);
		assert_true(json_integer_value(json_object_get(o, "seq")) > last);
		last = json_integer_value(json_object_get(o, "seq"));
		json_decref(o);
	}
	sbuf_release(&ev);
}

static void test_engine__ctl_cancel_and_retry(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(submit(f->e, "c",
				"{\"steps\":[{\"id\":\"long\",\"command\":\"sleep\",\"args\":[\"30\"]},"
				"{\"id\":\"next\",\"command\":\"true\",\"depends_on\":[\"long\"]}]}"),
			 0);
	step_until(f->e, "c-1", "long", "running");
	struct orch_run_attr a;
	assert_int_equal(orch_run_by_name(f->e, "c-1", &a), 0);
	assert_int_equal(orch_run_ctl(f->e, a.rowid, "bogus\n", 6), -EINVAL);
	assert_int_equal(orch_run_ctl(f->e, a.rowid, "resume\n", 7), -EINVAL);	/* not paused */
	assert_int_equal(orch_run_remove(f->e, a.rowid), -EBUSY);
	assert_int_equal(orch_run_ctl(f->e, a.rowid, "cancel\n", 7), 0);
	run_until(f->e, "c-1", "cancelled");
	assert_true(step_is(f->e, "c-1", "long", "cancelled"));
	assert_true(step_is(f->e, "c-1", "next", "cancelled"));
	assert_int_equal(orch_run_ctl(f->e, a.rowid, "cancel", 6), -EINVAL);	/* finished */
	assert_int_equal(orch_run_ctl(f->e, a.rowid, "retry\n", 6), 0);
	step_until(f->e, "c-1", "long", "running");
	json_t *j = step_status(f->e, "c-1", "long");
	assert_int_equal(json_integer_value(json_object_get(j, "attempt")), 2);
	json_decref(j);
	assert_int_equal(orch_run_ctl(f->e, a.rowid, "pause", 5), 0);
	assert_true(run_is(f->e, "c-1", "paused"));
	assert_int_equal(orch_run_ctl(f->e, a.rowid, "cancel", 6), 0);
	run_until(f->e, "c-1", "cancelled");
	assert_int_equal(orch_run_remove(f->e, a.rowid), 0);
	assert_int_equal(orch_run_by_name(f->e, "c-1", &a), -ENOENT);
}

static void test_engine__timeout_and_retry(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(submit(f->e, "t",
				"{\"globals\":{\"kill_grace_sec\":0.2},\"steps\":[{\"id\":\"s\",\"command\":\"sleep\","
				"\"args\":[\"30\"],\"timeout_sec\":0.3,\"retries\":1}]}"),
			 0);
	run_until(f->e, "t-1", "failed");
	json_t *j = step_status(f->e, "t-1", "s");
	assert_true(state_is(j, "timed_out"));
	assert_int_equal(json_integer_value(json_object_get(j, "attempt")), 2);
	assert_string_equal(json_string_value(json_object_get(j, "reason")), "timeout");
	json_decref(j);
}

static void test_engine__spawn_failure_is_a_failed_attempt(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(submit(f->e, "nx", "{\"steps\":[{\"id\":\"x\",\"command\":\"/nonexistent/cmd\"}]}"), 0);
	run_until(f->e, "nx-1", "failed");
	json_t *j = step_status(f->e, "nx-1", "x");
	assert_int_equal(json_integer_value(json_object_get(j, "exit_code")), 127);
	assert_string_equal(json_string_value(json_object_get(j, "reason")), "spawn_failed");
	json_decref(j);
}

/* A failed commit undoes a run submitted in its turn, whose step the turn's
 * scheduling pass had started already (its process not spawned yet: that
 * waits for the commit). Forgetting the run gives the step's place back:
 * else the daemon counts it running forever, and never says it stopped. */
static void test_engine__undone_run_gives_back_started_steps(void **state)
{
	struct fixture *f = *state;
	struct orch_engine *e = f->e;
	assert_int_equal(submit_uncommitted(e, "u", "{\"steps\":[{\"id\":\"s\",\"command\":\"sleep\","
					      "\"args\":[\"30\"]}]}"),
			 0);
	run_schedule_all(e);	/* the turn's pass, before its commit */
	assert_int_equal(e->running, 1);
	/* the COMMIT fails (a full disk, an I/O error): SQLite rolls back */
	store_rollback(&e->st);
	e->resync = true;
	orch_engine_turn(e, 0);	/* the run was not stored: forgotten */
	struct orch_run_attr a;
	assert_int_not_equal(orch_run_by_name(e, "u-1", &a), 0);
	assert_int_equal(e->running, 0);
	orch_engine_stop(e);
	for (int i = 0; i < 100 && !e->stopped; i++)
		orch_engine_turn(e, 10);
	assert_true(e->stopped);
}


/* The step ctl of RUN's STEP, as WHO. */
static int step_ctl(struct orch_engine *e, const char *run, const char *step, const char *cmd,
		    const struct orch_who *who)
{
	struct orch_run_attr a;
	struct orch_step_attr s;
	assert_int_equal(orch_run_by_name(e, run, &a), 0);
	assert_int_equal(orch_step_by_name(e, a.rowid, step, &s), 0);
	int rc = orch_step_ctl(e, s.rowid, cmd, strlen(cmd), who);
	orch_engine_turn(e, 0);
	return rc;
}

static const char *step_str(struct orch_engine *e, const char *run, const char *step, const char *field,
			    char *buf, size_t n)
{
	json_t *j = step_status(e, run, step);
	const char *v = json_string_value(json_object_get(j, field));
	snprintf(buf, n, "%s", v ? v : "(null)");
	json_decref(j);
	return buf;
}

/* An approval step: who may decide, what applies when, and its timeout. */
static void test_engine__approval_decisions_and_timeout(void **state)
{
	struct fixture *f = *state;
	struct orch_engine *e = f->e;
	char b[64];
	struct orch_who owner = { getuid(), getgid(), NULL, 0 }, other = { 4242, 4242, NULL, 0 };
	assert_int_equal(submit(e, "ap", "{\"steps\":[{\"id\":\"g\",\"type\":\"approval\"},"
				     "{\"id\":\"d\",\"command\":\"true\",\"depends_on\":[\"g\"]}]}"),
			 0);
	step_until(e, "ap-1", "g", "awaiting_approval");
	assert_true(run_is(e, "ap-1", "needs_human"));
	assert_int_equal(e->att_count, 1);
	assert_int_equal(step_ctl(e, "ap-1", "g", "approve", &other), -EACCES);
	assert_int_equal(step_ctl(e, "ap-1", "g", "retry", &owner), -EINVAL);
	assert_int_equal(step_ctl(e, "ap-1", "g", "approve\nreject", &owner), -EINVAL);
	assert_int_equal(step_ctl(e, "ap-1", "d", "approve", &owner), -EINVAL);
	assert_true(step_is(e, "ap-1", "g", "awaiting_approval"));
	assert_int_equal(step_ctl(e, "ap-1", "g", "approve fine by me\n", &owner), 0);
	run_until(e, "ap-1", "succeeded");
	assert_string_equal(step_str(e, "ap-1", "g", "reason", b, sizeof(b)), "fine by me");
	assert_string_equal(step_str(e, "ap-1", "g", "decision", b, sizeof(b)), "approved");
	assert_int_equal(step_ctl(e, "ap-1", "g", "approve", &owner), -EINVAL);
	assert_int_equal(e->att_count, 0);

	/* the timeout decides, with decided_by "timeout" */
	assert_int_equal(submit(e, "to", "{\"steps\":[{\"id\":\"g\",\"type\":\"approval\",\"timeout_sec\":0.1,"
				     "\"on_timeout\":\"approve\"},{\"id\":\"d\",\"command\":\"true\",\"depends_on\":[\"g\"]}]}"),
			 0);
	run_until(e, "to-1", "succeeded");
	assert_string_equal(step_str(e, "to-1", "g", "decided_by", b, sizeof(b)), "timeout");
	assert_int_equal(e->att_count, 0);
}

/* A deadline that passed while no engine ran is decided once, at the next open. */
static void test_engine__approval_deadline_passed_while_closed(void **state)
{
	struct fixture *f = *state;
	char b[64];
	assert_int_equal(submit(f->e, "dl", "{\"steps\":[{\"id\":\"g\",\"type\":\"approval\",\"timeout_sec\":0.3}]}"),
			 0);
	step_until(f->e, "dl-1", "g", "awaiting_approval");
	int64_t t0 = clock_wall_ms();
	orch_engine_turn(f->e, 0);
	orch_engine_close(f->e);
	while (clock_wall_ms() - t0 < 400)	/* a lower bound: longer changes nothing */
		usleep(20000);
	f->e = fixture_open(f);
	run_until(f->e, "dl-1", "failed");
	assert_string_equal(step_str(f->e, "dl-1", "g", "decided_by", b, sizeof(b)), "timeout");
	assert_string_equal(step_str(f->e, "dl-1", "g", "decision", b, sizeof(b)), "rejected");
	struct sbuf ev = SBUF_INIT;
	assert_int_equal(orch_events_read(f->e, EV_GLOBAL, 0, 0, 1 << 20, &ev), 0);
	const char *p1 = strstr(sbuf_str(&ev), "\"type\":\"step.rejected\"");
	assert_non_null(p1);
	assert_null(strstr(p1 + 1, "\"type\":\"step.rejected\""));
	sbuf_release(&ev);
}

/* A run whose creation a failed commit undid leaves nothing on the
 * attention list (its approval step awaited in the same turn). */
static void test_engine__undone_approval_leaves_no_wait(void **state)
{
	struct fixture *f = *state;
	struct orch_engine *e = f->e;
	assert_int_equal(submit_uncommitted(e, "ua", "{\"steps\":[{\"id\":\"g\",\"type\":\"approval\"}]}"), 0);
	run_schedule_all(e);
	assert_int_equal(e->att_count, 1);
	store_rollback(&e->st);
	e->resync = true;
	orch_engine_turn(e, 0);
	struct orch_run_attr a;
	assert_int_not_equal(orch_run_by_name(e, "ua-1", &a), 0);
	assert_int_equal(e->att_count, 0);
	assert_null(e->att_head);
	struct sbuf out = SBUF_INIT;
	assert_int_equal(orch_render_attention(e, &out), 0);
	assert_int_equal(out.len, 0);
	sbuf_release(&out);
}

/* What the engine told a front end whose readers wait (orch_engine_on_change). */
struct told {
	int n[OCH_RUN_END + 1];
	int64_t run_end, log_step, ev_run, ev_sb, msg_sb;
};

static void on_change(void *arg, enum orch_change what, int64_t a, int64_t b)
{
	struct told *t = arg;
	t->n[what]++;
	switch (what) {
	case OCH_EVENT:
		if (a)
			t->ev_run = a;
		if (b)
			t->ev_sb = b;
		break;
	case OCH_LOG: t->log_step = a; break;
	case OCH_MESSAGES: t->msg_sb = b; break;
	case OCH_RUN_END: t->run_end = a; break;
	case OCH_ATTENTION: break;
	}
}

/* Changes are told while readers wait, and only then; the metrics count
 * what ended; an inbox counts the messages an open would take. */
static void test_engine__changes_told_while_waited(void **state)
{
	struct fixture *f = *state;
	struct orch_engine *e = f->e;
	struct told t = { { 0 }, 0, 0, 0, 0, 0 };
	orch_engine_on_change(e, on_change, &t);
	assert_int_equal(submit(e, "q", "{\"steps\":[{\"id\":\"s\",\"command\":\"echo\",\"args\":[\"hi\"]}]}"), 0);
	run_until(e, "q-1", "succeeded");
	for (int k = 0; k <= OCH_RUN_END; k++)
		assert_int_equal(t.n[k], 0);	/* nobody waits: nothing told */

	orch_engine_waiting(e, 1);
	assert_int_equal(submit(e, "w", "{\"steps\":[{\"id\":\"g\",\"type\":\"approval\"},"
				     "{\"id\":\"s\",\"command\":\"echo\",\"args\":[\"hi\"],\"depends_on\":[\"g\"]}]}"),
			 0);
	step_until(e, "w-1", "g", "awaiting_approval");
	struct orch_run_attr a;
	struct orch_step_attr s;
	assert_int_equal(orch_run_by_name(e, "w-1", &a), 0);
	assert_int_equal(orch_step_by_name(e, a.rowid, "s", &s), 0);
	assert_true(t.n[OCH_EVENT] > 0);
	assert_int_equal(t.ev_run, a.rowid);
	assert_int_equal(t.n[OCH_ATTENTION], 1);
	uint64_t gen = orch_attention_gen(e);
	struct orch_who owner = { getuid(), getgid(), NULL, 0 };
	assert_int_equal(step_ctl(e, "w-1", "g", "approve", &owner), 0);
	run_until(e, "w-1", "succeeded");
	assert_int_equal(t.n[OCH_ATTENTION], 2);
	assert_true(orch_attention_gen(e) != gen);
	assert_true(t.n[OCH_LOG] > 0);
	assert_int_equal(t.log_step, s.rowid);
	assert_int_equal(t.n[OCH_RUN_END], 1);
	assert_int_equal(t.run_end, a.rowid);

	/* messages: queued ones are free for an inbox until one takes them */
	struct orch_sandbox_attr sa;
	assert_int_equal(orch_sandbox_create(e, "mb", getuid(), getgid(), &sa), 0);
	struct msg_line m[2] = { { MSG_USER_MESSAGE, "one" }, { MSG_USER_MESSAGE, "two" } };
	struct line_batch b = { 2, m, NULL };
	assert_int_equal(orch_messages_append(e, sa.rowid, &b), 0);
	orch_engine_turn(e, 0);
	assert_int_equal(t.n[OCH_MESSAGES], 1);
	assert_int_equal(t.msg_sb, sa.rowid);
	assert_int_equal(orch_inbox_free(e, sa.rowid), 2);
	uint64_t lease;
	struct sbuf out = SBUF_INIT;
	assert_int_equal(orch_inbox_take(e, sa.rowid, &lease, &out), 0);
	assert_int_equal(orch_inbox_free(e, sa.rowid), 0);
	assert_int_equal(orch_inbox_done(e, sa.rowid, lease, false), 0);	/* handed back: told */
	assert_int_equal(t.n[OCH_MESSAGES], 2);
	assert_int_equal(orch_inbox_free(e, sa.rowid), 2);
	sbuf_release(&out);

	/* nobody waits any more: nothing more told */
	orch_engine_waiting(e, 0);
	int before = t.n[OCH_EVENT];
	assert_int_equal(orch_messages_append(e, sa.rowid, &b), 0);
	orch_engine_turn(e, 0);
	assert_int_equal(t.n[OCH_EVENT], before);

	/* the metrics: both runs succeeded, three steps ran (the approval's
	 * decision is no process: it counts with its state all the same) */
	struct sbuf mt = SBUF_INIT;
	assert_int_equal(orch_render_metrics(e, &mt), 0);
	assert_non_null(strstr(sbuf_str(&mt), "\norchfs_runs_finished_total{state=\"succeeded\"} 2\n"));
	assert_non_null(strstr(sbuf_str(&mt), "\norchfs_runs_finished_total{state=\"failed\"} 0\n"));
	assert_non_null(strstr(sbuf_str(&mt), "\norchfs_step_duration_seconds_bucket{state=\"succeeded\",le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(sbuf_str(&mt), "\norchfs_step_duration_seconds_count{state=\"succeeded\"} 3\n"));
	sbuf_release(&mt);
	struct sbuf h = SBUF_INIT;
	assert_int_equal(orch_render_health(e, &h), 0);
	json_t *j = json_loads(sbuf_str(&h), 0, NULL);
	assert_non_null(j);
	assert_true(json_is_true(json_object_get(j, "ok")));
	assert_true(json_is_true(json_object_get(j, "db_ok")));
	assert_int_equal(json_integer_value(json_object_get(j, "queued_messages")), 4);
	assert_string_equal(json_string_value(json_object_get(j, "state_dir")), f->state);
	json_decref(j);
	sbuf_release(&h);
}

static int64_t runs_of(struct orch_engine *e, const char *plan)
{
	return store_int(&e->st, "SELECT count(*) FROM runs WHERE plan_name = ?", -1, "s", plan);
}

/* Triggers (SPEC §9): an event committed before the engine went away, and
 * not yet matched (the pass comes before a turn's commit, so this is what a
 * commit between the two would leave), fires its trigger once at the next
 * open, and never again; events before the trigger existed never fire it. */
static void test_engine__trigger_fires_once_across_reopen(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(ev_emit(f->e, "custom.before", NULL, NULL, NULL, NULL), 0);
	orch_engine_turn(f->e, 0);
	assert_int_equal(submit(f->e, "t", "{\"on\":[{\"event_type\":\"custom.*\"}],"
				"\"steps\":[{\"id\":\"a\",\"command\":\"true\"}]}"), 0);
	assert_int_equal(runs_of(f->e, "t"), 0);
	orch_engine_turn(f->e, 0);
	assert_int_equal(runs_of(f->e, "t"), 0);	/* custom.before came first */

	assert_int_equal(ev_emit(f->e, "custom.after", NULL, NULL, NULL, NULL), 0);
	assert_int_equal(store_commit(&f->e->st), 0);
	assert_int_equal(runs_of(f->e, "t"), 0);
	orch_engine_close(f->e);	/* no turn: nothing matched it */
	f->e = fixture_open(f);
	orch_engine_turn(f->e, 0);
	assert_int_equal(runs_of(f->e, "t"), 1);
	fixture_reopen(f);
	orch_engine_turn(f->e, 0);
	fixture_reopen(f);
	orch_engine_turn(f->e, 0);
	assert_int_equal(runs_of(f->e, "t"), 1);
	struct sbuf out = SBUF_INIT;
	struct orch_pentry p;
	assert_int_equal(orch_plans_lookup(f->e, "t.trigger", &p), 0);
	assert_int_equal(orch_plans_generated(f->e, PK_TRIGGER, p.id, &out), 0);
	assert_non_null(strstr(sbuf_str(&out), "\"fired\":1,"));
	assert_non_null(strstr(sbuf_str(&out), "\"last_run\":\"t-1\""));
	sbuf_release(&out);
	/* removing the plan ends it */
	assert_int_equal(orch_plans_unlink(f->e, "t.json"), 0);
	assert_int_equal(ev_emit(f->e, "custom.later", NULL, NULL, NULL, NULL), 0);
	orch_engine_turn(f->e, 0);
	assert_int_equal(runs_of(f->e, "t"), 1);
	assert_int_equal(orch_plans_lookup(f->e, "t.trigger", &p), -ENOENT);
}

/* (the store keeps statements by the address of their SQL: literals only) */
static int64_t sch_col(struct orch_engine *e, const char *name, const char *col)
{
	if (!strcmp(col, "anchor"))
		return store_int(&e->st, "SELECT anchor FROM schedules WHERE name = ?", -2, "s", name);
	if (!strcmp(col, "last_at"))
		return store_int(&e->st, "SELECT last_at FROM schedules WHERE name = ?", -2, "s", name);
	return store_int(&e->st, "SELECT next_at FROM schedules WHERE name = ?", -2, "s", name);
}

/* Turns until NAME has N runs (the timer is armed a millisecond on at the
 * least), for at most a second. */
static void turn_until_runs(struct orch_engine *e, const char *name, int64_t n)
{
	for (int i = 0; i < 100 && runs_of(e, name) < n; i++)
		orch_engine_turn(e, 10);
	assert_int_equal(runs_of(e, name), n);
}

/* Schedules (SPEC §9): times missed while the engine was away make one run
 * at the next open, the next time is then the first after now; a next_at
 * beyond the next time (the clock went back while away, or while up:
 * sched_clock_stepped()) comes back to it, and never repeats a time fired;
 * a step forward past a time fires it once. */
static void test_engine__schedule_catch_up_and_clock_steps(void **state)
{
	struct fixture *f = *state;
	const int64_t H = 3600000;
	assert_int_equal(submit(f->e, "s", "{\"schedule\":{\"every_sec\":3600},"
				"\"steps\":[{\"id\":\"a\",\"command\":\"true\"}]}"), 0);
	assert_int_equal(runs_of(f->e, "s"), 0);
	int64_t anchor = sch_col(f->e, "s", "anchor");
	assert_int_equal(sch_col(f->e, "s", "next_at"), anchor + H);

	/* away for three periods and a half: one run at the next open */
	assert_int_equal(store_exec(&f->e->st, "UPDATE schedules SET anchor = ?, next_at = ?", "ii",
				    anchor - 4 * H + H / 2, anchor - 3 * H + H / 2), 0);
	anchor -= 4 * H - H / 2;
	fixture_reopen(f);
	turn_until_runs(f->e, "s", 1);
	for (int i = 0; i < 5; i++)
		orch_engine_turn(f->e, 10);
	assert_int_equal(runs_of(f->e, "s"), 1);
	assert_int_equal(sch_col(f->e, "s", "next_at"), anchor + 4 * H);	/* the first after now */
	int64_t last = sch_col(f->e, "s", "last_at");
	assert_true(last >= anchor + 3 * H + H / 2 && last < anchor + 4 * H);

	/* the clock went back two hours while away: next_at, three hours on,
	 * comes back to the first time after max(now, last_at) */
	assert_int_equal(store_exec(&f->e->st, "UPDATE schedules SET next_at = ?", "i", anchor + 7 * H), 0);
	fixture_reopen(f);
	assert_int_equal(sch_col(f->e, "s", "next_at"), anchor + 4 * H);
	/* ... and while up, every_sec is real time: a step of the clock
	 * moves its times and its grid with it, and fires nothing */
	assert_int_equal(store_exec(&f->e->st, "UPDATE schedules SET next_at = ?", "i", anchor + 6 * H), 0);
	sched_clock_stepped(f->e, -2 * H);
	assert_int_equal(sch_col(f->e, "s", "next_at"), anchor + 4 * H);
	assert_int_equal(sch_col(f->e, "s", "anchor"), anchor - 2 * H);
	sched_clock_stepped(f->e, 2 * H);
	assert_int_equal(sch_col(f->e, "s", "next_at"), anchor + 6 * H);
	assert_int_equal(sch_col(f->e, "s", "anchor"), anchor);
	orch_engine_turn(f->e, 0);
	assert_int_equal(runs_of(f->e, "s"), 1);
	assert_int_equal(store_exec(&f->e->st, "UPDATE schedules SET next_at = ?", "i", anchor + 4 * H), 0);

	/* a time passed (the loop late): one run, then the first time after now */
	assert_int_equal(store_exec(&f->e->st, "UPDATE schedules SET next_at = ? WHERE name = 's'", "i",
				    anchor + 2 * H), 0);
	sched_clock_stepped(f->e, 0);
	assert_int_equal(sch_col(f->e, "s", "next_at"), anchor + 2 * H);
	turn_until_runs(f->e, "s", 2);
	assert_int_equal(sch_col(f->e, "s", "next_at"), anchor + 4 * H);

	/* NAME.schedule */
	struct sbuf out = SBUF_INIT;
	struct orch_pentry p;
	assert_int_equal(orch_plans_lookup(f->e, "s.schedule", &p), 0);
	assert_int_equal(p.kind, PK_SCHEDULE);
	assert_int_equal(orch_plans_generated(f->e, PK_SCHEDULE, p.id, &out), 0);
	assert_non_null(strstr(sbuf_str(&out), "\"last_run\":\"s-2\"}"));
	sbuf_release(&out);
	/* removing the plan ends it, not its runs */
	assert_int_equal(orch_plans_unlink(f->e, "s.json"), 0);
	orch_engine_turn(f->e, 0);	/* the commit that unlinks its bytes */
	assert_int_equal(orch_plans_lookup(f->e, "s.schedule", &p), -ENOENT);
	assert_int_equal(runs_of(f->e, "s"), 2);
}

/* A cron schedule names wall-clock times: a step back never repeats a
 * time fired (last_at), a step forward past its time fires it once. */
static void test_engine__schedule_cron_clock_steps(void **state)
{
	struct fixture *f = *state;
	const int64_t H = 3600000;
	assert_int_equal(submit(f->e, "c", "{\"schedule\":{\"cron\":\"0 * * * *\"},"
				"\"steps\":[{\"id\":\"a\",\"command\":\"true\"}]}"), 0);
	int64_t c_next = sch_col(f->e, "c", "next_at");
	assert_int_equal(c_next % H, 0);
	assert_int_equal(store_exec(&f->e->st, "UPDATE schedules SET last_at = ?, next_at = ? WHERE name = 'c'",
				    "ii", c_next + 2 * H, c_next + 3 * H), 0);
	sched_clock_stepped(f->e, -2 * H);
	assert_int_equal(sch_col(f->e, "c", "next_at"), c_next + 3 * H);
	assert_int_equal(store_exec(&f->e->st, "UPDATE schedules SET last_at = NULL, next_at = ? WHERE name = 'c'",
				    "i", c_next + 5 * H), 0);
	sched_clock_stepped(f->e, -5 * H);
	assert_int_equal(sch_col(f->e, "c", "next_at"), c_next);
	assert_int_equal(store_exec(&f->e->st, "UPDATE schedules SET next_at = ? WHERE name = 'c'", "i",
				    c_next - 2 * H), 0);
	sched_clock_stepped(f->e, 2 * H);
	assert_int_equal(sch_col(f->e, "c", "next_at"), c_next - 2 * H);
	turn_until_runs(f->e, "c", 1);
	assert_int_equal(sch_col(f->e, "c", "next_at"), c_next);
	assert_int_equal(orch_plans_unlink(f->e, "c.json"), 0);
	orch_engine_turn(f->e, 0);	/* the commit that unlinks its bytes */

}

/* A schedule due whose plan's bytes are gone from the state directory
 * (hostile or damaged state): its time is spent and logged, never tried
 * again at every turn; a stored anchor out of this world makes no time
 * at all (never again), rather than one at every turn. */
static void test_engine__schedule_hostile_state_never_spins(void **state)
{
	struct fixture *f = *state;
	const char *plan = "{\"schedule\":{\"every_sec\":3600},\"steps\":[{\"id\":\"a\",\"command\":\"true\"}]}";
	assert_int_equal(submit(f->e, "s", plan), 0);
	struct orch_pentry p;
	assert_int_equal(orch_plans_lookup(f->e, "s.json", &p), 0);
	char *path = orch_plans_path(f->e, p.id);
	assert_int_equal(unlink(path), 0);
	orch_free(path);
	int64_t now = sch_col(f->e, "s", "anchor");
	assert_int_equal(store_exec(&f->e->st, "UPDATE schedules SET next_at = ?", "i", now - 1000), 0);
	sched_clock_stepped(f->e, 0);	/* armed for it */
	for (int i = 0; i < 5; i++)
		orch_engine_turn(f->e, 10);
	assert_int_equal(runs_of(f->e, "s"), 0);
	assert_true(sch_col(f->e, "s", "next_at") > clock_wall_ms());	/* spent, not due */
	assert_int_equal(orch_plans_lookup(f->e, "s.schedule", &p), 0);	/* still registered */

	/* an anchor at the edge of int64: one run (the time was due), then no
	 * time after it */
	assert_int_equal(submit(f->e, "t", plan), 0);
	assert_int_equal(store_exec(&f->e->st, "UPDATE schedules SET anchor = ?, next_at = ? WHERE name = 't'", "ii",
				    INT64_MIN + 5, clock_wall_ms() - 1000), 0);
	sched_clock_stepped(f->e, 0);
	for (int i = 0; i < 100 && runs_of(f->e, "t") < 1; i++)
		orch_engine_turn(f->e, 10);
	for (int i = 0; i < 5; i++)
		orch_engine_turn(f->e, 10);
	assert_int_equal(runs_of(f->e, "t"), 1);
	assert_int_equal(sch_col(f->e, "t", "next_at"), INT64_MAX);
	assert_int_equal(store_exec(&f->e->st, "UPDATE schedules SET anchor = ?, next_at = ? WHERE name = 't'", "ii",
				    INT64_MAX - 5, clock_wall_ms() - 1000), 0);
	sched_clock_stepped(f->e, 0);
	for (int i = 0; i < 100 && runs_of(f->e, "t") < 2; i++)
		orch_engine_turn(f->e, 10);
	assert_int_equal(sch_col(f->e, "t", "next_at"), INT64_MAX);
}

/* A thousand schedules due at once: one turn submits (here: finds gone,
 * their plan files never written) at most 64 of them; the rest go on in
 * the next turns, none stalls the loop. */
static void test_engine__schedules_due_bounded_per_turn(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(submit(f->e, "s", "{\"schedule\":{\"every_sec\":3600},"
				"\"steps\":[{\"id\":\"a\",\"command\":\"true\"}]}"), 0);
	int64_t now = sch_col(f->e, "s", "anchor");
	for (int i = 0; i < 1000; i++) {
		char name[32];
		snprintf(name, sizeof(name), "gone%d", i);
		assert_int_equal(store_exec(&f->e->st, "INSERT INTO schedules(name, uid, gid, spec, anchor, next_at)"
					    " VALUES(?, 0, 0, '{\"every_sec\":60}', ?, ?)", "sii", name,
					    now - 3600000, now - 1000 - i), 0);
	}
	sched_clock_stepped(f->e, 0);	/* the timer armed for the earliest */
	int64_t left = 1001;
	for (int turn = 0; turn < 100 && left > 1; turn++) {
		orch_engine_turn(f->e, 20);
		int64_t n = store_int(&f->e->st, "SELECT count(*) FROM schedules", -1, NULL);
		assert_true(n >= left - 64);
		left = n;
	}
	assert_int_equal(left, 1);	/* s, due in an hour */
	assert_int_equal(runs_of(f->e, "s"), 0);
}

int main(int argc, char **argv)
{
	FIXTURE_MAIN_PROLOGUE(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_engine__diamond_runs_and_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine__invalid_plan_writes_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine__resume_after_engine_dies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine__ctl_cancel_and_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine__timeout_and_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine__spawn_failure_is_a_failed_attempt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine__undone_run_gives_back_started_steps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine__approval_decisions_and_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine__approval_deadline_passed_while_closed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine__undone_approval_leaves_no_wait, setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine__changes_told_while_waited, setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine__trigger_fires_once_across_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine__schedule_catch_up_and_clock_steps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine__schedule_cron_clock_steps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine__schedule_hostile_state_never_spins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine__schedules_due_bounded_per_turn, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
