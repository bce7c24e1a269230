/* tests/test_plan.c — plan_parse() messages, one case per validation rule,
 * the structure of valid plans, plan_substitute(), 100,000-step plans and an
 * allocation-failure sweep (run under ASan: a leak or a crash fails it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/plan.h"

/* An existing sandbox "shared": isolation none, no network, 1 port; and
 * "named", with the ports "api" and "web". */
static void fake_sandbox(void *ctx, const char *id, struct plan_sandbox_info *info)
{
	static char *const names[] = { "api", "web", NULL };
	if (!strcmp(id, "named")) {
		info->exists = true;
		info->isolation = ISOLATION_NONE;
		info->network = true;
		info->ports = 2;
		info->port_names = names;
		return;
	}
	if (strcmp(id, "shared"))
		return;
	info->exists = true;
	info->isolation = ISOLATION_NONE;
	info->network = false;
	info->ports = 1;
}

static const struct plan_opts base_opts = {
	.bwrap_available = true,
	.sandbox_info = fake_sandbox,
};

static struct plan *parse_opts(const char *text, const struct plan_opts *opts, struct sbuf *errs)
{
	return plan_parse(text, strlen(text), "demo", opts, errs);
}

/* TEXT must be refused with exactly the lines WANT. */
static void expect_errs_opts(const char *text, const struct plan_opts *opts, const char *want)
{
	struct sbuf errs = SBUF_INIT;
	struct plan *p = parse_opts(text, opts, &errs);

	assert_null(p);
	assert_false(sbuf_failed(&errs));
	assert_string_equal(sbuf_str(&errs), want);
	sbuf_release(&errs);
}

static void expect_errs(const char *text, const char *want)
{
	expect_errs_opts(text, &base_opts, want);
}

/* TEXT must parse; the caller frees. */
static struct plan *expect_ok_opts(const char *text, const struct plan_opts *opts)
{
	struct sbuf errs = SBUF_INIT;
	struct plan *p = parse_opts(text, opts, &errs);

	if (!p)
		fail_msg("unexpected errors: %s", sbuf_str(&errs));
	assert_string_equal(sbuf_str(&errs), "");
	sbuf_release(&errs);
	return p;
}

static struct plan *expect_ok(const char *text)
{
	return expect_ok_opts(text, &base_opts);
}

/* A plan of one step with the given extra step fields. */
#define STEP1(fields) "{\"steps\": [{\"id\": \"a\", \"command\": \"true\"" fields "}]}"

/* 1 */
static void test_plan__json_syntax(void **state)
{
	expect_errs("{\n  \"steps\": [\n    x\n  ]\n}", "line 3, column 5: invalid token near 'x'\n");
}

/* 2 */
static void test_plan__not_object(void **state)
{
	expect_errs("[1]", "plan must be a JSON object, not an array\n");
	expect_errs("\"x\"", "plan must be a JSON object, not a string\n");
	expect_errs("1.5", "plan must be a JSON object, not a number\n");
	expect_errs("true", "plan must be a JSON object, not a boolean\n");
	expect_errs("null", "plan must be a JSON object, not null\n");
}

/* 3 */
static void test_plan__steps_required(void **state)
{
	expect_errs("{}", "\"steps\" is required\n");
}

static void test_plan__steps_not_array(void **state)
{
	expect_errs("{\"steps\": {}}", "\"steps\" must be an array\n");
}

static void test_plan__steps_empty(void **state)
{
	expect_errs("{\"steps\": []}", "\"steps\" must not be empty\n");
}

static void test_plan__steps_too_many(void **state)
{
	struct sbuf sb = SBUF_INIT;

	sbuf_adds(&sb, "{\"steps\": [");
	for (int i = 0; i <= PLAN_MAX_STEPS; i++)
		sbuf_adds(&sb, i ? ",{}" : "{}");
	sbuf_adds(&sb, "]}");
	assert_false(sbuf_failed(&sb));
	expect_errs(sbuf_str(&sb), "\"steps\" has more than 100000 steps\n");
	sbuf_release(&sb);
}

/* 4 */
static void test_plan__step_not_object(void **state)
{
	expect_errs("{\"steps\": [{\"id\": \"a\", \"command\": \"x\"}, 3]}",
		    "step 2: must be an object\n");
}

/* 5 */
static void test_plan__id_required(void **state)
{
	expect_errs("{\"steps\": [{\"command\": \"x\"}]}", "step 1: \"id\" is required\n");
}

static void test_plan__id_not_string(void **state)
{
	expect_errs("{\"steps\": [{\"id\": 7, \"command\": \"x\"}]}",
		    "step 1: \"id\" must be a string\n");
}

static void test_plan__id_invalid(void **state)
{
	expect_errs("{\"steps\": [{\"id\": \"a b\", \"command\": \"x\"}]}",
		    "step 1: invalid id \"a b\" (use 1 to 64 of A-Z a-z 0-9 _ -)\n");
	/* long ids are cut to 80 bytes in the message */
	char text[300], want[300], id[101];
	memset(id, 'x', 100);
	id[100] = '\0';
	snprintf(text, sizeof(text), "{\"steps\": [{\"id\": \"%s\", \"command\": \"x\"}]}", id);
	snprintf(want, sizeof(want), "step 1: invalid id \"%.80s\" (use 1 to 64 of A-Z a-z 0-9 _ -)\n",
		 id);
	expect_errs(text, want);
}

/* 6 */
static void test_plan__duplicate_id(void **state)
{
	expect_errs("{\"steps\": [{\"id\": \"a\", \"command\": \"x\"}, {\"id\": \"b\", \"command\": \"x\"},"
		    " {\"id\": \"a\", \"command\": \"y\"}]}",
		    "step \"a\": duplicate id (first defined as step 1)\n");
}

/* 7 */
static void test_plan__command_required(void **state)
{
	expect_errs("{\"steps\": [{\"id\": \"a\"}]}", "step \"a\": \"command\" is required\n");
}

/* 8: each kind of type error */
static void test_plan__type_string(void **state)
{
	expect_errs(STEP1(", \"name\": 1"), "step \"a\": \"name\" must be a string\n");
}

static void test_plan__type_non_empty_string(void **state)
{
	expect_errs("{\"steps\": [{\"id\": \"a\", \"command\": \"\"}]}",
		    "step \"a\": \"command\" must be a non-empty string\n");
	expect_errs("{\"plan_id\": \"\", \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}",
		    "\"plan_id\" must be a non-empty string\n");
}

static void test_plan__type_number(void **state)
{
	expect_errs(STEP1(", \"timeout_sec\": \"10\""), "step \"a\": \"timeout_sec\" must be a number\n");
}

static void test_plan__type_integer(void **state)
{
	expect_errs(STEP1(", \"retries\": 1.5"), "step \"a\": \"retries\" must be an integer\n");
	expect_errs("{\"globals\": {\"max_concurrency\": 2.5}, \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}",
		    "\"globals.max_concurrency\" must be an integer\n");
}

static void test_plan__type_boolean(void **state)
{
	expect_errs(STEP1(", \"shell\": 1"), "step \"a\": \"shell\" must be a boolean\n");
	expect_errs("{\"sandbox\": {\"network\": \"no\"}, \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}",
		    "\"sandbox.network\" must be a boolean\n");
}

static void test_plan__type_object(void **state)
{
	expect_errs("{\"globals\": [], \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}",
		    "\"globals\" must be an object\n");
}

static void test_plan__type_array_of_strings(void **state)
{
	expect_errs(STEP1(", \"args\": [\"x\", 1]"), "step \"a\": \"args\" must be an array of strings\n");
	expect_errs(STEP1(", \"depends_on\": \"b\""),
		    "step \"a\": \"depends_on\" must be an array of strings\n");
}

static void test_plan__type_object_of_strings(void **state)
{
	expect_errs("{\"env\": {\"A\": 1}, \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}",
		    "\"env\" must be an object of strings\n");
	expect_errs(STEP1(", \"env\": [\"A=1\"]"), "step \"a\": \"env\" must be an object of strings\n");
}

static void test_plan__type_error_without_id(void **state)
{
	expect_errs("{\"steps\": [{\"command\": \"x\", \"critical\": \"yes\"}]}",
		    "step 1: \"id\" is required\n"
		    "step 1: \"critical\" must be a boolean\n");
}

static void test_plan__env_invalid_name(void **state)
{
	expect_errs("{\"env\": {\"A=B\": \"1\"}, \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}",
		    "env: invalid name \"A=B\"\n");
	expect_errs(STEP1(", \"env\": {\"\": \"1\"}"), "step \"a\": env: invalid name \"\"\n");
}

static void test_plan__nul_bytes(void **state)
{
	expect_errs(STEP1(", \"cwd\": \"a\\u0000b\""), "step \"a\": \"cwd\" must not contain NUL bytes\n");
	expect_errs(STEP1(", \"args\": [\"ok\", \"a\\u0000\"]"),
		    "step \"a\": \"args[1]\" must not contain NUL bytes\n");
	expect_errs("{\"steps\": [{\"id\": \"a\\u0000\", \"command\": \"x\"}]}",
		    "step 1: \"id\" must not contain NUL bytes\n");
}

static void test_plan__plan_id_too_long(void **state)
{
	char text[600], id[258];
	memset(id, 'p', 257);
	id[257] = '\0';
	snprintf(text, sizeof(text), "{\"plan_id\": \"%s\", \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}",
		 id);
	expect_errs(text, "\"plan_id\" must be at most 256 bytes\n");
}

/* 9 */
static void test_plan__range(void **state)
{
	expect_errs(STEP1(", \"retries\": 1001"), "step \"a\": \"retries\" must be between 0 and 1000\n");
	expect_errs(STEP1(", \"timeout_sec\": 0"), "step \"a\": \"timeout_sec\" must be greater than 0\n");
	expect_errs(STEP1(", \"retry_backoff\": 0.5"),
		    "step \"a\": \"retry_backoff\" must be between 1 and 100\n");
	expect_errs("{\"globals\": {\"max_concurrency\": 0}, \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}",
		    "\"globals.max_concurrency\" must be between 1 and 100000\n");
	expect_errs("{\"globals\": {\"kill_grace_sec\": 3600.5}, \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}",
		    "\"globals.kill_grace_sec\" must be between 0 and 3600\n");
	expect_errs("{\"sandbox\": {\"ports\": 65}, \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}",
		    "\"sandbox.ports\" must be between 0 and 64\n");
}

/* A step's own kill_grace_sec overrides the globals' (SPEC §3), whatever
 * the order of the fields; it is checked as the global one is. */
static void test_plan__step_kill_grace(void **state)
{
	struct plan *p = expect_ok("{\"steps\": [{\"id\": \"a\", \"command\": \"x\", \"kill_grace_sec\": 0},"
				   " {\"id\": \"b\", \"command\": \"x\", \"kill_grace_sec\": 1.5},"
				   " {\"id\": \"c\", \"command\": \"x\"}],"
				   " \"globals\": {\"kill_grace_sec\": 60}}");
	assert_true(p->kill_grace_sec == 60);
	assert_true(p->steps[0].kill_grace_sec == 0);
	assert_true(p->steps[1].kill_grace_sec == 1.5);
	assert_true(p->steps[2].kill_grace_sec == 60);
	plan_free(p);

	p = expect_ok(STEP1(", \"kill_grace_sec\": 3600"));
	assert_true(p->steps[0].kill_grace_sec == 3600);
	plan_free(p);

	expect_errs(STEP1(", \"kill_grace_sec\": -1"),
		    "step \"a\": \"kill_grace_sec\" must be between 0 and 3600\n");
	expect_errs(STEP1(", \"kill_grace_sec\": 3600.5"),
		    "step \"a\": \"kill_grace_sec\" must be between 0 and 3600\n");
	expect_errs(STEP1(", \"kill_grace_sec\": \"5\""), "step \"a\": \"kill_grace_sec\" must be a number\n");
	expect_errs(STEP1(", \"kill_grace_sec\": null"), "step \"a\": \"kill_grace_sec\" must be a number\n");
	expect_errs(STEP1(", \"kill_grace_secs\": 1"),
		    "step \"a\": unknown field \"kill_grace_secs\" (did you mean \"kill_grace_sec\"?)\n");
}

/* 10 */
static void test_plan__unknown_on_failure(void **state)
{
	expect_errs(STEP1(", \"on_failure\": \"retry\""),
		    "step \"a\": unknown on_failure \"retry\" (use abort, skip_dependents or continue)\n");
}

static void test_plan__bad_isolation(void **state)
{
	expect_errs("{\"sandbox\": {\"isolation\": \"docker\"}, \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}",
		    "\"sandbox.isolation\" must be \"bwrap\" or \"none\"\n");
}

/* 11 */
static void test_plan__unknown_field_suggestion(void **state)
{
	expect_errs("{\"steps\": [{\"id\": \"a\", \"comand\": \"x\", \"command\": \"x\"}]}",
		    "step \"a\": unknown field \"comand\" (did you mean \"command\"?)\n");
}

