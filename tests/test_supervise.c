/* tests/test_supervise.c — the pure supervision rules of core/supervise.h:
 * failure signatures and loop detection, turns and budgets with the 80 %
 * warning, repeated actions, who may decide, and the durable form. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/supervise.h"
#include "core/util.h"

static void test_supervise__signature(void **state)
{
	(void)state;
	char *s = sup_signature(3, 0, "error: same thing");
	assert_string_equal(s, "exit 3: error: same thing");
	orch_free(s);
	s = sup_signature(-1, 9, NULL);
	assert_string_equal(s, "signal 9");
	orch_free(s);
	s = sup_signature(1, 0, "");
	assert_string_equal(s, "exit 1");
	orch_free(s);
	/* a long line is cut at SUP_TEXT_MAX bytes, on a character's start */
	char *line = malloc(SUP_TEXT_MAX + 10);
	memset(line, 'a', SUP_TEXT_MAX + 9);
	memcpy(line + SUP_TEXT_MAX - 1, "\xc3\xa9", 2);	/* é across the cut */
	line[SUP_TEXT_MAX + 9] = '\0';
	s = sup_signature(2, 0, line);
	assert_int_equal(strlen(s), strlen("exit 2: ") + SUP_TEXT_MAX - 1);
	orch_free(s);
	free(line);
}

static bool fail_with(struct sup *s, const char *sig, unsigned attempt, unsigned threshold)
{
	return sup_failed(s, orch_strdup(sig), attempt, threshold);
}

static void test_supervise__loop_after_same_failures(void **state)
{
	(void)state;
	struct sup s = { 0 };
	assert_false(fail_with(&s, "exit 3: boom", 1, 3));
	assert_false(fail_with(&s, "exit 3: boom", 2, 3));
	assert_true(fail_with(&s, "exit 3: boom", 3, 3));
	assert_int_equal(s.same, 3);
	assert_int_equal(s.first, 1);
	/* a different signature starts a new series at its attempt */
	assert_false(fail_with(&s, "exit 3: other", 4, 3));
	assert_int_equal(s.same, 1);
	assert_int_equal(s.first, 4);
	assert_false(fail_with(&s, "exit 3: boom", 5, 3));
	assert_false(fail_with(&s, "exit 3: boom", 6, 3));
	assert_true(fail_with(&s, "exit 3: boom", 7, 3));
	assert_int_equal(s.first, 5);
	/* retry: a fresh series, the old failures do not count */
	sup_series_reset(&s);
	assert_false(fail_with(&s, "exit 3: boom", 8, 3));
	assert_false(fail_with(&s, "exit 3: boom", 9, 3));
	assert_true(fail_with(&s, "exit 3: boom", 10, 3));
	sup_series_reset(&s);
	/* threshold 0: off, however many */
	for (unsigned k = 1; k <= 10; k++)
		assert_false(fail_with(&s, "exit 1", k, 0));
	/* threshold 1: the first failure is a loop */
	sup_series_reset(&s);
	assert_true(fail_with(&s, "exit 1", 1, 1));
	sup_series_reset(&s);
}

static void test_supervise__turns_warn_at_80_then_stop(void **state)
{
	(void)state;
	struct sup s = { 0 };
	enum sup_verdict v[12];
	for (int k = 0; k < 12; k++)
		v[k] = sup_turn(&s, 10);
	for (int k = 0; k < 7; k++)
		assert_int_equal(v[k], SUP_OK);
	assert_int_equal(v[7], SUP_WARN);	/* the 8th turn: 80 % */
	assert_int_equal(v[8], SUP_OK);		/* warned once */
	assert_int_equal(v[9], SUP_OK);		/* the 10th is allowed */
	assert_int_equal(v[10], SUP_STOP);	/* the 11th passes the limit */
	assert_int_equal(s.turns, 12);
	/* no limit: counted, never stopped */
	struct sup t = { 0 };
	for (int k = 0; k < 100; k++)
		assert_int_equal(sup_turn(&t, 0), SUP_OK);
	assert_int_equal(t.turns, 100);
	/* a limit of 3: the warning comes with the 3rd (2.4 rounds up) */
	struct sup u = { 0 };
	assert_int_equal(sup_turn(&u, 3), SUP_OK);
	assert_int_equal(sup_turn(&u, 3), SUP_OK);
	assert_int_equal(sup_turn(&u, 3), SUP_WARN);
	assert_int_equal(sup_turn(&u, 3), SUP_STOP);
}

