/* core/supervise.c — the supervision rules of SPEC §8 (supervise.h). */
#include "core/supervise.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctl.h"
#include "core/engine_i.h"
#include "core/lines.h"

const char *sup_wait_name(enum sup_wait w)
{
	switch (w) {
	case SUP_WAIT_APPROVAL: return "approval";
	case SUP_WAIT_QUESTION: return "question";
	case SUP_WAIT_LOOP: return "loop";
	default: return "none";
	}
}

/* ---- pure rules ---- */

/* A copy of at most SUP_TEXT_MAX bytes of S[0..N), cut at a character's
 * start so that the copy stays UTF-8. */
static char *text_dup(const char *s, size_t n)
{
	if (n > SUP_TEXT_MAX) {
		n = SUP_TEXT_MAX;
		while (n && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	return orch_strndup(s, n);
}

char *sup_signature(int exit_code, int signal, const char *last_line)
{
	struct sbuf sb = SBUF_INIT;
	if (signal)
		sbuf_addf(&sb, "signal %d", signal);
	else
		sbuf_addf(&sb, "exit %d", exit_code);
	if (last_line && last_line[0]) {
		char *t = text_dup(last_line, strlen(last_line));
		sbuf_adds(&sb, ": ");
		sbuf_adds(&sb, t ? t : "");
		orch_free(t);
	}
	if (sbuf_failed(&sb)) {
		sbuf_release(&sb);
		return NULL;
	}
	return sbuf_detach(&sb, NULL);
}

bool sup_failed(struct sup *s, char *sig, unsigned attempt, unsigned threshold)
{
	if (sig && s->sig && !strcmp(sig, s->sig) && s->same) {
		orch_free(sig);
		s->same++;
	} else {
		orch_free(s->sig);
		s->sig = sig;	/* NULL without memory: a series of one */
		s->same = 1;
		s->first = attempt;
	}
	return threshold && s->sig && s->same >= threshold;
}

void sup_series_reset(struct sup *s)
{
	orch_free(s->sig);
	s->sig = NULL;
	s->same = 0;
	s->first = 0;
}

/* Have USED reached 80 % of MAX? */
static bool at_80(double used, double max) { return used * 5 >= max * 4; }

enum sup_verdict sup_turn(struct sup *s, unsigned max)
{
	s->turns++;
	if (!max)
		return SUP_OK;
	if (s->turns > max)
		return SUP_STOP;
	if (!(s->warned & SUP_WARNED_TURNS) && at_80(s->turns, max)) {
		s->warned |= SUP_WARNED_TURNS;
		return SUP_WARN;
	}
	return SUP_OK;
}

enum sup_verdict sup_usage(struct sup *s, double cost, int64_t tokens, double max_cost,
			   int64_t max_tokens, const char **which)
{
	if (isfinite(cost) && cost > 0)
		s->cost_usd += cost;
	if (tokens > 0)
		s->tokens = tokens > INT64_MAX - s->tokens ? INT64_MAX : s->tokens + tokens;
	*which = NULL;
	if (max_cost > 0 && s->cost_usd > max_cost) {
		*which = "cost_usd";
		return SUP_STOP;
	}
	if (max_tokens > 0 && s->tokens > max_tokens) {
		*which = "tokens";
		return SUP_STOP;
	}
	if (max_cost > 0 && !(s->warned & SUP_WARNED_COST) && at_80(s->cost_usd, max_cost)) {
		s->warned |= SUP_WARNED_COST;
		*which = "cost_usd";
		return SUP_WARN;
	}
	if (max_tokens > 0 && !(s->warned & SUP_WARNED_TOKENS) &&
	    at_80((double)s->tokens, (double)max_tokens)) {
		s->warned |= SUP_WARNED_TOKENS;
		*which = "tokens";
		return SUP_WARN;
	}
	return SUP_OK;
}

/* 64-bit FNV-1a: actions are compared by hash and length, whatever their size */
static uint64_t fnv1a(const char *p, size_t n)
{
	uint64_t h = 14695981039346656037ull;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 1099511628211ull;
	}
	return h;
}

bool sup_action(struct sup *s, const char *data, unsigned threshold)
{
	size_t n = strlen(data);
	uint64_t h = fnv1a(data, n);
	if (s->actions && s->action_hash == h && s->action_len == n) {
		s->actions++;
	} else {
		s->action_hash = h;
		s->action_len = n;
		s->actions = 1;
	}
	if (threshold && s->actions >= threshold) {
		s->actions = 0;
		return true;
	}
	return false;
}

bool sup_may_decide(struct ident *id, const char *const *approvers, size_t n, uid_t owner,
		    const struct orch_who *who)
{
	if (who->uid == 0)
		return true;
	if (n == 0)
		return who->uid == owner;
	const char *name = ident_user(id, who->uid);
	char user[IDENT_NAME_MAX];
	snprintf(user, sizeof(user), "%s", name);	/* ident_user's buffer may be reused */
	for (size_t i = 0; i < n; i++) {
		const char *a = approvers[i];
		if (a[0] == '@') {
			if (ident_in_group(id, user, who->gid, who->groups, who->ngroups, a + 1))
				return true;
		} else if (!strcmp(a, user)) {
			return true;
		}
	}
	return false;
}

static void set_str(json_t *o, const char *k, const char *v)
{
	if (v)
		json_object_set_new(o, k, json_string(v));
}

json_t *sup_to_json(const struct sup *s)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	if (s->wait) {
		json_object_set_new(o, "wait", json_string(sup_wait_name(s->wait)));
		json_object_set_new(o, "since", json_integer(s->since));
	}
	set_str(o, "question", s->question);
	if (s->decision) {
		json_object_set_new(o, "decision",
				    json_string(s->decision == SUP_APPROVED ? "approved" : "rejected"));
		set_str(o, "decided_by", s->decided_by);
		json_object_set_new(o, "decided_at", json_integer(s->decided_at));
	}
	set_str(o, "reason", s->reason);
	if (s->same) {
		set_str(o, "sig", s->sig);
		json_object_set_new(o, "same", json_integer(s->same));
		json_object_set_new(o, "first", json_integer(s->first));
	}
	if (s->turns)
		json_object_set_new(o, "turns", json_integer(s->turns));
	if (s->cost_usd > 0)
		json_object_set_new(o, "cost_usd", json_real(s->cost_usd));
	if (s->tokens)
		json_object_set_new(o, "tokens", json_integer(s->tokens));
	if (s->warned)
		json_object_set_new(o, "warned", json_integer(s->warned));
	if (s->actions) {
		char h[17];
		snprintf(h, sizeof(h), "%016llx", (unsigned long long)s->action_hash);
		json_object_set_new(o, "action_hash", json_string(h));
		json_object_set_new(o, "action_len", json_integer((json_int_t)s->action_len));
		json_object_set_new(o, "actions", json_integer(s->actions));
	}
	if (s->stop)
		json_object_set_new(o, "stop", json_string(s->stop));
	return o;
}

