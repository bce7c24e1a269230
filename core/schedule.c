/* core/schedule.c — the times of schedules: see core/schedule.h. */
#include "core/schedule.h"

#include <errno.h>
#include <string.h>

int schedule_load(struct schedule *s, const json_t *obj)
{
	struct schedule n = { .every_ms = 0, .cron = CRON_INIT, .overlap = SCHEDULE_SKIP };
	const json_t *every = json_object_get(obj, "every_sec"), *cron = json_object_get(obj, "cron");
	const json_t *overlap = json_object_get(obj, "overlap");
	if (!json_is_object(obj) || !every == !cron)
		return -EINVAL;
	if (every) {
		if (!json_is_integer(every) || json_integer_value(every) < 1 ||
		    json_integer_value(every) > SCHEDULE_EVERY_MAX_SEC)
			return -EINVAL;
		n.every_ms = (int64_t)json_integer_value(every) * 1000;
	} else {
		struct sbuf err = SBUF_INIT;
		int rc = json_is_string(cron) ? cron_parse(&n.cron, json_string_value(cron), &err) : -EINVAL;
		sbuf_release(&err);
		if (rc)
			return -EINVAL;
	}
	if (overlap) {
		const char *o = json_string_value(overlap);
		if (o && !strcmp(o, "queue"))
			n.overlap = SCHEDULE_QUEUE;
		else if (!o || strcmp(o, "skip"))
			return -EINVAL;
	}
	*s = n;
	return 0;
}

int64_t schedule_next(const struct schedule *s, int64_t anchor, int64_t after)
{
	if (!s->every_ms)
		return cron_next(&s->cron, after);
	int64_t t, d;
	if (after < anchor)
		return __builtin_add_overflow(anchor, s->every_ms, &t) ? -1 : t;
	/* the first anchor + k * every_ms > after, k >= 1 (a stored anchor is
	 * hostile input: no sum may overflow) */
	if (__builtin_sub_overflow(after, anchor, &d))
		return -1;
	int64_t k = d / s->every_ms + 1;
	if (__builtin_mul_overflow(k, s->every_ms, &t) || __builtin_add_overflow(t, anchor, &t))
		return -1;
	return t;
}

int64_t schedule_fired(const struct schedule *s, int64_t anchor, int64_t now)
{
	return schedule_next(s, anchor, now);
}

int64_t schedule_stepped(const struct schedule *s, int64_t anchor, int64_t next_at, int64_t last_at,
			 int64_t now, int64_t delta)
{
	if (s->every_ms && delta != SCHEDULE_STEP_UNKNOWN) {
		/* real time: a time due (or not) before the step is after it */
		int64_t t;
		if (__builtin_add_overflow(next_at, delta, &t))
			return delta > 0 ? -1 : 0;
		return t;
	}
	if (next_at <= now || delta >= 0)
		return next_at;	/* due before the step, or a step forward */
	return schedule_next(s, anchor, last_at > now ? last_at : now);
}
