/* core/sched.c — pure DAG scheduling decisions (see sched.h). */
#include "core/sched.h"

#include <errno.h>
#include <math.h>
#include <string.h>

static const char *const step_names[STEP_NSTATES] = {
	"pending", "running", "awaiting_approval", "needs_human", "succeeded", "failed", "timed_out",
	"skipped", "cancelled",
};
static const char *const run_names[RUN_NSTATES] = {
	"pending", "running", "paused", "needs_human", "succeeded", "failed", "cancelled",
};

const char *step_state_name(enum step_state s) { return s < STEP_NSTATES ? step_names[s] : "?"; }
const char *run_state_name(enum run_state s) { return s < RUN_NSTATES ? run_names[s] : "?"; }

int step_state_parse(const char *name)
{
	for (int i = 0; name && i < STEP_NSTATES; i++)
		if (!strcmp(name, step_names[i]))
			return i;
	return -1;
}

int run_state_parse(const char *name)
{
	for (int i = 0; name && i < RUN_NSTATES; i++)
		if (!strcmp(name, run_names[i]))
			return i;
	return -1;
}

int sched_dag_init(struct sched_dag *d, const struct plan *plan)
{
	memset(d, 0, sizeof(*d));
	size_t n = plan->nsteps, nedges = 0;
	d->nodes = orch_calloc(n, sizeof(*d->nodes));
	if (!d->nodes)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		nedges += plan->steps[i].ndeps;
	d->edges = orch_calloc(nedges ? nedges : 1, sizeof(*d->edges));
	if (!d->edges) {
		orch_free(d->nodes);
		d->nodes = NULL;
		return -ENOMEM;
	}
	d->n = n;
	/* count dependents, carve the edge array, then fill in plan order */
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < plan->steps[i].ndeps; k++)
			d->nodes[plan->steps[i].deps[k]].ndependents++;
	size_t off = 0;
	for (size_t i = 0; i < n; i++) {
		struct sched_node *nd = &d->nodes[i];
		const struct plan_step *ps = &plan->steps[i];
		nd->dependents = d->edges + off;
		off += nd->ndependents;
		nd->ndependents = 0;
		nd->state = STEP_PENDING;
		nd->on_failure = ps->on_failure;
		nd->critical = ps->critical;
		nd->deps = ps->deps;
		nd->ndeps = ps->ndeps;
		nd->unmet = (unsigned)ps->ndeps;
	}
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < plan->steps[i].ndeps; k++) {
			struct sched_node *dep = &d->nodes[plan->steps[i].deps[k]];
			dep->dependents[dep->ndependents++] = i;
		}
	return 0;
}

void sched_dag_release(struct sched_dag *d)
{
	orch_free(d->nodes);
	orch_free(d->edges);
	memset(d, 0, sizeof(*d));
}

bool sched_dep_satisfied(enum step_state s, enum on_failure f)
{
	if (s == STEP_SUCCEEDED)
		return true;
	return (s == STEP_FAILED || s == STEP_TIMED_OUT) && f == ON_FAILURE_CONTINUE;
}

void sched_recount(struct sched_dag *d)
{
	for (size_t i = 0; i < d->n; i++) {
		struct sched_node *nd = &d->nodes[i];
		nd->unmet = 0;
		for (size_t k = 0; k < nd->ndeps; k++) {
			const struct sched_node *dep = &d->nodes[nd->deps[k]];
			if (!sched_dep_satisfied(dep->state, dep->on_failure))
				nd->unmet++;
		}
	}
}

bool sched_ready(const struct sched_dag *d, size_t i)
{
	const struct sched_node *nd = &d->nodes[i];
	return nd->state == STEP_PENDING && !nd->waiting && nd->unmet == 0;
}

/* Does a final dependency in state S (policy F) doom its pending dependents? */
static bool dooms(enum step_state s, enum on_failure f)
{
	return s == STEP_SKIPPED ||
	       ((s == STEP_FAILED || s == STEP_TIMED_OUT) && f == ON_FAILURE_SKIP_DEPENDENTS);
}

