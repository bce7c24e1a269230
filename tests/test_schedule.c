/* tests/test_schedule.c — the times of schedules (core/schedule.h): every_sec
 * anchored at registration, cron's next minute, the catch-up rule (one run
 * for every time missed, the next time after now), the clock-step rule,
 * reading a stored spec, and the validation of "schedule" (core/plan.c).
 * Month ends and leap days of cron itself are in test_cron.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "core/plan.h"
#include "core/schedule.h"
#include "core/util.h"

/* ms since the epoch of Y-MO-D H:MI:S UTC */
static int64_t at(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
			 .tm_hour = h, .tm_min = mi, .tm_sec = s };
	return (int64_t)timegm(&tm) * 1000;
}

static struct schedule load(const char *text)
{
	json_error_t jerr;
	json_t *o = json_loads(text, 0, &jerr);
	struct schedule s;
	assert_non_null(o);
	if (schedule_load(&s, o))
		fail_msg("schedule_load refused %s", text);
	json_decref(o);
	return s;
}

static void load_fails(const char *text)
{
	json_error_t jerr;
	json_t *o = json_loads(text, 0, &jerr);
	struct schedule s = { .every_ms = 12345 };
	assert_non_null(o);
	assert_int_equal(schedule_load(&s, o), -22);
	assert_int_equal(s.every_ms, 12345);	/* untouched */
	json_decref(o);
}

static void test_schedule__load(void **state)
{
	(void)state;
	struct schedule s = load("{\"every_sec\": 5}");
	assert_int_equal(s.every_ms, 5000);
	assert_int_equal(s.overlap, SCHEDULE_SKIP);
	s = load("{\"every_sec\": 31536000, \"overlap\": \"queue\"}");
	assert_int_equal(s.every_ms, 31536000000LL);
	assert_int_equal(s.overlap, SCHEDULE_QUEUE);
	s = load("{\"cron\": \"*/5 3 * * MON\", \"overlap\": \"skip\"}");
	assert_int_equal(s.every_ms, 0);
	assert_true(s.cron.hour == 1u << 3);
	assert_int_equal(s.overlap, SCHEDULE_SKIP);
	load_fails("{}");
	load_fails("{\"every_sec\": 5, \"cron\": \"* * * * *\"}");
	load_fails("{\"every_sec\": 0}");
	load_fails("{\"every_sec\": 1.5}");
	load_fails("{\"every_sec\": 31536001}");
	load_fails("{\"cron\": \"61 * * * *\"}");
	load_fails("{\"cron\": 5}");
	load_fails("{\"every_sec\": 5, \"overlap\": \"both\"}");
	load_fails("[1]");
}

/* every_sec: registration + N, + 2N, ... strictly after the time asked */
static void test_schedule__every_anchor(void **state)
{
	(void)state;
	struct schedule s = load("{\"every_sec\": 10}");
	const int64_t a = at(2026, 12, 3, 19, 0, 0) + 123;	/* registration */
	assert_int_equal(schedule_next(&s, a, a), a + 10000);
	assert_int_equal(schedule_next(&s, a, a - 5000), a + 10000);	/* never before a + N */
	assert_int_equal(schedule_next(&s, a, a + 9999), a + 10000);
	assert_int_equal(schedule_next(&s, a, a + 10000), a + 20000);
	assert_int_equal(schedule_next(&s, a, a + 10001), a + 20000);
	/* the grid stays where it was: no drift by the moment a run fired */
	assert_int_equal(schedule_next(&s, a, a + 20347), a + 30000);
	/* a year */
	s = load("{\"every_sec\": 31536000}");
	assert_int_equal(schedule_next(&s, a, a), a + 31536000000LL);
	/* no overflow at the end of time */
	s = load("{\"every_sec\": 1}");
	assert_int_equal(schedule_next(&s, 0, INT64_MAX - 10), -1);
}

