/* tests/test_cron.c — five-field cron expressions (SPEC §9 schedules): the
 * bit sets parsed from ranges, lists, steps and names, next times across
 * month ends, leap days, year rollovers and the dom/dow rule, every parse
 * error message, and a randomized cross-check (fixed seed) against a naive
 * minute-by-minute reference that uses gmtime_r(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/cron.h"

/* helpers */

/* ms since the epoch of Y-MO-D H:MI:00 UTC */
static int64_t at(int y, int mo, int d, int h, int mi)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
			 .tm_hour = h, .tm_min = mi };
	return (int64_t)timegm(&tm) * 1000;
}

static struct cron parse_ok(const char *expr)
{
	struct cron c = CRON_INIT;
	struct sbuf err = SBUF_INIT;

	if (cron_parse(&c, expr, &err) != 0)
		fail_msg("%s: %s", expr, sbuf_str(&err));
	assert_string_equal(sbuf_str(&err), "");
	sbuf_release(&err);
	return c;
}

static void expect_err(const char *expr, const char *msg)
{
	struct cron c = CRON_INIT;
	struct sbuf err = SBUF_INIT;

	assert_int_equal(cron_parse(&c, expr, &err), -EINVAL);
	assert_string_equal(sbuf_str(&err), msg);
	assert_true(c.minute == 0 && c.month == 0);	/* untouched */
	sbuf_release(&err);
}

/* The next time of EXPR after AFTER must be WANT. */
static void expect_next(const char *expr, int64_t after, int64_t want)
{
	struct cron c = parse_ok(expr);
	int64_t got = cron_next(&c, after);

	if (got != want) {
		time_t a = (time_t)(after / 1000), g = (time_t)(got / 1000), w = (time_t)(want / 1000);
		char sa[32], sg[32], sw[32];
		strftime(sa, sizeof(sa), "%F %T", gmtime(&a));
		strftime(sg, sizeof(sg), "%F %T", gmtime(&g));
		strftime(sw, sizeof(sw), "%F %T", gmtime(&w));
		fail_msg("\"%s\" after %s: got %s (%lld), want %s", expr, sa, sg, (long long)got, sw);
	}
}

static uint64_t bits(const int *v, size_t n)
{
	uint64_t b = 0;
	for (size_t i = 0; i < n; i++)
		b |= 1ULL << v[i];
	return b;
}
#define BITS(...) bits((const int[]){ __VA_ARGS__ }, sizeof((const int[]){ __VA_ARGS__ }) / sizeof(int))

/* cases */

static void test_cron__fields(void **state)
{
	(void)state;
	struct cron c = parse_ok("* * * * *");
	assert_true(c.minute == (1ULL << 60) - 1);
	assert_true(c.hour == (1u << 24) - 1);
	assert_true(c.dom == 0xfffffffeu);
	assert_true(c.month == 0x1ffe);
	assert_true(c.dow == 0x7f);
	assert_true(c.dom_any && c.dow_any);

	c = parse_ok("1-30/5 */6 1,15,31 2-4,12 1-5");
	assert_true(c.minute == BITS(1, 6, 11, 16, 21, 26));
	assert_true(c.hour == BITS(0, 6, 12, 18));
	assert_true(c.dom == BITS(1, 15, 31));
	assert_true(c.month == BITS(2, 3, 4, 12));
	assert_true(c.dow == BITS(1, 2, 3, 4, 5));
	assert_false(c.dom_any || c.dow_any);

	/* names in any case, 7 = Sunday, blanks around and between */
	c = parse_ok("\t0  0 * jan,Jul-SEP mon-FRI ");
	assert_true(c.month == BITS(1, 7, 8, 9));
	assert_true(c.dow == BITS(1, 2, 3, 4, 5));
	c = parse_ok("0 0 * * 7");
	assert_true(c.dow == BITS(0));
	c = parse_ok("0 0 * * 5-7");
	assert_true(c.dow == BITS(0, 5, 6));
	c = parse_ok("0 0 * * SUN,SAT");
	assert_true(c.dow == BITS(0, 6));
	c = parse_ok("59 23 31 12 0");
	assert_true(c.minute == BITS(59) && c.hour == BITS(23) && c.dom == BITS(31));
	/* a '*'-prefixed step counts as '*' for the dom/dow rule (Vixie) */
	c = parse_ok("0 0 */2 * */3");
	assert_true(c.dom_any && c.dow_any);
	assert_true(c.dow == BITS(0, 3, 6));
	c = parse_ok("*/59 * * * *");
	assert_true(c.minute == BITS(0, 59));
}