static char *get_text(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_string(v) ? text_dup(json_string_value(v), strlen(json_string_value(v))) : NULL;
}

static int64_t get_int(json_t *o, const char *k, int64_t lo, int64_t hi)
{
	json_t *v = json_object_get(o, k);
	if (!json_is_integer(v))
		return lo;
	int64_t x = json_integer_value(v);
	return x < lo ? lo : x > hi ? hi : x;
}

int sup_from_json(struct sup *s, const char *text)
{
	json_error_t err;
	json_t *o = text ? json_loads(text, 0, &err) : NULL;
	if (!json_is_object(o)) {
		json_decref(o);
		return -EINVAL;
	}
	const char *w = json_string_value(json_object_get(o, "wait"));
	s->wait = SUP_WAIT_NONE;
	for (int k = SUP_WAIT_APPROVAL; w && k <= SUP_WAIT_LOOP; k++)
		if (!strcmp(w, sup_wait_name((enum sup_wait)k)))
			s->wait = (enum sup_wait)k;
	s->since = get_int(o, "since", 0, INT64_MAX);
	s->question = get_text(o, "question");
	const char *d = json_string_value(json_object_get(o, "decision"));
	s->decision = !d ? SUP_UNDECIDED : !strcmp(d, "approved") ? SUP_APPROVED : SUP_REJECTED;
	s->decided_by = get_text(o, "decided_by");
	s->decided_at = get_int(o, "decided_at", 0, INT64_MAX);
	s->reason = get_text(o, "reason");
	s->sig = get_text(o, "sig");
	/* a series is at most the largest same_failures long: what a read
	 * of status lists stays bounded whatever the file says */
	s->same = (unsigned)get_int(o, "same", 0, 1000);
	s->first = (unsigned)get_int(o, "first", 0, UINT32_MAX - 1000);
	s->turns = (unsigned)get_int(o, "turns", 0, UINT32_MAX);
	json_t *c = json_object_get(o, "cost_usd");
	s->cost_usd = json_is_number(c) && json_number_value(c) > 0 ? json_number_value(c) : 0;
	s->tokens = get_int(o, "tokens", 0, INT64_MAX);
	s->warned = (unsigned)get_int(o, "warned", 0, 7);
	const char *ah = json_string_value(json_object_get(o, "action_hash"));
	s->actions = ah ? (unsigned)get_int(o, "actions", 0, UINT32_MAX) : 0;
	s->action_hash = ah ? strtoull(ah, NULL, 16) : 0;
	s->action_len = (size_t)get_int(o, "action_len", 0, INT32_MAX);
	/* the reasons a stop may have (interned: struct sup keeps a static string) */
	static const char *const stops[] = { "max_turns", "budget", "failed_by_user" };
	const char *st = json_string_value(json_object_get(o, "stop"));
	s->stop = NULL;
	for (size_t k = 0; st && k < ARRAY_SIZE(stops); k++)
		if (!strcmp(st, stops[k]))
			s->stop = stops[k];
	json_decref(o);
	return 0;
}

