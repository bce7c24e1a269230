/* tests/test_health.c — health checks (core/health.h): the verdict's
 * transitions and which of them emit an event, the worse of two verdicts,
 * the saved configuration's JSON; then in an engine: a command check runs
 * while a step runs (healthy, then degraded and unhealthy once its file is
 * gone, with the events), stops when the run ends, and stays the sandbox's
 * over a reopen. */
#include <errno.h>
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
#include "core/health.h"
#include "tests/engine_fixture.h"

static void test_health__transitions(void **state)
{
	struct health_tally t = { 0 };
	/* unknown: a pass makes it healthy (an event) */
	assert_true(health_count(&t, true, 3));
	assert_int_equal(t.state, HEALTH_HEALTHY);
	assert_false(health_count(&t, true, 3));
	/* the first failure degrades it; the third in a row makes it unhealthy */
	assert_true(health_count(&t, false, 3));
	assert_int_equal(t.state, HEALTH_DEGRADED);
	assert_false(health_count(&t, false, 3));
	assert_int_equal(t.state, HEALTH_DEGRADED);
	assert_true(health_count(&t, false, 3));
	assert_int_equal(t.state, HEALTH_UNHEALTHY);
	assert_false(health_count(&t, false, 3));
	assert_int_equal(t.streak, 4);
	/* a pass: healthy at once, the streak over */
	assert_true(health_count(&t, true, 3));
	assert_int_equal(t.state, HEALTH_HEALTHY);
	assert_int_equal(t.streak, 0);
	assert_int_equal(t.passed, 3);
	assert_int_equal(t.failed, 4);

	/* unhealthy_after 1: the first failure is unhealthy */
	struct health_tally u = { 0 };
	assert_true(health_count(&u, false, 1));
	assert_int_equal(u.state, HEALTH_UNHEALTHY);
	/* unhealthy stays so until a pass, even when a new streak starts
	 * (checks that stopped and start again) */
	u.streak = 0;
	assert_false(health_count(&u, false, 3));
	assert_int_equal(u.state, HEALTH_UNHEALTHY);
	/* unknown: a failure degrades it */
	struct health_tally v = { 0 };
	assert_true(health_count(&v, false, 2));
	assert_int_equal(v.state, HEALTH_DEGRADED);
}

static void test_health__worse_and_names(void **state)
{
	assert_int_equal(health_worse(HEALTH_UNKNOWN, HEALTH_HEALTHY), HEALTH_HEALTHY);
	assert_int_equal(health_worse(HEALTH_HEALTHY, HEALTH_DEGRADED), HEALTH_DEGRADED);
	assert_int_equal(health_worse(HEALTH_UNHEALTHY, HEALTH_DEGRADED), HEALTH_UNHEALTHY);
	assert_int_equal(health_worse(HEALTH_UNKNOWN, HEALTH_UNKNOWN), HEALTH_UNKNOWN);
	assert_string_equal(health_state_name(HEALTH_UNKNOWN), "unknown");
	assert_string_equal(health_state_name(HEALTH_HEALTHY), "healthy");
	assert_string_equal(health_state_name(HEALTH_DEGRADED), "degraded");
	assert_string_equal(health_state_name(HEALTH_UNHEALTHY), "unhealthy");
}

static void test_health__config_json(void **state)
{
	char *cmd[] = { "test", "-f", "ok", NULL };
	struct plan_health ph = { .set = true, .command = cmd, .ncommand = 3, .interval_sec = 0.25,
				  .timeout_sec = 2, .unhealthy_after = 4 };
	char *j = health_cfg_json(&ph);
	assert_non_null(j);
	assert_string_equal(j, "{\"command\":[\"test\",\"-f\",\"ok\"],\"interval_ms\":250,\"timeout_ms\":2000,"
			       "\"unhealthy_after\":4}");
	struct health_cfg c;
	assert_int_equal(health_cfg_parse(j, &c), 0);
	assert_null(c.url);
	assert_int_equal(c.argc, 3);
	assert_string_equal(c.argv[2], "ok");
	assert_null(c.argv[3]);
	assert_int_equal(c.interval_ms, 250);
	assert_int_equal(c.timeout_ms, 2000);
	assert_int_equal(c.unhealthy_after, 4);
	health_cfg_release(&c);
	orch_free(j);

	struct plan_health pu = { .set = true, .url = "http://127.0.0.1:9/h", .interval_sec = 10, .timeout_sec = 2,
				  .unhealthy_after = 3 };
	j = health_cfg_json(&pu);
	assert_int_equal(health_cfg_parse(j, &c), 0);
	assert_string_equal(c.url, "http://127.0.0.1:9/h");
	assert_null(c.argv);
	health_cfg_release(&c);
	orch_free(j);

	static const char *const bad[] = {
		"", "[]", "{\"interval_ms\":1,\"timeout_ms\":1,\"unhealthy_after\":1}",
		"{\"url\":\"u\",\"command\":[\"x\"],\"interval_ms\":1,\"timeout_ms\":1,\"unhealthy_after\":1}",
		"{\"url\":\"u\",\"interval_ms\":0,\"timeout_ms\":1,\"unhealthy_after\":1}",
		"{\"command\":[],\"interval_ms\":1,\"timeout_ms\":1,\"unhealthy_after\":1}",
		"{\"command\":[1],\"interval_ms\":1,\"timeout_ms\":1,\"unhealthy_after\":1}",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_int_equal(health_cfg_parse(bad[i], &c), -EINVAL);
}

/* ---- in an engine ---- */

static int submit(struct orch_engine *e, const char *name, const char *text)
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
	rc = orch_plans_written(e, p.id, getuid(), getgid());
	orch_engine_turn(e, 0);
	return rc;
}

