/* tests/test_trigger.c — trigger matching (core/trigger.h) and the
 * validation of "on" and the TRIGGER_* variables (core/plan.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/plan.h"
#include "core/trigger.h"
#include "core/util.h"

static json_t *js(const char *text)
{
	json_error_t err;
	json_t *j = json_loads(text, 0, &err);
	assert_non_null(j);
	return j;
}

static bool m(const char *on, const char *event)
{
	json_t *o = js(on), *e = js(event);
	bool r = trigger_matches(o, e);
	json_decref(o);
	json_decref(e);
	return r;
}

#define SUCC "{\"seq\":7,\"type\":\"run.succeeded\",\"run_id\":\"build-3\",\"sandbox\":\"build-3\"," \
	     "\"plan_id\":\"build\"}"
#define BUG "{\"seq\":9,\"type\":\"bug.reported\",\"sandbox\":\"s\"," \
	    "\"event_data\":{\"severity\":\"high\",\"count\":3,\"a.b\":true}}"

static void test_trigger__type_glob(void **state)
{
	(void)state;
	assert_true(m("[{\"event_type\":\"run.succeeded\"}]", SUCC));
	assert_false(m("[{\"event_type\":\"run.failed\"}]", SUCC));
	assert_true(m("[{\"event_type\":\"run.*\"}]", SUCC));
	assert_true(m("[{\"event_type\":\"bug.*\"}]", BUG));
	assert_false(m("[{\"event_type\":\"bug.*\"}]", SUCC));
	assert_true(m("[{\"event_type\":\"*\"}]", BUG));
	assert_true(m("[{\"event_type\":\"bug.report?d\"}]", BUG));
	assert_false(m("[{\"event_type\":\"bug\"}]", BUG));	/* whole type, not a prefix */
	/* any rule of the list */
	assert_true(m("[{\"event_type\":\"x\"},{\"event_type\":\"bug.*\"}]", BUG));
	/* an event without a type matches nothing */
	assert_false(m("[{\"event_type\":\"*\"}]", "{\"seq\":1}"));
}

static void test_trigger__top_level(void **state)
{
	(void)state;
	assert_true(m("[{\"event_type\":\"run.succeeded\",\"match\":{\"plan_id\":\"build\"}}]", SUCC));
	assert_false(m("[{\"event_type\":\"run.succeeded\",\"match\":{\"plan_id\":\"test\"}}]", SUCC));
	assert_true(m("[{\"event_type\":\"run.*\",\"match\":{\"plan_id\":\"build\",\"sandbox\":\"build-3\"}}]",
		      SUCC));
	/* every field must match */
	assert_false(m("[{\"event_type\":\"run.*\",\"match\":{\"plan_id\":\"build\",\"sandbox\":\"x\"}}]", SUCC));
	assert_true(m("[{\"event_type\":\"run.*\",\"match\":{}}]", SUCC));
	assert_true(m("[{\"event_type\":\"run.*\",\"match\":{\"seq\":7}}]", SUCC));
}

static void test_trigger__event_data(void **state)
{
	(void)state;
	assert_true(m("[{\"event_type\":\"bug.*\",\"match\":{\"event_data.severity\":\"high\"}}]", BUG));
	assert_false(m("[{\"event_type\":\"bug.*\",\"match\":{\"event_data.severity\":\"low\"}}]", BUG));
	assert_true(m("[{\"event_type\":\"bug.*\",\"match\":{\"event_data.count\":3}}]", BUG));
	/* the name after "event_data." is taken whole */
	assert_true(m("[{\"event_type\":\"bug.*\",\"match\":{\"event_data.a.b\":true}}]", BUG));
	/* a top-level field is not an event_data one */
	assert_false(m("[{\"event_type\":\"bug.*\",\"match\":{\"severity\":\"high\"}}]", BUG));
	/* the whole object compares too */
	assert_true(m("[{\"event_type\":\"bug.*\",\"match\":{\"event_data\":"
		      "{\"severity\":\"high\",\"count\":3,\"a.b\":true}}}]", BUG));
}

static void test_trigger__types_and_missing(void **state)
{
	(void)state;
	/* equality is of JSON values: type and value */
	assert_false(m("[{\"event_type\":\"bug.*\",\"match\":{\"event_data.count\":\"3\"}}]", BUG));
	assert_false(m("[{\"event_type\":\"bug.*\",\"match\":{\"event_data.count\":3.0}}]", BUG));
	assert_false(m("[{\"event_type\":\"bug.*\",\"match\":{\"event_data.a.b\":1}}]", BUG));
	assert_false(m("[{\"event_type\":\"run.*\",\"match\":{\"seq\":\"7\"}}]", SUCC));
	/* missing: never a match, null included */
	assert_false(m("[{\"event_type\":\"bug.*\",\"match\":{\"event_data.nope\":null}}]", BUG));
	assert_false(m("[{\"event_type\":\"run.*\",\"match\":{\"event_data.severity\":\"high\"}}]", SUCC));
	assert_false(m("[{\"event_type\":\"bug.*\",\"match\":{\"run_id\":\"build-3\"}}]", BUG));
}