static void test_cron__next_basic(void **state)
{
	(void)state;
	/* strictly after: on a minute boundary and inside a minute */
	expect_next("* * * * *", at(2026, 5, 1, 12, 0), at(2026, 5, 1, 12, 1));
	expect_next("* * * * *", at(2026, 5, 1, 12, 0) + 30000, at(2026, 5, 1, 12, 1));
	expect_next("* * * * *", at(2026, 5, 1, 12, 0) - 1, at(2026, 5, 1, 12, 0));
	expect_next("*/15 * * * *", at(2026, 5, 1, 12, 0), at(2026, 5, 1, 12, 15));
	expect_next("*/15 * * * *", at(2026, 5, 1, 12, 50), at(2026, 5, 1, 13, 0));
	expect_next("1-30/5 * * * *", at(2026, 5, 1, 12, 26), at(2026, 5, 1, 13, 1));
	expect_next("0,30 9-17 * * *", at(2026, 5, 1, 17, 30), at(2026, 5, 2, 9, 0));
	expect_next("0 3 * * *", at(2026, 5, 1, 3, 0), at(2026, 5, 2, 3, 0));
	/* the end of the day, of the month, of the year */
	expect_next("59 23 * * *", at(2026, 5, 1, 23, 59), at(2026, 5, 2, 23, 59));
	expect_next("0 0 * * *", at(2026, 4, 30, 23, 59), at(2026, 5, 1, 0, 0));
	expect_next("0 0 1 1 *", at(2026, 12, 31, 23, 59), at(2027, 1, 1, 0, 0));
	expect_next("* * * * *", at(2026, 12, 31, 23, 59), at(2027, 1, 1, 0, 0));
	expect_next("30 12 * 12 *", at(2026, 12, 31, 12, 30), at(2027, 12, 1, 12, 30));
	expect_next("0 0 * JAN MON", at(2026, 12, 1, 0, 0), at(2027, 1, 4, 0, 0));
	/* the epoch itself */
	expect_next("0 0 * * *", 0, at(1970, 1, 2, 0, 0));
}

static void test_cron__month_ends(void **state)
{
	(void)state;
	/* day 31 skips the 30-day months and February */
	expect_next("0 0 31 * *", at(2027, 3, 31, 0, 0), at(2027, 5, 31, 0, 0));
	expect_next("0 0 31 * *", at(2027, 1, 31, 0, 0), at(2027, 3, 31, 0, 0));
	expect_next("0 0 31 4,5,6 *", at(2027, 1, 1, 0, 0), at(2027, 5, 31, 0, 0));
	expect_next("0 0 30 * *", at(2027, 1, 30, 0, 0), at(2027, 3, 30, 0, 0));
	expect_next("0 0 29,30,31 * *", at(2027, 1, 31, 0, 0), at(2027, 3, 29, 0, 0));
	expect_next("0 12 28-31 2 *", at(2027, 2, 28, 12, 0), at(2028, 2, 28, 12, 0));
}

static void test_cron__leap_days(void **state)
{
	(void)state;
	expect_next("0 0 29 2 *", at(2026, 3, 1, 0, 0), at(2028, 2, 29, 0, 0));
	expect_next("0 0 29 2 *", at(2028, 2, 28, 23, 59), at(2028, 2, 29, 0, 0));
	expect_next("0 0 29 2 *", at(2028, 2, 29, 0, 0), at(2032, 2, 29, 0, 0));
	expect_next("15 6 * 2 *", at(2028, 2, 28, 6, 15), at(2028, 2, 29, 6, 15));
	expect_next("15 6 * 2 *", at(2027, 2, 28, 6, 15), at(2028, 2, 1, 6, 15));
	/* 2100 is not a leap year, 2000 was */
	expect_next("0 0 29 2 *", at(2096, 3, 1, 0, 0), at(2104, 2, 29, 0, 0));
	expect_next("0 0 29 2 *", at(1996, 3, 1, 0, 0), at(2000, 2, 29, 0, 0));
	/* Feb 29 on a Tuesday with the AND rule ('*'-prefixed dow): 2028 */
	expect_next("0 0 29 2 */2", at(2024, 3, 1, 0, 0), at(2028, 2, 29, 0, 0));
}