static void test_plan__unknown_field_no_suggestion(void **state)
{
	expect_errs(STEP1(", \"frobnicate\": 1"), "step \"a\": unknown field \"frobnicate\"\n");
}

static void test_plan__unknown_field_top(void **state)
{
	expect_errs("{\"step\": [], \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}",
		    "unknown field \"step\" (did you mean \"steps\"?)\n");
	expect_errs("{\"owner\": \"me\", \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}",
		    "unknown field \"owner\"\n");
}

static void test_plan__unknown_field_globals_sandbox(void **state)
{
	expect_errs("{\"globals\": {\"max_concurency\": 2}, \"sandbox\": {\"netwrk\": true},"
		    " \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}",
		    "globals: unknown field \"max_concurency\" (did you mean \"max_concurrency\"?)\n"
		    "sandbox: unknown field \"netwrk\" (did you mean \"network\"?)\n");
}

/* 12 */
static void test_plan__unknown_dependency(void **state)
{
	expect_errs("{\"steps\": [{\"id\": \"b\", \"command\": \"x\", \"depends_on\": [\"z\"]}]}",
		    "step \"b\": depends on unknown step \"z\"\n");
}

/* 13 */
static void test_plan__cycle(void **state)
{
	expect_errs("{\"steps\": ["
		    "{\"id\": \"a\", \"command\": \"x\", \"depends_on\": [\"c\"]},"
		    "{\"id\": \"b\", \"command\": \"x\", \"depends_on\": [\"a\"]},"
		    "{\"id\": \"c\", \"command\": \"x\", \"depends_on\": [\"b\"]}]}",
		    "cycle: a -> b -> c -> a\n");
	/* found from a later step: still named from its first step in plan order */
	expect_errs("{\"steps\": ["
		    "{\"id\": \"z\", \"command\": \"x\"},"
		    "{\"id\": \"c\", \"command\": \"x\", \"depends_on\": [\"b\"]},"
		    "{\"id\": \"b\", \"command\": \"x\", \"depends_on\": [\"c\", \"z\"]}]}",
		    "cycle: c -> b -> c\n");
}

static void test_plan__self_cycle(void **state)
{
	expect_errs(STEP1(", \"depends_on\": [\"a\"]"), "cycle: a -> a\n");
}

static void test_plan__no_cycle_check_after_unknown_dep(void **state)
{
	expect_errs("{\"steps\": [{\"id\": \"a\", \"command\": \"x\", \"depends_on\": [\"a\", \"q\"]}]}",
		    "step \"a\": depends on unknown step \"q\"\n");
}

/* 14 */
static void test_plan__unknown_variable(void **state)
{
	expect_errs(STEP1(", \"args\": [\"ok ${RUN_ID}\", \"${NOPE}\"]"),
		    "step \"a\": unknown variable \"${NOPE}\" in args[1]\n");
	expect_errs("{\"env\": {\"K\": \"${NOPE}\"}, \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}",
		    "env.K: unknown variable \"${NOPE}\"\n");
	expect_errs(STEP1(", \"env\": {\"K\": \"${NOPE}\"}"),
		    "step \"a\": unknown variable \"${NOPE}\" in env.K\n");
	/* STEP_ID has no value at plan level */
	expect_errs("{\"env\": {\"K\": \"${STEP_ID}\"}, \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}",
		    "env.K: unknown variable \"${STEP_ID}\"\n");
	/* one port by default */
	expect_errs(STEP1(", \"args\": [\"${PORT0}\", \"${PORT1}\"]"),
		    "step \"a\": unknown variable \"${PORT1}\" in args[1]\n");
}

static void test_plan__unterminated_variable(void **state)
{
	expect_errs("{\"steps\": [{\"id\": \"a\", \"command\": \"echo ${X\"}]}",
		    "step \"a\": unterminated \"${\" in command\n");
}

static void test_plan__invalid_variable_name(void **state)
{
	expect_errs(STEP1(", \"cwd\": \"${1x}\""),
		    "step \"a\": invalid variable name \"${1x}\" in cwd\n");
}

static void test_plan__variables_object(void **state)
{
	expect_errs("{\"variables\": {\"1x\": \"a\", \"RUN_ID\": \"b\", \"PORT3\": \"c\", \"X\": 1},"
		    " \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}",
		    "variables: invalid name \"1x\"\n"
		    "variables: \"RUN_ID\" is a built-in variable\n"
		    "variables: \"PORT3\" is a built-in variable\n"
		    "\"variables.X\" must be a string\n");
	expect_errs("{\"variables\": [], \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}",
		    "\"variables\" must be an object\n");
}

static void test_plan__variables_known(void **state)
{
	char *defs[] = { "FROM_CLI=1", "BARE" };
	struct plan_opts opts = base_opts;
	opts.var_defaults = defs;
	opts.nvar_defaults = 2;
	struct plan *p = expect_ok_opts(
		"{\"variables\": {\"V\": \"v\"}, \"sandbox\": {\"ports\": 3},"
		" \"env\": {\"E\": \"${V}${FROM_CLI}$$ ${PLAN_ID} $x $\"},"
		" \"steps\": [{\"id\": \"a\", \"command\": \"${BARE}\","
		" \"args\": [\"${PORT2}\", \"${STEP_ID}\", \"${SANDBOX_ID}${WORKSPACE}${MOUNT}\"]}]}",
		&opts);
	plan_free(p);
}

/* 15 */
static void test_plan__sandbox_id_invalid(void **state)
{
	expect_errs("{\"sandbox\": {\"id\": \"a/b\"}, \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}",
		    "\"sandbox.id\" must be 1 to 80 of A-Z a-z 0-9 _ -\n");
}

static void test_plan__bwrap_unavailable(void **state)
{
	struct plan_opts opts = base_opts;
	const char *text = "{\"sandbox\": {\"isolation\": \"bwrap\"}, \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}";

	opts.bwrap_available = false;
	expect_errs_opts(text, &opts,
			 "sandbox.isolation \"bwrap\" is not available here: bubblewrap not found\n");
	opts.bwrap_unavailable_reason = "user namespaces are disabled";
	expect_errs_opts(text, &opts,
			 "sandbox.isolation \"bwrap\" is not available here: user namespaces are disabled\n");
}

static void test_plan__sandbox_mismatch(void **state)
{
	expect_errs("{\"sandbox\": {\"id\": \"shared\", \"isolation\": \"bwrap\", \"network\": true,"
		    " \"ports\": 2}, \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}",
		    "sandbox \"shared\": isolation is \"none\", the plan asks for \"bwrap\"\n"
		    "sandbox \"shared\": network is false, the plan asks for true\n"
		    "sandbox \"shared\": has 1 ports, the plan asks for 2\n");
}


/* Named ports (SPEC §11): one port per name, in order; ${PORT_API} and
 * ${PORT0} both name the first; the plan as run keeps the names. */
static void test_plan__port_names(void **state)
{
	int ports[] = { 20001, 20002 };
	const char *const names[] = { "api", "web_2", NULL };
	struct plan_builtins b = { .run_id = "r", .ports = ports, .port_names = names, .nports = 2 };
	struct sbuf errs = SBUF_INIT;
	struct plan *p = expect_ok("{\"sandbox\": {\"ports\": [\"api\", \"web_2\"]}, \"steps\": [{\"id\": \"a\","
				   " \"command\": \"x\", \"args\": [\"${PORT_API}\", \"${PORT_WEB_2}\", \"${PORT0}\","
				   " \"${PORT1}\", \"${PORT_api}x\"], \"env\": {\"U\": \"http://h:${PORT_WEB_2}/\"}}],"
				   " \"variables\": {\"PORT_api\": \"lower\"}}");
	assert_int_equal(p->sandbox.ports, 2);
	assert_string_equal(p->sandbox.port_names[0], "api");
	assert_string_equal(p->sandbox.port_names[1], "web_2");
	assert_null(p->sandbox.port_names[2]);
	assert_int_equal(plan_substitute(p, "demo", &base_opts, &b, &errs), 0);
	assert_string_equal(sbuf_str(&errs), "");
	const char *want[] = { "20001", "20002", "20001", "20002", "lowerx" };
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(p->steps[0].args[i], want[i]);
	assert_string_equal(p->steps[0].env[0], "U=http://h:20002/");
	/* the plan as run parses again, with its names */
	char *s = json_dumps(p->doc, 0);
	assert_non_null(s);
	struct plan_opts lit = base_opts;
	lit.literal = true;
	struct plan *q = expect_ok_opts(s, &lit);
	assert_string_equal(q->sandbox.port_names[1], "web_2");
	plan_free(q);
	free(s);
	plan_free(p);
	sbuf_release(&errs);

	/* the run's sandbox lacks a name the plan gives (it cannot, but for a
	 * sandbox changed between check and run): said, as a missing PORTk is */
	int one[] = { 9000, 9001 };
	struct plan_builtins nb = { .run_id = "r", .ports = one, .nports = 2 };
	p = expect_ok("{\"sandbox\": {\"ports\": [\"api\", \"web\"]},"
		      " \"steps\": [{\"id\": \"a\", \"command\": \"x ${PORT_WEB}\"}]}");
	assert_int_equal(plan_substitute(p, "demo", &base_opts, &nb, &errs), -EINVAL);
	assert_string_equal(sbuf_str(&errs), "step \"a\": PORT_WEB is not allocated (the sandbox has no port of that name)\n");
	sbuf_release(&errs);
	plan_free(p);

	/* an empty list is no ports, as 0 is */
	p = expect_ok("{\"sandbox\": {\"ports\": []}, \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}");
	assert_int_equal(p->sandbox.ports, 0);
	assert_null(p->sandbox.port_names);
	plan_free(p);

	char var[PLAN_PORT_VAR_MAX];
	plan_port_var(var, "web_2");
	assert_string_equal(var, "PORT_WEB_2");
	plan_port_var(var, "abcdefghijklmnopqrstuvwxyz012345");
	assert_string_equal(var, "PORT_ABCDEFGHIJKLMNOPQRSTUVWXYZ012345");
	assert_true(plan_port_name_ok("a"));
	assert_true(plan_port_name_ok("db_2"));
	assert_true(plan_port_name_ok("abcdefghijklmnopqrstuvwxyz012345"));
	assert_false(plan_port_name_ok("abcdefghijklmnopqrstuvwxyz0123456"));
	assert_false(plan_port_name_ok(""));
	assert_false(plan_port_name_ok("Api"));
	assert_false(plan_port_name_ok("_api"));
	assert_false(plan_port_name_ok("2web"));
	assert_false(plan_port_name_ok("we-b"));
	assert_false(plan_port_name_ok("web,x"));
}

static void test_plan__port_names_invalid(void **state)
{
	expect_errs("{\"sandbox\": {\"ports\": \"api\"}, \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}",
		    "\"sandbox.ports\" must be an integer or a list of port names\n");
	expect_errs("{\"sandbox\": {\"ports\": [\"api\", 3, \"Web\", \"\", \"2x\", \"api\","
		    " \"abcdefghijklmnopqrstuvwxyz0123456\", \"a\\u0000b\"]},"
		    " \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}",
		    "\"sandbox.ports[1]\" must be a port name (a string)\n"
		    "sandbox: invalid port name \"Web\" in ports[2] (use 1 to 32 of a-z 0-9 _, starting with a-z)\n"
		    "sandbox: invalid port name \"\" in ports[3] (use 1 to 32 of a-z 0-9 _, starting with a-z)\n"
		    "sandbox: invalid port name \"2x\" in ports[4] (use 1 to 32 of a-z 0-9 _, starting with a-z)\n"
		    "sandbox: duplicate port name \"api\" in ports[5] (first in ports[0])\n"
		    "sandbox: invalid port name \"abcdefghijklmnopqrstuvwxyz0123456\" in ports[6]"
		    " (use 1 to 32 of a-z 0-9 _, starting with a-z)\n"
		    "\"sandbox.ports[7]\" must be a port name (a string)\n");
	char text[1024] = "{\"sandbox\": {\"ports\": [";
	for (int i = 0; i < 65; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "%s\"p%d\"", i ? "," : "", i);
	strcat(text, "]}, \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}");
	expect_errs(text, "\"sandbox.ports\" has more than 64 names\n");
	/* a name no port has, a port past the list, a variable a port's name takes */
	expect_errs("{\"sandbox\": {\"ports\": [\"api\"]}, \"variables\": {\"PORT_API\": \"x\"},"
		    " \"steps\": [{\"id\": \"a\", \"command\": \"${PORT_WEB}\", \"args\": [\"${PORT1}\"]}]}",
		    "variables: \"PORT_API\" is a built-in variable\n"
		    "step \"a\": unknown variable \"${PORT_WEB}\" in command\n"
		    "step \"a\": unknown variable \"${PORT1}\" in args[0]\n");
	/* a variable of the plan's own may be called PORT_SOMETHING */
	struct plan *p = expect_ok("{\"sandbox\": {\"ports\": [\"api\"]}, \"variables\": {\"PORT_WEB\": \"x\"},"
				   " \"steps\": [{\"id\": \"a\", \"command\": \"${PORT_WEB}\"}]}");
	plan_free(p);
}

