/* core/supervise.h — the supervision rules of SPEC §8: what waits for a
 * person (approvals, questions, detected loops: the attention list), failure
 * signatures and loop detection, repeated agent actions, turns and budgets.
 *
 * Split in two:
 * - pure rules over one step's struct sup (no engine, no I/O, no clock:
 *   any thread; tests/test_supervise.c): sup_signature(), sup_failed(),
 *   sup_turn(), sup_usage(), sup_action(), sup_may_decide(), and the
 *   state's JSON form (sup_to_json(), sup_from_json());
 * - the engine's side (core/supervise.c, engine thread only), called by
 *   core/run.c, core/sandbox.c and core/msgq.c at named points: a step
 *   becomes ready (sup_approval_begin), an attempt fails (in run.c, with
 *   sup_failed), a worker posts an event (sup_on_event), a message is
 *   queued (sup_on_answer), a person writes a step's ctl (orch_step_ctl),
 *   a step ends or its run stops (sup_wait_end), a run loads (sup_load).
 *
 * Owns: struct sup (one per step that uses supervision, allocated on first
 * use: a plan that uses none of it costs one NULL pointer per step), and
 * the engine's attention list (every open wait, oldest first). A step's
 * struct sup is stored as JSON in steps.sup whenever it changes
 * (sup_save), so that a kill -9 loses no wait, counter or decision. */
#ifndef ORCH_SUPERVISE_H
#define ORCH_SUPERVISE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/engine.h"
#include "core/ident.h"
#include "core/loop.h"

struct orch_engine;
struct run;
struct step;
struct sandbox;

/* What a step waits for (at most one at a time). */
enum sup_wait { SUP_WAIT_NONE, SUP_WAIT_APPROVAL, SUP_WAIT_QUESTION, SUP_WAIT_LOOP };
const char *sup_wait_name(enum sup_wait w);	/* approval, question, loop */

enum sup_decision { SUP_UNDECIDED, SUP_APPROVED, SUP_REJECTED };

/* Bits of struct sup.warned: the 80 % warning of each limit, given once. */
#define SUP_WARNED_TURNS 1u
#define SUP_WARNED_COST 2u
#define SUP_WARNED_TOKENS 4u

#define SUP_TEXT_MAX 4096	/* bytes of a question, a signature's line or a reason kept */

struct sup {
	/* durable: steps.sup */
	enum sup_wait wait;
	int64_t since;		/* wall ms the wait began */
	char *question;		/* SUP_WAIT_QUESTION: the question */
	enum sup_decision decision;	/* an approval step's */
	char *decided_by;	/* a user name, or "timeout" */
	int64_t decided_at;
	char *reason;		/* the decider's words (approve/reject/fail REASON), or NULL */
	char *sig;		/* the signature of the last failed attempt of the series */
	unsigned same;		/* failed attempts in a row with it */
	unsigned first;		/* the attempt number that began the run of SAME */
	unsigned turns;
	double cost_usd;
	int64_t tokens;
	unsigned warned;	/* SUP_WARNED_* */
	uint64_t action_hash;	/* the last agent.action's event_data, canonical JSON: */
	size_t action_len;	/* its FNV-1a hash and length (any size compares) */
	unsigned actions;	/* identical ones in a row */
	const char *stop;	/* a stop asked (run_step_stop): its reason (static), until the
				 * step ends; a restart fails the step with it rather than
				 * running it again */
	/* memory only */
	struct orch_engine *eng;
	struct step *step;
	struct sup *att_prev, *att_next;	/* on the attention list while wait != NONE */
	bool listed;
	struct loop_timer timer;	/* an approval's timeout */
};

/* ---- pure rules ---- */

/* A failed attempt's signature: "exit N" or "signal N", then ": " and the
 * last non-empty line of its output when it wrote one (at most
 * SUP_TEXT_MAX bytes of it). New string, NULL without memory. */
char *sup_signature(int exit_code, int signal, const char *last_line);
/* Attempt ATTEMPT failed with signature SIG (taken). A loop is THRESHOLD
 * (>0) failed attempts in a row with the same signature: true when this one
 * completes it. */