static json_t *sb_status(struct orch_engine *e, const char *name)
{
	struct orch_sandbox_attr a;
	assert_int_equal(orch_sandbox_by_name(e, name, &a), 0);
	struct sbuf sb = SBUF_INIT;
	assert_int_equal(orch_sandbox_render(e, a.rowid, &sb), 0);
	json_t *j = json_loads(sbuf_str(&sb), 0, NULL);
	sbuf_release(&sb);
	assert_non_null(j);
	return j;
}

static bool health_is(struct orch_engine *e, const char *sb, const char *want)
{
	json_t *j = sb_status(e, sb);
	bool ok = !strcmp(json_string_value(json_object_get(j, "health")), want);
	json_decref(j);
	return ok;
}

static int64_t checks_total(struct orch_engine *e, const char *sb)
{
	json_t *j = sb_status(e, sb), *c = json_object_get(j, "checks");
	int64_t n = json_integer_value(json_object_get(c, "passed")) + json_integer_value(json_object_get(c, "failed"));
	json_decref(j);
	return n;
}

static void turn_until_health(struct orch_engine *e, const char *sb, const char *want)
{
	int64_t end = clock_mono_ms() + 20000;
	while (!health_is(e, sb, want)) {
		if (clock_mono_ms() > end) {
			json_t *j = sb_status(e, sb);
			char *s = json_dumps(j, 0);
			fail_msg("sandbox %s never %s: %s", sb, want, s);
		}
		orch_engine_turn(e, 20);
	}
}

static void test_health__command_check_in_an_engine(void **state)
{
	struct fixture *f = fixture_new("health", 47300, 47399);
	struct orch_engine *e = f->e;
	/* the step makes "ok", later removes it, then ends */
	assert_int_equal(submit(e, "hc",
				"{\"sandbox\": {\"id\": \"box\", \"health\": {\"command\": [\"test\", \"-f\", \"ok\"],"
				" \"interval_sec\": 0.1, \"timeout_sec\": 5, \"unhealthy_after\": 2}},"
				" \"steps\": [{\"id\": \"s\", \"command\": \"sh\", \"args\": [\"-c\","
				" \"touch ok; while [ ! -e go ]; do sleep 0.05; done; rm ok; sleep 60\"]}]}"),
			 0);
	turn_until_health(e, "box", "healthy");
	char *ws = orch_sandbox_workspace(e, sb_get(e, "box")->rowid);
	char go[256];
	snprintf(go, sizeof(go), "%s/go", ws);
	FILE *fp = fopen(go, "w");
	assert_non_null(fp);
	fclose(fp);
	turn_until_health(e, "box", "unhealthy");
	json_t *j = sb_status(e, "box");
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "checks"), "last_error")),
			    "exit status 1");
	json_decref(j);
	/* the events, in order, in the sandbox's view */
	struct sbuf ev = SBUF_INIT;
	assert_int_equal(orch_events_read(e, EV_SANDBOX, sb_get(e, "box")->rowid, 0, 1 << 20, &ev), 0);
	const char *h = strstr(sbuf_str(&ev), "\"type\":\"sandbox.healthy\"");
	const char *d = strstr(sbuf_str(&ev), "\"type\":\"sandbox.degraded\"");
	const char *u = strstr(sbuf_str(&ev), "\"type\":\"sandbox.unhealthy\"");
	assert_true(h && d && u && h < d && d < u);
	sbuf_release(&ev);
	struct sbuf m = SBUF_INIT;
	assert_int_equal(orch_render_metrics(e, &m), 0);
	assert_null(strstr(sbuf_str(&m), "orchfs_health_checks_total{result=\"failed\"} 0\n"));
	assert_non_null(strstr(sbuf_str(&m), "orchfs_health_checks_total{result=\"passed\"}"));
	sbuf_release(&m);

	/* the run ends: checks stop */
	struct orch_run_attr ra;
	assert_int_equal(orch_run_by_name(e, "hc-1", &ra), 0);
	assert_int_equal(orch_run_ctl(e, ra.rowid, "cancel", 6), 0);
	int64_t end = clock_mono_ms() + 20000;
	while (sb_get(e, "box")->holder && clock_mono_ms() < end)
		orch_engine_turn(e, 20);
	assert_null(sb_get(e, "box")->holder);
	for (int i = 0; i < 5; i++)
		orch_engine_turn(e, 20);
	int64_t n = checks_total(e, "box");
	end = clock_mono_ms() + 600;
	while (clock_mono_ms() < end)
		orch_engine_turn(e, 50);
	assert_int_equal(checks_total(e, "box"), n);

	/* the check is the sandbox's: there after a reopen, counts anew */
	fixture_reopen(f);
	j = sb_status(f->e, "box");
	json_t *c = json_object_get(j, "checks");
	assert_true(json_is_object(c));
	assert_int_equal(json_integer_value(json_object_get(c, "passed")), 0);
	json_decref(j);
	orch_free(ws);
	fixture_teardown((void **)&f);
}

int main(int argc, char **argv)
{
	FIXTURE_MAIN_PROLOGUE(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_health__transitions),
		cmocka_unit_test(test_health__worse_and_names),
		cmocka_unit_test(test_health__config_json),
		cmocka_unit_test(test_health__command_check_in_an_engine),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