/* A plan naming an existing sandbox: a number matches as many ports,
 * named or not; names match the same names in the same order; left out,
 * the sandbox's names are the plan's. */
static void test_plan__port_names_existing(void **state)
{
	const char *ok[] = {
		"{\"sandbox\": {\"id\": \"named\"}, \"steps\": [{\"id\": \"a\", \"command\": \"${PORT_WEB}${PORT1}\"}]}",
		"{\"sandbox\": {\"id\": \"named\", \"ports\": 2}, \"steps\": [{\"id\": \"a\", \"command\": \"${PORT_API}\"}]}",
		"{\"sandbox\": {\"id\": \"named\", \"ports\": [\"api\", \"web\"]},"
		" \"steps\": [{\"id\": \"a\", \"command\": \"${PORT_API}\"}]}",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		plan_free(expect_ok(ok[i]));
	expect_errs("{\"sandbox\": {\"id\": \"named\", \"ports\": [\"web\", \"api\"]},"
		    " \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}",
		    "sandbox \"named\": has ports [\"api\", \"web\"], the plan asks for ports [\"web\", \"api\"]\n");
	expect_errs("{\"sandbox\": {\"id\": \"named\", \"ports\": 3}, \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}",
		    "sandbox \"named\": has ports [\"api\", \"web\"], the plan asks for 3\n");
	expect_errs("{\"sandbox\": {\"id\": \"shared\", \"network\": false, \"ports\": [\"api\"]},"
		    " \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}",
		    "sandbox \"shared\": has 1 ports, the plan asks for ports [\"api\"]\n");
	expect_errs("{\"sandbox\": {\"id\": \"named\"}, \"steps\": [{\"id\": \"a\", \"command\": \"${PORT_DB}\"}]}",
		    "step \"a\": unknown variable \"${PORT_DB}\" in command\n");
}

static void test_plan__sandbox_existing(void **state)
{
	/* matching fields are fine, the others may be left out; ports come from it */
	struct plan *p = expect_ok("{\"sandbox\": {\"id\": \"shared\", \"network\": false},"
				   " \"steps\": [{\"id\": \"a\", \"command\": \"${PORT0}\"}]}");
	assert_string_equal(p->sandbox.id, "shared");
	assert_int_equal(p->sandbox.network, 0);
	assert_int_equal(p->sandbox.ports, -1);
	assert_int_equal(p->sandbox.isolation, ISOLATION_UNSET);
	plan_free(p);
	expect_errs("{\"sandbox\": {\"id\": \"shared\"}, \"steps\": [{\"id\": \"a\", \"command\": \"${PORT1}\"}]}",
		    "step \"a\": unknown variable \"${PORT1}\" in command\n");
}

/* Several problems: every one, in document order. */
static void test_plan__multiple_errors(void **state)
{
	expect_errs("{\"globals\": {\"kill_grace_sec\": -1}, \"colour\": 1,"
		    " \"steps\": ["
		    "{\"id\": \"a\", \"command\": \"x\", \"retries\": -1, \"shell\": \"no\"},"
		    "{\"command\": 5},"
		    "{\"id\": \"c\", \"command\": \"x\", \"depends_on\": [\"a\", \"nope\"]}]}",
		    "\"globals.kill_grace_sec\" must be between 0 and 3600\n"
		    "unknown field \"colour\"\n"
		    "step \"a\": \"retries\" must be between 0 and 1000\n"
		    "step \"a\": \"shell\" must be a boolean\n"
		    "step 2: \"id\" is required\n"
		    "step 2: \"command\" must be a non-empty string\n"
		    "step \"c\": depends on unknown step \"nope\"\n");
}

static void test_plan__error_limit(void **state)
{
	struct sbuf text = SBUF_INIT, errs = SBUF_INIT;
	size_t lines = 0;

	sbuf_adds(&text, "{\"steps\": [");
	for (int i = 0; i < 200; i++)
		sbuf_adds(&text, i ? ",{}" : "{}");
	sbuf_adds(&text, "]}");
	assert_null(parse_opts(sbuf_str(&text), &base_opts, &errs));
	for (const char *s = sbuf_str(&errs); *s; s++)
		lines += *s == '\n';
	assert_int_equal(lines, PLAN_MAX_ERRORS);
	sbuf_release(&text);
	sbuf_release(&errs);
}

static void test_plan__diamond(void **state)
{
	struct plan *p = expect_ok(
		"{\"version\": 2, \"metadata\": {\"k\": [1]}, \"steps\": ["
		"{\"id\": \"a\", \"name\": \"first\", \"command\": \"x\", \"args\": [\"1\", \"2\"]},"
		"{\"id\": \"b\", \"command\": \"x\", \"depends_on\": [\"a\"], \"on_failure\": \"continue\"},"
		"{\"id\": \"c\", \"command\": \"x\", \"depends_on\": [\"a\"], \"critical\": false},"
		"{\"id\": \"d\", \"command\": \"x\", \"depends_on\": [\"c\", \"b\", \"c\"],"
		" \"env\": {\"K\": \"v\"}, \"cwd\": \"src\", \"shell\": true,"
		" \"on_failure\": \"skip_dependents\"}]}");

	assert_string_equal(p->plan_id, "demo");
	assert_int_equal(p->nsteps, 4);
	assert_string_equal(p->steps[0].name, "first");
	assert_null(p->steps[1].name);
	assert_int_equal(p->steps[0].nargs, 2);
	assert_string_equal(p->steps[0].args[1], "2");
	assert_null(p->steps[0].args[2]);
	assert_int_equal(p->steps[0].ndeps, 0);
	assert_int_equal(p->steps[1].ndeps, 1);
	assert_int_equal(p->steps[1].deps[0], 0);
	assert_int_equal(p->steps[3].ndeps, 2);
	assert_int_equal(p->steps[3].deps[0], 1);
	assert_int_equal(p->steps[3].deps[1], 2);
	assert_int_equal(p->steps[1].on_failure, ON_FAILURE_CONTINUE);
	assert_int_equal(p->steps[3].on_failure, ON_FAILURE_SKIP_DEPENDENTS);
	assert_string_equal(on_failure_name(p->steps[3].on_failure), "skip_dependents");
	assert_false(p->steps[2].critical);
	assert_true(p->steps[3].shell);
	assert_string_equal(p->steps[3].cwd, "src");
	assert_int_equal(p->steps[3].nenv, 1);
	assert_string_equal(p->steps[3].env[0], "K=v");
	assert_null(p->steps[3].env[1]);
	assert_null(p->steps[0].cwd);
	assert_null(p->steps[1].args);
	assert_int_equal(p->steps[1].nargs, 0);
	assert_int_equal(json_integer_value(json_object_get(p->doc, "version")), 2);
	plan_free(p);
}

static void test_plan__defaults(void **state)
{
	struct plan *p = expect_ok("{\"plan_id\": \"mine\", \"env\": {\"LANG\": \"C\"},"
				   " \"globals\": {\"default_timeout_sec\": 60, \"kill_grace_sec\": 2,"
				   " \"max_concurrency\": 3},"
				   " \"steps\": [{\"id\": \"a\", \"command\": \"x\"},"
				   " {\"id\": \"b\", \"command\": \"x\", \"timeout_sec\": 1.5, \"retries\": 2,"
				   " \"retry_delay_sec\": 0.5, \"retry_backoff\": 2, \"heartbeat_ttl_sec\": 30}]}");
	const struct plan_step *a = &p->steps[0], *b = &p->steps[1];

	assert_string_equal(p->plan_id, "mine");
	assert_int_equal(p->max_concurrency, 3);
	assert_int_equal(p->nenv, 1);
	assert_string_equal(p->env[0], "LANG=C");
	assert_true(a->timeout_sec == 60);
	assert_true(a->kill_grace_sec == 2);
	assert_int_equal(a->retries, 0);
	assert_true(a->retry_delay_sec == 0);
	assert_true(a->retry_backoff == 1);
	assert_int_equal(a->on_failure, ON_FAILURE_ABORT);
	assert_true(a->critical);
	assert_false(a->shell);
	assert_true(a->heartbeat_ttl_sec == 0);
	assert_true(b->timeout_sec == 1.5);
	assert_int_equal(b->retries, 2);
	assert_true(b->retry_delay_sec == 0.5);
	assert_true(b->retry_backoff == 2);
	assert_true(b->heartbeat_ttl_sec == 30);
	plan_free(p);

	p = expect_ok(STEP1(""));
	assert_string_equal(p->plan_id, "demo");
	assert_int_equal(p->max_concurrency, 0);
	assert_true(p->default_timeout_sec == 0);
	assert_true(p->kill_grace_sec == 5);
	assert_true(p->steps[0].timeout_sec == 0);
	assert_true(p->steps[0].kill_grace_sec == 5);
	assert_null(p->sandbox.id);
	assert_int_equal(p->sandbox.isolation, ISOLATION_UNSET);
	assert_int_equal(p->sandbox.network, -1);
	assert_int_equal(p->sandbox.ports, -1);
	assert_int_equal(p->nenv, 0);
	plan_free(p);
	plan_free(NULL);
	assert_string_equal(on_failure_name(ON_FAILURE_ABORT), "abort");
	assert_string_equal(on_failure_name(ON_FAILURE_CONTINUE), "continue");
}

static void test_plan__literal(void **state)
{
	struct plan_opts opts = base_opts;
	struct plan_builtins b = { .run_id = "r-1" };
	struct sbuf errs = SBUF_INIT;

	opts.literal = true;
	struct plan *p = expect_ok_opts(STEP1(", \"args\": [\"${NOPE}\", \"$$\", \"${1x\"]"), &opts);
	assert_int_equal(plan_substitute(p, "demo", &opts, &b, &errs), 0);
	assert_string_equal(p->steps[0].args[0], "${NOPE}");
	assert_string_equal(p->steps[0].args[1], "$$");
	assert_string_equal(p->steps[0].args[2], "${1x");
	assert_string_equal(sbuf_str(&errs), "");
	plan_free(p);
	sbuf_release(&errs);
}

static void test_plan__substitute(void **state)
{
	char *defs[] = { "Y=why", "GREETING=default", "GREETING=cli" };
	struct plan_opts opts = base_opts;
	int ports[] = { 8000, 8001 };
	struct plan_builtins b = {
		.run_id = "demo-1", .sandbox_id = "demo-1", .workspace = "/ws", .mount = "/mnt",
		.ports = ports, .nports = 2,
	};
	struct sbuf errs = SBUF_INIT;

	opts.var_defaults = defs;
	opts.nvar_defaults = 3;
	struct plan *p = expect_ok_opts(
		"{\"variables\": {\"X\": \"x-${Y}\", \"GREETING\": \"hi\"}, \"sandbox\": {\"ports\": 2},"
		" \"env\": {\"R\": \"${RUN_ID}\", \"T\": \"plain\"},"
		" \"steps\": ["
		"{\"id\": \"a\", \"command\": \"echo ${Y}\", \"name\": \"${X}\","
		" \"args\": [\"${GREETING}\", \"$$HOME\", \"${X}\", \"${STEP_ID}\", \"${PORT1}\","
		" \"${RUN_ID}/${PLAN_ID}\", \"a$b $\"],"
		" \"env\": {\"W\": \"${WORKSPACE}\"}, \"cwd\": \"${STEP_ID}/x\"},"
		"{\"id\": \"b\", \"command\": \"${STEP_ID}\", \"depends_on\": [\"a\"]}]}",
		&opts);

	assert_int_equal(plan_substitute(p, "demo", &opts, &b, &errs), 0);
	assert_string_equal(sbuf_str(&errs), "");
	const struct plan_step *a = &p->steps[0];
	assert_string_equal(a->command, "echo why");
	assert_string_equal(a->name, "${X}");
	assert_string_equal(a->args[0], "hi");
	assert_string_equal(a->args[1], "$HOME");
	assert_string_equal(a->args[2], "x-${Y}");
	assert_string_equal(a->args[3], "a");
	assert_string_equal(a->args[4], "8001");
	assert_string_equal(a->args[5], "demo-1/demo");
	assert_string_equal(a->args[6], "a$b $");
	assert_string_equal(a->env[0], "W=/ws");
	assert_string_equal(a->cwd, "a/x");
	assert_string_equal(p->steps[1].command, "b");
	assert_string_equal(p->env[0], "R=demo-1");
	assert_string_equal(p->env[1], "T=plain");

	/* the document is the plan as run */
	json_t *ja = json_array_get(json_object_get(p->doc, "steps"), 0);
	char *s = json_dumps(json_object_get(ja, "args"), JSON_COMPACT);
	assert_non_null(s);
	assert_string_equal(s, "[\"hi\",\"$HOME\",\"x-${Y}\",\"a\",\"8001\",\"demo-1/demo\",\"a$b $\"]");
	free(s);
	assert_string_equal(json_string_value(json_object_get(ja, "command")), "echo why");
	assert_string_equal(json_string_value(json_object_get(ja, "cwd")), "a/x");
	assert_string_equal(json_string_value(json_object_get(ja, "name")), "${X}");
	assert_string_equal(json_string_value(json_object_get(json_object_get(ja, "env"), "W")), "/ws");
	assert_string_equal(json_string_value(json_object_get(json_object_get(p->doc, "env"), "R")),
			    "demo-1");
	assert_string_equal(json_string_value(json_object_get(json_object_get(p->doc, "variables"), "X")),
			    "x-${Y}");

	/* and it parses again, literally, to the same strings */
	s = json_dumps(p->doc, 0);
	assert_non_null(s);
	struct plan_opts lit = base_opts;
	lit.literal = true;
	struct plan *q = expect_ok_opts(s, &lit);
	assert_string_equal(q->steps[0].args[1], "$HOME");
	plan_free(q);
	free(s);
	plan_free(p);
	sbuf_release(&errs);
}

static void test_plan__substitute_port_not_allocated(void **state)
{
	int ports[] = { 9000 };
	struct plan_builtins b = { .run_id = "r", .ports = ports, .nports = 1 };
	struct sbuf errs = SBUF_INIT;
	struct plan *p = expect_ok("{\"sandbox\": {\"ports\": 2},"
				   " \"steps\": [{\"id\": \"a\", \"command\": \"x\", \"args\": [\"${PORT1}\"]}]}");

	assert_int_equal(plan_substitute(p, "demo", &base_opts, &b, &errs), -EINVAL);
	assert_string_equal(sbuf_str(&errs),
			    "step \"a\": PORT1 is not allocated (the sandbox has 1 ports)\n");
	plan_free(p);
	sbuf_release(&errs);
}

/* "cwd" stays inside the workspace: no absolute path, no ".." component;
 * checked as written, and once substituted (issue 12) */
static void test_plan__cwd_inside_workspace(void **state)
{
	expect_errs(STEP1(", \"cwd\": \"/etc\""),
		    "step \"a\": \"cwd\" must be relative to the workspace, not the absolute path \"/etc\"\n");
	expect_errs(STEP1(", \"cwd\": \"../../..\""),
		    "step \"a\": \"cwd\" must stay inside the workspace: \"..\" in \"../../..\"\n");
	expect_errs(STEP1(", \"cwd\": \"sub/../../x\""),
		    "step \"a\": \"cwd\" must stay inside the workspace: \"..\" in \"sub/../../x\"\n");
	expect_errs(STEP1(", \"cwd\": \"a//..\""),
		    "step \"a\": \"cwd\" must stay inside the workspace: \"..\" in \"a//..\"\n");
	/* names that merely hold dots are fine */
	plan_free(expect_ok(STEP1(", \"cwd\": \"..a/b..c/./.d\"")));
	plan_free(expect_ok(STEP1(", \"cwd\": \"sub/\"")));

	/* with variables: after substitution */
	struct plan_builtins b = { .run_id = "r-1", .workspace = "/ws", .mount = "/mnt" };
	const char *bad[][2] = {
		{ "${WORKSPACE}/sub", "step \"a\": \"cwd\" must be relative to the workspace, not the absolute"
				       " path \"/ws/sub\" after substitution\n" },
		{ "${UP}/x", "step \"a\": \"cwd\" must stay inside the workspace: \"..\" in \"../x\" after"
			      " substitution\n" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[256];
		struct sbuf errs = SBUF_INIT;
		snprintf(text, sizeof(text),
			 "{\"variables\": {\"UP\": \"..\"}, \"steps\": [{\"id\": \"a\", \"command\": \"x\","
			 " \"cwd\": \"%s\"}]}", bad[i][0]);
		struct plan *p = expect_ok(text);
		assert_int_equal(plan_substitute(p, "demo", &base_opts, &b, &errs), -EINVAL);
		assert_string_equal(sbuf_str(&errs), bad[i][1]);
		plan_free(p);
		sbuf_release(&errs);
	}
	/* a plan as run, read again (literal), is the spawner's to refuse */
	struct plan_opts lit = base_opts;
	lit.literal = true;
	plan_free(expect_ok_opts(STEP1(", \"cwd\": \"/old/absolute\""), &lit));
}

/* Supervision fields (SPEC §8). */

/* A plan of one approval step "s" with the given extra fields. */
#define APPROVAL1(fields) "{\"steps\": [{\"id\": \"s\", \"type\": \"approval\"" fields "}]}"

static void test_plan__approval_step(void **state)
{
	struct plan *p = expect_ok(
		"{\"globals\": {\"default_timeout_sec\": 600, \"kill_grace_sec\": 2},"
		" \"steps\": ["
		"{\"id\": \"build\", \"command\": \"make\"},"
		"{\"id\": \"ship\", \"type\": \"approval\", \"name\": \"Ship it\","
		" \"prompt\": \"Deploy to prod?\", \"approvers\": [\"alice\", \"@ops\", \"svc$\"],"
		" \"timeout_sec\": 3600, \"on_timeout\": \"approve\", \"depends_on\": [\"build\"],"
		" \"on_failure\": \"continue\", \"critical\": false},"
		"{\"id\": \"gate\", \"type\": \"approval\", \"depends_on\": [\"ship\"]},"
		"{\"id\": \"after\", \"type\": \"command\", \"command\": \"x\", \"depends_on\": [\"gate\"]}]}");
	const struct plan_step *build = &p->steps[0], *ship = &p->steps[1], *gate = &p->steps[2],
			       *after = &p->steps[3];

	assert_false(build->approval);
	assert_true(build->timeout_sec == 600);
	assert_null(build->prompt);
	assert_null(build->approvers);

	assert_true(ship->approval);
	assert_string_equal(ship->name, "Ship it");
	assert_string_equal(ship->prompt, "Deploy to prod?");
	assert_int_equal(ship->napprovers, 3);
	assert_string_equal(ship->approvers[0], "alice");
	assert_string_equal(ship->approvers[1], "@ops");
	assert_string_equal(ship->approvers[2], "svc$");
	assert_null(ship->approvers[3]);
	assert_int_equal(ship->on_timeout, ON_TIMEOUT_APPROVE);
	assert_true(ship->timeout_sec == 3600);
	assert_null(ship->command);
	assert_int_equal(ship->nargs, 0);
	assert_int_equal(ship->ndeps, 1);
	assert_int_equal(ship->deps[0], 0);
	assert_int_equal(ship->on_failure, ON_FAILURE_CONTINUE);
	assert_false(ship->critical);

	/* the defaults: the run's owner decides, no timeout (the
	 * globals' default_timeout_sec is a command's, not a person's), reject */
	assert_true(gate->approval);
	assert_null(gate->prompt);
	assert_null(gate->approvers);
	assert_int_equal(gate->napprovers, 0);
	assert_true(gate->timeout_sec == 0);
	assert_int_equal(gate->on_timeout, ON_TIMEOUT_REJECT);
	assert_int_equal(gate->on_failure, ON_FAILURE_ABORT);
	assert_true(gate->critical);

	/* "type": "command" is what a step is without "type" */
	assert_false(after->approval);
	assert_string_equal(after->command, "x");
	assert_true(after->timeout_sec == 600);
	plan_free(p);

	/* "type" may come after the fields it governs */
	p = expect_ok("{\"steps\": [{\"prompt\": \"ok?\", \"id\": \"s\", \"type\": \"approval\"}]}");
	assert_true(p->steps[0].approval);
	assert_string_equal(p->steps[0].prompt, "ok?");
	plan_free(p);
}

/* An approval step has no process: every field of one is refused, named,
 * whatever its value, in document order. */
static void test_plan__approval_takes_no_command_fields(void **state)
{
	static const char *const fields[][2] = {
		{ "command", "\"x\"" }, { "args", "[\"a\"]" }, { "shell", "true" },
		{ "env", "{\"A\": \"1\"}" }, { "cwd", "\"d\"" }, { "retries", "1" },
		{ "retry_delay_sec", "1" }, { "retry_backoff", "2" }, { "heartbeat_ttl_sec", "30" },
		{ "heartbeat_grace_sec", "5" }, { "kill_grace_sec", "1" },
		{ "loop", "{\"same_failures\": 2}" }, { "max_turns", "10" },
		{ "budget", "{\"tokens\": 100}" },
		/* a bad value is not reported on top */
		{ "retries", "-1" }, { "budget", "7" },
	};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		char text[256], want[128];
		snprintf(text, sizeof(text), APPROVAL1(", \"%s\": %s"), fields[i][0], fields[i][1]);
		snprintf(want, sizeof(want), "step \"s\": an approval step takes no \"%s\"\n", fields[i][0]);
		expect_errs(text, want);
	}
	expect_errs("{\"steps\": [{\"id\": \"s\", \"cwd\": \"d\", \"type\": \"approval\", \"retries\": 1,"
		    " \"command\": \"x\", \"timeout_sec\": 0}]}",
		    "step \"s\": an approval step takes no \"cwd\"\n"
		    "step \"s\": an approval step takes no \"retries\"\n"
		    "step \"s\": an approval step takes no \"command\"\n"
		    "step \"s\": \"timeout_sec\" must be greater than 0\n");
}

/* ... and a step with a command takes none of an approval's fields */
static void test_plan__approval_fields_on_command_step(void **state)
{
	expect_errs(STEP1(", \"prompt\": \"ok?\""),
		    "step \"a\": \"prompt\" applies only to \"type\": \"approval\"\n");
	expect_errs(STEP1(", \"approvers\": [\"alice\"]"),
		    "step \"a\": \"approvers\" applies only to \"type\": \"approval\"\n");
	expect_errs(STEP1(", \"type\": \"command\", \"on_timeout\": \"approve\""),
		    "step \"a\": \"on_timeout\" applies only to \"type\": \"approval\"\n");
	/* in document order, a bad value not reported on top */
	expect_errs(STEP1(", \"on_timeout\": \"maybe\", \"retries\": -1, \"approvers\": 5"),
		    "step \"a\": \"on_timeout\" applies only to \"type\": \"approval\"\n"
		    "step \"a\": \"retries\" must be between 0 and 1000\n"
		    "step \"a\": \"approvers\" applies only to \"type\": \"approval\"\n");
}

static void test_plan__command_required_with_type(void **state)
{
	expect_errs("{\"steps\": [{\"id\": \"a\", \"type\": \"command\"}]}",
		    "step \"a\": \"command\" is required\n");
	expect_errs("{\"steps\": [{\"id\": \"a\", \"type\": \"command\", \"prompt\": \"ok?\"}]}",
		    "step \"a\": \"command\" is required\n"
		    "step \"a\": \"prompt\" applies only to \"type\": \"approval\"\n");
	expect_errs("{\"steps\": [{\"type\": \"approval\"}]}", "step 1: \"id\" is required\n");
}

/* A type that is none of the two says so alone: neither "command" is
 * required nor an approval's fields refused, as nobody knows which was
 * meant; the values of the fields are still checked. */
static void test_plan__unknown_type(void **state)
{
	expect_errs("{\"steps\": [{\"id\": \"a\", \"type\": \"aproval\", \"prompt\": \"ok?\"}]}",
		    "step \"a\": unknown type \"aproval\" (use command or approval)\n");
	expect_errs("{\"steps\": [{\"id\": \"a\", \"type\": \"Approval\", \"command\": \"x\"}]}",
		    "step \"a\": unknown type \"Approval\" (use command or approval)\n");
	expect_errs("{\"steps\": [{\"id\": \"a\", \"type\": \"\"}]}",
		    "step \"a\": unknown type \"\" (use command or approval)\n");
	expect_errs("{\"steps\": [{\"id\": \"a\", \"type\": \"shell\", \"command\": \"x\", \"prompt\": 5,"
		    " \"retries\": -1}]}",
		    "step \"a\": unknown type \"shell\" (use command or approval)\n"
		    "step \"a\": \"prompt\" must be a string\n"
		    "step \"a\": \"retries\" must be between 0 and 1000\n");
	expect_errs("{\"steps\": [{\"id\": \"a\", \"type\": 1, \"command\": \"x\"}]}",
		    "step \"a\": \"type\" must be a string\n");
	expect_errs("{\"steps\": [{\"id\": \"a\", \"type\": null}]}",
		    "step \"a\": \"type\" must be a string\n");
	expect_errs("{\"steps\": [{\"id\": \"a\", \"type\": \"approval\\u0000\"}]}",
		    "step \"a\": \"type\" must not contain NUL bytes\n");
	expect_errs("{\"steps\": [{\"id\": \"a\", \"typ\": \"approval\", \"command\": \"x\"}]}",
		    "step \"a\": unknown field \"typ\" (did you mean \"type\"?)\n");
}

static void test_plan__on_timeout(void **state)
{
	struct plan *p = expect_ok(APPROVAL1(", \"on_timeout\": \"reject\", \"timeout_sec\": 1.5"));
	assert_int_equal(p->steps[0].on_timeout, ON_TIMEOUT_REJECT);
	assert_true(p->steps[0].timeout_sec == 1.5);
	plan_free(p);

	expect_errs(APPROVAL1(", \"on_timeout\": \"maybe\""),
		    "step \"s\": unknown on_timeout \"maybe\" (use approve or reject)\n");
	expect_errs(APPROVAL1(", \"on_timeout\": \"Approve\""),
		    "step \"s\": unknown on_timeout \"Approve\" (use approve or reject)\n");
	expect_errs(APPROVAL1(", \"on_timeout\": true"), "step \"s\": \"on_timeout\" must be a string\n");
	expect_errs(APPROVAL1(", \"on_timout\": \"approve\""),
		    "step \"s\": unknown field \"on_timout\" (did you mean \"on_timeout\"?)\n");
	/* an approval's timeout_sec is checked as a command's */
	expect_errs(APPROVAL1(", \"timeout_sec\": 0"), "step \"s\": \"timeout_sec\" must be greater than 0\n");
	expect_errs(APPROVAL1(", \"timeout_sec\": 31536001"),
		    "step \"s\": \"timeout_sec\" must be at most 3.1536e+07 (a year)\n");
}

static void test_plan__approvers(void **state)
{
	static const char *const good[] = {
		"alice", "@ops", "svc$", "a.b_c-D9", "_x", "x-", "@a.b_c-D9",
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",		/* 32 */
		"@xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",		/* @ and 32 */
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx$",		/* 32 with the $ */
	};
	static const char *const bad[] = {
		"", "a b", "-x", "@", "@-ops", "@svc$", "$", "a$b", "al:ice", "@@ops", "a/b", "ops@",
		"caf\xc3\xa9", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",	/* 33 */
		"@xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",			/* @ and 33 */
	};
	char text[256], want[256];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_true(plan_approver_ok(good[i]));
		snprintf(text, sizeof(text), APPROVAL1(", \"approvers\": [\"%s\"]"), good[i]);
		struct plan *p = expect_ok(text);
		assert_int_equal(p->steps[0].napprovers, 1);
		assert_string_equal(p->steps[0].approvers[0], good[i]);
		plan_free(p);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(plan_approver_ok(bad[i]));
		snprintf(text, sizeof(text), APPROVAL1(", \"approvers\": [\"ok\", \"%s\"]"), bad[i]);
		snprintf(want, sizeof(want),
			 "step \"s\": invalid approver \"%s\" in approvers[1] (use a user name or @group:"
			 " 1 to 32 of A-Z a-z 0-9 _ . -, not starting with -)\n", bad[i]);
		expect_errs(text, want);
	}
	expect_errs(APPROVAL1(", \"approvers\": [\"a b\", \"ok\", \"-x\"]"),
		    "step \"s\": invalid approver \"a b\" in approvers[0] (use a user name or @group:"
		    " 1 to 32 of A-Z a-z 0-9 _ . -, not starting with -)\n"
		    "step \"s\": invalid approver \"-x\" in approvers[2] (use a user name or @group:"
		    " 1 to 32 of A-Z a-z 0-9 _ . -, not starting with -)\n");
	/* the index is the one in the plan, even after a NUL byte */
	expect_errs(APPROVAL1(", \"approvers\": [\"a\\u0000\", \"a b\"]"),
		    "step \"s\": \"approvers[0]\" must not contain NUL bytes\n"
		    "step \"s\": invalid approver \"a b\" in approvers[1] (use a user name or @group:"
		    " 1 to 32 of A-Z a-z 0-9 _ . -, not starting with -)\n");
	/* no control character into the message */
	expect_errs(APPROVAL1(", \"approvers\": [\"a\\nb\"]"),
		    "step \"s\": invalid approver \"a?b\" in approvers[0] (use a user name or @group:"
		    " 1 to 32 of A-Z a-z 0-9 _ . -, not starting with -)\n");

	expect_errs(APPROVAL1(", \"approvers\": []"),
		    "step \"s\": \"approvers\" must not be empty (leave it out: the run's owner decides)\n");
	expect_errs(APPROVAL1(", \"approvers\": \"alice\""),
		    "step \"s\": \"approvers\" must be an array of strings\n");
	expect_errs(APPROVAL1(", \"approvers\": {\"alice\": true}"),
		    "step \"s\": \"approvers\" must be an array of strings\n");
	expect_errs(APPROVAL1(", \"approvers\": [\"alice\", 7]"),
		    "step \"s\": \"approvers\" must be an array of strings\n");
	expect_errs(APPROVAL1(", \"approvers\": [null]"),
		    "step \"s\": \"approvers\" must be an array of strings\n");
	expect_errs(APPROVAL1(", \"aprovers\": [\"alice\"]"),
		    "step \"s\": unknown field \"aprovers\" (did you mean \"approvers\"?)\n");

	/* at most PLAN_MAX_APPROVERS names */
	struct sbuf sb = SBUF_INIT;
	sbuf_adds(&sb, "{\"steps\": [{\"id\": \"s\", \"type\": \"approval\", \"approvers\": [\"u0\"");
	for (int i = 1; i < PLAN_MAX_APPROVERS; i++)
		sbuf_addf(&sb, ", \"u%d\"", i);
	sbuf_adds(&sb, "]}]}");
	assert_false(sbuf_failed(&sb));
	struct plan *p = expect_ok(sbuf_str(&sb));
	assert_int_equal(p->steps[0].napprovers, PLAN_MAX_APPROVERS);
	assert_string_equal(p->steps[0].approvers[PLAN_MAX_APPROVERS - 1], "u255");
	plan_free(p);
	sbuf_release(&sb);
	sbuf_adds(&sb, "{\"steps\": [{\"id\": \"s\", \"type\": \"approval\", \"approvers\": [\"u0\"");
	for (int i = 1; i <= PLAN_MAX_APPROVERS; i++)
		sbuf_addf(&sb, ", \"u%d\"", i);
	sbuf_adds(&sb, "]}]}");
	assert_false(sbuf_failed(&sb));
	expect_errs(sbuf_str(&sb), "step \"s\": \"approvers\" has more than 256 names\n");
	sbuf_release(&sb);
}