static void test_supervise__budget_cost_and_tokens(void **state)
{
	(void)state;
	struct sup s = { 0 };
	const char *which = "x";
	assert_int_equal(sup_usage(&s, 0.3, 100, 1.0, 0, &which), SUP_OK);
	assert_null(which);
	assert_int_equal(sup_usage(&s, 0.3, 100, 1.0, 0, &which), SUP_OK);
	assert_int_equal(sup_usage(&s, 0.3, 100, 1.0, 0, &which), SUP_WARN);	/* 0.9 */
	assert_string_equal(which, "cost_usd");
	assert_int_equal(sup_usage(&s, 0.05, 0, 1.0, 0, &which), SUP_OK);	/* warned once; 0.95 */
	assert_int_equal(sup_usage(&s, 0.3, 0, 1.0, 0, &which), SUP_STOP);	/* 1.25 */
	assert_string_equal(which, "cost_usd");
	assert_int_equal(s.tokens, 300);
	/* tokens: their own warning and stop; nonsense amounts are ignored */
	struct sup t = { 0 };
	assert_int_equal(sup_usage(&t, -5, -7, 0, 1000, &which), SUP_OK);
	assert_true(t.cost_usd == 0 && t.tokens == 0);
	assert_int_equal(sup_usage(&t, 0, 799, 0, 1000, &which), SUP_OK);
	assert_int_equal(sup_usage(&t, 0, 1, 0, 1000, &which), SUP_WARN);
	assert_string_equal(which, "tokens");
	assert_int_equal(sup_usage(&t, 0, 200, 0, 1000, &which), SUP_OK);	/* exactly the limit */
	assert_int_equal(sup_usage(&t, 0, 1, 0, 1000, &which), SUP_STOP);
	assert_string_equal(which, "tokens");
	/* both limits: each warns once */
	struct sup u = { 0 };
	assert_int_equal(sup_usage(&u, 8, 0, 10, 100, &which), SUP_WARN);
	assert_string_equal(which, "cost_usd");
	assert_int_equal(sup_usage(&u, 0, 90, 10, 100, &which), SUP_WARN);
	assert_string_equal(which, "tokens");
	assert_int_equal(sup_usage(&u, 1, 1, 10, 100, &which), SUP_OK);
}

static void test_supervise__repeated_actions(void **state)
{
	(void)state;
	struct sup s = { 0 };
	assert_false(sup_action(&s, "{\"tool\":\"ls\"}", 3));
	assert_false(sup_action(&s, "{\"tool\":\"ls\"}", 3));
	assert_true(sup_action(&s, "{\"tool\":\"ls\"}", 3));
	/* counted again from zero: the loop going on is reported again */
	assert_false(sup_action(&s, "{\"tool\":\"ls\"}", 3));
	assert_false(sup_action(&s, "{\"tool\":\"cat\"}", 3));	/* another breaks it */
	assert_false(sup_action(&s, "{\"tool\":\"ls\"}", 3));
	assert_false(sup_action(&s, "{\"tool\":\"ls\"}", 3));
	assert_true(sup_action(&s, "{\"tool\":\"ls\"}", 3));
	/* off */
	for (int k = 0; k < 10; k++)
		assert_false(sup_action(&s, "same", 0));
	/* large actions compare whole (no cut at SUP_TEXT_MAX), and differ
	 * even when only their end does */
	char *big = malloc(3 * SUP_TEXT_MAX);
	memset(big, 'x', 3 * SUP_TEXT_MAX - 1);
	big[3 * SUP_TEXT_MAX - 1] = '\0';
	struct sup t = { 0 };
	assert_false(sup_action(&t, big, 3));
	assert_false(sup_action(&t, big, 3));
	assert_true(sup_action(&t, big, 3));
	assert_false(sup_action(&t, big, 3));
	big[3 * SUP_TEXT_MAX - 2] = 'y';
	assert_false(sup_action(&t, big, 3));	/* another: the count starts again */
	assert_int_equal(t.actions, 1);
	free(big);
}

