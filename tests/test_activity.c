/* tests/test_activity.c — the changes of one workspace.changed event
 * (struct act_batch): distinct paths in the order first seen, at most
 * ACT_MAX_PATHS, every change counted (named or not, repeated or not), the
 * event's data, and a path that finds no memory counted all the same. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/activity.h"
#include "core/util.h"

static void test_activity__distinct_paths_every_change_counted(void **state)
{
	struct act_batch b = ACT_BATCH_INIT;
	assert_true(act_batch_empty(&b));
	act_batch_add(&b, "f1");
	act_batch_add(&b, "sub/g");
	act_batch_add(&b, "f1");
	act_batch_add(&b, NULL);	/* a change whose path is too long to name */
	act_batch_add(&b, "sub/g");
	assert_false(act_batch_empty(&b));
	assert_int_equal(b.count, 5);
	assert_int_equal(b.npaths, 2);
	assert_string_equal(b.paths[0], "f1");
	assert_string_equal(b.paths[1], "sub/g");
	json_t *j = act_batch_json(&b);
	char *s = json_dumps(j, JSON_COMPACT);
	assert_string_equal(s, "{\"paths\":[\"f1\",\"sub/g\"],\"count\":5}");
	free(s);
	json_decref(j);
	act_batch_clear(&b);
	assert_true(act_batch_empty(&b));
	assert_int_equal(b.npaths, 0);
}

static void test_activity__at_most_100_paths(void **state)
{
	struct act_batch b = ACT_BATCH_INIT;
	char p[32];
	for (int round = 0; round < 2; round++)
		for (int i = 0; i < 150; i++) {
			snprintf(p, sizeof(p), "d/f%d", i);
			act_batch_add(&b, p);
			assert_int_equal(act_batch_full(&b), i >= ACT_MAX_PATHS - 1 || round);
		}
	assert_int_equal(b.count, 300);
	assert_int_equal(b.npaths, ACT_MAX_PATHS);
	for (int i = 0; i < ACT_MAX_PATHS; i++) {
		snprintf(p, sizeof(p), "d/f%d", i);
		assert_string_equal(b.paths[i], p);	/* the first ones, in order */
	}
	json_t *j = act_batch_json(&b);
	assert_int_equal(json_array_size(json_object_get(j, "paths")), ACT_MAX_PATHS);
	assert_int_equal(json_integer_value(json_object_get(j, "count")), 300);
	assert_null(json_object_get(j, "overflow"));
	json_decref(j);
	act_batch_clear(&b);
}

/* the kernel dropped changes: the event says so, even with none named */
static void test_activity__overflow(void **state)
{
	struct act_batch b = ACT_BATCH_INIT;
	b.overflow = true;
	assert_false(act_batch_empty(&b));
	json_t *j = act_batch_json(&b);
	char *s = json_dumps(j, JSON_COMPACT);
	assert_string_equal(s, "{\"paths\":[],\"count\":0,\"overflow\":true}");
	free(s);
	json_decref(j);
	act_batch_clear(&b);
	assert_true(act_batch_empty(&b));
}

/* no memory for a path: counted, not named, nothing leaks (ASan) */
static void test_activity__alloc_failures(void **state)
{
	for (long n = 1; n <= 4; n++) {
		struct act_batch b = ACT_BATCH_INIT;
		orch_alloc_fail_after(n);
		act_batch_add(&b, "a");
		act_batch_add(&b, "b");
		act_batch_add(&b, "c");
		orch_alloc_fail_after(0);
		assert_int_equal(b.count, 3);
		assert_int_equal(b.npaths, n <= 3 ? 2 : 3);
		act_batch_clear(&b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_activity__distinct_paths_every_change_counted),
		cmocka_unit_test(test_activity__at_most_100_paths),
		cmocka_unit_test(test_activity__overflow),
		cmocka_unit_test(test_activity__alloc_failures),
	};
	orch_alloc_setup_jansson();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