/* "loop": the globals' is every step's default, a step's own overrides it
 * field by field, 0 turns a detection off */
static void test_plan__loop(void **state)
{
	struct plan *p = expect_ok(STEP1(""));
	assert_int_equal(p->same_failures, PLAN_LOOP_SAME_FAILURES);
	assert_int_equal(PLAN_LOOP_SAME_FAILURES, 3);
	assert_int_equal(p->repeated_actions, 0);
	assert_int_equal(p->steps[0].same_failures, 3);
	assert_int_equal(p->steps[0].repeated_actions, 0);
	plan_free(p);

	p = expect_ok("{\"steps\": ["
		      "{\"id\": \"a\", \"command\": \"x\"},"
		      "{\"id\": \"b\", \"command\": \"x\", \"loop\": {\"same_failures\": 0}},"
		      "{\"id\": \"c\", \"command\": \"x\", \"loop\": {\"repeated_actions\": 2}},"
		      "{\"id\": \"d\", \"command\": \"x\", \"loop\": {}},"
		      "{\"id\": \"e\", \"command\": \"x\", \"loop\": {\"same_failures\": 1000,"
		      " \"repeated_actions\": 0}}],"
		      " \"globals\": {\"loop\": {\"same_failures\": 5, \"repeated_actions\": 4}}}");
	assert_int_equal(p->same_failures, 5);
	assert_int_equal(p->repeated_actions, 4);
	assert_int_equal(p->steps[0].same_failures, 5);
	assert_int_equal(p->steps[0].repeated_actions, 4);
	assert_int_equal(p->steps[1].same_failures, 0);
	assert_int_equal(p->steps[1].repeated_actions, 4);
	assert_int_equal(p->steps[2].same_failures, 5);
	assert_int_equal(p->steps[2].repeated_actions, 2);
	assert_int_equal(p->steps[3].same_failures, 5);
	assert_int_equal(p->steps[3].repeated_actions, 4);
	assert_int_equal(p->steps[4].same_failures, 1000);
	assert_int_equal(p->steps[4].repeated_actions, 0);
	plan_free(p);

	p = expect_ok("{\"globals\": {\"loop\": {\"same_failures\": 0}}, \"steps\": [{\"id\": \"a\","
		      " \"command\": \"x\"}]}");
	assert_int_equal(p->steps[0].same_failures, 0);
	assert_int_equal(p->steps[0].repeated_actions, 0);
	plan_free(p);

	expect_errs(STEP1(", \"loop\": {\"same_failures\": -1}"),
		    "step \"a\": \"loop.same_failures\" must be between 0 and 1000\n");
	expect_errs(STEP1(", \"loop\": {\"same_failures\": 1001}"),
		    "step \"a\": \"loop.same_failures\" must be between 0 and 1000\n");
	expect_errs(STEP1(", \"loop\": {\"repeated_actions\": 1.5}"),
		    "step \"a\": \"loop.repeated_actions\" must be an integer\n");
	expect_errs(STEP1(", \"loop\": {\"repeated_actions\": \"2\"}"),
		    "step \"a\": \"loop.repeated_actions\" must be an integer\n");
	expect_errs(STEP1(", \"loop\": 3"), "step \"a\": \"loop\" must be an object\n");
	expect_errs(STEP1(", \"loop\": [\"same_failures\"]"), "step \"a\": \"loop\" must be an object\n");
	expect_errs(STEP1(", \"loop\": {\"same_failure\": 2}"),
		    "step \"a\": loop: unknown field \"same_failure\" (did you mean \"same_failures\"?)\n");
	expect_errs(STEP1(", \"loop\": {\"max\": 2}"), "step \"a\": loop: unknown field \"max\"\n");
	expect_errs(STEP1(", \"loops\": {}"), "step \"a\": unknown field \"loops\" (did you mean \"loop\"?)\n");

	expect_errs("{\"globals\": {\"loop\": {\"repeated_action\": 1, \"same_failures\": \"3\"}},"
		    " \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}",
		    "globals.loop: unknown field \"repeated_action\" (did you mean \"repeated_actions\"?)\n"
		    "\"globals.loop.same_failures\" must be an integer\n");
	expect_errs("{\"globals\": {\"loop\": {\"repeated_actions\": -2}}, \"steps\": [{\"id\": \"a\","
		    " \"command\": \"x\"}]}",
		    "\"globals.loop.repeated_actions\" must be between 0 and 1000\n");
	expect_errs("{\"globals\": {\"loop\": []}, \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}",
		    "\"globals.loop\" must be an object\n");
	expect_errs("{\"globals\": {\"lop\": {}}, \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}",
		    "globals: unknown field \"lop\" (did you mean \"loop\"?)\n");
}