bool sup_failed(struct sup *s, char *sig, unsigned attempt, unsigned threshold);
/* A fresh series of attempts (ctl retry): the signatures so far do not count. */
void sup_series_reset(struct sup *s);

enum sup_verdict { SUP_OK, SUP_WARN, SUP_STOP };
/* One more agent.turn against MAX (0: no limit): SUP_WARN once when the
 * turns reach 80 % of MAX, SUP_STOP when they pass it. */
enum sup_verdict sup_turn(struct sup *s, unsigned max);
/* agent.usage adding COST and TOKENS (either may be 0) against the budget
 * MAX_COST, MAX_TOKENS (0: none): SUP_WARN once per limit at 80 %, SUP_STOP
 * past either. *WHICH names the limit ("cost_usd" or "tokens"). */
enum sup_verdict sup_usage(struct sup *s, double cost, int64_t tokens, double max_cost,
			   int64_t max_tokens, const char **which);
/* An agent.action whose event_data is DATA (canonical JSON): true
 * when it makes THRESHOLD (>0) identical ones in a row (the count then
 * starts again, so that a loop that goes on is reported again). */
bool sup_action(struct sup *s, const char *data, unsigned threshold);

/* May WHO decide for a step with APPROVERS[0..N) (user names and
 * "@group"s; N == 0: only the run's OWNER) in a run owned by OWNER? Root
 * always may. */
bool sup_may_decide(struct ident *id, const char *const *approvers, size_t n, uid_t owner,
		    const struct orch_who *who);

/* The durable part as a new JSON object, and back (0, or -EINVAL for text
 * that is not such an object: what can be read is kept). */
json_t *sup_to_json(const struct sup *s);
int sup_from_json(struct sup *s, const char *text);
/* The strings and S; off the attention list and its timer cancelled first,
 * should its run be freed with the wait open. */
void sup_free(struct sup *s);

/* ---- the engine's side (engine thread) ---- */

/* The step's struct sup, made when missing (NULL without memory). */
struct sup *sup_of(struct orch_engine *e, struct step *st);
/* Write the step's struct sup to the store (in the turn's batch). */
int sup_save(struct orch_engine *e, struct step *st);

/* Open a wait of kind W on step ST (its run becomes needs_human):
 * attention.added, listed in MOUNT/attention. DETAIL is for the event. */
void sup_wait_begin(struct orch_engine *e, struct step *st, enum sup_wait w);
/* End the step's wait, if any: attention.removed with HOW ("approved",
 * "answered", "cancelled", ...). */
void sup_wait_end(struct orch_engine *e, struct step *st, const char *how);

/* An approval step's dependencies are met: it awaits a decision. */
void sup_approval_begin(struct orch_engine *e, struct step *st);
/* A worker posted event TYPE (its fields in EV) in SB, from step ST (NULL
 * when the poster is no step's process: then the sandbox's run's only
 * running step, if it has exactly one). A step that is no longer running is
 * charged nothing. */
void sup_on_event(struct orch_engine *e, struct sandbox *sb, struct step *st, const char *type,
		  json_t *ev);
/* A human_answer message was queued in SB (message MSG_ID): it answers the
 * oldest open question of the sandbox's steps, if any. */
void sup_on_answer(struct orch_engine *e, struct sandbox *sb, int64_t msg_id);
/* A run was read from the store: its steps' struct sup know them (nothing
 * is listed: a finished run's decisions are for its status). */
void sup_attach(struct orch_engine *e, struct run *r);
/* An unfinished run became active at start: its waits back on the list
 * (made again from the steps' states where the stored ones disagree),
 * approval timeouts armed again (one that passed while orchfs was down
 * fires now). */
void sup_load(struct orch_engine *e, struct run *r);
/* Forget the steps of R (freed, or unloaded): off the list, timers cancelled. */
void sup_unload(struct orch_engine *e, struct run *r);
/* MOUNT/attention as JSONL, oldest first. */
int sup_render_attention(struct orch_engine *e, struct sbuf *out);

#endif
