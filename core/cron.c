/* core/cron.c — five-field cron expressions in UTC: parsing into bit sets and
 * the next matching minute, found by skipping whole months, days and hours
 * that cannot match (never one step per minute). Dates are computed with
 * plain integer arithmetic on the proleptic Gregorian calendar (days since
 * 1970-01-01), so no time zone or libc time state is involved. */
#include "core/cron.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define SHOW_MAX 80		/* bytes of the expression quoted in a message */
#define SEARCH_YEARS 400	/* the Gregorian calendar repeats every 400 years */
#define MS_MAX 253402300799999LL	/* 9999-12-31T23:59:59.999Z */

static const char *const month_abbr[] = { "JAN", "FEB", "MAR", "APR", "MAY", "JUN",
					  "JUL", "AUG", "SEP", "OCT", "NOV", "DEC" };
static const char *const month_full[] = { "January", "February", "March", "April",
					  "May", "June", "July", "August", "September",
					  "October", "November", "December" };
static const char *const dow_abbr[] = { "SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT" };

struct field {
	const char *name;
	int lo, hi;
	const char *const *names;	/* NULL: numbers only */
	int nnames, name_base;		/* names[i] is the value name_base + i */
	const char *what;		/* "a number or a month name" */
};

static const struct field fields[5] = {
	{ "minute", 0, 59, NULL, 0, 0, "a number" },
	{ "hour", 0, 23, NULL, 0, 0, "a number" },
	{ "day-of-month", 1, 31, NULL, 0, 0, "a number" },
	{ "month", 1, 12, month_abbr, 12, 1, "a number or a month name (JAN-DEC)" },
	{ "day-of-week", 0, 7, dow_abbr, 7, 0, "a number or a day name (SUN-SAT)" },
};

struct pctx {
	const char *expr;
	struct sbuf *err;
};

