/* core/render.c — the text of the read-only files: run and step status JSON,
 * the summary for people, the DOT graph, metrics, health and the mount's
 * README.
 * Each is rendered whole when a file is opened (a snapshot). */
#include "core/engine_i.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/version.h"

static json_t *time_or_null(int64_t ms)
{
	if (!ms)
		return json_null();
	char ts[ISO8601_LEN];
	fmt_iso8601(ms, ts);
	return json_string(ts);
}

static unsigned run_percent(const struct run *r)
{
	size_t n = r->dag.n;
	unsigned done = r->counts[STEP_SUCCEEDED] + r->counts[STEP_FAILED] + r->counts[STEP_TIMED_OUT] +
			r->counts[STEP_SKIPPED] + r->counts[STEP_CANCELLED];
	return n ? (unsigned)(done * 100 / n) : 100;
}

int render_run_status(struct orch_engine *e, struct run *r, struct sbuf *out)
{
	(void)e;
	json_t *o = json_pack(
		"{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}}",
		"run_id", r->name, "plan_id", r->plan->plan_id, "plan_name", r->plan_name, "state",
		run_state_name(r->state), "sandbox", r->sb_name, "created_at", time_or_null(r->created_at),
		"started_at", time_or_null(r->started_at), "finished_at", time_or_null(r->finished_at),
		"progress", "total", (json_int_t)r->dag.n, "pending", (json_int_t)r->counts[STEP_PENDING],
		"running", (json_int_t)r->counts[STEP_RUNNING], "succeeded",
		(json_int_t)r->counts[STEP_SUCCEEDED], "failed",
		(json_int_t)(r->counts[STEP_FAILED] + r->counts[STEP_TIMED_OUT]), "skipped",
		(json_int_t)r->counts[STEP_SKIPPED], "cancelled", (json_int_t)r->counts[STEP_CANCELLED],
		"percent", (json_int_t)run_percent(r));
	/* steps waiting for a person (SPEC §8), as their own counts */
	json_t *pr = json_object_get(o, "progress");
	if (pr) {
		json_object_set_new(pr, "awaiting_approval", json_integer(r->counts[STEP_AWAITING_APPROVAL]));
		json_object_set_new(pr, "needs_human", json_integer(r->counts[STEP_NEEDS_HUMAN]));
	}
	return sbuf_put_json(out, o);
}

/* SPEC §8 in a step's status: an approval's prompt and decision, an open
 * question, a detected loop, an agent's turns and usage. */
static void render_step_supervision(const struct step *s, json_t *o)
{
	const struct plan_step *ps = &s->run->plan->steps[s->idx];
	const struct sup *su = s->sup;
	if (ps->approval) {
		json_object_set_new(o, "type", json_string("approval"));
		json_object_set_new(o, "prompt", ps->prompt ? json_string(ps->prompt) : json_null());
		json_t *a = json_array();
		for (size_t k = 0; a && k < ps->napprovers; k++)
			json_array_append_new(a, json_string(ps->approvers[k]));
		json_object_set_new(o, "approvers", a ? a : json_null());
		bool d = su && su->decision;
		json_object_set_new(o, "decision",
				    !d ? json_null()
				       : json_string(su->decision == SUP_APPROVED ? "approved" : "rejected"));
		json_object_set_new(o, "decided_by", d && su->decided_by ? json_string(su->decided_by) : json_null());
		json_object_set_new(o, "decided_at", d ? time_or_null(su->decided_at) : json_null());
		/* the decider's words; else the failure's reason ("rejected") */
		if (d && su->reason)
			json_object_set_new(o, "reason", json_string(su->reason));
		return;
	}
	if (su && su->wait == SUP_WAIT_QUESTION)
		json_object_set_new(o, "question", json_string(su->question ? su->question : ""));
	if (su && su->wait == SUP_WAIT_LOOP) {
		json_t *att = json_array();
		for (unsigned k = su->first; att && k < su->first + su->same; k++)
			json_array_append_new(att, json_integer(k));
		json_object_set_new(o, "loop", json_pack("{s:s?, s:o?}", "signature", su->sig, "attempts", att));
	}
	if (su && su->reason && step_state_of(s) == STEP_FAILED && s->reason &&
	    !strcmp(s->reason, "failed_by_user"))
		json_object_set_new(o, "reason_text", json_string(su->reason));
	json_object_set_new(o, "turns", json_integer(su ? su->turns : 0));
	json_object_set_new(o, "usage", json_pack("{s:f, s:I}", "cost_usd", su ? su->cost_usd : 0.0, "tokens",
						  (json_int_t)(su ? su->tokens : 0)));
	if (ps->max_turns)
		json_object_set_new(o, "max_turns", json_integer(ps->max_turns));
	if (ps->budget_cost_usd > 0 || ps->budget_tokens > 0) {
		json_t *b = json_object();
		if (b && ps->budget_cost_usd > 0)
			json_object_set_new(b, "cost_usd", json_real(ps->budget_cost_usd));
		if (b && ps->budget_tokens > 0)
			json_object_set_new(b, "tokens", json_integer(ps->budget_tokens));
		json_object_set_new(o, "budget", b ? b : json_null());
	}
}