/* a passwd and a group file of our own for the approvers check */
struct idfiles {
	char dir[64], passwd[96], group[96];
	struct ident id;
};

static int id_setup(void **state)
{
	struct idfiles *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/orchfs-test-sup.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->passwd, sizeof(f->passwd), "%s/passwd", f->dir);
	snprintf(f->group, sizeof(f->group), "%s/group", f->dir);
	FILE *p = fopen(f->passwd, "w"), *g = fopen(f->group, "w");
	fputs("root:x:0:0:root:/root:/bin/sh\n"
	      "alice:x:1001:1001::/home/alice:/bin/sh\n"
	      "bob:x:1002:1002::/home/bob:/bin/sh\n"
	      "carol:x:1003:1003::/home/carol:/bin/sh\n"
	      "dave:x:1004:1004::/home/dave:/bin/sh\n",
	      p);
	fputs("ops:x:2000:carol\n"
	      "dev:x:2001:\n"
	      "dave:x:1004:\n",
	      g);
	fclose(p);
	fclose(g);
	ident_init(&f->id, f->passwd, f->group);
	*state = f;
	return 0;
}

static int id_teardown(void **state)
{
	struct idfiles *f = *state;
	ident_release(&f->id);
	unlink(f->passwd);
	unlink(f->group);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void test_supervise__who_may_decide(void **state)
{
	struct idfiles *f = *state;
	struct orch_who root = { 0, 0, NULL, 0 }, alice = { 1001, 1001, NULL, 0 }, bob = { 1002, 1002, NULL, 0 };
	struct orch_who carol = { 1003, 1003, NULL, 0 };	/* in ops by the group file's list */
	gid_t devs[] = { 2001 };
	struct orch_who dave = { 1004, 1004, devs, 1 };	/* in dev by its process's groups */
	struct orch_who dave_primary_ops = { 1004, 2000, NULL, 0 };	/* in ops by its primary group */

	/* no approvers: the run's owner (alice here) and root */
	assert_true(sup_may_decide(&f->id, NULL, 0, 1001, &alice));
	assert_true(sup_may_decide(&f->id, NULL, 0, 1001, &root));
	assert_false(sup_may_decide(&f->id, NULL, 0, 1001, &bob));

	const char *const by_name[] = { "bob" };
	assert_true(sup_may_decide(&f->id, by_name, 1, 1001, &bob));
	assert_false(sup_may_decide(&f->id, by_name, 1, 1001, &alice));	/* the owner is no approver */
	assert_true(sup_may_decide(&f->id, by_name, 1, 1001, &root));

	const char *const ops[] = { "@ops" };
	assert_true(sup_may_decide(&f->id, ops, 1, 1001, &carol));
	assert_true(sup_may_decide(&f->id, ops, 1, 1001, &dave_primary_ops));
	assert_false(sup_may_decide(&f->id, ops, 1, 1001, &dave));
	assert_false(sup_may_decide(&f->id, ops, 1, 1001, &bob));

	const char *const mixed[] = { "alice", "@dev", "@nosuchgroup", "nosuchuser" };
	assert_true(sup_may_decide(&f->id, mixed, 4, 1002, &alice));
	assert_true(sup_may_decide(&f->id, mixed, 4, 1002, &dave));
	assert_false(sup_may_decide(&f->id, mixed, 4, 1002, &bob));	/* the owner, not listed */
	assert_false(sup_may_decide(&f->id, mixed, 4, 1002, &carol));

	/* a uid the passwd file does not know is named "uid N": no approver matches it */
	struct orch_who ghost = { 4242, 4242, NULL, 0 };
	const char *const ghostly[] = { "uid" };
	assert_false(sup_may_decide(&f->id, ghostly, 1, 1001, &ghost));
	assert_string_equal(ident_user(&f->id, 4242), "uid 4242");
}

static void test_supervise__durable_form_round_trips(void **state)
{
	(void)state;
	struct sup s = { 0 };
	s.wait = SUP_WAIT_QUESTION;
	s.since = 1764700000123;
	s.question = orch_strdup("which db?");
	s.decision = SUP_REJECTED;
	s.decided_by = orch_strdup("alice");
	s.decided_at = 1764700000456;
	s.reason = orch_strdup("not today");
	s.sig = orch_strdup("exit 3: boom");
	s.same = 2;
	s.first = 4;
	s.turns = 7;
	s.cost_usd = 0.75;
	s.tokens = 1234;
	s.warned = SUP_WARNED_COST;
	assert_false(sup_action(&s, "{\"a\":1}", 5));
	assert_false(sup_action(&s, "{\"a\":1}", 5));
	s.stop = "budget";
	json_t *o = sup_to_json(&s);
	char *txt = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	struct sup *t = calloc(1, sizeof(*t));
	assert_int_equal(sup_from_json(t, txt), 0);
	free(txt);
	assert_int_equal(t->wait, SUP_WAIT_QUESTION);
	assert_true(t->since == s.since);
	assert_string_equal(t->question, "which db?");
	assert_int_equal(t->decision, SUP_REJECTED);
	assert_string_equal(t->decided_by, "alice");
	assert_true(t->decided_at == s.decided_at);
	assert_string_equal(t->reason, "not today");
	assert_string_equal(t->sig, "exit 3: boom");
	assert_int_equal(t->same, 2);
	assert_int_equal(t->first, 4);
	assert_int_equal(t->turns, 7);
	assert_true(t->cost_usd == 0.75);
	assert_true(t->tokens == 1234);
	assert_int_equal(t->warned, SUP_WARNED_COST);
	assert_int_equal(t->actions, 2);
	assert_string_equal(t->stop, "budget");
	/* the same action continues the series after the round trip */
	assert_false(sup_action(t, "{\"a\":1}", 5));
	assert_int_equal(t->actions, 3);
	sup_free(t);
	orch_free(s.question);
	orch_free(s.decided_by);
	orch_free(s.reason);
	orch_free(s.sig);

	/* what the state directory holds is hostile: nonsense is refused or clamped */
	t = calloc(1, sizeof(*t));
	assert_int_equal(sup_from_json(t, "not json"), -EINVAL);
	assert_int_equal(sup_from_json(t, "[1,2]"), -EINVAL);
	assert_int_equal(sup_from_json(t, NULL), -EINVAL);
	assert_int_equal(sup_from_json(t, "{\"wait\":\"dance\",\"same\":-5,\"turns\":\"many\",\"warned\":99,"
					  "\"cost_usd\":-3,\"question\":17,\"stop\":\"whatever\"}"),
			 0);
	assert_null(t->stop);	/* only the reasons orchfs gives */
	assert_int_equal(t->wait, SUP_WAIT_NONE);
	assert_int_equal(t->same, 0);
	assert_int_equal(t->turns, 0);
	assert_int_equal(t->warned, 7);
	assert_true(t->cost_usd == 0);
	assert_null(t->question);
	sup_free(t);
	/* a series longer than any same_failures is cut to 1000: what status
	 * lists of it stays bounded */
	t = calloc(1, sizeof(*t));
	assert_int_equal(sup_from_json(t, "{\"wait\":\"loop\",\"same\":4000000000,\"first\":4294967295}"), 0);
	assert_int_equal(t->same, 1000);
	assert_true(t->first <= UINT32_MAX - 1000);
	sup_free(t);
}

int main(void)
{
	orch_alloc_setup_jansson();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_supervise__signature),
		cmocka_unit_test(test_supervise__loop_after_same_failures),
		cmocka_unit_test(test_supervise__turns_warn_at_80_then_stop),
		cmocka_unit_test(test_supervise__budget_cost_and_tokens),
		cmocka_unit_test(test_supervise__repeated_actions),
		cmocka_unit_test_setup_teardown(test_supervise__who_may_decide, id_setup, id_teardown),
		cmocka_unit_test(test_supervise__durable_form_round_trips),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