static int __attribute__((format(printf, 2, 3))) fail(struct pctx *p, const char *fmt, ...)
{
	char b[SHOW_MAX + 1];
	va_list ap;

	sbuf_addf(p->err, "cron \"%s\": ", text_show(b, sizeof(b), p->expr, strlen(p->expr)));
	va_start(ap, fmt);
	sbuf_vaddf(p->err, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static const char *show(char b[SHOW_MAX + 1], const char *s, size_t n)
{
	return text_show(b, SHOW_MAX + 1, s, n);
}

/* S (N bytes) as a value of F: 0 with *OUT set (possibly out of range: the
 * caller checks), 1 when it is a number too long to hold, -1 when it is
 * neither a number nor a name. */
static int atom(const struct field *f, const char *s, size_t n, int *out)
{
	if (n == 0)
		return -1;
	if (s[0] >= '0' && s[0] <= '9') {
		long v = 0;
		for (size_t i = 0; i < n; i++) {
			if (s[i] < '0' || s[i] > '9')
				return -1;
			if (v < 100000)
				v = v * 10 + (s[i] - '0');
		}
		if (v >= 100000)
			return 1;
		*out = (int)v;
		return 0;
	}
	for (int i = 0; i < f->nnames; i++) {
		if (n == 3 && strncasecmp(s, f->names[i], 3) == 0) {
			*out = f->name_base + i;
			return 0;
		}
	}
	return -1;
}

/* One value of a range: 0 with *OUT in F's range, or -EINVAL reported. */
static int value(struct pctx *p, const struct field *f, const char *s, size_t n, int *out)
{
	char b[SHOW_MAX + 1];
	int r = atom(f, s, n, out);

	if (r < 0)
		return fail(p, "%s \"%s\" is not %s", f->name, show(b, s, n), f->what);
	if (r > 0 || *out < f->lo || *out > f->hi)
		return fail(p, "%s %s out of range %d-%d", f->name, show(b, s, n), f->lo, f->hi);
	return 0;
}

/* One list element S (N bytes) of field F: its values set in *BITS. */
static int element(struct pctx *p, const struct field *f, const char *s, size_t n,
		   uint64_t *bits)
{
	char b[SHOW_MAX + 1], b2[SHOW_MAX + 1], b3[SHOW_MAX + 1];
	const char *slash = memchr(s, '/', n);
	size_t bn = slash ? (size_t)(slash - s) : n;
	int lo, hi, step = 1, r;
	bool single = false;

	if (n == 0)
		return fail(p, "%s has an empty list element", f->name);
	if (bn == 1 && s[0] == '*') {
		lo = f->lo;
		hi = f->hi;
	} else {
		const char *dash = memchr(s, '-', bn);
		size_t an = dash ? (size_t)(dash - s) : bn;

		if (dash && (an == 0 || an + 1 == bn || memchr(dash + 1, '-', bn - an - 1)))
			return fail(p, "%s range \"%s\" needs a start and an end (such as 1-5)",
				    f->name, show(b, s, bn));
		if ((r = value(p, f, s, an, &lo)) < 0)
			return r;
		if (dash) {
			const char *e = dash + 1;
			size_t en = bn - an - 1;

			if ((r = value(p, f, e, en, &hi)) < 0)
				return r;
			if (lo > hi)
				return fail(p, "%s range %s goes backwards (write %d-%d,%d-%d)",
					    f->name, show(b, s, bn), lo, f->hi, f->lo, hi);
		} else {
			hi = lo;
			single = true;
		}
	}
	if (slash) {
		const char *t = slash + 1;
		size_t tn = n - bn - 1;
		int max = f->hi - f->lo;

		r = tn ? atom(&fields[0], t, tn, &step) : -1;
		if (r < 0)
			return fail(p, "%s step \"%s\" is not a number", f->name, show(b, t, tn));
		if (r > 0 || step < 1 || step > max)
			return fail(p, "%s step %s out of range 1-%d", f->name, show(b, t, tn), max);
		if (single)
			return fail(p, "%s \"%s\": a step needs a range or \"*\" (write %s-%d/%s)",
				    f->name, show(b, s, n), show(b2, s, bn), f->hi,
				    show(b3, t, tn));
	}
	for (int v = lo; v <= hi; v += step)
		*bits |= 1ULL << (f == &fields[4] && v == 7 ? 0 : v);
	return 0;
}

/* Field F's text S (N bytes, no blanks) into *BITS. */
static int field(struct pctx *p, const struct field *f, const char *s, size_t n, uint64_t *bits)
{
	const char *end = s + n;

	*bits = 0;
	for (;;) {
		const char *comma = memchr(s, ',', (size_t)(end - s));
		const char *e = comma ? comma : end;
		int r = element(p, f, s, (size_t)(e - s), bits);

		if (r < 0)
			return r;
		if (!comma)
			return 0;
		s = comma + 1;
	}
}

static bool blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* The days a month can have, counting Feb 29. */
static int month_max_days(int m)
{
	return m == 2 ? 29 : (m == 4 || m == 6 || m == 9 || m == 11) ? 30 : 31;
}

/* When the day-of-week field allows every day of some matching month and the
 * day-of-month field is a plain list, the expression fires only if one of its
 * days exists in one of its months. In every other case it fires: a '*'
 * day-of-month contains day 1, and a day-of-week list alone (or OR'ed with
 * the days of month) names weekdays every month has. Over the 400-year
 * Gregorian cycle each existing date falls on every weekday, so a '*'-prefixed
 * day-of-week restricted to some weekdays cannot make it impossible either. */
static int check_fires(struct pctx *p, const struct cron *c)
{
	char months[256];
	size_t len = 0;
	int first = 0, n = 0;

	if (c->dom_any || !c->dow_any)
		return 0;
	for (int m = 1; m <= 12; m++) {
		if (!(c->month & (1u << m)))
			continue;
		for (int d = 1; d <= month_max_days(m); d++)
			if (c->dom & (1u << d))
				return 0;
	}
	while (!(c->dom & (1u << first)))
		first++;
	for (int m = 1; m <= 12; m++)
		if (c->month & (1u << m))
			n++;
	for (int m = 1, i = 0; m <= 12; m++) {
		if (!(c->month & (1u << m)))
			continue;
		i++;
		len += (size_t)snprintf(months + len, sizeof(months) - len, "%s%s",
					i == 1 ? "" : i == n ? " and " : ", ", month_full[m - 1]);
	}
	return fail(p, "never fires: %s %s no day %d", months, n == 1 ? "has" : "have", first);
}

int cron_parse(struct cron *c, const char *expr, struct sbuf *err)
{
	struct pctx p = { expr, err };
	const char *s = expr, *start[5];
	size_t len[5];
	uint64_t bits[5];
	int n = 0, r;

	if (strlen(expr) > CRON_MAX_BYTES)
		return fail(&p, "longer than %d bytes", CRON_MAX_BYTES);
	for (;;) {
		while (blank(*s))
			s++;
		if (!*s)
			break;
		if (n < 5)
			start[n] = s;
		while (*s && !blank(*s))
			s++;
		if (n < 5)
			len[n] = (size_t)(s - start[n]);
		n++;
	}
	if (n != 5)
		return fail(&p, "expected 5 fields (minute hour day-of-month month day-of-week), found %d",
			    n);
	for (int i = 0; i < 5; i++)
		if ((r = field(&p, &fields[i], start[i], len[i], &bits[i])) < 0)
			return r;

	struct cron t = {
		.minute = bits[0],
		.hour = (uint32_t)bits[1],
		.dom = (uint32_t)bits[2],
		.month = (uint16_t)bits[3],
		.dow = (uint8_t)bits[4],
		.dom_any = start[2][0] == '*',
		.dow_any = start[4][0] == '*',
	};
	if ((r = check_fires(&p, &t)) < 0)
		return r;
	*c = t;
	return 0;
}

/* Days since 1970-01-01 of Y-M-D, and back (Howard Hinnant's algorithms). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static bool leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int64_t y, int m)
{
	return m == 2 ? (leap(y) ? 29 : 28) : month_max_days(m);
}

/* The smallest value >= FROM whose bit is set in MASK, or -1. */
static int next_bit(uint64_t mask, int from)
{
	if (from > 63)
		return -1;
	mask >>= from;
	return mask ? from + __builtin_ctzll(mask) : -1;
}

static bool day_ok(const struct cron *c, int64_t y, int m, int d)
{
	int wd = (int)((days_from_civil(y, m, d) % 7 + 11) % 7);	/* 1970-01-01: Thursday */
	bool dom = c->dom & (1u << d), dow = c->dow & (1u << wd);

	return c->dom_any || c->dow_any ? dom && dow : dom || dow;
}

int64_t cron_next(const struct cron *c, int64_t after_ms)
{
	int64_t y, y0, mins;
	int mo, d, h, mi;

	if (after_ms < 0 || after_ms > MS_MAX)
		return -1;
	mins = after_ms / 60000 + 1;
	civil_from_days(mins / 1440, &y, &mo, &d);
	h = (int)(mins % 1440 / 60);
	mi = (int)(mins % 60);
	y0 = y;
	while (y - y0 <= SEARCH_YEARS) {
		int m2 = next_bit(c->month, mo);

		if (m2 < 0 || m2 > 12) {
			y++, mo = 1, d = 1, h = 0, mi = 0;
			continue;
		}
		if (m2 != mo)
			mo = m2, d = 1, h = 0, mi = 0;
		int md = month_days(y, mo);
		while (d <= md && !day_ok(c, y, mo, d))
			d++, h = 0, mi = 0;
		if (d > md) {
			d = 1, h = 0, mi = 0;
			if (++mo > 12)
				mo = 1, y++;
			continue;
		}
		int h2 = next_bit(c->hour, h);
		if (h2 < 0 || h2 > 23) {
			d++, h = 0, mi = 0;
			continue;
		}
		if (h2 != h)
			h = h2, mi = 0;
		int m3 = next_bit(c->minute, mi);
		if (m3 < 0 || m3 > 59) {
			mi = 0;
			if (++h > 23)
				h = 0, d++;
			continue;
		}
		return ((days_from_civil(y, mo, d) * 1440) + h * 60 + m3) * 60000;
	}
	return -1;
}