/* "usage" (SPEC §10) of a step with a cgroup: its running attempt's, read
 * now (two small cgroupfs files), else its last attempt's, kept as it ended. */
static void render_step_usage(struct orch_engine *e, const struct step *s, json_t *o)
{
	bool mem = s->usage_mem_set, cpu = s->usage_cpu_set;
	int64_t peak = s->usage_mem, ns = s->usage_cpu_ns;
	if (s->proc && s->proc->cg.rel) {
		struct cg_usage u;
		cg_usage_read(&e->cg, &s->proc->cg, &u);
		mem = u.have_mem;
		cpu = u.have_cpu;
		peak = u.memory_peak;
		ns = u.cpu_ns;
	} else if (!s->usage_set) {
		return;
	}
	/* beside an agent's usage (cost_usd, tokens: SPEC §8) when it has one */
	json_t *u = json_object_get(o, "usage");
	if (!json_is_object(u) && (!(u = json_object()) || json_object_set_new(o, "usage", u)))
		return;
	json_object_set_new(u, "memory_peak_mb", mem ? json_real((double)(peak * 10 / (1 << 20)) / 10) : json_null());
	json_object_set_new(u, "cpu_sec", cpu ? json_real((double)(ns / 1000000) / 1000) : json_null());
}

int render_step_status(struct orch_engine *e, struct step *s, struct sbuf *out)
{
	struct run *r = s->run;
	const struct plan_step *ps = &r->plan->steps[s->idx];
	json_t *deps = json_array();
	for (size_t k = 0; deps && k < ps->ndeps; k++)
		json_array_append_new(deps, json_string(r->plan->steps[ps->deps[k]].id));
	int64_t dur = s->duration_ms;
	if (step_state_of(s) == STEP_RUNNING && s->started_at)
		dur = clock_wall_ms() - s->started_at;
	json_t *o = json_pack("{s:s, s:o, s:s, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id", ps->id,
			      "name", ps->name ? json_string(ps->name) : json_null(), "state",
			      step_state_name(step_state_of(s)), "attempt", (json_int_t)s->attempt,
			      "max_attempts", (json_int_t)(s->budget + s->interrupted), "exit_code",
			      s->exit_code >= 0 ? json_integer(s->exit_code) : json_null(), "signal",
			      s->signal ? json_integer(s->signal) : json_null(), "started_at",
			      time_or_null(s->started_at), "finished_at", time_or_null(s->finished_at),
			      "duration_ms", s->started_at ? json_integer(dur) : json_null(),
			      "depends_on", deps ? deps : json_null(), "reason",
			      s->reason ? json_string(s->reason) : json_null());
	if (o && s->retry_at)
		json_object_set_new(o, "next_attempt_at", time_or_null(s->retry_at));
	if (o)
		render_step_supervision(s, o);
	if (o)
		render_step_usage(e, s, o);
	return sbuf_put_json(out, o);
}

static void fmt_duration(int64_t ms, char *buf, size_t n)
{
	if (ms < 60000)
		snprintf(buf, n, "%.1fs", (double)ms / 1000.0);
	else if (ms < 3600000)
		snprintf(buf, n, "%dm%02ds", (int)(ms / 60000), (int)(ms / 1000 % 60));
	else
		snprintf(buf, n, "%dh%02dm", (int)(ms / 3600000), (int)(ms / 60000 % 60));
}

