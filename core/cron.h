/* core/cron.h — five-field cron expressions in UTC (SPEC §9 schedules):
 * parsing with messages people can act on, and the next time one fires.
 * Owns struct cron (plain bit sets, no pointers). Pure (no I/O, no engine
 * state, no time zone, no libc time functions): any thread. */
#ifndef ORCH_CRON_H
#define ORCH_CRON_H

#include <stdbool.h>
#include <stdint.h>

#include "core/util.h"

#define CRON_MAX_BYTES 256	/* longer expressions are refused */

/* "m h dom mon dow": bit N set = value N matches. dow 7 is stored as 0. */
struct cron {
	uint64_t minute;	/* bits 0-59 */
	uint32_t hour;		/* bits 0-23 */
	uint32_t dom;		/* bits 1-31 */
	uint16_t month;		/* bits 1-12 */
	uint8_t dow;		/* bits 0-6, 0 = Sunday */
	bool dom_any;		/* the day-of-month field starts with '*' */
	bool dow_any;		/* the day-of-week field starts with '*' */
};

#define CRON_INIT { 0, 0, 0, 0, 0, false, false }

/* Parse EXPR: five fields separated by blanks, each a comma-separated list of
 * "*", N, N-M, "*" /S or N-M/S; months 1-12 or JAN-DEC, days of week 0-7
 * (0 and 7 = Sunday) or SUN-SAT, names in any case. An expression that can
 * never fire ("0 0 30 2 *") is refused. Returns 0 with *C filled, or -EINVAL
 * with one line appended to ERR (no '\n'), such as
 *   cron "61 * * * *": minute 61 out of range 0-59 */
int cron_parse(struct cron *c, const char *expr, struct sbuf *err);

/* The first minute strictly after AFTER_MS (ms since the epoch, UTC) that C
 * matches, in ms since the epoch; -1 when there is none within 400 years
 * (never for an expression cron_parse() accepted) or when AFTER_MS is not
 * between 0 and 9999-12-31. A day matches when both day fields match, except
 * that when neither starts with '*' one is enough (Vixie cron). Cost: one
 * step per month skipped, per day tried in a matching month, and a couple
 * for the hour and minute: never one per minute. */
int64_t cron_next(const struct cron *c, int64_t after_ms);

#endif