static void test_plan__max_turns(void **state)
{
	struct plan *p = expect_ok(STEP1(""));
	assert_int_equal(p->steps[0].max_turns, 0);
	plan_free(p);
	p = expect_ok(STEP1(", \"max_turns\": 1"));
	assert_int_equal(p->steps[0].max_turns, 1);
	plan_free(p);
	p = expect_ok(STEP1(", \"max_turns\": 1000000000"));
	assert_int_equal(p->steps[0].max_turns, 1000000000);
	plan_free(p);

	expect_errs(STEP1(", \"max_turns\": 0"),
		    "step \"a\": \"max_turns\" must be between 1 and 1000000000\n");
	expect_errs(STEP1(", \"max_turns\": -3"),
		    "step \"a\": \"max_turns\" must be between 1 and 1000000000\n");
	expect_errs(STEP1(", \"max_turns\": 1000000001"),
		    "step \"a\": \"max_turns\" must be between 1 and 1000000000\n");
	expect_errs(STEP1(", \"max_turns\": 2.5"), "step \"a\": \"max_turns\" must be an integer\n");
	expect_errs(STEP1(", \"max_turns\": 1e3"), "step \"a\": \"max_turns\" must be an integer\n");
	expect_errs(STEP1(", \"max_turns\": \"5\""), "step \"a\": \"max_turns\" must be an integer\n");
	expect_errs(STEP1(", \"max_turn\": 5"),
		    "step \"a\": unknown field \"max_turn\" (did you mean \"max_turns\"?)\n");
	/* a step's only: the globals take none */
	expect_errs("{\"globals\": {\"max_turns\": 5}, \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}",
		    "globals: unknown field \"max_turns\"\n");
}