static void att_remove(struct orch_engine *e, struct sup *s);

void sup_free(struct sup *s)
{
	if (!s)
		return;
	if (s->eng) {
		att_remove(s->eng, s);
		loop_timer_cancel(&s->eng->loop, &s->timer);
	}
	orch_free(s->question);
	orch_free(s->decided_by);
	orch_free(s->reason);
	orch_free(s->sig);
	orch_free(s);
}

/* ---- the engine's side ---- */

static void approval_timer_cb(struct loop_timer *t);

struct sup *sup_of(struct orch_engine *e, struct step *st)
{
	if (!st->sup) {
		st->sup = orch_calloc(1, sizeof(*st->sup));
		if (!st->sup)
			return NULL;
		st->sup->step = st;
		st->sup->eng = e;
		st->sup->timer = (struct loop_timer)LOOP_TIMER_INIT(approval_timer_cb, st->sup);
	}
	return st->sup;
}

int sup_save(struct orch_engine *e, struct step *st)
{
	char *txt = NULL;
	if (st->sup) {
		json_t *o = sup_to_json(st->sup);
		txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
		json_decref(o);
		if (!txt)
			return -ENOMEM;
	}
	int rc = store_exec(&e->st, "UPDATE steps SET sup = ? WHERE id = ?", "si", txt, st->rowid);
	free(txt);
	if (rc)
		eng_log(e, "cannot save the supervision of step %s of %s: %s",
			st->run->plan->steps[st->idx].id, st->run->name, strerror(-rc));
	return rc;
}

static const char *step_id(const struct step *st) { return st->run->plan->steps[st->idx].id; }

/* Put S on the attention list, which stays ordered by since. */
static void att_insert(struct orch_engine *e, struct sup *s)
{
	struct sup *after = e->att_tail;
	while (after && after->since > s->since)
		after = after->att_prev;
	s->att_prev = after;
	s->att_next = after ? after->att_next : e->att_head;
	if (s->att_next)
		s->att_next->att_prev = s;
	else
		e->att_tail = s;
	if (after)
		after->att_next = s;
	else
		e->att_head = s;
	s->listed = true;
	e->att_count++;
	e->att_gen++;
	eng_changed(e, OCH_ATTENTION, 0, 0);
}

static void att_remove(struct orch_engine *e, struct sup *s)
{
	if (!s->listed)
		return;
	if (s->att_prev)
		s->att_prev->att_next = s->att_next;
	else
		e->att_head = s->att_next;
	if (s->att_next)
		s->att_next->att_prev = s->att_prev;
	else
		e->att_tail = s->att_prev;
	s->att_prev = s->att_next = NULL;
	s->listed = false;
	e->att_count--;
	e->att_gen++;
	eng_changed(e, OCH_ATTENTION, 0, 0);
}

