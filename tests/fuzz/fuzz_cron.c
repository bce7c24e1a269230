/* tests/fuzz/fuzz_cron.c — cron_parse() and cron_next() (core/cron.c).
 *
 * Input: 8 bytes of a start time (taken modulo year 1970..9999), then the
 * expression (up to its first NUL). A refused expression gets -EINVAL and
 * one clean line of text starting with `cron "`. An accepted one has a
 * next time after every start: strictly later, on a whole minute, matching
 * every field with the dom/dow rule (checked with gmtime_r(), apart from
 * core/), with no matching day strictly between the two (up to 3000 days
 * back) and no matching minute earlier on the start's or the answer's day;
 * asking again from just before the answer gives the answer (when that is
 * before year 10000). */
#include <errno.h>
#include <time.h>

#include "core/cron.h"
#include "tests/fuzz/fuzz.h"

#define MS_MAX 253402300799999LL

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	return 0;
}

static bool date_ok(const struct cron *c, const struct tm *tm)
{
	bool dom = c->dom >> tm->tm_mday & 1, dow = c->dow >> tm->tm_wday & 1;
	bool day = c->dom_any || c->dow_any ? dom && dow : dom || dow;

	return day && (c->month >> (tm->tm_mon + 1) & 1);
}

static bool minute_ok(const struct cron *c, int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	return date_ok(c, &tm) && (c->hour >> tm.tm_hour & 1) && (c->minute >> tm.tm_min & 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t raw = 0;
	struct cron c = CRON_INIT;
	struct sbuf err = SBUF_INIT;

	if (size < 8)
		return 0;
	memcpy(&raw, data, 8);
	size_t n = strnlen((const char *)data + 8, size - 8);
	char *expr = malloc(n + 1);
	if (!expr)
		return 0;
	memcpy(expr, data + 8, n);
	expr[n] = '\0';

	int rc = cron_parse(&c, expr, &err);
	const char *e = sbuf_str(&err);
	if (rc != 0) {
		CHECK("errs-code", rc == -EINVAL);
		CHECK("errs-text", strncmp(e, "cron \"", 6) == 0 && text_clean(e, strlen(e), false) &&
				       fuzz_utf8(e, strlen(e)));
		goto out;
	}
	CHECK("ok-quiet", *e == '\0');
	CHECK("ok-sets", c.minute && !(c.minute >> 60) && c.hour && !(c.hour >> 24) &&
				 c.dom && !(c.dom & 1) && c.month && !(c.month & 0xe001) &&
				 c.dow && !(c.dow >> 7));

	int64_t after = (int64_t)(raw % (uint64_t)(MS_MAX + 1));
	int64_t got = cron_next(&c, after);
	if (!CHECK("next-found", got > 0))
		goto out;
	CHECK("next-later", got > after && got % 60000 == 0);
	CHECK("next-matches", minute_ok(&c, got));
	/* (cron_next() takes starts up to 9999-12-31 only, though it may answer later) */
	CHECK("next-again", got - 1 > MS_MAX || cron_next(&c, got - 1) == got);

	/* nothing earlier: the days between, then the minutes of the two ends */
	int64_t day0 = after / 86400000, day1 = got / 86400000;
	for (int64_t d = day1 - 1; d > day0 && d >= day1 - 3000; d--) {
		time_t t = (time_t)(d * 86400);
		struct tm tm;
		gmtime_r(&t, &tm);
		if (!CHECK("next-first-day", !date_ok(&c, &tm)))
			break;
	}
	int64_t from = day1 > day0 ? day1 * 86400000 : (after / 60000 + 1) * 60000;
	for (int64_t m = from; m < got; m += 60000)
		if (!CHECK("next-first-minute", !minute_ok(&c, m)))
			break;
	if (day1 > day0)
		for (int64_t m = (after / 60000 + 1) * 60000; m < (day0 + 1) * 86400000; m += 60000)
			if (!CHECK("next-first-minute", !minute_ok(&c, m)))
				break;
out:
	sbuf_release(&err);
	free(expr);
	return 0;
}