static void test_plan__budget(void **state)
{
	struct plan *p = expect_ok(STEP1(""));
	assert_true(p->steps[0].budget_cost_usd == 0);
	assert_true(p->steps[0].budget_tokens == 0);
	plan_free(p);
	p = expect_ok(STEP1(", \"budget\": {\"cost_usd\": 2.5, \"tokens\": 100000}"));
	assert_true(p->steps[0].budget_cost_usd == 2.5);
	assert_true(p->steps[0].budget_tokens == 100000);
	plan_free(p);
	p = expect_ok(STEP1(", \"budget\": {\"cost_usd\": 1}"));
	assert_true(p->steps[0].budget_cost_usd == 1);
	assert_true(p->steps[0].budget_tokens == 0);
	plan_free(p);
	p = expect_ok(STEP1(", \"budget\": {\"tokens\": 1}"));
	assert_true(p->steps[0].budget_cost_usd == 0);
	assert_true(p->steps[0].budget_tokens == 1);
	plan_free(p);
	p = expect_ok(STEP1(", \"budget\": {\"cost_usd\": 0.001, \"tokens\": 1000000000000000}"));
	assert_true(p->steps[0].budget_cost_usd == 0.001);
	assert_true(p->steps[0].budget_tokens == 1000000000000000LL);
	plan_free(p);
	p = expect_ok(STEP1(", \"budget\": {}"));
	assert_true(p->steps[0].budget_cost_usd == 0);
	assert_true(p->steps[0].budget_tokens == 0);
	plan_free(p);

	expect_errs(STEP1(", \"budget\": {\"cost_usd\": 0}"),
		    "step \"a\": \"budget.cost_usd\" must be greater than 0\n");
	expect_errs(STEP1(", \"budget\": {\"cost_usd\": -1}"),
		    "step \"a\": \"budget.cost_usd\" must be greater than 0\n");
	expect_errs(STEP1(", \"budget\": {\"cost_usd\": \"5\"}"),
		    "step \"a\": \"budget.cost_usd\" must be a number\n");
	expect_errs(STEP1(", \"budget\": {\"cost_usd\": 1e13}"),
		    "step \"a\": \"budget.cost_usd\" must be at most 1e12\n");
	expect_errs(STEP1(", \"budget\": {\"tokens\": 0}"),
		    "step \"a\": \"budget.tokens\" must be between 1 and 1000000000000000\n");
	expect_errs(STEP1(", \"budget\": {\"tokens\": -5}"),
		    "step \"a\": \"budget.tokens\" must be between 1 and 1000000000000000\n");
	expect_errs(STEP1(", \"budget\": {\"tokens\": 1000000000000001}"),
		    "step \"a\": \"budget.tokens\" must be between 1 and 1000000000000000\n");
	expect_errs(STEP1(", \"budget\": {\"tokens\": 1.5}"),
		    "step \"a\": \"budget.tokens\" must be an integer\n");
	expect_errs(STEP1(", \"budget\": 5"), "step \"a\": \"budget\" must be an object\n");
	expect_errs(STEP1(", \"budget\": [1]"), "step \"a\": \"budget\" must be an object\n");
	expect_errs(STEP1(", \"budget\": {\"token\": 5}"),
		    "step \"a\": budget: unknown field \"token\" (did you mean \"tokens\"?)\n");
	expect_errs(STEP1(", \"budget\": {\"usd\": 5}"), "step \"a\": budget: unknown field \"usd\"\n");
	expect_errs(STEP1(", \"budgets\": {}"),
		    "step \"a\": unknown field \"budgets\" (did you mean \"budget\"?)\n");
	expect_errs(STEP1(", \"budget\": {\"cost_usd\": 0, \"tokens\": 0, \"x\": 1}"),
		    "step \"a\": \"budget.cost_usd\" must be greater than 0\n"
		    "step \"a\": \"budget.tokens\" must be between 1 and 1000000000000000\n"
		    "step \"a\": budget: unknown field \"x\"\n");
}

static void test_plan__heartbeat_grace(void **state)
{
	struct plan *p = expect_ok(STEP1(", \"heartbeat_ttl_sec\": 30"));
	assert_true(p->steps[0].heartbeat_grace_sec == 0);
	plan_free(p);
	p = expect_ok(STEP1(", \"heartbeat_ttl_sec\": 30, \"heartbeat_grace_sec\": 2.5"));
	assert_true(p->steps[0].heartbeat_ttl_sec == 30);
	assert_true(p->steps[0].heartbeat_grace_sec == 2.5);
	plan_free(p);
	p = expect_ok(STEP1(", \"heartbeat_grace_sec\": 0"));
	assert_true(p->steps[0].heartbeat_grace_sec == 0);
	plan_free(p);

	expect_errs(STEP1(", \"heartbeat_grace_sec\": -1"),
		    "step \"a\": \"heartbeat_grace_sec\" must be between 0 and 3.1536e+07\n");
	expect_errs(STEP1(", \"heartbeat_grace_sec\": 31536001"),
		    "step \"a\": \"heartbeat_grace_sec\" must be between 0 and 3.1536e+07\n");
	expect_errs(STEP1(", \"heartbeat_grace_sec\": \"5\""),
		    "step \"a\": \"heartbeat_grace_sec\" must be a number\n");
	expect_errs(STEP1(", \"heartbeat_grace\": 5"),
		    "step \"a\": unknown field \"heartbeat_grace\" (did you mean \"heartbeat_grace_sec\"?)\n");
}

/* ${VAR} in "prompt": checked when parsed, substituted for the run, and the
 * plan as run (plan.json) parses again, literally, to the same step */
static void test_plan__approval_prompt_substitute(void **state)
{
	static const char text[] =
		"{\"variables\": {\"WHO\": \"ops\"},"
		" \"steps\": [{\"id\": \"build\", \"command\": \"make\"},"
		"{\"id\": \"ship\", \"type\": \"approval\", \"depends_on\": [\"build\"],"
		" \"prompt\": \"Deploy ${RUN_ID} of ${PLAN_ID} for ${WHO} in ${STEP_ID} (cost $$5, $x)?\","
		" \"approvers\": [\"alice\", \"@ops\"], \"timeout_sec\": 60, \"on_timeout\": \"approve\"}]}";
	struct plan_builtins b = { .run_id = "demo-1", .workspace = "/ws", .mount = "/mnt" };
	struct sbuf errs = SBUF_INIT;
	struct plan *p = expect_ok(text);

	assert_int_equal(plan_substitute(p, "demo", &base_opts, &b, &errs), 0);
	assert_string_equal(sbuf_str(&errs), "");
	assert_string_equal(p->steps[1].prompt, "Deploy demo-1 of demo for ops in ship (cost $5, $x)?");
	json_t *js = json_array_get(json_object_get(p->doc, "steps"), 1);
	assert_string_equal(json_string_value(json_object_get(js, "prompt")),
			    "Deploy demo-1 of demo for ops in ship (cost $5, $x)?");
	assert_null(json_object_get(js, "command"));

	/* the way a stored plan.json is read again on resume */
	char *s = json_dumps(p->doc, 0);
	assert_non_null(s);
	struct plan_opts lit = base_opts;
	lit.literal = true;
	struct plan *q = expect_ok_opts(s, &lit);
	assert_int_equal(plan_substitute(q, "demo", &lit, &b, &errs), 0);
	const struct plan_step *ship = &q->steps[1];
	assert_true(ship->approval);
	assert_string_equal(ship->prompt, "Deploy demo-1 of demo for ops in ship (cost $5, $x)?");
	assert_int_equal(ship->napprovers, 2);
	assert_string_equal(ship->approvers[0], "alice");
	assert_string_equal(ship->approvers[1], "@ops");
	assert_int_equal(ship->on_timeout, ON_TIMEOUT_APPROVE);
	assert_true(ship->timeout_sec == 60);
	assert_int_equal(ship->ndeps, 1);
	assert_null(ship->command);
	char *t = json_dumps(q->doc, 0);
	assert_non_null(t);
	assert_string_equal(t, s);
	free(t);
	free(s);
	plan_free(q);
	plan_free(p);

	expect_errs(APPROVAL1(", \"prompt\": \"ok ${NOPE}?\""),
		    "step \"s\": unknown variable \"${NOPE}\" in prompt\n");
	expect_errs(APPROVAL1(", \"prompt\": \"ok ${X\""), "step \"s\": unterminated \"${\" in prompt\n");
	expect_errs(APPROVAL1(", \"prompt\": \"${1x}\""),
		    "step \"s\": invalid variable name \"${1x}\" in prompt\n");
	expect_errs(APPROVAL1(", \"prompt\": 5"), "step \"s\": \"prompt\" must be a string\n");
	expect_errs(APPROVAL1(", \"prompt\": \"a\\u0000b\""),
		    "step \"s\": \"prompt\" must not contain NUL bytes\n");
	expect_errs(APPROVAL1(", \"promt\": \"ok?\""),
		    "step \"s\": unknown field \"promt\" (did you mean \"prompt\"?)\n");
	/* an empty prompt is allowed (the step's id says what is asked) */
	p = expect_ok(APPROVAL1(", \"prompt\": \"\""));
	assert_string_equal(p->steps[0].prompt, "");
	plan_free(p);

	/* literally: nothing is checked nor replaced */
	p = expect_ok_opts(APPROVAL1(", \"prompt\": \"${NOPE} $$\""), &lit);
	assert_int_equal(plan_substitute(p, "demo", &lit, &b, &errs), 0);
	assert_string_equal(p->steps[0].prompt, "${NOPE} $$");
	assert_string_equal(sbuf_str(&errs), "");
	plan_free(p);
	sbuf_release(&errs);
}

/* Several problems of the new fields at once: every one, in document order. */
static void test_plan__supervision_multiple_errors(void **state)
{
	expect_errs("{\"globals\": {\"loop\": {\"same_failures\": -1}},"
		    " \"steps\": ["
		    "{\"id\": \"a\", \"command\": \"x\", \"max_turns\": 0, \"budget\": {\"tokens\": 0},"
		    " \"prompt\": \"?\"},"
		    "{\"id\": \"s\", \"type\": \"approval\", \"approvers\": [\"a b\"], \"args\": [],"
		    " \"on_timeout\": \"later\"},"
		    "{\"id\": \"t\", \"type\": \"aproval\"}]}",
		    "\"globals.loop.same_failures\" must be between 0 and 1000\n"
		    "step \"a\": \"max_turns\" must be between 1 and 1000000000\n"
		    "step \"a\": \"budget.tokens\" must be between 1 and 1000000000000000\n"
		    "step \"a\": \"prompt\" applies only to \"type\": \"approval\"\n"
		    "step \"s\": invalid approver \"a b\" in approvers[0] (use a user name or @group:"
		    " 1 to 32 of A-Z a-z 0-9 _ . -, not starting with -)\n"
		    "step \"s\": an approval step takes no \"args\"\n"
		    "step \"s\": unknown on_timeout \"later\" (use approve or reject)\n"
		    "step \"t\": unknown type \"aproval\" (use command or approval)\n");
}

/* SPEC §11: "sandbox": {"health": ...}, its defaults, its messages, the
 * loopback rule, ${PORT0} substituted into the plan as run, which parses
 * again literally. */