int render_run_summary(struct orch_engine *e, struct run *r, struct sbuf *out)
{
	(void)e;
	unsigned pct = run_percent(r);
	int64_t now = clock_wall_ms();
	char dur[32] = "";
	if (r->started_at)
		fmt_duration((r->finished_at ? r->finished_at : now) - r->started_at, dur, sizeof(dur));
	sbuf_addf(out, "run %s (plan %s): %s%s%s\n", r->name, r->plan->plan_id, run_state_name(r->state),
		  *dur ? " after " : "", dur);
	sbuf_adds(out, "[");
	for (unsigned k = 0; k < 30; k++)
		sbuf_addc(out, k < pct * 30 / 100 ? '#' : '.');
	sbuf_addf(out, "] %3u%%  %u/%zu done", pct,
		  r->counts[STEP_SUCCEEDED] + r->counts[STEP_FAILED] + r->counts[STEP_TIMED_OUT] +
			  r->counts[STEP_SKIPPED] + r->counts[STEP_CANCELLED],
		  r->dag.n);
	static const enum step_state order[] = { STEP_RUNNING, STEP_AWAITING_APPROVAL,
						 STEP_NEEDS_HUMAN, STEP_SUCCEEDED, STEP_FAILED,
						 STEP_TIMED_OUT, STEP_SKIPPED, STEP_CANCELLED,
						 STEP_PENDING };
	for (size_t k = 0; k < ARRAY_SIZE(order); k++)
		if (r->counts[order[k]])
			sbuf_addf(out, ", %u %s", r->counts[order[k]], step_state_name(order[k]));
	sbuf_adds(out, "\n\n");
	size_t w = 4;
	for (size_t i = 0; i < r->dag.n; i++)
		if (strlen(r->plan->steps[i].id) > w)
			w = strlen(r->plan->steps[i].id);
	for (size_t i = 0; i < r->dag.n; i++) {
		struct step *s = &r->steps[i];
		const struct plan_step *ps = &r->plan->steps[i];
		enum step_state st = r->dag.nodes[i].state;
		sbuf_addf(out, "  %-9s  %-*s", step_state_name(st), (int)w, ps->id);
		if (s->attempt)
			sbuf_addf(out, "  attempt %u/%u", s->attempt, s->budget + s->interrupted);
		if (s->started_at) {
			fmt_duration(st == STEP_RUNNING ? now - s->started_at : s->duration_ms, dur,
				     sizeof(dur));
			sbuf_addf(out, "  %s", dur);
		}
		if (s->exit_code > 0)
			sbuf_addf(out, "  exit %d", s->exit_code);
		if (s->signal)
			sbuf_addf(out, "  signal %d", s->signal);
		if (s->reason && st != STEP_SUCCEEDED && strcmp(s->reason, "exit"))
			sbuf_addf(out, "  (%s)", s->reason);
		if (ps->name)
			sbuf_addf(out, "  %s", ps->name);
		sbuf_addc(out, '\n');
	}
	return sbuf_failed(out) ? -ENOMEM : 0;
}

static const char *state_color(enum step_state st)
{
	switch (st) {
	case STEP_PENDING: return "white";
	case STEP_RUNNING: return "lightskyblue";
	case STEP_AWAITING_APPROVAL: return "plum";
	case STEP_NEEDS_HUMAN: return "gold";
	case STEP_SUCCEEDED: return "palegreen";
	case STEP_FAILED: return "salmon";
	case STEP_TIMED_OUT: return "orange";
	case STEP_SKIPPED: return "lightgrey";
	case STEP_CANCELLED: return "khaki";
	default: return "white";
	}
}

int render_run_graph(struct orch_engine *e, struct run *r, struct sbuf *out)
{
	(void)e;
	sbuf_adds(out, "digraph ");
	sbuf_add_json_str(out, r->name);
	sbuf_adds(out, " {\n  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\"];\n");
	for (size_t i = 0; i < r->dag.n; i++) {
		const char *id = r->plan->steps[i].id;	/* ids are [A-Za-z0-9_-]: no quoting issues */
		enum step_state st = r->dag.nodes[i].state;
		sbuf_addf(out, "  \"%s\" [label=\"%s\\n%s\", fillcolor=\"%s\"];\n", id, id,
			  step_state_name(st), state_color(st));
	}
	for (size_t i = 0; i < r->dag.n; i++) {
		const struct plan_step *ps = &r->plan->steps[i];
		for (size_t k = 0; k < ps->ndeps; k++)
			sbuf_addf(out, "  \"%s\" -> \"%s\";\n", r->plan->steps[ps->deps[k]].id, ps->id);
	}
	sbuf_adds(out, "}\n");
	return sbuf_failed(out) ? -ENOMEM : 0;
}