static void test_cron__dom_dow(void **state)
{
	(void)state;
	/* both restricted: either matches (Friday 2026-11-06 before the 13th) */
	expect_next("0 0 13 * FRI", at(2026, 11, 1, 0, 0), at(2026, 11, 6, 0, 0));
	expect_next("0 0 13 * FRI", at(2026, 11, 12, 0, 0), at(2026, 11, 13, 0, 0));
	expect_next("0 0 13 * FRI", at(2026, 11, 13, 0, 0), at(2026, 11, 20, 0, 0));
	expect_next("0 0 1 * 1", at(2026, 6, 1, 0, 0), at(2026, 6, 8, 0, 0));
	/* one is '*': only the other one counts */
	expect_next("0 0 * * 1", at(2026, 6, 1, 0, 0), at(2026, 6, 8, 0, 0));
	expect_next("0 0 13 * *", at(2026, 11, 1, 0, 0), at(2026, 11, 13, 0, 0));
	/* '*'-prefixed steps count as '*': both must match (Vixie) */
	expect_next("0 0 */2 * MON", at(2026, 6, 1, 0, 0), at(2026, 6, 15, 0, 0));
	expect_next("0 0 13 * */7", at(2026, 11, 1, 0, 0), at(2026, 12, 13, 0, 0));
	/* Sunday as 0 and as 7 */
	expect_next("0 0 * * 0", at(2026, 6, 1, 0, 0), at(2026, 6, 7, 0, 0));
	expect_next("0 0 * * 7", at(2026, 6, 1, 0, 0), at(2026, 6, 7, 0, 0));
	/* a 13th on a Friday or a Sunday (AND with a '*'-step dow): Friday
	 * 2026-03-13, then Sunday 2026-09-13, then Friday 2026-11-13 */
	expect_next("0 0 13 * */5", at(2026, 3, 12, 0, 0), at(2026, 3, 13, 0, 0));
	expect_next("0 0 13 * */5", at(2026, 3, 13, 0, 0), at(2026, 9, 13, 0, 0));
	expect_next("0 0 13 * */5", at(2026, 9, 13, 0, 0), at(2026, 11, 13, 0, 0));
}

static void test_cron__never(void **state)
{
	(void)state;
	struct cron c = CRON_INIT;

	expect_err("0 0 30 2 *", "cron \"0 0 30 2 *\": never fires: February has no day 30");
	expect_err("0 0 30,31 FEB *", "cron \"0 0 30,31 FEB *\": never fires: February has no day 30");
	expect_err("0 0 31 4,6 *", "cron \"0 0 31 4,6 *\": never fires: April and June have no day 31");
	expect_err("0 0 31 2,4,9-11/2 *",
		   "cron \"0 0 31 2,4,9-11/2 *\": never fires: February, April, September and November have no day 31");
	/* with a '*'-prefixed dow it is still AND, so still never */
	expect_err("0 0 31 2 */2", "cron \"0 0 31 2 */2\": never fires: February has no day 31");
	/* OR with a dow list fires on those weekdays */
	expect_next("0 0 30 2 MON", at(2026, 1, 1, 0, 0), at(2026, 2, 2, 0, 0));
	/* an expression that cannot match (not from cron_parse): -1, quickly */
	assert_int_equal(cron_next(&c, at(2026, 1, 1, 0, 0)), -1);
	c = parse_ok("0 0 31 * *");
	c.month = 1u << 2;
	assert_int_equal(cron_next(&c, at(2026, 1, 1, 0, 0)), -1);
	/* times out of range */
	c = parse_ok("* * * * *");
	assert_int_equal(cron_next(&c, -1), -1);
	assert_int_equal(cron_next(&c, INT64_MAX), -1);
	assert_true(cron_next(&c, 253402300799999LL - 120000) > 0);
}