static void test_plan__sandbox_health(void **state)
{
	struct plan *p = expect_ok("{\"sandbox\": {\"health\": {\"command\": [\"test\", \"-f\", \"${WORKSPACE}/ok\"]}},"
				   " \"steps\": [{\"id\": \"a\", \"command\": \"true\"}]}");
	const struct plan_health *h = &p->sandbox.health;
	assert_true(h->set);
	assert_null(h->url);
	assert_int_equal(h->ncommand, 3);
	assert_true(h->interval_sec == PLAN_HEALTH_INTERVAL && h->timeout_sec == PLAN_HEALTH_TIMEOUT);
	assert_int_equal(h->unhealthy_after, PLAN_HEALTH_UNHEALTHY_AFTER);
	int ports[] = { 20001 };
	struct plan_builtins b = { .run_id = "demo-1", .workspace = "/ws", .ports = ports, .nports = 1 };
	struct sbuf errs = SBUF_INIT;
	assert_int_equal(plan_substitute(p, "demo", &base_opts, &b, &errs), 0);
	assert_string_equal(h->command[2], "/ws/ok");
	plan_free(p);
	p = expect_ok(STEP1(""));
	assert_false(p->sandbox.health.set);
	plan_free(p);

	p = expect_ok("{\"variables\": {\"P\": \"health\"}, \"sandbox\": {\"health\": {\"url\":"
		      " \"http://127.0.0.1:${PORT0}/${P}\", \"interval_sec\": 0.5, \"timeout_sec\": 1,"
		      " \"unhealthy_after\": 2}}, \"steps\": [{\"id\": \"a\", \"command\": \"true\"}]}");
	assert_int_equal(plan_substitute(p, "demo", &base_opts, &b, &errs), 0);
	assert_string_equal(p->sandbox.health.url, "http://127.0.0.1:20001/health");
	assert_true(p->sandbox.health.interval_sec == 0.5 && p->sandbox.health.unhealthy_after == 2);
	/* the plan as run says the same, and parses again as it is */
	char *asrun = json_dumps(p->doc, JSON_COMPACT);
	assert_non_null(strstr(asrun, "\"url\":\"http://127.0.0.1:20001/health\""));
	struct plan_opts lit = base_opts;
	lit.literal = true;
	struct plan *q = expect_ok_opts(asrun, &lit);
	assert_string_equal(q->sandbox.health.url, "http://127.0.0.1:20001/health");
	plan_free(q);
	free(asrun);
	plan_free(p);

	/* a url that is no loopback once substituted */
	p = expect_ok("{\"variables\": {\"H\": \"example.com\"}, \"sandbox\": {\"health\": {\"url\": \"http://${H}/\"}},"
		      " \"steps\": [{\"id\": \"a\", \"command\": \"true\"}]}");
	assert_int_equal(plan_substitute(p, "demo", &base_opts, &b, &errs), -EINVAL);
	assert_string_equal(sbuf_str(&errs), "\"sandbox.health.url\" must be an http:// or https:// URL of 127.0.0.1, [::1] or"
					     " localhost (the sandbox's own services), not \"http://example.com/\" (after"
					     " substitution)\n");
	plan_free(p);
	sbuf_release(&errs);

	/* loopback, as curl reads it: an octet with a leading zero is octal to
	 * curl ("0127.0.0.1" is 87.0.0.1), and shorthand forms are refused */
	assert_true(plan_health_url_ok("http://127.0.0.1:8080/health"));
	assert_true(plan_health_url_ok("http://127.255.0.9/"));
	assert_false(plan_health_url_ok("http://0127.0.0.1:80/"));
	assert_false(plan_health_url_ok("http://127.000.0.1/"));
	assert_false(plan_health_url_ok("http://127.1/"));
	assert_false(plan_health_url_ok("http://0x7f.0.0.1/"));
	assert_false(plan_health_url_ok("http://2130706433/"));
	assert_false(plan_health_url_ok("http://128.0.0.1/"));

#define HPLAN(h) "{\"sandbox\": {\"health\": " h "}, \"steps\": [{\"id\": \"a\", \"command\": \"true\"}]}"
	expect_errs(HPLAN("true"),
		    "\"sandbox.health\" must be an object such as {\"url\": \"http://127.0.0.1:${PORT0}/health\"} (null: no"
		    " check)\n");
	p = expect_ok(HPLAN("null"));
	assert_true(p->sandbox.health.set && !p->sandbox.health.url && !p->sandbox.health.command);
	plan_free(p);
	expect_errs(HPLAN("{}"), "\"sandbox.health\" needs \"url\" (an HTTP check) or \"command\" (exit 0 is healthy)\n");
	expect_errs(HPLAN("{\"url\": \"http://127.0.0.1/\", \"command\": [\"x\"]}"),
		    "\"sandbox.health\" takes \"url\" or \"command\", not both\n");
	expect_errs(HPLAN("{\"url\": \"ftp://127.0.0.1/\"}"),
		    "\"sandbox.health.url\" must be an http:// or https:// URL of 127.0.0.1, [::1] or localhost (the"
		    " sandbox's own services), not \"ftp://127.0.0.1/\"\n");
	expect_errs(HPLAN("{\"url\": \"http://u:p@127.0.0.1/\"}"),
		    "\"sandbox.health.url\" must be an http:// or https:// URL of 127.0.0.1, [::1] or localhost (the"
		    " sandbox's own services), not \"http://u:p@127.0.0.1/\"\n");
	expect_errs(HPLAN("{\"url\": \"http://127.0.0.1:${PORT3}/\"}"), "sandbox.health.url: unknown variable \"${PORT3}\"\n");
	expect_errs(HPLAN("{\"url\": \"\"}"), "\"sandbox.health.url\" must be a non-empty string\n");
	expect_errs(HPLAN("{\"command\": []}"),
		    "\"sandbox.health.command\" must be a list of 1 to 256 strings, the program first (exit 0 is healthy)\n");
	expect_errs(HPLAN("{\"command\": [\"\", 3]}"),
		    "\"sandbox.health.command[0]\" must be a non-empty string\n"
		    "\"sandbox.health.command[1]\" must be a string\n");
	expect_errs(HPLAN("{\"command\": [\"x\"], \"interval_sec\": 0, \"timeout_sec\": \"2\", \"unhealthy_after\": 1.5}"),
		    "\"sandbox.health.interval_sec\" must be between 0.1 and 86400\n"
		    "\"sandbox.health.timeout_sec\" must be a number\n"
		    "\"sandbox.health.unhealthy_after\" must be an integer\n");
	expect_errs(HPLAN("{\"command\": [\"x\"], \"timeout_se\": 2}"),
		    "sandbox.health: unknown field \"timeout_se\" (did you mean \"timeout_sec\"?)\n");
	/* its own loopback, out of reach: bubblewrap without network */
	expect_errs("{\"sandbox\": {\"network\": false, \"isolation\": \"bwrap\", \"health\": {\"url\": \"http://127.0.0.1/\"}},"
		    " \"steps\": [{\"id\": \"a\", \"command\": \"true\"}]}",
		    "\"sandbox.health.url\": a sandbox without network has a loopback of its own, out of the daemon's"
		    " reach: check it with \"command\" instead\n");
	/* no isolation: the network setting does not apply, the url is reachable */
	plan_free(expect_ok("{\"sandbox\": {\"network\": false, \"isolation\": \"none\", \"health\": {\"url\":"
			    " \"http://127.0.0.1/\"}}, \"steps\": [{\"id\": \"a\", \"command\": \"true\"}]}"));
#undef HPLAN
}