/* Mark every pending transitive dependent of I skipped, breadth first. Plans
 * may hold 100,000 steps, so no recursion: a queue of at most n entries (each
 * node is queued once, when it turns skipped). Without memory for the queue,
 * sweep the whole DAG until nothing changes: slower, same result. */
static void skip_dependents(struct sched_dag *d, size_t i, void (*skipped)(void *, size_t),
			    void *ctx)
{
	size_t *q = orch_malloc(d->n * sizeof(*q));
	if (!q) {
		for (bool changed = true; changed;) {
			changed = false;
			for (size_t j = 0; j < d->n; j++) {
				struct sched_node *nd = &d->nodes[j];
				if (nd->state != STEP_PENDING)
					continue;
				for (size_t k = 0; k < nd->ndeps; k++) {
					const struct sched_node *dep = &d->nodes[nd->deps[k]];
					if (dooms(dep->state, dep->on_failure)) {
						nd->state = STEP_SKIPPED;
						if (skipped)
							skipped(ctx, j);
						changed = true;
						break;
					}
				}
			}
		}
		return;
	}
	size_t head = 0, tail = 0;
	q[tail++] = i;
	while (head < tail) {
		struct sched_node *nd = &d->nodes[q[head++]];
		for (size_t k = 0; k < nd->ndependents; k++) {
			size_t j = nd->dependents[k];
			if (d->nodes[j].state != STEP_PENDING)
				continue;
			d->nodes[j].state = STEP_SKIPPED;
			if (skipped)
				skipped(ctx, j);
			q[tail++] = j;
		}
	}
	orch_free(q);
}

enum sched_effect sched_settle(struct sched_dag *d, size_t i, void (*ready)(void *, size_t),
			       void (*skipped)(void *, size_t), void *ctx)
{
	struct sched_node *nd = &d->nodes[i];
	if (sched_dep_satisfied(nd->state, nd->on_failure)) {
		for (size_t k = 0; k < nd->ndependents; k++) {
			size_t j = nd->dependents[k];
			struct sched_node *dn = &d->nodes[j];
			if (dn->unmet)
				dn->unmet--;
			if (ready && sched_ready(d, j))
				ready(ctx, j);
		}
		return SCHED_NONE;
	}
	if (nd->state == STEP_FAILED || nd->state == STEP_TIMED_OUT) {
		if (nd->on_failure == ON_FAILURE_ABORT)
			return SCHED_ABORT;
		skip_dependents(d, i, skipped, ctx);
		return SCHED_SKIP;
	}
	if (nd->state == STEP_SKIPPED) {
		skip_dependents(d, i, skipped, ctx);
		return SCHED_SKIP;
	}
	return SCHED_NONE;	/* cancelled: the run is stopping anyway */
}

bool sched_should_retry(unsigned counted, unsigned retries) { return counted < retries + 1; }

int64_t sched_retry_delay_ms(double delay_sec, double backoff, unsigned k)
{
	if (delay_sec <= 0 || k == 0)
		return 0;
	double ms = delay_sec * 1000.0 * pow(backoff > 0 ? backoff : 1, (double)(k - 1));
	if (!(ms < 86400000.0))
		ms = 86400000.0;
	return (int64_t)llround(ms);
}

enum run_state sched_outcome(const struct sched_dag *d, bool aborted, bool cancelled)
{
	if (cancelled)
		return RUN_CANCELLED;
	if (aborted)
		return RUN_FAILED;
	for (size_t i = 0; i < d->n; i++) {
		const struct sched_node *nd = &d->nodes[i];
		if (nd->critical && (nd->state == STEP_FAILED || nd->state == STEP_TIMED_OUT))
			return RUN_FAILED;
	}
	return RUN_SUCCEEDED;
}

bool sched_all_final(const struct sched_dag *d)
{
	for (size_t i = 0; i < d->n; i++)
		if (!step_state_final(d->nodes[i].state))
			return false;
	return true;
}