static void test_cron__errors(void **state)
{
	(void)state;
	char big[CRON_MAX_BYTES + 2];

	expect_err("61 * * * *", "cron \"61 * * * *\": minute 61 out of range 0-59");
	expect_err("* 24 * * *", "cron \"* 24 * * *\": hour 24 out of range 0-23");
	expect_err("* * 0 * *", "cron \"* * 0 * *\": day-of-month 0 out of range 1-31");
	expect_err("* * 32 * *", "cron \"* * 32 * *\": day-of-month 32 out of range 1-31");
	expect_err("* * * 13 *", "cron \"* * * 13 *\": month 13 out of range 1-12");
	expect_err("* * * 0 *", "cron \"* * * 0 *\": month 0 out of range 1-12");
	expect_err("* * * * 8", "cron \"* * * * 8\": day-of-week 8 out of range 0-7");
	expect_err("99999999999999999999 * * * *",
		   "cron \"99999999999999999999 * * * *\": minute 99999999999999999999 out of range 0-59");
	expect_err("1-60 * * * *", "cron \"1-60 * * * *\": minute 60 out of range 0-59");
	expect_err("x * * * *", "cron \"x * * * *\": minute \"x\" is not a number");
	expect_err("5 MON * * *", "cron \"5 MON * * *\": hour \"MON\" is not a number");
	expect_err("* * * FOO *",
		   "cron \"* * * FOO *\": month \"FOO\" is not a number or a month name (JAN-DEC)");
	expect_err("* * * MON *",
		   "cron \"* * * MON *\": month \"MON\" is not a number or a month name (JAN-DEC)");
	expect_err("* * * * JAN",
		   "cron \"* * * * JAN\": day-of-week \"JAN\" is not a number or a day name (SUN-SAT)");
	expect_err("* * * * MONDAY",
		   "cron \"* * * * MONDAY\": day-of-week \"MONDAY\" is not a number or a day name (SUN-SAT)");
	expect_err("1- * * * *",
		   "cron \"1- * * * *\": minute range \"1-\" needs a start and an end (such as 1-5)");
	expect_err("-1 * * * *",
		   "cron \"-1 * * * *\": minute range \"-1\" needs a start and an end (such as 1-5)");
	expect_err("- * * * *",
		   "cron \"- * * * *\": minute range \"-\" needs a start and an end (such as 1-5)");
	expect_err("1-2-3/2 * * * *",
		   "cron \"1-2-3/2 * * * *\": minute range \"1-2-3\" needs a start and an end (such as 1-5)");
	expect_err("* * * JAN-X *",
		   "cron \"* * * JAN-X *\": month \"X\" is not a number or a month name (JAN-DEC)");
	expect_err("*-5 * * * *", "cron \"*-5 * * * *\": minute \"*\" is not a number");
	expect_err("** * * * *", "cron \"** * * * *\": minute \"**\" is not a number");
	expect_err("1x * * * *", "cron \"1x * * * *\": minute \"1x\" is not a number");
	expect_err("1,,2 * * * *", "cron \"1,,2 * * * *\": minute has an empty list element");
	expect_err("1, * * * *", "cron \"1, * * * *\": minute has an empty list element");
	expect_err(",1 * * * *", "cron \",1 * * * *\": minute has an empty list element");
	expect_err("* 22-2 * * *", "cron \"* 22-2 * * *\": hour range 22-2 goes backwards (write 22-23,0-2)");
	expect_err("* * * * FRI-MON",
		   "cron \"* * * * FRI-MON\": day-of-week range FRI-MON goes backwards (write 5-7,0-1)");
	expect_err("*/0 * * * *", "cron \"*/0 * * * *\": minute step 0 out of range 1-59");
	expect_err("*/60 * * * *", "cron \"*/60 * * * *\": minute step 60 out of range 1-59");
	expect_err("* */24 * * *", "cron \"* */24 * * *\": hour step 24 out of range 1-23");
	expect_err("* * * */12 *", "cron \"* * * */12 *\": month step 12 out of range 1-11");
	expect_err("* * * * */8", "cron \"* * * * */8\": day-of-week step 8 out of range 1-7");
	expect_err("*/ * * * *", "cron \"*/ * * * *\": minute step \"\" is not a number");
	expect_err("*/x * * * *", "cron \"*/x * * * *\": minute step \"x\" is not a number");
	expect_err("*/1/2 * * * *", "cron \"*/1/2 * * * *\": minute step \"1/2\" is not a number");
	expect_err("5/10 * * * *",
		   "cron \"5/10 * * * *\": minute \"5/10\": a step needs a range or \"*\" (write 5-59/10)");
	expect_err("* * * MAR/2 *",
		   "cron \"* * * MAR/2 *\": month \"MAR/2\": a step needs a range or \"*\" (write MAR-12/2)");
	/* the number of fields */
	expect_err("", "cron \"\": expected 5 fields (minute hour day-of-month month day-of-week), found 0");
	expect_err(" \t ", "cron \" ? \": expected 5 fields (minute hour day-of-month month day-of-week), found 0");
	expect_err("* * * *", "cron \"* * * *\": expected 5 fields (minute hour day-of-month month day-of-week), found 4");
	expect_err("0 0 * * * 2026",
		   "cron \"0 0 * * * 2026\": expected 5 fields (minute hour day-of-month month day-of-week), found 6");
	expect_err("@daily", "cron \"@daily\": expected 5 fields (minute hour day-of-month month day-of-week), found 1");
	/* control characters are shown as '?', one line */
	expect_err("*\n* * * *", "cron \"*?* * * *\": expected 5 fields (minute hour day-of-month month day-of-week), found 4");
	expect_err("1\n * * * *", "cron \"1? * * * *\": minute \"1?\" is not a number");
	/* too long */
	memset(big, ' ', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "* * * * *", 9);
	struct cron c = CRON_INIT;
	struct sbuf err = SBUF_INIT;
	assert_int_equal(cron_parse(&c, big, &err), -EINVAL);
	assert_non_null(strstr(sbuf_str(&err), "\": longer than 256 bytes"));
	assert_null(strchr(sbuf_str(&err), '\n'));
	sbuf_release(&err);
	big[CRON_MAX_BYTES] = '\0';
	parse_ok(big);
}

