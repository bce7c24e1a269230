/* tests/test_sched.c — the scheduler's decisions as pure functions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "core/plan.h"
#include "core/sched.h"

static struct plan *parse(const char *json)
{
	struct sbuf errs = SBUF_INIT;
	struct plan *p = plan_parse(json, strlen(json), "t", NULL, &errs);
	if (!p)
		fail_msg("plan did not parse: %s", sbuf_str(&errs));
	sbuf_release(&errs);
	return p;
}

struct trace {
	size_t ready[16], nready;
	size_t skipped[16], nskipped;
};

static void on_ready(void *ctx, size_t i)
{
	struct trace *t = ctx;
	t->ready[t->nready++] = i;
}

static void on_skipped(void *ctx, size_t i)
{
	struct trace *t = ctx;
	t->skipped[t->nskipped++] = i;
}

#define DIAMOND                                                                          \
	"{\"steps\":[{\"id\":\"a\",\"command\":\"x\"},"                                   \
	"{\"id\":\"b\",\"command\":\"x\",\"depends_on\":[\"a\"]},"                        \
	"{\"id\":\"c\",\"command\":\"x\",\"depends_on\":[\"a\"]},"                        \
	"{\"id\":\"d\",\"command\":\"x\",\"depends_on\":[\"b\",\"c\"]}]}"

static void test_sched__initial_ready_set(void **state)
{
	struct plan *p = parse(DIAMOND);
	struct sched_dag d;
	assert_int_equal(sched_dag_init(&d, p), 0);
	assert_true(sched_ready(&d, 0));
	assert_false(sched_ready(&d, 1));
	assert_false(sched_ready(&d, 3));
	assert_int_equal(d.nodes[0].ndependents, 2);
	assert_int_equal(d.nodes[3].unmet, 2);
	sched_dag_release(&d);
	plan_free(p);
}

static void test_sched__success_unblocks_in_order(void **state)
{
	struct plan *p = parse(DIAMOND);
	struct sched_dag d;
	struct trace t = { 0 };
	sched_dag_init(&d, p);
	d.nodes[0].state = STEP_SUCCEEDED;
	assert_int_equal(sched_settle(&d, 0, on_ready, on_skipped, &t), SCHED_NONE);
	assert_int_equal(t.nready, 2);
	assert_int_equal(t.ready[0], 1);
	assert_int_equal(t.ready[1], 2);
	d.nodes[1].state = STEP_SUCCEEDED;
	sched_settle(&d, 1, on_ready, on_skipped, &t);
	assert_int_equal(t.nready, 2);	/* d still waits for c */
	d.nodes[2].state = STEP_SUCCEEDED;
	sched_settle(&d, 2, on_ready, on_skipped, &t);
	assert_int_equal(t.nready, 3);
	assert_int_equal(t.ready[2], 3);
	sched_dag_release(&d);
	plan_free(p);
}

static void test_sched__abort_policy(void **state)
{
	struct plan *p = parse(DIAMOND);
	struct sched_dag d;
	struct trace t = { 0 };
	sched_dag_init(&d, p);
	d.nodes[0].state = STEP_FAILED;
	assert_int_equal(sched_settle(&d, 0, on_ready, on_skipped, &t), SCHED_ABORT);
	assert_int_equal(t.nready, 0);
	assert_int_equal(t.nskipped, 0);
	assert_int_equal(sched_outcome(&d, true, false), RUN_FAILED);
	sched_dag_release(&d);
	plan_free(p);
}

static void test_sched__skip_dependents_is_transitive(void **state)
{
	struct plan *p = parse("{\"steps\":[{\"id\":\"a\",\"command\":\"x\",\"on_failure\":\"skip_dependents\"},"
			       "{\"id\":\"b\",\"command\":\"x\",\"depends_on\":[\"a\"]},"
			       "{\"id\":\"c\",\"command\":\"x\",\"depends_on\":[\"b\"]},"
			       "{\"id\":\"x\",\"command\":\"x\"}]}");
	struct sched_dag d;
	struct trace t = { 0 };
	sched_dag_init(&d, p);
	d.nodes[0].state = STEP_TIMED_OUT;	/* a timeout counts as a failure */
	assert_int_equal(sched_settle(&d, 0, on_ready, on_skipped, &t), SCHED_SKIP);
	assert_int_equal(t.nskipped, 2);
	assert_int_equal(t.skipped[0], 1);
	assert_int_equal(t.skipped[1], 2);
	assert_int_equal(d.nodes[2].state, STEP_SKIPPED);
	assert_int_equal(d.nodes[3].state, STEP_PENDING);
	assert_true(sched_ready(&d, 3));
	d.nodes[3].state = STEP_SUCCEEDED;
	assert_true(sched_all_final(&d));
	assert_int_equal(sched_outcome(&d, false, false), RUN_FAILED);	/* a is critical */
	sched_dag_release(&d);
	plan_free(p);
}

