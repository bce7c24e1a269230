/* core/health.h — health checks of a sandbox's services (SPEC §11): an HTTP
 * GET of a loopback URL (core/http.h, on the engine's loop) or a command run
 * as the sandbox's steps run (core/spawner.h, its exit watched by pidfd,
 * killed at its timeout), every interval_sec while a step runs in the
 * sandbox. The sandbox's `health` shows the worse of this verdict and the
 * heartbeat's (SPEC §8); `checks` counts them.
 *
 * Owns each sandbox's check (struct health: its configuration, as saved in
 * sandboxes.health, its timer, its request or process) and the engine's
 * check processes (struct health_engine). The pure part (health_count,
 * the names, the configuration's JSON) may be called from any thread; the
 * rest only on the engine thread.
 *
 * A check passes on an HTTP status from 200 to 399 (redirects are not
 * followed), or on exit status 0. The first check comes interval_sec after
 * checks start; each next one interval_sec after the one before started
 * (never two at once). A pass makes the sandbox healthy; a failure makes it
 * degraded, and unhealthy_after failures in a row unhealthy (an unhealthy
 * one stays so until a pass). The verdict stays when checks stop. */
#ifndef ORCH_HEALTH_H
#define ORCH_HEALTH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/loop.h"
#include "core/util.h"

enum health_state { HEALTH_UNKNOWN, HEALTH_HEALTHY, HEALTH_DEGRADED, HEALTH_UNHEALTHY };

const char *health_state_name(enum health_state s);
/* The worse of two verdicts: unhealthy, degraded, healthy, unknown. */
enum health_state health_worse(enum health_state a, enum health_state b);

/* What the checks of a sandbox have found so far. */
struct health_tally {
	enum health_state state;
	unsigned streak;	/* failures in a row */
	int64_t passed, failed;
};
/* Count one check (OK: it passed) against UNHEALTHY_AFTER: true when the
 * state changed (an event is due: sandbox.<state>). */
bool health_count(struct health_tally *t, bool ok, unsigned unhealthy_after);

/* A check as a sandbox keeps it (sandboxes.health, JSON). */
struct health_cfg {
	char *url;		/* NULL: argv */
	char **argv;		/* argc strings, then NULL */
	size_t argc;
	int64_t interval_ms, timeout_ms;
	unsigned unhealthy_after;
};
struct plan_health;
/* The JSON of a plan's (substituted) health check: a new string, or NULL. */
char *health_cfg_json(const struct plan_health *ph);
/* Read what health_cfg_json() wrote: 0, -EINVAL, -ENOMEM. */
int health_cfg_parse(const char *json, struct health_cfg *c);
void health_cfg_release(struct health_cfg *c);

struct hcmd;
/* The engine's: check processes alive (or being started), those to free
 * after the turn, and the counts for MOUNT/metrics. */
struct health_engine {
	struct hcmd *cmds, *dead;
	struct loop_timer reap;
	int64_t passed, failed;
};

struct orch_engine;
struct sandbox;
struct health;

void health_engine_init(struct orch_engine *e);
/* At close, after every sandbox is freed: what still runs is killed. */
void health_engine_release(struct orch_engine *e);
/* A run took SB under a plan whose sandbox has PH: SB's check from now on
 * (saved with SB; the same one again changes nothing; "health": null, PH
 * without url or command, removes it). 0 or -errno. */
int health_set(struct orch_engine *e, struct sandbox *sb, const struct plan_health *ph);
/* SB was loaded: its saved check (JSON, NULL: none). 0 or -errno. */
int health_load(struct orch_engine *e, struct sandbox *sb, const char *json);
/* Check while a run holds SB and has a step running; stop otherwise. Called
 * where steps start and end (core/run.c). */
void health_sync(struct orch_engine *e, struct sandbox *sb);
/* SB goes away: its check stops (a process of it is killed). */
void health_free(struct health *h);
/* Into SB's status O: "health", the worse of HB (the heartbeat's verdict)
 * and the checks', and "checks" {passed, failed, last_at, last_error}
 * (null when SB has no check). */
void health_render(const struct sandbox *sb, enum health_state hb, json_t *o);
/* orchfs_health_checks_total{result} for MOUNT/metrics. */
void health_metrics(struct orch_engine *e, struct sbuf *out);

#endif