/* The upper bounds of orchfs_step_duration_seconds' buckets, in seconds:
 * from a tenth of a second (a quick command) to half a day (an agent). */
static const double step_hist_bounds[STEP_HIST_BUCKETS] = {
	0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 10800, 43200,
};
static const char *const step_hist_le[STEP_HIST_BUCKETS] = {
	"0.1", "0.5", "1", "5", "10", "30", "60", "300", "900", "3600", "10800", "43200",
};

void step_hist_add(struct step_hist *h, int64_t ms)
{
	double sec = ms > 0 ? (double)ms / 1000.0 : 0;
	size_t i = 0;
	while (i < STEP_HIST_BUCKETS && sec > step_hist_bounds[i])
		i++;
	h->bucket[i]++;
	h->count++;
	h->sum += sec;
}

/* the final states a step's duration and a run's end are counted by */
static const enum step_state hist_states[] = { STEP_SUCCEEDED, STEP_FAILED, STEP_TIMED_OUT, STEP_CANCELLED };
static const enum run_state end_states[] = { RUN_SUCCEEDED, RUN_FAILED, RUN_CANCELLED };

static void render_step_durations(struct orch_engine *e, struct sbuf *out)
{
	sbuf_adds(out, "# HELP orchfs_step_duration_seconds How long steps that ran took (their status's"
		       " duration_ms), by the state they ended in, since the daemon started.\n"
		       "# TYPE orchfs_step_duration_seconds histogram\n");
	for (size_t k = 0; k < ARRAY_SIZE(hist_states); k++) {
		const char *st = step_state_name(hist_states[k]);
		const struct step_hist *h = &e->step_hist[hist_states[k]];
		int64_t cum = 0;
		for (size_t i = 0; i < STEP_HIST_BUCKETS; i++) {
			cum += h->bucket[i];
			sbuf_addf(out, "orchfs_step_duration_seconds_bucket{state=\"%s\",le=\"%s\"} %lld\n", st,
				  step_hist_le[i], (long long)cum);
		}
		sbuf_addf(out,
			  "orchfs_step_duration_seconds_bucket{state=\"%s\",le=\"+Inf\"} %lld\n"
			  "orchfs_step_duration_seconds_sum{state=\"%s\"} %.3f\n"
			  "orchfs_step_duration_seconds_count{state=\"%s\"} %lld\n",
			  st, (long long)h->count, st, h->sum, st, (long long)h->count);
	}
	sbuf_adds(out, "# HELP orchfs_runs_finished_total Runs that finished since the daemon started, by final"
		       " state.\n"
		       "# TYPE orchfs_runs_finished_total counter\n");
	for (size_t k = 0; k < ARRAY_SIZE(end_states); k++)
		sbuf_addf(out, "orchfs_runs_finished_total{state=\"%s\"} %lld\n", run_state_name(end_states[k]),
			  (long long)e->runs_finished[end_states[k]]);
}

int orch_render_health(struct orch_engine *e, struct sbuf *out)
{
	/* a cheap look at the database (its header, no scan), and the last
	 * commit went through (else the state is being written again) */
	bool db_ok = !e->resync && store_int(&e->st, "PRAGMA schema_version", -1, NULL) > 0;
	int64_t free_bytes = eng_disk_free(e);
	bool room = free_bytes < 0 || free_bytes >= e->disk_reserve;
	json_t *o = json_pack("{s:b, s:s, s:I, s:s, s:b, s:o, s:I, s:I}", "ok", db_ok && room && !e->stopping,
			      "version", ORCHFS_VERSION, "uptime_sec",
			      (json_int_t)((clock_mono_ms() - e->opened_mono) / 1000), "state_dir", e->state_dir,
			      "db_ok", db_ok, "disk_free_mb",
			      free_bytes < 0 ? json_null() : json_integer(free_bytes >> 20), "running_steps",
			      (json_int_t)e->running, "queued_messages", (json_int_t)e->msg_queued);
	return sbuf_put_json(out, o);
}

