/* tests/test_quota.c — per-user limits: counts by uid, the check and its
 * message, root's exemption, the log's rate, and the engine refusing past a
 * limit (sandboxes, queued messages) with the counts kept across a reopen. */
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

#include "core/quota.h"
#include "tests/engine_fixture.h"

static void test_quota__names_and_defaults(void **state)
{
	for (int k = 0; k < QUOTA_NKINDS; k++) {
		assert_int_equal(quota_kind_parse(quota_names[k]), k);
		assert_true(quota_defaults[k] > 0);
	}
	assert_int_equal(quota_kind_parse("sandbox"), -1);
	assert_int_equal(quota_kind_parse(""), -1);
}

static void test_quota__counts_per_user(void **state)
{
	int64_t max[QUOTA_NKINDS] = { [QUOTA_ACTIVE_RUNS] = 2 };
	struct quota q;
	quota_init(&q, max, false);
	quota_add(&q, 1000, QUOTA_ACTIVE_RUNS, 1);
	quota_add(&q, 1000 + QUOTA_HASH, QUOTA_ACTIVE_RUNS, 2);	/* same bucket */
	assert_int_equal(quota_used(&q, 1000, QUOTA_ACTIVE_RUNS), 1);
	assert_int_equal(quota_used(&q, 1000 + QUOTA_HASH, QUOTA_ACTIVE_RUNS), 2);
	assert_int_equal(quota_used(&q, 7, QUOTA_ACTIVE_RUNS), 0);
	assert_int_equal(quota_check(&q, 1000, QUOTA_ACTIVE_RUNS, 1, NULL), 0);
	assert_int_equal(quota_check(&q, 1000, QUOTA_ACTIVE_RUNS, 2, NULL), -EDQUOT);
	assert_int_equal(quota_check(&q, 1000 + QUOTA_HASH, QUOTA_ACTIVE_RUNS, 1, NULL), -EDQUOT);
	/* other limits are off (0), and so nothing else is refused */
	assert_int_equal(quota_check(&q, 1000, QUOTA_SANDBOXES, 1000000, NULL), 0);
	/* never below zero */
	quota_add(&q, 1000, QUOTA_ACTIVE_RUNS, -5);
	assert_int_equal(quota_used(&q, 1000, QUOTA_ACTIVE_RUNS), 0);
	quota_clear(&q);
	assert_int_equal(quota_used(&q, 1000 + QUOTA_HASH, QUOTA_ACTIVE_RUNS), 0);
	quota_release(&q);
}

static void test_quota__message_and_root(void **state)
{
	int64_t max[QUOTA_NKINDS] = { [QUOTA_QUEUED_MESSAGES] = 10, [QUOTA_SANDBOXES] = 1 };
	struct quota q;
	quota_init(&q, max, false);
	quota_add(&q, 0, QUOTA_QUEUED_MESSAGES, 10);
	assert_int_equal(quota_check(&q, 0, QUOTA_QUEUED_MESSAGES, 5, NULL), 0);	/* root: exempt */
	quota_add(&q, 4000000000u, QUOTA_QUEUED_MESSAGES, 9);
	struct sbuf m = SBUF_INIT;
	assert_int_equal(quota_check(&q, 4000000000u, QUOTA_QUEUED_MESSAGES, 2, &m), -EDQUOT);
	/* a uid the passwd file does not know shows as its number */
	assert_string_equal(sbuf_str(&m), "uid 4000000000 has 9 queued messages; 2 more would pass the limit"
					  " of 10 (limits.queued_messages in --config)");
	sbuf_reset(&m);
	quota_add(&q, 4000000000u, QUOTA_SANDBOXES, 1);
	assert_int_equal(quota_check(&q, 4000000000u, QUOTA_SANDBOXES, 1, &m), -EDQUOT);
	assert_string_equal(sbuf_str(&m), "uid 4000000000 has 1 sandbox; 1 more would pass the limit of 1"
					  " (limits.sandboxes in --config)");
	sbuf_reset(&m);
	/* root by its name, when root is limited too */
	quota_release(&q);
	quota_init(&q, max, true);
	quota_add(&q, 0, QUOTA_QUEUED_MESSAGES, 10);
	assert_int_equal(quota_check(&q, 0, QUOTA_QUEUED_MESSAGES, 1, &m), -EDQUOT);
	assert_non_null(strstr(sbuf_str(&m), "user \"root\" has 10 queued messages"));
	sbuf_release(&m);
	quota_release(&q);
}