/* What a person reads about a wait (attention's detail). */
static char *wait_detail(const struct step *st)
{
	const struct sup *s = st->sup;
	const struct plan_step *ps = &st->run->plan->steps[st->idx];
	switch (s->wait) {
	case SUP_WAIT_APPROVAL:
		return ps->prompt ? orch_strdup(ps->prompt)
				  : orch_asprintf("approve or reject step %s of run %s", ps->id, st->run->name);
	case SUP_WAIT_QUESTION:
		return orch_strdup(s->question ? s->question : "");
	case SUP_WAIT_LOOP:
		return orch_asprintf("%u failed attempts in a row (from attempt %u) with: %s", s->same, s->first,
				     s->sig ? s->sig : "?");
	default:
		return orch_strdup("");
	}
}

void sup_wait_begin(struct orch_engine *e, struct step *st, enum sup_wait w)
{
	struct sup *s = sup_of(e, st);
	if (!s)
		return;
	if (s->wait == w)
		return;	/* (a second question replaces the first: the caller saved it) */
	if (s->wait)
		sup_wait_end(e, st, "replaced");	/* one wait at a time */
	s->wait = w;
	s->since = clock_wall_ms();
	att_insert(e, s);
	st->run->nwaits++;
	char *detail = wait_detail(st);
	ev_emit(e, "attention.added", st->run, st, NULL,
		json_pack("{s:s, s:s?}", "kind", sup_wait_name(w), "detail", detail));
	orch_free(detail);
	sup_save(e, st);
	run_waits_changed(e, st->run);
}

void sup_wait_end(struct orch_engine *e, struct step *st, const char *how)
{
	struct sup *s = st->sup;
	if (!s || !s->wait)
		return;
	enum sup_wait w = s->wait;
	att_remove(e, s);
	loop_timer_cancel(&e->loop, &s->timer);
	s->wait = SUP_WAIT_NONE;
	s->since = 0;
	if (w == SUP_WAIT_QUESTION) {
		orch_free(s->question);
		s->question = NULL;
	}
	if (st->run->nwaits)
		st->run->nwaits--;
	ev_emit(e, "attention.removed", st->run, st, NULL,
		json_pack("{s:s, s:s}", "kind", sup_wait_name(w), "resolution", how));
	sup_save(e, st);
	run_waits_changed(e, st->run);
}

/* Arm the approval's timeout: at since + timeout_sec, wall clock (a deadline
 * that passed while orchfs was down fires at once). */
static void approval_arm(struct orch_engine *e, struct step *st)
{
	double t = st->run->plan->steps[st->idx].timeout_sec;
	if (t <= 0 || !st->sup)
		return;
	int64_t left = st->sup->since + (int64_t)(t * 1000) - clock_wall_ms();
	if (loop_timer_set(&e->loop, &st->sup->timer, clock_mono_ms() + (left > 0 ? left : 0)))
		eng_log(e, "run %s step %s: cannot arm the approval's timeout (no memory)", st->run->name,
			step_id(st));
}

void sup_approval_begin(struct orch_engine *e, struct step *st)
{
	const struct plan_step *ps = &st->run->plan->steps[st->idx];
	struct sup *s = sup_of(e, st);
	if (s) {
		s->decision = SUP_UNDECIDED;
		orch_free(s->decided_by);
		orch_free(s->reason);
		s->decided_by = s->reason = NULL;
		s->decided_at = 0;
	}
	json_t *x = json_object();
	if (x) {
		if (ps->prompt)
			json_object_set_new(x, "prompt", json_string(ps->prompt));
		json_t *a = json_array();
		for (size_t k = 0; a && k < ps->napprovers; k++)
			json_array_append_new(a, json_string(ps->approvers[k]));
		if (a)
			json_object_set_new(x, "approvers", a);
		if (ps->timeout_sec > 0) {
			json_object_set_new(x, "timeout_sec", json_real(ps->timeout_sec));
			json_object_set_new(x, "on_timeout",
					    json_string(ps->on_timeout == ON_TIMEOUT_APPROVE ? "approve" : "reject"));
		}
	}
	ev_emit(e, "step.awaiting_approval", st->run, st, NULL, x);
	sup_wait_begin(e, st, SUP_WAIT_APPROVAL);
	approval_arm(e, st);
}

/* Record the decision on an approval step and let the run go on. BY: a user
 * name, or "timeout". */