/* ---- validation ---- */

static char *errs_of(const char *text)
{
	struct sbuf errs = SBUF_INIT;
	struct plan_opts opts = { 0 };
	struct plan *p = plan_parse(text, strlen(text), "t", &opts, &errs);
	plan_free(p);
	char *s = strdup(p ? "" : sbuf_str(&errs));
	sbuf_release(&errs);
	return s;
}

#define STEPS ",\"steps\":[{\"id\":\"a\",\"command\":\"true\"}]}"

static void expect_err(const char *text, const char *want)
{
	char *got = errs_of(text);
	if (!strstr(got, want))
		fail_msg("plan %s\n  errors: %s\n  wanted: %s", text, got, want);
	free(got);
}

static void test_trigger__validation(void **state)
{
	(void)state;
	char *ok = errs_of("{\"on\":[{\"event_type\":\"run.succeeded\",\"match\":{\"plan_id\":\"build\","
			   "\"event_data.x\":[1,2]}}]" STEPS);
	assert_string_equal(ok, "");
	free(ok);
	expect_err("{\"on\":{}" STEPS, "\"on\" must be a list");
	expect_err("{\"on\":[]" STEPS, "\"on\" must not be empty");
	expect_err("{\"on\":[3]" STEPS, "on[0]: must be an object");
	expect_err("{\"on\":[{}]" STEPS, "on[0]: \"event_type\" is required");
	expect_err("{\"on\":[{\"event_type\":\"\"}]" STEPS, "on[0]: \"event_type\" must be a non-empty string");
	expect_err("{\"on\":[{\"event_type\":7}]" STEPS, "on[0]: \"event_type\" must be a non-empty string");
	expect_err("{\"on\":[{\"event_type\":\"a\"},{\"event_type\":\"b\",\"mach\":{}}]" STEPS,
		   "on[1]: unknown field \"mach\" (did you mean \"match\"?)");
	expect_err("{\"on\":[{\"event_type\":\"a\",\"match\":[1]}]" STEPS, "on[0]: \"match\" must be an object");
	expect_err("{\"on\":[{\"event_type\":\"a\",\"match\":{\"event_data.\":1}}]" STEPS,
		   "on[0]: \"match\": field \"event_data.\" names nothing");
	expect_err("{\"onn\":[]" STEPS, "unknown field \"onn\" (did you mean \"on\"?)");
}

static void test_trigger__variables(void **state)
{
	(void)state;
	const char *text = "{\"on\":[{\"event_type\":\"run.succeeded\"}],\"steps\":[{\"id\":\"a\","
			   "\"command\":\"echo\",\"args\":[\"${TRIGGER_RUN_ID}\",\"${TRIGGER_SANDBOX}\"],"
			   "\"env\":{\"EV\":\"${TRIGGER_EVENT}\"}}]}";
	char *got = errs_of(text);
	assert_string_equal(got, "");
	free(got);
	/* without "on" they are unknown */
	expect_err("{\"steps\":[{\"id\":\"a\",\"command\":\"echo ${TRIGGER_RUN_ID}\"}]}", "TRIGGER_RUN_ID");

	struct sbuf errs = SBUF_INIT;
	struct plan_opts opts = { 0 };
	struct plan *p = plan_parse(text, strlen(text), "t", &opts, &errs);
	assert_non_null(p);
	assert_true(p->triggered);
	struct plan_builtins b = { .run_id = "t-1", .sandbox_id = "t-1", .workspace = "/w", .mount = "/m",
				   .trigger_event = "{\"type\":\"run.succeeded\"}", .trigger_run_id = "build-3" };
	assert_int_equal(plan_substitute(p, "t", &opts, &b, &errs), 0);
	assert_string_equal(p->steps[0].args[0], "build-3");
	assert_string_equal(p->steps[0].args[1], "");	/* none: empty */
	assert_string_equal(p->steps[0].env[0], "EV={\"type\":\"run.succeeded\"}");
	/* and in every step's environment, through the plan's env (kept in
	 * the plan as run for a resume) */
	assert_int_equal(p->nenv, 3);
	assert_string_equal(p->env[0], "TRIGGER_EVENT={\"type\":\"run.succeeded\"}");
	assert_string_equal(p->env[1], "TRIGGER_RUN_ID=build-3");
	assert_string_equal(p->env[2], "TRIGGER_SANDBOX=");
	assert_null(p->env[3]);
	assert_string_equal(json_string_value(json_object_get(json_object_get(p->doc, "env"), "TRIGGER_RUN_ID")),
			    "build-3");
	plan_free(p);
	sbuf_release(&errs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trigger__type_glob),
		cmocka_unit_test(test_trigger__top_level),
		cmocka_unit_test(test_trigger__event_data),
		cmocka_unit_test(test_trigger__types_and_missing),
		cmocka_unit_test(test_trigger__validation),
		cmocka_unit_test(test_trigger__variables),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
