/* core/sched.h — the DAG scheduler's decisions as pure functions: which steps
 * become ready, what a failure does to the rest of the DAG, when to retry,
 * and how a run ends. No processes, no I/O, no clocks: any thread.
 * The engine (core/engine.c) applies these decisions. */
#ifndef ORCH_SCHED_H
#define ORCH_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/plan.h"

enum step_state {
	STEP_PENDING,
	STEP_RUNNING,
	STEP_AWAITING_APPROVAL,	/* an approval step waits for a person (SPEC §8) */
	STEP_NEEDS_HUMAN,	/* a loop was detected: retry or fail, a person says */
	STEP_SUCCEEDED,
	STEP_FAILED,
	STEP_TIMED_OUT,
	STEP_SKIPPED,
	STEP_CANCELLED,
	STEP_NSTATES
};

enum run_state {
	RUN_PENDING,
	RUN_RUNNING,
	RUN_PAUSED,
	RUN_NEEDS_HUMAN,	/* a step waits for a person (SPEC §8); others go on */
	RUN_SUCCEEDED,
	RUN_FAILED,
	RUN_CANCELLED,
	RUN_NSTATES
};

const char *step_state_name(enum step_state s);
const char *run_state_name(enum run_state s);
/* -1 when NAME is no state */
int step_state_parse(const char *name);
int run_state_parse(const char *name);
static inline bool step_state_final(enum step_state s) { return s >= STEP_SUCCEEDED; }
static inline bool run_state_final(enum run_state s) { return s >= RUN_SUCCEEDED; }

/* One step as the scheduler sees it. */
struct sched_node {
	enum step_state state;
	enum on_failure on_failure;
	bool critical;
	bool waiting;		/* pending, but its retry delay has not passed */
	unsigned unmet;		/* dependencies not yet satisfied */
	const size_t *deps;	/* borrowed from the plan */
	size_t ndeps;
	size_t *dependents;	/* into sched_dag.edges */
	size_t ndependents;
};

struct sched_dag {
	struct sched_node *nodes;
	size_t n;
	size_t *edges;		/* storage of every dependents list */
};

/* Build the nodes (all pending) and their dependents lists from PLAN:
 * 0 or -ENOMEM. */
int sched_dag_init(struct sched_dag *d, const struct plan *plan);
void sched_dag_release(struct sched_dag *d);

/* Does a dependency in state S (with policy F) let its dependents run? */
bool sched_dep_satisfied(enum step_state s, enum on_failure f);

/* Recompute every node's unmet count from the current states (after a load
 * from the store or a retry). */
void sched_recount(struct sched_dag *d);

/* Is node I ready to start now? (pending, not waiting, all dependencies met) */
bool sched_ready(const struct sched_dag *d, size_t i);

/* What a step's final state does to the rest of the run. */
enum sched_effect {
	SCHED_NONE,		/* nothing beyond unblocking dependents */
	SCHED_ABORT,		/* "abort": cancel pending steps, stop running ones */
	SCHED_SKIP,		/* "skip_dependents": dependents were marked skipped */
};

/* Node I has reached final state (already stored in nodes[i].state).
 * Updates dependents' unmet counts and calls READY for each dependent that
 * became ready; for a failure under "skip_dependents" marks every transitive
 * pending dependent STEP_SKIPPED and calls SKIPPED for each (in BFS order);
 * a skipped step skips its own dependents the same way.
 * Returns the effect, SCHED_ABORT for a failure under "abort". */
enum sched_effect sched_settle(struct sched_dag *d, size_t i,
			       void (*ready)(void *ctx, size_t i),
			       void (*skipped)(void *ctx, size_t i), void *ctx);

/* Should a step that has made COUNTED attempts that count (out of a budget of
 * RETRIES retries) be tried again after a failed attempt? */
bool sched_should_retry(unsigned counted, unsigned retries);

/* Delay before attempt K+1 after attempt K (1-based) failed:
 * retry_delay_sec * retry_backoff^(K-1), in milliseconds, capped at a day. */
int64_t sched_retry_delay_ms(double delay_sec, double backoff, unsigned k);

/* How a run whose steps are all final ends. */
enum run_state sched_outcome(const struct sched_dag *d, bool aborted, bool cancelled);

/* Are all steps final? */
bool sched_all_final(const struct sched_dag *d);

#endif