static void decide(struct orch_engine *e, struct step *st, bool approve, const char *by,
		   const char *reason, size_t rlen)
{
	struct sup *s = sup_of(e, st);
	if (s) {
		s->decision = approve ? SUP_APPROVED : SUP_REJECTED;
		orch_free(s->decided_by);
		orch_free(s->reason);
		s->decided_by = orch_strdup(by);
		s->decided_at = clock_wall_ms();
		s->reason = rlen ? text_dup(reason, rlen) : NULL;
	}
	sup_wait_end(e, st, approve ? "approved" : "rejected");
	ev_emit(e, approve ? "step.approved" : "step.rejected", st->run, st, NULL,
		json_pack("{s:s, s:s?}", "decided_by", by, "reason", s ? s->reason : NULL));
	run_step_decided(e, st, approve);
}

static void approval_timer_cb(struct loop_timer *t)
{
	struct sup *s = t->data;
	struct step *st = s->step;
	if (step_state_of(st) != STEP_AWAITING_APPROVAL)
		return;
	decide(s->eng, st, st->run->plan->steps[st->idx].on_timeout == ON_TIMEOUT_APPROVE, "timeout",
	       NULL, 0);
}

/* Queue a guardian_intervention message saying TEXT into the step's sandbox. */
static void guardian(struct orch_engine *e, struct step *st, const char *text)
{
	if (!st->run->sb || !text)
		return;
	/* what waits in one user's sandboxes stays bounded, whoever queues it */
	int rc = eng_quota(e, st->run->sb->uid, QUOTA_QUEUED_MESSAGES, 1, NULL);
	if (!rc)
		rc = msgq_post(e, st->run->sb, MSG_GUARDIAN_INTERVENTION, text);
	if (rc)
		eng_log(e, "run %s step %s: cannot queue a guardian_intervention: %s", st->run->name,
			step_id(st), strerror(-rc));
}

static void budget_warning(struct orch_engine *e, struct step *st, const char *limit, double used,
			   double max)
{
	char *text = orch_asprintf("orchfs: step %s has used %g of its %s limit of %g (80%%);"
				   " it will be stopped past the limit",
				   step_id(st), used, limit, max);
	ev_emit(e, "step.budget_warning", st->run, st, NULL,
		json_pack("{s:s, s:f, s:f}", "limit", limit, "used", used, "max", max));
	guardian(e, st, text);
	orch_free(text);
}

/* The running step a posted event is about when its poster is no step's
 * process: the sandbox's run's only running step, if it has exactly one. */
static struct step *only_running(struct sandbox *sb)
{
	struct run *r = sb->holder;
	struct step *found = NULL;
	if (!r || r->counts[STEP_RUNNING] != 1)
		return NULL;
	for (size_t i = 0; i < r->dag.n && !found; i++)
		if (r->dag.nodes[i].state == STEP_RUNNING)
			found = &r->steps[i];
	return found;
}

static double num(json_t *data, const char *k, bool *bad)
{
	json_t *v = json_object_get(data, k);
	if (!v)
		return 0;
	if (!json_is_number(v) || !(json_number_value(v) >= 0) || !isfinite(json_number_value(v))) {
		*bad = true;
		return 0;
	}
	return json_number_value(v);
}