static void test_schedule__cron(void **state)
{
	(void)state;
	struct schedule s = load("{\"cron\": \"30 2 * * *\"}");
	/* the anchor plays no part; always on a minute */
	assert_int_equal(schedule_next(&s, 0, at(2026, 12, 3, 19, 4, 17) + 5),
			 at(2026, 12, 4, 2, 30, 0));
	assert_int_equal(schedule_next(&s, 0, at(2026, 12, 4, 2, 30, 0)), at(2026, 12, 5, 2, 30, 0));
	/* across a month end and a leap day */
	s = load("{\"cron\": \"0 0 29 2 *\"}");
	assert_int_equal(schedule_next(&s, 0, at(2027, 1, 31, 12, 0, 0)), at(2028, 2, 29, 0, 0, 0));
	s = load("{\"cron\": \"* * * * *\"}");
	int64_t t = schedule_next(&s, 0, at(2026, 12, 3, 19, 4, 17) + 5);
	assert_int_equal(t % 60000, 0);
	assert_int_equal(t, at(2026, 12, 3, 19, 5, 0));
}

/* Catch-up: however many times passed, one run, and the next time is the
 * first after now. */
static void test_schedule__catch_up(void **state)
{
	(void)state;
	struct schedule s = load("{\"every_sec\": 60}");
	const int64_t a = at(2026, 12, 3, 10, 0, 0);
	/* down from a + 90 s to a + 1 h 5 min 30 s: 65 times passed */
	int64_t now = a + 3930000;
	int64_t next = schedule_fired(&s, a, now);
	assert_true(next > now);
	assert_int_equal(next, a + 3960000);
	/* firing on time: the next one is one period on */
	assert_int_equal(schedule_fired(&s, a, a + 60000), a + 120000);
	/* a late loop (fired 1.5 periods late): the time it was late for
	 * gives no second run */
	assert_int_equal(schedule_fired(&s, a, a + 150000), a + 180000);
	s = load("{\"cron\": \"0 * * * *\"}");
	assert_int_equal(schedule_fired(&s, 0, at(2026, 12, 3, 17, 59, 59)), at(2026, 12, 3, 18, 0, 0));
	/* down for three days: the next hour after now */
	assert_int_equal(schedule_fired(&s, 0, at(2026, 12, 6, 8, 15, 0)), at(2026, 12, 6, 9, 0, 0));
}

/* Clock steps: forward keeps next_at (fired once if passed, then the catch-up
 * rule); back never repeats a time already fired and waits for no more than
 * the next time after max(now, last_at). */
