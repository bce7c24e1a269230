/* core/window.c — the arithmetic of sandbox windows (core/window.h). Pure. */
#include "core/window.h"
#include "core/util.h"

#include <errno.h>
#include <fnmatch.h>
#include <string.h>

const char *window_on_end_name(enum window_on_end e)
{
	return e == WINDOW_END_PAUSE ? "pause" : e == WINDOW_END_DELETE ? "delete" : "stop";
}

int64_t window_add(int64_t a, int64_t b)
{
	int64_t r;
	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

void window_spec_release(struct window_spec *s)
{
	for (size_t i = 0; i < s->nrules; i++)
		orch_free(s->rules[i].event_type);
	orch_free(s->rules);
	memset(s, 0, sizeof(*s));
}

int window_open(struct window_state *st, const struct window_spec *spec, int64_t now)
{
	memset(st, 0, sizeof(*st));
	if (spec->nrules && !(st->hits = orch_calloc(spec->nrules, sizeof(*st->hits))))
		return -ENOMEM;
	st->nhits = spec->nrules;
	st->opened_at = now;
	st->deadline = window_add(now, spec->duration_ms);
	st->max_deadline = window_add(now, spec->max_ms > spec->duration_ms ? spec->max_ms : spec->duration_ms);
	return 0;
}

void window_state_release(struct window_state *st)
{
	for (size_t i = 0; i < st->nhits; i++)
		orch_free(st->hits[i].t);
	orch_free(st->hits);
	memset(st, 0, sizeof(*st));
}

int64_t window_extend(struct window_state *st, int64_t by_ms)
{
	if (by_ms <= 0 || st->deadline >= st->max_deadline)
		return 0;
	int64_t room = window_add(st->max_deadline, -st->deadline);
	int64_t add = by_ms < room ? by_ms : room;
	st->deadline += add;
	return add;
}

bool window_rule_matches(const struct window_rule *rule, const char *type)
{
	return type && (!strcmp(rule->event_type, type) || fnmatch(rule->event_type, type, 0) == 0);
}

bool window_rule_hit(struct window_hits *h, const struct window_rule *rule, int64_t now)
{
	/* forget what fell out of the span (oldest first) */
	unsigned keep = 0;
	int64_t cutoff = rule->within_ms > 0 ? window_add(now, -rule->within_ms) : now;
	while (keep < h->n && h->t[keep] < cutoff)
		keep++;
	if (keep) {
		memmove(h->t, h->t + keep, (h->n - keep) * sizeof(*h->t));
		h->n -= keep;
	}
	if (h->n + 1 >= rule->count) {
		h->n = 0;	/* it fires: counted afresh */
		return true;
	}
	if (h->n == h->cap) {
		unsigned cap = h->cap ? h->cap * 2 : 4;
		if (cap > rule->count)
			cap = rule->count;
		int64_t *t = orch_realloc(h->t, cap * sizeof(*t));
		if (!t)
			return false;
		h->t = t;
		h->cap = cap;
	}
	h->t[h->n++] = now;
	return false;
}

void window_shift(struct window_state *st, int64_t delta_ms)
{
	st->deadline = window_add(st->deadline, delta_ms);
	st->max_deadline = window_add(st->max_deadline, delta_ms);
	for (size_t i = 0; i < st->nhits; i++)
		for (unsigned k = 0; k < st->hits[i].n; k++)
			st->hits[i].t[k] = window_add(st->hits[i].t[k], delta_ms);
}