int orch_render_metrics(struct orch_engine *e, struct sbuf *out)
{
	sbuf_adds(out, "# HELP orchfs_runs Runs in the state directory, by state.\n"
		       "# TYPE orchfs_runs gauge\n");
	for (int s = 0; s < RUN_NSTATES; s++)
		sbuf_addf(out, "orchfs_runs{state=\"%s\"} %lld\n", run_state_name((enum run_state)s),
			  (long long)e->run_counts[s]);
	sbuf_adds(out, "# HELP orchfs_steps Steps of every run, by state.\n"
		       "# TYPE orchfs_steps gauge\n");
	for (int s = 0; s < STEP_NSTATES; s++)
		sbuf_addf(out, "orchfs_steps{state=\"%s\"} %lld\n", step_state_name((enum step_state)s),
			  (long long)e->step_counts[s]);
	sbuf_addf(out,
		  "# HELP orchfs_attention_waits What waits for a person now (MOUNT/attention).\n"
		  "# TYPE orchfs_attention_waits gauge\n"
		  "orchfs_attention_waits %zu\n"
		  "# HELP orchfs_running_steps Step processes alive now.\n"
		  "# TYPE orchfs_running_steps gauge\n"
		  "orchfs_running_steps %u\n"
		  "# HELP orchfs_runs_created_total Runs created (accepted submissions).\n"
		  "# TYPE orchfs_runs_created_total counter\n"
		  "orchfs_runs_created_total %lld\n"
		  "# HELP orchfs_events_total Events recorded.\n"
		  "# TYPE orchfs_events_total counter\n"
		  "orchfs_events_total %lld\n"
		  "# HELP orchfs_clock_steps_total Steps of the wall clock noticed (SPEC 9: deadlines keep their real time).\n"
		  "# TYPE orchfs_clock_steps_total counter\n"
		  "orchfs_clock_steps_total %lld\n",
		  e->att_count, e->running, (long long)e->runs_created, (long long)e->events_total,
		  (long long)e->clock_steps);
	int64_t q = store_int(&e->st, "SELECT count(*) FROM sandboxes", 0, NULL);
	sbuf_addf(out,
		  "# HELP orchfs_sandboxes Sandboxes that exist.\n"
		  "# TYPE orchfs_sandboxes gauge\n"
		  "orchfs_sandboxes %lld\n"
		  "# HELP orchfs_messages_queued Messages waiting in inboxes.\n"
		  "# TYPE orchfs_messages_queued gauge\n"
		  "orchfs_messages_queued %lld\n"
		  "# HELP orchfs_db_commits_total Store transactions committed (durable ones fsync).\n"
		  "# TYPE orchfs_db_commits_total counter\n"
		  "orchfs_db_commits_total{durable=\"false\"} %lld\n"
		  "orchfs_db_commits_total{durable=\"true\"} %lld\n",
		  (long long)q, (long long)e->msg_queued, (long long)(e->st.commits - e->st.durable_commits),
		  (long long)e->st.durable_commits);
	render_step_durations(e, out);
	webhook_metrics(e, out);
	health_metrics(e, out);
	return sbuf_failed(out) ? -ENOMEM : 0;
}

void orch_render_readme(struct sbuf *out)
{
	sbuf_adds(out,
		  "orchfs: an orchestration engine whose interface is this directory.\n"
		  "\n"
		  "  plans/NAME.json     write a plan (JSON DAG of steps) here to start a run;\n"
		  "                      an invalid one fails its close() with EINVAL and\n"
		  "                      plans/NAME.error says why; plans/NAME.run links the newest run\n"
		  "  runs/NAME-N/        status (JSON), summary, plan.json, events (JSONL),\n"
		  "                      graph.dot, ctl (write cancel, pause, resume or retry),\n"
		  "                      wait (a read blocks until the run ends, then gives its status),\n"
		  "                      steps/ID/status and steps/ID/log\n"
		  "  sandboxes/ID/       status, workspace -> the run's working directory;\n"
		  "                      mkdir to create one, rmdir to delete it\n"
		  "  events              every event, one JSON object a line (tail -f it)\n"
		  "  metrics             Prometheus text format\n"
		  "  health              the daemon's own health (JSON)\n"
		  "\n"
		  "A minimal plan:\n"
		  "  {\"steps\": [{\"id\": \"hello\", \"command\": \"echo\", \"args\": [\"hi\"]}]}\n");
}