static void test_sched__continue_lets_dependents_run(void **state)
{
	struct plan *p = parse("{\"steps\":[{\"id\":\"lint\",\"command\":\"x\",\"on_failure\":\"continue\","
			       "\"critical\":false},{\"id\":\"build\",\"command\":\"x\",\"depends_on\":[\"lint\"]}]}");
	struct sched_dag d;
	struct trace t = { 0 };
	sched_dag_init(&d, p);
	d.nodes[0].state = STEP_FAILED;
	assert_int_equal(sched_settle(&d, 0, on_ready, on_skipped, &t), SCHED_NONE);
	assert_int_equal(t.nready, 1);
	d.nodes[1].state = STEP_SUCCEEDED;
	assert_int_equal(sched_outcome(&d, false, false), RUN_SUCCEEDED);
	/* the same failure on a critical step fails the run */
	d.nodes[0].critical = true;
	assert_int_equal(sched_outcome(&d, false, false), RUN_FAILED);
	sched_dag_release(&d);
	plan_free(p);
}

static void test_sched__recount_after_load(void **state)
{
	struct plan *p = parse(DIAMOND);
	struct sched_dag d;
	sched_dag_init(&d, p);
	d.nodes[0].state = STEP_SUCCEEDED;
	d.nodes[1].state = STEP_SUCCEEDED;
	sched_recount(&d);
	assert_int_equal(d.nodes[3].unmet, 1);
	assert_true(sched_ready(&d, 2));
	d.nodes[2].waiting = true;	/* a retry delay not over yet */
	assert_false(sched_ready(&d, 2));
	sched_dag_release(&d);
	plan_free(p);
}

static void test_sched__retry_budget_and_delay(void **state)
{
	assert_true(sched_should_retry(1, 2));
	assert_true(sched_should_retry(2, 2));
	assert_false(sched_should_retry(3, 2));
	assert_false(sched_should_retry(1, 0));
	assert_int_equal(sched_retry_delay_ms(0, 2, 3), 0);
	assert_int_equal(sched_retry_delay_ms(1, 2, 1), 1000);
	assert_int_equal(sched_retry_delay_ms(1, 2, 2), 2000);
	assert_int_equal(sched_retry_delay_ms(1, 2, 3), 4000);
	assert_int_equal(sched_retry_delay_ms(0.5, 1, 5), 500);
	assert_int_equal(sched_retry_delay_ms(1000, 100, 50), 86400000);	/* capped */
}

static void test_sched__outcome_cancelled_wins(void **state)
{
	struct plan *p = parse(DIAMOND);
	struct sched_dag d;
	sched_dag_init(&d, p);
	for (size_t i = 0; i < d.n; i++)
		d.nodes[i].state = STEP_CANCELLED;
	assert_int_equal(sched_outcome(&d, true, true), RUN_CANCELLED);
	assert_false(step_state_final(STEP_RUNNING));
	assert_int_equal(step_state_parse("timed_out"), STEP_TIMED_OUT);
	assert_int_equal(run_state_parse("paused"), RUN_PAUSED);
	assert_int_equal(run_state_parse("nope"), -1);
	sched_dag_release(&d);
	plan_free(p);
}

static void test_sched__skip_without_memory(void **state)
{
	struct plan *p = parse("{\"steps\":[{\"id\":\"a\",\"command\":\"x\",\"on_failure\":\"skip_dependents\"},"
			       "{\"id\":\"b\",\"command\":\"x\",\"depends_on\":[\"a\"]},"
			       "{\"id\":\"c\",\"command\":\"x\",\"depends_on\":[\"b\"]}]}");
	struct sched_dag d;
	struct trace t = { 0 };
	sched_dag_init(&d, p);
	d.nodes[0].state = STEP_FAILED;
	orch_alloc_fail_after(1);	/* the BFS queue cannot be had: the sweep still skips */
	sched_settle(&d, 0, on_ready, on_skipped, &t);
	orch_alloc_fail_after(0);
	assert_int_equal(t.nskipped, 2);
	assert_int_equal(d.nodes[2].state, STEP_SKIPPED);
	sched_dag_release(&d);
	plan_free(p);
}

int main(void)
{
	orch_alloc_setup_jansson();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sched__initial_ready_set),
		cmocka_unit_test(test_sched__success_unblocks_in_order),
		cmocka_unit_test(test_sched__abort_policy),
		cmocka_unit_test(test_sched__skip_dependents_is_transitive),
		cmocka_unit_test(test_sched__continue_lets_dependents_run),
		cmocka_unit_test(test_sched__recount_after_load),
		cmocka_unit_test(test_sched__retry_budget_and_delay),
		cmocka_unit_test(test_sched__outcome_cancelled_wins),
		cmocka_unit_test(test_sched__skip_without_memory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