static void test_quota__log_rate(void **state)
{
	struct quota q;
	quota_init(&q, NULL, false);
	assert_true(quota_log_due(&q, 5, QUOTA_PORTS, 1000));
	assert_false(quota_log_due(&q, 5, QUOTA_PORTS, 2000));
	assert_true(quota_log_due(&q, 5, QUOTA_SANDBOXES, 2000));	/* per limit */
	assert_true(quota_log_due(&q, 6, QUOTA_PORTS, 2000));		/* per user */
	assert_true(quota_log_due(&q, 5, QUOTA_PORTS, 62000));
	quota_release(&q);
}

/* ---- through an engine ---- */

static struct orch_engine *open_limited(struct fixture *f, const int64_t *max)
{
	struct orch_config cfg = { .exec_helper = "/proc/self/exe", .state_dir = f->state,
				   .mountpoint = f->mnt, .port_min = f->port_min,
				   .port_max = f->port_max, .limit_root = true };
	memcpy(cfg.limits, max, sizeof(cfg.limits));
	struct sbuf err = SBUF_INIT;
	struct orch_engine *e = orch_engine_open(&cfg, &err);
	if (!e)
		fail_msg("engine did not open: %s", sbuf_str(&err));
	sbuf_release(&err);
	return e;
}

static void test_quota__engine_refuses_and_recounts(void **state)
{
	struct fixture *f = fixture_new("quota", 32100, 32199);
	assert_non_null(f);
	orch_engine_close(f->e);
	int64_t max[QUOTA_NKINDS] = { [QUOTA_SANDBOXES] = 2, [QUOTA_QUEUED_MESSAGES] = 3 };
	f->e = open_limited(f, max);
	uid_t me = getuid();
	struct orch_sandbox_attr a;
	assert_int_equal(orch_sandbox_create(f->e, "a", me, getgid(), &a), 0);
	assert_int_equal(orch_sandbox_create(f->e, "b", me, getgid(), &a), 0);
	assert_int_equal(orch_sandbox_create(f->e, "c", me, getgid(), &a), -EDQUOT);
	assert_int_equal(orch_sandbox_create(f->e, "a", me, getgid(), &a), -EEXIST);
	/* another user is not touched by this one's count */
	assert_int_equal(orch_sandbox_create(f->e, "other", me + 1, getgid(), &a), 0);
	assert_int_equal(orch_engine_turn(f->e, 0), 0);
	struct orch_sandbox_attr b;
	assert_int_equal(orch_sandbox_by_name(f->e, "b", &b), 0);
	struct msg_line m[4] = { { MSG_USER_MESSAGE, "1" }, { MSG_USER_MESSAGE, "2" },
				 { MSG_USER_MESSAGE, "3" }, { MSG_USER_MESSAGE, "4" } };
	struct line_batch four = { 4, m, NULL }, two = { 2, m, NULL };
	assert_int_equal(orch_messages_append(f->e, b.rowid, &four), -EDQUOT);	/* all or nothing */
	assert_int_equal(orch_messages_append(f->e, b.rowid, &two), 0);
	assert_int_equal(orch_engine_turn(f->e, 0), 0);
	assert_int_equal(orch_messages_append(f->e, b.rowid, &two), -EDQUOT);
	/* the counts come back from the store */
	orch_engine_turn(f->e, 0);
	orch_engine_close(f->e);
	f->e = open_limited(f, max);
	assert_int_equal(orch_sandbox_by_name(f->e, "b", &b), 0);
	assert_int_equal(orch_messages_append(f->e, b.rowid, &two), -EDQUOT);
	assert_int_equal(orch_sandbox_create(f->e, "c", me, getgid(), &a), -EDQUOT);
	/* delivery and removal give back */
	uint64_t lease;
	struct sbuf out = SBUF_INIT;
	assert_int_equal(orch_inbox_take(f->e, b.rowid, &lease, &out), 0);
	sbuf_release(&out);
	assert_int_equal(orch_inbox_done(f->e, b.rowid, lease, true), 0);
	assert_int_equal(orch_engine_turn(f->e, 0), 0);
	assert_int_equal(orch_messages_append(f->e, b.rowid, &two), 0);
	assert_int_equal(orch_sandbox_remove(f->e, b.rowid), 0);
	assert_int_equal(orch_sandbox_create(f->e, "c", me, getgid(), &a), 0);
	assert_int_equal(orch_engine_turn(f->e, 0), 0);
	fixture_teardown((void **)&f);
}

int main(int argc, char **argv)
{
	FIXTURE_MAIN_PROLOGUE(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quota__names_and_defaults),
		cmocka_unit_test(test_quota__counts_per_user),
		cmocka_unit_test(test_quota__message_and_root),
		cmocka_unit_test(test_quota__log_rate),
		cmocka_unit_test(test_quota__engine_refuses_and_recounts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