void sup_on_event(struct orch_engine *e, struct sandbox *sb, struct step *st, const char *type,
		  json_t *ev)
{
	if (strcmp(type, "needs_human") && strncmp(type, "agent.", 6))
		return;
	if (!st)
		st = only_running(sb);
	if (!st || step_state_of(st) != STEP_RUNNING)
		return;	/* (a step no longer running is charged nothing) */
	const struct plan_step *ps = &st->run->plan->steps[st->idx];
	json_t *data = json_object_get(ev, "event_data");
	struct sup *s;

	if (!strcmp(type, "needs_human")) {
		if (!(s = sup_of(e, st)))
			return;
		const char *q = json_string_value(json_object_get(data, "question"));
		orch_free(s->question);
		s->question = text_dup(q ? q : "", q ? strlen(q) : 0);
		sup_wait_begin(e, st, SUP_WAIT_QUESTION);
		sup_save(e, st);
	} else if (!strcmp(type, "agent.turn")) {
		if (!(s = sup_of(e, st)))
			return;
		enum sup_verdict v = sup_turn(s, ps->max_turns);
		sup_save(e, st);
		if (v == SUP_WARN)
			budget_warning(e, st, "max_turns", s->turns, ps->max_turns);
		else if (v == SUP_STOP)
			run_step_stop(e, st, "max_turns");
	} else if (!strcmp(type, "agent.usage")) {
		bool bad = false;
		double cost = num(data, "cost_usd", &bad), tokens = num(data, "tokens", &bad);
		if (bad || !(s = sup_of(e, st)))
			return;	/* not numbers: recorded as posted, not counted */
		const char *which;
		enum sup_verdict v = sup_usage(s, cost, tokens > 9e18 ? INT64_MAX : (int64_t)tokens,
					       ps->budget_cost_usd, ps->budget_tokens, &which);
		sup_save(e, st);
		bool c = which && !strcmp(which, "cost_usd");
		if (v == SUP_WARN)
			budget_warning(e, st, which, c ? s->cost_usd : (double)s->tokens,
				       c ? ps->budget_cost_usd : (double)ps->budget_tokens);
		else if (v == SUP_STOP)
			run_step_stop(e, st, "budget");
	} else if (!strcmp(type, "agent.action") && ps->repeated_actions) {
		if (!(s = sup_of(e, st)))
			return;
		char *canon = json_dumps(data ? data : json_null(), JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
		if (!canon)
			return;
		bool loop = sup_action(s, canon, ps->repeated_actions);
		sup_save(e, st);
		if (loop) {
			/* the action as the event and the message show it: at most 512 bytes */
			char *shown = text_dup(canon, strlen(canon) > 512 ? 512 : strlen(canon));
			ev_emit(e, "agent.loop_detected", st->run, st, NULL,
				json_pack("{s:s?, s:I, s:i}", "action", shown, "action_bytes",
					  (json_int_t)strlen(canon), "count", (json_int_t)ps->repeated_actions));
			char *text = orch_asprintf("orchfs: the same action was repeated %u times in a row: %s%s."
						   " Stop and try something else.",
						   ps->repeated_actions, shown ? shown : "?",
						   strlen(canon) > 512 ? "..." : "");
			orch_free(shown);
			guardian(e, st, text);
			orch_free(text);
		}
		free(canon);
	}
}

void sup_on_answer(struct orch_engine *e, struct sandbox *sb, int64_t msg_id)
{
	for (struct sup *s = e->att_head; s; s = s->att_next) {
		struct step *st = s->step;
		if (s->wait != SUP_WAIT_QUESTION || st->run->sb != sb)
			continue;
		char *q = s->question ? orch_strdup(s->question) : NULL;
		sup_wait_end(e, st, "answered");
		ev_emit(e, "step.answered", st->run, st, NULL,
			json_pack("{s:s?, s:I}", "question", q, "message_id", (json_int_t)msg_id));
		orch_free(q);
		return;
	}
}

void sup_attach(struct orch_engine *e, struct run *r)
{
	for (size_t i = 0; i < r->dag.n; i++) {
		struct sup *s = r->steps[i].sup;
		if (!s)
			continue;
		s->step = &r->steps[i];
		s->eng = e;
		s->timer = (struct loop_timer)LOOP_TIMER_INIT(approval_timer_cb, s);
	}
}

void sup_load(struct orch_engine *e, struct run *r)
{
	for (size_t i = 0; i < r->dag.n; i++) {
		struct step *st = &r->steps[i];
		enum step_state state = r->dag.nodes[i].state;
		/* the wait a step's state says it has, whatever was stored (the
		 * state directory is hostile; a save may have failed) */
		enum sup_wait want = state == STEP_AWAITING_APPROVAL ? SUP_WAIT_APPROVAL
				   : state == STEP_NEEDS_HUMAN	  ? SUP_WAIT_LOOP
				   : SUP_WAIT_NONE;
		struct sup *s = st->sup;
		if (!s && want == SUP_WAIT_NONE)
			continue;
		if (!s && !(s = sup_of(e, st)))
			continue;
		if (want == SUP_WAIT_NONE && s->wait == SUP_WAIT_QUESTION &&
		    (state == STEP_RUNNING || state == STEP_PENDING))
			want = SUP_WAIT_QUESTION;	/* asked by an attempt that runs again */
		if (s->wait != want) {
			if (want && !s->since)
				s->since = st->started_at ? st->started_at : clock_wall_ms();
			s->wait = want;
			sup_save(e, st);
		}
		if (!s->wait)
			continue;
		att_insert(e, s);
		r->nwaits++;
		if (s->wait == SUP_WAIT_APPROVAL)
			approval_arm(e, st);
	}
}

void sup_unload(struct orch_engine *e, struct run *r)
{
	for (size_t i = 0; i < r->dag.n; i++) {
		struct sup *s = r->steps[i].sup;
		if (!s)
			continue;
		att_remove(e, s);
		loop_timer_cancel(&e->loop, &s->timer);
	}
}

int sup_render_attention(struct orch_engine *e, struct sbuf *out)
{
	for (struct sup *s = e->att_head; s; s = s->att_next) {
		struct step *st = s->step;
		char since[ISO8601_LEN];
		fmt_iso8601(s->since, since);
		char *detail = wait_detail(st);
		json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?}", "kind", sup_wait_name(s->wait), "run_id",
				      st->run->name, "step_id", step_id(st), "sandbox", st->run->sb_name, "since",
				      since, "detail", detail);
		orch_free(detail);
		char *line = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
		json_decref(o);
		if (!line)
			return -ENOMEM;
		sbuf_adds(out, line);
		sbuf_addc(out, '\n');
		free(line);
	}
	return sbuf_failed(out) ? -ENOMEM : 0;
}