static void test_schedule__clock_step(void **state)
{
	(void)state;
	struct schedule s = load("{\"cron\": \"0 * * * *\"}");
	int64_t last = at(2026, 12, 3, 10, 0, 0), next = at(2026, 12, 3, 11, 0, 0);
	/* forward 3 h at 10:20: next_at stays, now past: due (one run) ... */
	int64_t now = at(2026, 12, 3, 13, 20, 0);
	int64_t got = schedule_stepped(&s, 0, next, last, now, 3 * 3600000LL);
	assert_int_equal(got, next);
	assert_true(got <= now);
	/* ... and after that run, the next hour after now, not 12:00 */
	assert_int_equal(schedule_fired(&s, 0, now), at(2026, 12, 3, 14, 0, 0));
	/* forward, not past the next time: nothing changes */
	assert_int_equal(schedule_stepped(&s, 0, next, last, at(2026, 12, 3, 10, 50, 0), 1800000), next);
	/* back 2 h at 10:20 (now 08:20): 09:00 and 10:00 are not run again */
	now = at(2026, 12, 3, 8, 20, 0);
	assert_int_equal(schedule_stepped(&s, 0, next, last, now, -2 * 3600000LL), at(2026, 12, 3, 11, 0, 0));
	/* back a little (10:20 -> 10:19:59): the same next time */
	assert_int_equal(schedule_stepped(&s, 0, next, last, at(2026, 12, 3, 10, 19, 59), -1000), next);
	/* back when next_at was far ahead (the clock had jumped forward by a day
	 * before: next_at tomorrow): the next time after now again */
	assert_int_equal(schedule_stepped(&s, 0, at(2026, 12, 4, 11, 0, 0), last, at(2026, 12, 3, 10, 20, 0),
					  -86400000LL),
			 next);
	/* never fired: after now */
	assert_int_equal(schedule_stepped(&s, 0, at(2026, 12, 4, 11, 0, 0), -1, at(2026, 12, 3, 10, 20, 0),
					  -86400000LL),
			 next);
	/* a time that was due before the step back, not fired yet, stays due */
	assert_int_equal(schedule_stepped(&s, 0, at(2026, 12, 3, 8, 0, 0), at(2026, 12, 3, 7, 0, 0),
					  at(2026, 12, 3, 8, 10, 0), -600000),
			 at(2026, 12, 3, 8, 0, 0));
	/* after orchfs was down (a step of unknown size): the same rule */
	assert_int_equal(schedule_stepped(&s, 0, at(2026, 12, 4, 11, 0, 0), last, at(2026, 12, 3, 10, 20, 0),
					  SCHEDULE_STEP_UNKNOWN),
			 next);
	assert_int_equal(schedule_stepped(&s, 0, next, last, at(2026, 12, 3, 13, 20, 0), SCHEDULE_STEP_UNKNOWN),
			 next);
	/* every_sec is real time: its times move with the clock, both ways;
	 * neither fired nor silenced by a step */
	s = load("{\"every_sec\": 60}");
	const int64_t a = at(2026, 12, 3, 10, 0, 0);
	assert_int_equal(schedule_stepped(&s, a, a + 600000, a + 540000, a + 60000 + 5, -485000), a + 115000);
	assert_int_equal(schedule_stepped(&s, a, a + 600000, a + 540000, a + 30000, -3600000), a - 3000000);
	assert_int_equal(schedule_stepped(&s, a, a + 600000, a + 540000, a + 4200005, 3600000), a + 4200000);
	/* a time due before a step stays due after it */
	assert_int_equal(schedule_stepped(&s, a, a + 600000, a + 540000, a + 600005 - 3600000, -3600000),
			 a + 600000 - 3600000);
	/* after orchfs was down: on its grid, after max(now, last_at); back
	 * to before the registration: the first time, a + N */
	assert_int_equal(schedule_stepped(&s, a, a + 6000000, a + 540000, a + 30000, SCHEDULE_STEP_UNKNOWN),
			 a + 600000);
	assert_int_equal(schedule_stepped(&s, a, a + 120000, -1, a - 3600000, SCHEDULE_STEP_UNKNOWN), a + 60000);
	/* at the end of time: no time left */
	assert_int_equal(schedule_stepped(&s, a, INT64_MAX - 10, -1, a, 3600000), -1);
}

/* A stored anchor is hostile input: no overflow (UBSan), no time. */
static void test_schedule__hostile_anchor(void **state)
{
	(void)state;
	struct schedule s = load("{\"every_sec\": 60}");
	assert_int_equal(schedule_next(&s, INT64_MIN + 5, at(2026, 12, 3, 10, 0, 0)), -1);
	assert_int_equal(schedule_next(&s, INT64_MAX - 5, at(2026, 12, 3, 10, 0, 0)), -1);
	assert_int_equal(schedule_fired(&s, INT64_MIN, INT64_MAX), -1);
}

/* ---- validation (core/plan.c) ---- */

static char *errs_of(const char *text, bool *scheduled)
{
	struct sbuf errs = SBUF_INIT;
	struct plan_opts opts = { 0 };
	struct plan *p = plan_parse(text, strlen(text), "t", &opts, &errs);
	if (scheduled)
		*scheduled = p && p->scheduled;
	plan_free(p);
	char *s = strdup(p ? "" : sbuf_str(&errs));
	sbuf_release(&errs);
	return s;
}

