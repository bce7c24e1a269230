/* core/schedule.h — the times of schedules (SPEC §9): a plan's "schedule"
 * object ({"every_sec": N} or {"cron": "m h dom mon dow"}, "overlap"), read
 * back from its stored JSON, and the rules that say when it fires next: at
 * registration, after it fired (catch-up), and after a step of the wall
 * clock. Pure (no I/O, no engine state, no clock read: "now" is an
 * argument): any thread. core/plan.c validates "schedule" with messages;
 * this module reads a valid one. Times are wall-clock ms since the epoch. */
#ifndef ORCH_SCHEDULE_H
#define ORCH_SCHEDULE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/cron.h"

#define SCHEDULE_EVERY_MAX_SEC 31536000	/* every_sec: 1 .. a year */

enum schedule_overlap {
	SCHEDULE_SKIP,	/* a time that finds the last run unfinished is skipped */
	SCHEDULE_QUEUE,	/* it waits for that run's end (one waits at most) */
};

struct schedule {
	int64_t every_ms;	/* > 0: every_sec; 0: cron */
	struct cron cron;
	enum schedule_overlap overlap;
};

/* Read the valid "schedule" object OBJ (core/plan.c checked it) into S:
 * 0, or -EINVAL when it is not one after all. */
int schedule_load(struct schedule *s, const json_t *obj);

/* The first time of S strictly after AFTER: every_sec's times are ANCHOR
 * (its registration) + k * every_ms, k >= 1; cron's, the UTC minutes it
 * names (cron_next()). -1: none (a time out of the calendar's range). */
int64_t schedule_next(const struct schedule *s, int64_t anchor, int64_t after);

/* S, due at NEXT_AT, fires at NOW (>= NEXT_AT, or a run that waited in the
 * queue): its next time. Every time passed meanwhile (orchfs down, the
 * loop late) is covered by this one run: the next time is the first one
 * after NOW, never one already past. */
int64_t schedule_fired(const struct schedule *s, int64_t anchor, int64_t now);

/* DELTA of schedule_stepped() when the clock may have gone back by an
 * unknown amount (orchfs was down): only the backward rule applies. */
#define SCHEDULE_STEP_UNKNOWN INT64_MIN

/* The wall clock stepped by DELTA ms (NOW is after the step) for S, due at
 * NEXT_AT, last fired at LAST_AT (-1: never), every_sec's from ANCHOR:
 * its next time.
 *  - every_sec is an interval of real time: its times move with the clock
 *    (NEXT_AT + DELTA; the caller moves ANCHOR by DELTA too), so a step
 *    neither fires it nor silences it.
 *  - cron names wall-clock minutes, forward (DELTA > 0): NEXT_AT stays;
 *    if the step passed it, it fires once (schedule_fired() then skips
 *    the other times passed), as after orchfs was down.
 *  - cron, backward, and any schedule after SCHEDULE_STEP_UNKNOWN: no
 *    time already fired comes again: the next time is the first after
 *    max(NOW, LAST_AT) (every_sec's on its anchor's grid). A daily cron
 *    stepped back an hour past its time waits for the next day.
 * A time due before the step and not fired yet stays due. */
int64_t schedule_stepped(const struct schedule *s, int64_t anchor, int64_t next_at, int64_t last_at,
			 int64_t now, int64_t delta);

#endif