/* The randomized cross-check: random expressions built together with their
 * sets, and a reference that walks minute by minute with gmtime_r(). */

struct ref {
	char text[256];
	uint64_t set[5];	/* dow: 0-6, 7 folded into 0 */
	bool dom_any, dow_any;
	bool sparse;		/* days 28-31 of short months only: leap days, "never" */
};

static const int lo_of[5] = { 0, 0, 1, 1, 0 }, hi_of[5] = { 59, 23, 31, 12, 7 };

static unsigned rnd(unsigned n)
{
	return (unsigned)(random() % n);
}

static void add_bits(struct ref *r, int f, int lo, int hi, int step)
{
	for (int v = lo; v <= hi; v += step)
		r->set[f] |= 1ULL << (f == 4 && v == 7 ? 0 : v);
}

/* One random field F appended to R->text; dense fields are likelier for
 * minutes and hours so that most expressions fire within the window. */
static void gen_field(struct ref *r, int f)
{
	char *t = r->text + strlen(r->text), *start = t;
	int lo = lo_of[f], hi = hi_of[f], n = 1 + (int)rnd(3);
	unsigned kind = rnd(f >= 2 ? 6 : 5);

	if (r->sparse && (f == 2 || f == 3)) {
		static const int shortm[] = { 2, 4, 6, 9, 11 };
		for (int i = 0; i < n && i < 2; i++) {
			int v = f == 2 ? 28 + (int)rnd(4) : shortm[rnd(5)];
			t += strlen(t);
			sprintf(t, "%s%d", i ? "," : "", v);
			add_bits(r, f, v, v, 1);
		}
		goto done;
	}
	if (kind == 0 || (f >= 2 && kind >= 4)) {
		strcpy(t, "*");
		add_bits(r, f, lo, hi, 1);
		goto done;
	}
	if (kind == 1) {
		int s = 1 + (int)rnd((unsigned)(hi - lo));
		sprintf(t, "*/%d", s);
		add_bits(r, f, lo, hi, s);
		goto done;
	}
	for (int i = 0; i < n; i++) {
		int a = lo + (int)rnd((unsigned)(hi - lo + 1));
		int b = a + (int)rnd((unsigned)(hi - a + 1));
		t += strlen(t);
		if (i)
			*t++ = ',';
		if (kind == 2) {
			sprintf(t, "%d", a);
			add_bits(r, f, a, a, 1);
		} else if (kind == 3 && b > a) {
			int s = 1 + (int)rnd((unsigned)(hi - lo));
			sprintf(t, "%d-%d/%d", a, b, s);
			add_bits(r, f, a, b, s);
		} else {
			sprintf(t, "%d-%d", a, b);
			add_bits(r, f, a, b, 1);
		}
	}
done:
	if (f == 2)
		r->dom_any = start[0] == '*';
	if (f == 4)
		r->dow_any = start[0] == '*';
	strcat(r->text, f < 4 ? " " : "");
}

static bool ref_fires(const struct ref *r)
{
	if (r->dom_any || !r->dow_any)
		return true;
	for (int m = 1; m <= 12; m++)
		for (int d = 1; d <= (m == 2 ? 29 : m == 4 || m == 6 || m == 9 || m == 11 ? 30 : 31); d++)
			if ((r->set[3] >> m & 1) && (r->set[2] >> d & 1))
				return true;
	return false;
}