static void test_plan__health_url_rule(void **state)
{
	static const char *const ok[] = {
		"http://127.0.0.1/", "http://127.0.0.1:8080/health", "https://127.1.2.3:1/x?y#z", "HTTP://localhost",
		"http://[::1]:9000/", "http://LocalHost:80",
	};
	static const char *const bad[] = {
		"http://127.0.0.1.example.com/", "http://example.com/", "http://10.0.0.1/", "http://[::2]/",
		"http://user@127.0.0.1/", "http://127.0.0.1:0/", "http://127.0.0.1:99999/", "http://127.0.0.1:80x/",
		"http://127.0.0.1 /", "ftp://127.0.0.1/", "127.0.0.1", "http://", "http://256.0.0.1/", "http://127.0.0/",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (!plan_health_url_ok(ok[i]))
			fail_msg("refused: %s", ok[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (plan_health_url_ok(bad[i]))
			fail_msg("taken: %s", bad[i]);
}

/* The allocation-failure sweep of a plan with a health check. */
static void test_plan__alloc_failures_health(void **state)
{
	static const char text[] = "{\"sandbox\": {\"health\": {\"command\": [\"t\", \"${RUN_ID}\"],"
				   " \"interval_sec\": 1}}, \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}";
	struct plan_builtins b = { .run_id = "r" };
	int ok = 0, failed = 0;
	for (long n = 1; n <= 200; n++) {
		struct sbuf errs = SBUF_INIT;
		orch_alloc_fail_after(n);
		struct plan *p = parse_opts(text, &base_opts, &errs);
		int ret = p ? plan_substitute(p, "p", &base_opts, &b, &errs) : -ENOMEM;
		orch_alloc_fail_after(0);
		if (!ret) {
			ok++;
			assert_string_equal(p->sandbox.health.command[1], "r");
		} else {
			failed++;
			assert_int_equal(ret, -ENOMEM);
		}
		plan_free(p);
		sbuf_release(&errs);
	}
	assert_true(failed > 5);
	assert_true(ok > 0);
}

/* The allocation-failure sweep for a plan with the supervision fields (every
 * JSON token at most 15 bytes, see test_plan__alloc_failures). */
static void test_plan__alloc_failures_supervision(void **state)
{
	static const char text[] =
		"{\"variables\": {\"V\": \"v\"}, \"globals\": {\"loop\": {\"same_failures\": 2}},"
		" \"steps\": ["
		"{\"id\": \"a\", \"command\": \"x\", \"max_turns\": 5, \"budget\": {\"tokens\": 9},"
		" \"loop\": {}},"
		"{\"id\": \"s\", \"type\": \"approval\", \"prompt\": \"ok ${V}?\","
		" \"approvers\": [\"al\", \"@ops\"], \"on_timeout\": \"approve\","
		" \"depends_on\": [\"a\"]}]}";
	struct plan_builtins b = { .run_id = "r" };
	int ok = 0, failed = 0, sub_ok = 0, sub_failed = 0;

	for (long n = 1; n <= 300; n++) {
		struct sbuf errs = SBUF_INIT;
		orch_alloc_fail_after(n);
		struct plan *p = parse_opts(text, &base_opts, &errs);
		orch_alloc_fail_after(0);
		if (p) {
			ok++;
			assert_string_equal(sbuf_str(&errs), "");
			assert_int_equal(p->steps[1].napprovers, 2);
			plan_free(p);
		} else {
			failed++;
			assert_string_equal(sbuf_str(&errs), "out of memory\n");
		}
		sbuf_release(&errs);
	}
	assert_true(failed > 10);
	assert_true(ok > 0);

	for (long n = 1; n <= 100; n++) {
		struct sbuf errs = SBUF_INIT;
		struct plan *p = parse_opts(text, &base_opts, &errs);
		assert_non_null(p);
		orch_alloc_fail_after(n);
		int ret = plan_substitute(p, "p", &base_opts, &b, &errs);
		orch_alloc_fail_after(0);
		if (ret == 0) {
			sub_ok++;
			assert_string_equal(p->steps[1].prompt, "ok v?");
		} else {
			sub_failed++;
		}
		assert_true(ret == 0 || ret == -ENOMEM);
		plan_free(p);
		sbuf_release(&errs);
	}
	assert_true(sub_failed > 2);
	assert_true(sub_ok > 0);
}

/* The allocation-failure sweep for named ports: a valid plan, substituted,
 * and one whose names do not match its sandbox's (every JSON token at most
 * 15 bytes, see test_plan__alloc_failures). */
static void test_plan__alloc_failures_port_names(void **state)
{
	static const char text[] =
		"{\"sandbox\": {\"ports\": [\"api\", \"web\"]}, \"variables\": {\"V\": \"v\"},"
		" \"steps\": [{\"id\": \"a\", \"command\": \"x ${PORT_API}\", \"args\": [\"${PORT_WEB}\"]}]}";
	static const char mismatch[] =
		"{\"sandbox\": {\"id\": \"named\", \"ports\": [\"web\"]},"
		" \"steps\": [{\"id\": \"a\", \"command\": \"x\"}]}";
	int ports[] = { 7, 8 };
	const char *const names[] = { "api", "web", NULL };
	struct plan_builtins b = { .run_id = "r", .ports = ports, .port_names = names, .nports = 2 };
	int ok = 0, failed = 0, sub_ok = 0, sub_failed = 0, said = 0;

	for (long n = 1; n <= 200; n++) {
		struct sbuf errs = SBUF_INIT;
		orch_alloc_fail_after(n);
		struct plan *p = parse_opts(text, &base_opts, &errs);
		orch_alloc_fail_after(0);
		if (p) {
			ok++;
			assert_string_equal(p->sandbox.port_names[1], "web");
			plan_free(p);
		} else {
			failed++;
			assert_string_equal(sbuf_str(&errs), "out of memory\n");
		}
		sbuf_release(&errs);
		errs = (struct sbuf)SBUF_INIT;
		orch_alloc_fail_after(n);
		p = parse_opts(mismatch, &base_opts, &errs);
		orch_alloc_fail_after(0);
		assert_null(p);
		if (strcmp(sbuf_str(&errs), "out of memory\n")) {
			said++;
			assert_string_equal(sbuf_str(&errs),
					    "sandbox \"named\": has ports [\"api\", \"web\"], the plan asks for ports [\"web\"]\n");
		}
		sbuf_release(&errs);
	}
	assert_true(failed > 5);
	assert_true(ok > 0);
	assert_true(said > 0);

	for (long n = 1; n <= 100; n++) {
		struct sbuf errs = SBUF_INIT;
		struct plan *p = parse_opts(text, &base_opts, &errs);
		assert_non_null(p);
		orch_alloc_fail_after(n);
		int ret = plan_substitute(p, "p", &base_opts, &b, &errs);
		orch_alloc_fail_after(0);
		if (ret == 0) {
			sub_ok++;
			assert_string_equal(p->steps[0].command, "x 7");
			assert_string_equal(p->steps[0].args[0], "8");
		} else {
			sub_failed++;
		}
		assert_true(ret == 0 || ret == -ENOMEM);
		plan_free(p);
		sbuf_release(&errs);
	}
	assert_true(sub_failed > 2);
	assert_true(sub_ok > 0);
}

/* A chain of N steps, s(i) depending on s(i-1); with BACK, s0 on the last. */
static char *chain(size_t n, bool back)
{
	struct sbuf sb = SBUF_INIT;

	sbuf_adds(&sb, "{\"steps\": [");
	for (size_t i = 0; i < n; i++) {
		sbuf_addf(&sb, "%s{\"id\": \"s%zu\", \"command\": \"true\"", i ? "," : "", i);
		if (i)
			sbuf_addf(&sb, ", \"depends_on\": [\"s%zu\"]", i - 1);
		else if (back)
			sbuf_addf(&sb, ", \"depends_on\": [\"s%zu\"]", n - 1);
		sbuf_addc(&sb, '}');
	}
	sbuf_adds(&sb, "]}");
	assert_false(sbuf_failed(&sb));
	return sbuf_detach(&sb, NULL);
}

static void test_plan__long_chain(void **state)
{
	char *text = chain(PLAN_MAX_STEPS, false);
	struct plan *p = expect_ok(text);

	assert_int_equal(p->nsteps, PLAN_MAX_STEPS);
	assert_int_equal(p->steps[PLAN_MAX_STEPS - 1].ndeps, 1);
	assert_int_equal(p->steps[PLAN_MAX_STEPS - 1].deps[0], PLAN_MAX_STEPS - 2);
	plan_free(p);
	orch_free(text);
}

static void test_plan__long_cycle(void **state)
{
	char *text = chain(PLAN_MAX_STEPS, true);
	struct sbuf errs = SBUF_INIT;

	assert_null(parse_opts(text, &base_opts, &errs));
	assert_true(!strncmp(sbuf_str(&errs), "cycle: s0 -> s1 -> s2 -> ", 25));
	assert_true(strstr(sbuf_str(&errs), " -> s99999 -> s0\n") != NULL);
	sbuf_release(&errs);
	orch_free(text);
}

/* Every allocation of a small plan fails in turn: NULL with "out of memory",
 * or a plan (when the failure was survived), and never a leak.
 * Every JSON token below is at most 15 bytes, quotes included: jansson (2.14
 * and later, issue akheron/jansson#362) ignores a failure to grow its token
 * buffer past 16 bytes and then reads past it, so that path is not testable. */
static void test_plan__alloc_failures(void **state)
{
	static const char text[] =
		"{\"plan_id\": \"p\", \"variables\": {\"V\": \"v\"}, \"env\": {\"A\": \"${V}\"},"
		" \"globals\": {}, \"sandbox\": {\"id\": \"box\", \"ports\": 2},"
		" \"steps\": ["
		"{\"id\": \"a\", \"name\": \"A\", \"command\": \"x ${PORT1}\", \"args\": [\"${STEP_ID}\", \"$$\"],"
		" \"env\": {\"B\": \"${RUN_ID}\"}, \"cwd\": \"d\", \"retries\": 1},"
		"{\"id\": \"b\", \"command\": \"x\", \"depends_on\": [\"a\"]},"
		"{\"id\": \"c\", \"command\": \"x\", \"depends_on\": [\"a\", \"b\"]}]}";
	int ports[] = { 1, 2 };
	struct plan_builtins b = { .run_id = "r", .ports = ports, .nports = 2 };
	int ok = 0, failed = 0, sub_ok = 0, sub_failed = 0;

	for (long n = 1; n <= 400; n++) {
		struct sbuf errs = SBUF_INIT;
		orch_alloc_fail_after(n);
		struct plan *p = parse_opts(text, &base_opts, &errs);
		orch_alloc_fail_after(0);
		if (p) {
			ok++;
			assert_string_equal(sbuf_str(&errs), "");
			plan_free(p);
		} else {
			failed++;
			assert_string_equal(sbuf_str(&errs), "out of memory\n");
		}
		sbuf_release(&errs);
	}
	assert_true(failed > 10);
	assert_true(ok > 0);

	for (long n = 1; n <= 200; n++) {
		struct sbuf errs = SBUF_INIT;
		struct plan *p = parse_opts(text, &base_opts, &errs);
		assert_non_null(p);
		orch_alloc_fail_after(n);
		int ret = plan_substitute(p, "p", &base_opts, &b, &errs);
		orch_alloc_fail_after(0);
		if (ret == 0)
			sub_ok++;
		else
			sub_failed++;
		assert_true(ret == 0 || ret == -ENOMEM);
		plan_free(p);
		sbuf_release(&errs);
	}
	assert_true(sub_failed > 5);
	assert_true(sub_ok > 0);
}

/* "limits" (SPEC §10): bounds, types, unknown fields, and the cgroup ones
 * refused with the reason where the machine gives orchfs no cgroup. */
static void test_plan__limits(void **state)
{
	(void)state;
	struct plan_opts cg = base_opts;
	cg.limits_available = PLAN_LIMIT_MEMORY | PLAN_LIMIT_PIDS | PLAN_LIMIT_CPUS;
	struct plan *p = expect_ok_opts("{\"sandbox\": {\"limits\": {\"memory_mb\": 512, \"cpus\": 1.5}},"
					" \"steps\": [{\"id\": \"a\", \"command\": \"true\", \"limits\": {\"memory_mb\": 64,"
					" \"pids\": 16, \"cpu_sec\": 10, \"open_files\": 64, \"cpus\": 0.5}}]}",
					&cg);
	assert_int_equal(p->sandbox.limits.memory_mb, 512);
	assert_true(p->sandbox.limits.cpus == 1.5);
	assert_int_equal(p->sandbox.limits.pids, 0);
	assert_int_equal(p->steps[0].limits.memory_mb, 64);
	assert_int_equal(p->steps[0].limits.pids, 16);
	assert_int_equal(p->steps[0].limits.cpu_sec, 10);
	assert_int_equal(p->steps[0].limits.open_files, 64);
	assert_true(p->steps[0].limits.cpus == 0.5);
	assert_true(plan_limits_cgroup(&p->steps[0].limits));
	plan_free(p);
	p = expect_ok(STEP1(""));
	assert_false(plan_limits_any(&p->steps[0].limits));
	assert_false(plan_limits_any(&p->sandbox.limits));
	plan_free(p);
	/* setrlimit()'s need no cgroup */
	p = expect_ok(STEP1(", \"limits\": {\"cpu_sec\": 5, \"open_files\": 16}"));
	assert_false(plan_limits_cgroup(&p->steps[0].limits));
	assert_true(plan_limits_any(&p->steps[0].limits));
	plan_free(p);

	expect_errs_opts(STEP1(", \"limits\": {\"memory_mb\": 2}"), &cg,
			 "step \"a\": \"limits.memory_mb\" must be between 4 and 1073741824\n");
	expect_errs_opts(STEP1(", \"limits\": {\"pids\": 0}"), &cg,
			 "step \"a\": \"limits.pids\" must be between 1 and 4194304\n");
	expect_errs_opts(STEP1(", \"limits\": {\"cpu_sec\": 1.5}"), &cg,
			 "step \"a\": \"limits.cpu_sec\" must be an integer\n");
	expect_errs_opts(STEP1(", \"limits\": {\"open_files\": 8}"), &cg,
			 "step \"a\": \"limits.open_files\" must be between 16 and 1048576\n");
	expect_errs_opts(STEP1(", \"limits\": {\"cpus\": 0}"), &cg,
			 "step \"a\": \"limits.cpus\" must be between 0.01 and 1024\n");
	expect_errs_opts(STEP1(", \"limits\": {\"memroy_mb\": 64}"), &cg,
			 "step \"a\": limits: unknown field \"memroy_mb\" (did you mean \"memory_mb\"?)\n");
	expect_errs_opts(STEP1(", \"limits\": 5"), &cg,
			 "step \"a\": \"limits\" must be an object of memory_mb, pids, cpu_sec, open_files, cpus\n");
	expect_errs_opts("{\"sandbox\": {\"limits\": {\"pids\": -1}}, \"steps\": [{\"id\": \"a\", \"command\": \"true\"}]}",
			 &cg, "\"sandbox.limits.pids\" must be between 1 and 4194304\n");

	/* no cgroup: the message says why */
	struct plan_opts none = base_opts;
	none.limits_unavailable_reason = "cgroups are turned off";
	expect_errs_opts(STEP1(", \"limits\": {\"memory_mb\": 64, \"cpu_sec\": 5}"), &none,
			 "step \"a\": \"limits.memory_mb\" needs a cgroup, and orchfs has none to manage here:"
			 " cgroups are turned off\n");
	expect_errs_opts("{\"sandbox\": {\"limits\": {\"cpus\": 2}}, \"steps\": [{\"id\": \"a\", \"command\": \"true\"}]}",
			 &none, "\"sandbox.limits.cpus\" needs a cgroup, and orchfs has none to manage here:"
				" cgroups are turned off\n");
	/* memory but no pids controller */
	struct plan_opts mem = base_opts;
	mem.limits_available = PLAN_LIMIT_MEMORY;
	expect_errs_opts(STEP1(", \"limits\": {\"memory_mb\": 64, \"pids\": 5}"), &mem,
			 "step \"a\": \"limits.pids\" needs a cgroup, and orchfs has none to manage here:"
			 " the machine offers no cgroup controller for it\n");
	/* a plan as run (resume) is taken as it is */
	struct plan_opts lit = none;
	lit.literal = true;
	p = expect_ok_opts(STEP1(", \"limits\": {\"memory_mb\": 64}"), &lit);
	plan_free(p);
	/* an approval step takes no limits */
	expect_errs_opts("{\"steps\": [{\"id\": \"a\", \"type\": \"approval\", \"limits\": {\"pids\": 4}}]}", &cg,
			 "step \"a\": an approval step takes no \"limits\"\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan__json_syntax),
		cmocka_unit_test(test_plan__not_object),
		cmocka_unit_test(test_plan__steps_required),
		cmocka_unit_test(test_plan__steps_not_array),
		cmocka_unit_test(test_plan__steps_empty),
		cmocka_unit_test(test_plan__steps_too_many),
		cmocka_unit_test(test_plan__step_not_object),
		cmocka_unit_test(test_plan__id_required),
		cmocka_unit_test(test_plan__id_not_string),
		cmocka_unit_test(test_plan__id_invalid),
		cmocka_unit_test(test_plan__duplicate_id),
		cmocka_unit_test(test_plan__command_required),
		cmocka_unit_test(test_plan__type_string),
		cmocka_unit_test(test_plan__type_non_empty_string),
		cmocka_unit_test(test_plan__type_number),
		cmocka_unit_test(test_plan__type_integer),
		cmocka_unit_test(test_plan__type_boolean),
		cmocka_unit_test(test_plan__type_object),
		cmocka_unit_test(test_plan__type_array_of_strings),
		cmocka_unit_test(test_plan__type_object_of_strings),
		cmocka_unit_test(test_plan__type_error_without_id),
		cmocka_unit_test(test_plan__env_invalid_name),
		cmocka_unit_test(test_plan__nul_bytes),
		cmocka_unit_test(test_plan__plan_id_too_long),
		cmocka_unit_test(test_plan__range),
		cmocka_unit_test(test_plan__step_kill_grace),
		cmocka_unit_test(test_plan__unknown_on_failure),
		cmocka_unit_test(test_plan__bad_isolation),
		cmocka_unit_test(test_plan__unknown_field_suggestion),
		cmocka_unit_test(test_plan__unknown_field_no_suggestion),
		cmocka_unit_test(test_plan__unknown_field_top),
		cmocka_unit_test(test_plan__unknown_field_globals_sandbox),
		cmocka_unit_test(test_plan__unknown_dependency),
		cmocka_unit_test(test_plan__cycle),
		cmocka_unit_test(test_plan__self_cycle),
		cmocka_unit_test(test_plan__no_cycle_check_after_unknown_dep),
		cmocka_unit_test(test_plan__unknown_variable),
		cmocka_unit_test(test_plan__unterminated_variable),
		cmocka_unit_test(test_plan__invalid_variable_name),
		cmocka_unit_test(test_plan__variables_object),
		cmocka_unit_test(test_plan__variables_known),
		cmocka_unit_test(test_plan__sandbox_id_invalid),
		cmocka_unit_test(test_plan__bwrap_unavailable),
		cmocka_unit_test(test_plan__sandbox_mismatch),
		cmocka_unit_test(test_plan__sandbox_existing),
		cmocka_unit_test(test_plan__port_names),
		cmocka_unit_test(test_plan__port_names_invalid),
		cmocka_unit_test(test_plan__port_names_existing),
		cmocka_unit_test(test_plan__multiple_errors),
		cmocka_unit_test(test_plan__error_limit),
		cmocka_unit_test(test_plan__diamond),
		cmocka_unit_test(test_plan__defaults),
		cmocka_unit_test(test_plan__literal),
		cmocka_unit_test(test_plan__sandbox_health),
		cmocka_unit_test(test_plan__health_url_rule),
		cmocka_unit_test(test_plan__alloc_failures_health),
		cmocka_unit_test(test_plan__substitute),
		cmocka_unit_test(test_plan__substitute_port_not_allocated),
		cmocka_unit_test(test_plan__cwd_inside_workspace),
		cmocka_unit_test(test_plan__approval_step),
		cmocka_unit_test(test_plan__approval_takes_no_command_fields),
		cmocka_unit_test(test_plan__approval_fields_on_command_step),
		cmocka_unit_test(test_plan__command_required_with_type),
		cmocka_unit_test(test_plan__unknown_type),
		cmocka_unit_test(test_plan__on_timeout),
		cmocka_unit_test(test_plan__approvers),
		cmocka_unit_test(test_plan__loop),
		cmocka_unit_test(test_plan__max_turns),
		cmocka_unit_test(test_plan__budget),
		cmocka_unit_test(test_plan__heartbeat_grace),
		cmocka_unit_test(test_plan__approval_prompt_substitute),
		cmocka_unit_test(test_plan__supervision_multiple_errors),
		cmocka_unit_test(test_plan__alloc_failures_supervision),
		cmocka_unit_test(test_plan__alloc_failures_port_names),
		cmocka_unit_test(test_plan__long_chain),
		cmocka_unit_test(test_plan__long_cycle),
		cmocka_unit_test(test_plan__alloc_failures),
		cmocka_unit_test(test_plan__limits),
	};

	orch_alloc_setup_jansson();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