int orch_render_attention(struct orch_engine *e, struct sbuf *out) { return sup_render_attention(e, out); }

/* ---- runs/ID/steps/STEP/ctl ---- */

int orch_step_ctl(struct orch_engine *e, int64_t step_rowid, const char *cmd, size_t len,
		  const struct orch_who *who)
{
	enum { APPROVE, REJECT, RETRY, FAIL };
	static const char *const verbs[] = { "approve", "reject", "retry", "fail" };
	const char *arg;
	size_t alen;
	int v = ctl_parse_arg(cmd, len, verbs, ARRAY_SIZE(verbs), &arg, &alen);
	if (v < 0)
		return v;
	if ((v == RETRY && alen) || !utf8_valid(arg, alen))
		return -EINVAL;
	struct orch_step_attr a;
	int rc = orch_step_by_rowid(e, step_rowid, &a);
	if (rc)
		return rc;
	struct run *r = run_get(e, a.run_rowid);
	if (!r || a.idx >= r->dag.n)
		return -ENOENT;
	struct step *st = &r->steps[a.idx];
	const struct plan_step *ps = &r->plan->steps[a.idx];
	if (!sup_may_decide(&e->ident, (const char *const *)ps->approvers, ps->napprovers, r->uid, who))
		return -EACCES;
	enum step_state state = step_state_of(st);
	bool ok = r->active && ((v == APPROVE || v == REJECT) ? state == STEP_AWAITING_APPROVAL
				: v == RETRY ? state == STEP_NEEDS_HUMAN
				: state == STEP_NEEDS_HUMAN || state == STEP_RUNNING);
	if (!ok)
		return -EINVAL;
	if (v == FAIL && state == STEP_RUNNING && !st->proc)
		return -EBUSY;	/* its process is being started: a moment later */
	if ((rc = eng_room(e)))
		return rc;
	char by[IDENT_NAME_MAX];
	snprintf(by, sizeof(by), "%s", ident_user(&e->ident, who->uid));
	switch (v) {
	case APPROVE:
	case REJECT:
		decide(e, st, v == APPROVE, by, arg, alen);
		break;
	case RETRY:
		if (st->sup)
			sup_series_reset(st->sup);
		sup_wait_end(e, st, "retried");
		ev_emit(e, "step.retried", r, st, NULL, json_pack("{s:s}", "by", by));
		run_step_retry(e, st);
		break;
	case FAIL:
		if (sup_of(e, st)) {
			orch_free(st->sup->reason);
			st->sup->reason = alen ? text_dup(arg, alen) : NULL;
		}
		sup_wait_end(e, st, "failed");
		ev_emit(e, "step.failed_by_user", r, st, NULL,
			json_pack("{s:s, s:s?}", "by", by, "reason", st->sup ? st->sup->reason : NULL));
		if (state == STEP_RUNNING)
			run_step_stop(e, st, "failed_by_user");
		else
			run_step_fail(e, st, "failed_by_user");
		break;
	}
	orch_need_durable(e);
	return 0;
}