#define STEPS ",\"steps\":[{\"id\":\"a\",\"command\":\"true\"}]}"

static void expect_err(const char *text, const char *want)
{
	char *got = errs_of(text, NULL);
	if (!strstr(got, want))
		fail_msg("plan %s\n  errors: %s\n  wanted: %s", text, got, want);
	free(got);
}

static void expect_ok(const char *text, bool want_scheduled)
{
	bool sch = !want_scheduled;
	char *got = errs_of(text, &sch);
	if (*got)
		fail_msg("plan %s\n  errors: %s", text, got);
	assert_int_equal(sch, want_scheduled);
	free(got);
}

static void test_schedule__validation(void **state)
{
	(void)state;
	expect_ok("{\"schedule\":{\"every_sec\":1}" STEPS, true);
	expect_ok("{\"schedule\":{\"cron\":\"0 3 * * 1-5\",\"overlap\":\"queue\"}" STEPS, true);
	expect_ok("{\"schedule\":{\"every_sec\":31536000,\"overlap\":\"skip\"}" STEPS, true);
	expect_ok("{\"plan_id\":\"x\"" STEPS, false);
	expect_err("{\"schedule\":{\"cron\":\"61 * * * *\"}" STEPS,
		   "schedule: cron \"61 * * * *\": minute 61 out of range 0-59");
	expect_err("{\"schedule\":{\"cron\":\"0 0 30 2 *\"}" STEPS, "schedule: cron \"0 0 30 2 *\"");
	expect_err("{\"schedule\":{\"cron\":\"\"}" STEPS, "schedule: \"cron\" must be a non-empty string");
	expect_err("{\"schedule\":{\"cron\":5}" STEPS, "schedule: \"cron\" must be a non-empty string");
	expect_err("{\"schedule\":{\"every_sec\":0}" STEPS, "schedule: \"every_sec\" must be between 1 and 31536000");
	expect_err("{\"schedule\":{\"every_sec\":31536001}" STEPS,
		   "schedule: \"every_sec\" must be between 1 and 31536000");
	expect_err("{\"schedule\":{\"every_sec\":1.5}" STEPS, "schedule: \"every_sec\" must be an integer");
	expect_err("{\"schedule\":{}" STEPS, "\"schedule\": give exactly one of \"every_sec\" and \"cron\"");
	expect_err("{\"schedule\":{\"every_sec\":5,\"cron\":\"* * * * *\"}" STEPS,
		   "\"schedule\": give exactly one of \"every_sec\" and \"cron\"");
	expect_err("{\"schedule\":{\"every_sec\":5,\"overlap\":\"wait\"}" STEPS,
		   "schedule: \"overlap\" must be \"skip\" or \"queue\"");
	expect_err("{\"schedule\":{\"every_sec\":5,\"overlp\":\"skip\"}" STEPS,
		   "schedule: unknown field \"overlp\" (did you mean \"overlap\"?)");
	expect_err("{\"schedule\":\"daily\"" STEPS, "\"schedule\" must be an object");
	expect_err("{\"schedule\":{\"every_sec\":5},\"on\":[{\"event_type\":\"x\"}]" STEPS,
		   "a plan takes \"on\" (run at events) or \"schedule\" (run at times), not both");
	expect_err("{\"schedul\":{}" STEPS, "unknown field \"schedul\" (did you mean \"schedule\"?)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_schedule__load),
		cmocka_unit_test(test_schedule__every_anchor),
		cmocka_unit_test(test_schedule__cron),
		cmocka_unit_test(test_schedule__catch_up),
		cmocka_unit_test(test_schedule__clock_step),
		cmocka_unit_test(test_schedule__hostile_anchor),
		cmocka_unit_test(test_schedule__validation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
