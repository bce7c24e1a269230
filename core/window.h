/* core/window.h — the arithmetic of sandbox windows (SPEC §9): a deadline
 * that extensions move later, never past the maximum, and extend_when
 * rules counted over posted events within their span. Pure (no I/O, no
 * engine, no clock: times are given): any thread; tests/test_window.c.
 * core/windows.c keeps the windows of the engine and calls this. */
#ifndef ORCH_WINDOW_H
#define ORCH_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WINDOW_MAX_RULES 16	/* entries of extend_when */
#define WINDOW_MAX_COUNT 10000	/* a rule's count */
#define WINDOW_EVENT_TYPE_MAX 128	/* bytes of a rule's event_type */

#define WINDOW_MAX_MS (31536000LL * 1000)	/* a duration, span or extension: a year */
/* wall times (ms) a window keeps: 1970 to the end of year 9999 */
#define WINDOW_WALL_MAX_MS 253402300799999LL

/* A + B, saturated at the int64_t limits (times read from the store may be
 * anything). */
int64_t window_add(int64_t a, int64_t b);

enum window_on_end { WINDOW_END_STOP, WINDOW_END_PAUSE, WINDOW_END_DELETE };
const char *window_on_end_name(enum window_on_end e);	/* stop, pause, delete */

/* "extend_when": [{"event_type", "count", "within_sec"}] */
struct window_rule {
	char *event_type;	/* exact, or an fnmatch(3) glob as triggers take */
	unsigned count;		/* >= 1 */
	int64_t within_ms;	/* > 0 */
};

/* What a plan asks for ("sandbox": {"window": {...}}); times in ms. */
struct window_spec {
	bool set;
	int64_t duration_ms;	/* > 0 */
	int64_t max_ms;		/* >= duration_ms (duration_ms when absent) */
	int64_t extend_ms;	/* 0: no automatic extension */
	int64_t idle_ms;	/* 0: no idle end */
	enum window_on_end on_end;
	struct window_rule *rules;
	size_t nrules;
};
void window_spec_release(struct window_spec *s);

/* The events a rule counted, oldest first (wall ms): fewer than its count,
 * all within its span of the newest. */
struct window_hits {
	int64_t *t;
	unsigned n, cap;
};

/* A window's times (wall ms): opened, the deadline now, and the latest the
 * deadline may reach. hits: one per rule of its spec. */
struct window_state {
	int64_t opened_at, deadline, max_deadline;
	struct window_hits *hits;
	size_t nhits;
};

/* Open a window of SPEC at NOW: 0, or -ENOMEM (ST then holds nothing). */
int window_open(struct window_state *st, const struct window_spec *spec, int64_t now);
void window_state_release(struct window_state *st);

/* Move the deadline BY_MS (> 0) later, never past max_deadline: the ms it
 * actually moved (0 at the cap). */
int64_t window_extend(struct window_state *st, int64_t by_ms);

/* Does RULE count an event of TYPE? */
bool window_rule_matches(const struct window_rule *rule, const char *type);

/* An event RULE counts was posted at NOW: count it with those within
 * rule->within_ms before it (older ones are forgotten). True when that makes
 * rule->count: the rule fires, and its count starts afresh (the events that
 * made it do not count towards the next extension). -ENOMEM is false with
 * the event not counted. */
bool window_rule_hit(struct window_hits *h, const struct window_rule *rule, int64_t now);

/* The wall clock stepped by DELTA_MS: the deadline, the maximum and the
 * counted events' times move with it, so that the window keeps its
 * remaining real time (opened_at stays what it was). */
void window_shift(struct window_state *st, int64_t delta_ms);

#endif