/* The first minute after AFTER (ms) that R matches before AFTER + LIMIT
 * minutes, or -1. Minute by minute, except that a day whose date does not
 * match is passed over whole (the walk would take minutes under ASan). */
static int64_t ref_next(const struct ref *r, int64_t after, int64_t limit)
{
	int64_t t = (after / 60000 + 1) * 60, end = t + limit * 60;	/* seconds */

	while (t < end) {
		time_t tt = (time_t)t;
		struct tm tm;
		gmtime_r(&tt, &tm);
		bool dom = r->set[2] >> tm.tm_mday & 1, dow = r->set[4] >> tm.tm_wday & 1;
		bool day = r->dom_any || r->dow_any ? dom && dow : dom || dow;
		if (!day || !(r->set[3] >> (tm.tm_mon + 1) & 1)) {
			t += 86400 - (tm.tm_hour * 3600 + tm.tm_min * 60);
			continue;
		}
		if ((r->set[1] >> tm.tm_hour & 1) && (r->set[0] >> tm.tm_min & 1))
			return t * 1000;
		t += 60;
	}
	return -1;
}

static void test_cron__random(void **state)
{
	(void)state;
	/* the window: 5 years, so that sparse months and leap days are met */
	const int64_t window = (5 * 365 + 2) * 1440LL;
	int found = 0, never = 0, either = 0, leapday = 0, beyond = 0;

	srandom(15);
	for (int i = 0; i < 1000; i++) {
		struct ref r;
		memset(&r, 0, sizeof(r));
		r.sparse = rnd(4) == 0;
		for (int f = 0; f < 5; f++)
			gen_field(&r, f);

		struct cron c = CRON_INIT;
		struct sbuf err = SBUF_INIT;
		int rc = cron_parse(&c, r.text, &err);
		if (!ref_fires(&r)) {
			assert_int_equal(rc, -EINVAL);
			assert_non_null(strstr(sbuf_str(&err), "never fires"));
			sbuf_release(&err);
			never++;
			continue;
		}
		if (rc != 0)
			fail_msg("%s: %s", r.text, sbuf_str(&err));
		sbuf_release(&err);
		assert_true(c.minute == r.set[0] && c.hour == r.set[1] && c.dom == r.set[2] &&
			    c.month == r.set[3] && c.dow == r.set[4]);
		assert_true(c.dom_any == r.dom_any && c.dow_any == r.dow_any);
		either += !c.dom_any && !c.dow_any;

		/* a start from 2023 to 2031, at any millisecond */
		int64_t t = at(2023, 1, 1, 0, 0) + (int64_t)rnd(9 * 365) * 86400000 +
			    (int64_t)rnd(86400000);
		/* a one-day window, where most answers lie beyond it */
		int64_t soon = ref_next(&r, t, 1440), next = cron_next(&c, t);
		if (soon < 0) {
			assert_true(next > (t / 60000 + 1440) * 60000);
			beyond++;
		} else {
			assert_true(next == soon);
		}
		for (int k = 0; k < 3; k++) {
			int64_t want = ref_next(&r, t, window), got = cron_next(&c, t);
			if (want >= 0) {
				if (got != want)
					fail_msg("\"%s\" after %lld: got %lld, want %lld", r.text,
						 (long long)t, (long long)got, (long long)want);
				found++;
				time_t w = (time_t)(want / 1000);
				struct tm tm;
				gmtime_r(&w, &tm);
				leapday += tm.tm_mon == 1 && tm.tm_mday == 29;
				t = want;	/* then the one after it */
			} else {
				/* none in the window: cron_next's answer lies beyond it */
				assert_true(got == -1 || got > (t / 60000 + window) * 60000);
				break;
			}
		}
	}
	/* the generator met every kind of case */
	if (found < 2000 || never < 5 || either < 100 || leapday < 5 || beyond < 50)
		fail_msg("found %d never %d either %d leapday %d beyond %d", found, never, either,
			 leapday, beyond);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cron__fields),
		cmocka_unit_test(test_cron__next_basic),
		cmocka_unit_test(test_cron__month_ends),
		cmocka_unit_test(test_cron__leap_days),
		cmocka_unit_test(test_cron__dom_dow),
		cmocka_unit_test(test_cron__never),
		cmocka_unit_test(test_cron__errors),
		cmocka_unit_test(test_cron__random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
