/* core/plan.h — the plan format of SPEC §3: parsing, validation with messages
 * people can act on, and ${VAR} substitution.
 * Owns struct plan and its steps. Pure (no I/O, no engine state): any thread. */
#ifndef ORCH_PLAN_H
#define ORCH_PLAN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/util.h"
#include "core/window.h"

#define PLAN_MAX_BYTES (16u << 20)	/* larger plan files are refused with EFBIG */
#define PLAN_MAX_STEPS 100000
#define PLAN_MAX_ERRORS 50		/* .error keeps at most this many lines */

enum on_failure { ON_FAILURE_ABORT, ON_FAILURE_SKIP_DEPENDENTS, ON_FAILURE_CONTINUE };

enum isolation { ISOLATION_UNSET = -1, ISOLATION_NONE = 0, ISOLATION_BWRAP = 1 };

/* An approval step's decision when its timeout_sec passes (SPEC §8). */
enum on_timeout { ON_TIMEOUT_REJECT, ON_TIMEOUT_APPROVE };

/* "limits" (SPEC §10, core/cgroup.h) of a step or of a sandbox (all its
 * steps together); 0 in a field is "no limit". memory_mb, pids and cpus
 * need a cgroup; cpu_sec and open_files are setrlimit()'s. */
struct plan_limits {
	long long memory_mb;	/* 4..PLAN_LIMIT_MEMORY_MB_MAX */
	long long pids;		/* 1..PLAN_LIMIT_PIDS_MAX */
	long long cpu_sec;	/* 1..31536000 (a year): RLIMIT_CPU */
	long long open_files;	/* PLAN_LIMIT_OPEN_FILES_MIN..PLAN_LIMIT_OPEN_FILES_MAX: RLIMIT_NOFILE */
	double cpus;		/* 0.01..PLAN_LIMIT_CPUS_MAX: a CPU bandwidth quota */
};
#define PLAN_LIMIT_MEMORY_MB_MAX (1LL << 30)	/* a petabyte */
#define PLAN_LIMIT_PIDS_MAX 4194304LL		/* the kernel's PID_MAX_LIMIT */
#define PLAN_LIMIT_OPEN_FILES_MIN 16LL	/* the trampoline and a shell need a few */
#define PLAN_LIMIT_OPEN_FILES_MAX 1048576LL	/* the kernel's default nr_open */
#define PLAN_LIMIT_CPUS_MAX 1024.0
/* the limits that need a cgroup controller, as plan_opts.limits_available has them */
#define PLAN_LIMIT_MEMORY 1u
#define PLAN_LIMIT_PIDS 2u
#define PLAN_LIMIT_CPUS 4u
/* Any limit at all? One that needs a cgroup? */
static inline bool plan_limits_any(const struct plan_limits *l)
{
	return l->memory_mb || l->pids || l->cpu_sec || l->open_files || l->cpus > 0;
}
static inline bool plan_limits_cgroup(const struct plan_limits *l)
{
	return l->memory_mb || l->pids || l->cpus > 0;
}

#define PLAN_LOOP_SAME_FAILURES 3	/* "loop": {"same_failures"} by default */
#define PLAN_MAX_APPROVERS 256

struct plan_step {
	char *id;		/* [A-Za-z0-9_-]{1,64} */
	char *name;		/* NULL when absent */
	char *command;
	char **args;		/* nargs strings, then NULL */
	size_t nargs;
	bool shell;		/* run command with /bin/sh -c */
	char **env;		/* "KEY=VALUE" strings of the step's own env, then NULL */
	size_t nenv;
	char *cwd;		/* NULL: the workspace itself */
	double timeout_sec;	/* 0: none; globals.default_timeout_sec already applied */
	double kill_grace_sec;	/* its own, else globals' (default 5) */
	unsigned retries;	/* default 0 */
	double retry_delay_sec;	/* default 0 */
	double retry_backoff;	/* default 1 */
	enum on_failure on_failure;	/* default abort */
	bool critical;		/* default true */
	double heartbeat_ttl_sec;	/* 0: none */
	double heartbeat_grace_sec;	/* 0: none (SPEC §8) */
	/* supervision (SPEC §8) */
	bool approval;		/* "type": "approval": no command, a person decides */
	char *prompt;		/* approval: NULL when absent */
	char **approvers;	/* approval: user names and "@group"s, then NULL; none: the owner */
	size_t napprovers;
	enum on_timeout on_timeout;	/* approval: default reject (at timeout_sec, when set) */
	unsigned same_failures;	/* identical failed attempts that make a loop; 0: off */
	unsigned repeated_actions;	/* identical agent.action events in a row; 0: off */
	unsigned max_turns;	/* agent.turn events allowed; 0: no limit */
	double budget_cost_usd;	/* sum of agent.usage cost_usd allowed; 0: no limit */
	long long budget_tokens;	/* sum of agent.usage tokens allowed; 0: no limit */
	struct plan_limits limits;	/* its own (SPEC §10); the sandbox's apply too */
	size_t *deps;		/* indexes into plan->steps, duplicates removed, in plan order */
	size_t ndeps;
};

/* "sandbox": {"health": ...} (SPEC §11, core/health.h): an HTTP check of a
 * loopback URL, or a command (exit 0 is healthy). */
struct plan_health {
	bool set;		/* the plan has one ("health": null: neither url nor command) */
	char *url;		/* NULL: command */
	char **command;		/* ncommand strings (argv), then NULL */
	size_t ncommand;
	double interval_sec;	/* default PLAN_HEALTH_INTERVAL */
	double timeout_sec;	/* default PLAN_HEALTH_TIMEOUT */
	unsigned unhealthy_after;	/* failures in a row; default PLAN_HEALTH_UNHEALTHY_AFTER */
};
#define PLAN_HEALTH_INTERVAL 10.0
#define PLAN_HEALTH_TIMEOUT 2.0
#define PLAN_HEALTH_UNHEALTHY_AFTER 3
#define PLAN_HEALTH_MAX_ARGS 256

struct plan_sandbox {
	char *id;		/* NULL: the run gets a sandbox of its own named after the run */
	enum isolation isolation;	/* ISOLATION_UNSET when absent */
	int network;		/* -1 absent, else 0/1 */
	int ports;		/* -1 absent, else 0..PLAN_MAX_PORTS */
	struct plan_health health;
	/* "ports": ["api", "web"] (SPEC §11): the names, in order (PORT0...),
	 * then NULL; NULL for a number, an empty list or no "ports" */
	char **port_names;
	/* "window" (SPEC §9, core/window.h): set when the plan gives one */
	struct window_spec window;
	/* "limits" (SPEC §10): for all the steps of the sandbox together */
	struct plan_limits limits;
};
#define PLAN_MAX_PORTS 64
#define PLAN_PORT_NAME_MAX 32	/* a port name: [a-z][a-z0-9_]{0,31} */
/* "PORT_" and the upper-cased name, with its NUL */
#define PLAN_PORT_VAR_MAX (5 + PLAN_PORT_NAME_MAX + 1)

struct plan {
	char *plan_id;		/* "plan_id", or the plan NAME */
	char **env;		/* plan-level "KEY=VALUE", then NULL */
	size_t nenv;
	unsigned max_concurrency;	/* 0: absent (the engine uses the CPU count) */
	double default_timeout_sec;	/* 0: none */
	double kill_grace_sec;	/* default 5 */
	unsigned same_failures;	/* globals.loop, the steps' default (PLAN_LOOP_SAME_FAILURES) */
	unsigned repeated_actions;	/* globals.loop, the steps' default (0) */
	struct plan_sandbox sandbox;
	/* "on" (SPEC §9): the plan is submitted by the events it names, not
	 * when its file is; the rules are doc's "on" (core/trigger.h) */
	bool triggered;
	/* "schedule" (SPEC §9): submitted at the times it names, not when
	 * its file is (core/schedule.h reads doc's "schedule") */
	bool scheduled;
	struct plan_step *steps;
	size_t nsteps;
	json_t *doc;		/* the parsed document; after plan_substitute(), the plan as run */
};

/* What validation needs to know about the world outside the text. */
struct plan_sandbox_info {
	bool exists;
	enum isolation isolation;
	bool network;
	int ports;
	char *const *port_names;	/* borrowed: ports names, or NULL (unnamed) */
};

struct plan_opts {
	/* orchfs --var NAME=VALUE defaults, "NAME=VALUE" strings; a plan's
	 * "variables" override them. May be NULL. */
	char *const *var_defaults;
	size_t nvar_defaults;
	bool bwrap_available;		/* may "bwrap" be asked for? */
	const char *bwrap_unavailable_reason;	/* for the message when it may not */
	/* PLAN_LIMIT_* bits: the limits that need a cgroup which the machine
	 * gives orchfs (core/cgroup.h); a plan asking for another is invalid,
	 * with limits_unavailable_reason (NULL: "no cgroup controller for it") */
	unsigned limits_available;
	const char *limits_unavailable_reason;
	/* Describe an existing sandbox (info->exists false when there is none).
	 * May be NULL: then no sandbox exists. */
	void (*sandbox_info)(void *ctx, const char *id, struct plan_sandbox_info *info);
	void *ctx;
	/* Take every string literally: no ${VAR} references, "$$" stays "$$".
	 * For plans already substituted (plan.json as run, on resume). */
	bool literal;
};

/* Parse and validate TEXT (LEN bytes, need not be NUL-terminated) as plan NAME.
 * Returns a new plan, or NULL with one line per problem appended to ERRS
 * (each line ends in '\n'; at most PLAN_MAX_ERRORS lines). On allocation
 * failure returns NULL and appends "out of memory\n". */
struct plan *plan_parse(const char *text, size_t len, const char *name,
			const struct plan_opts *opts, struct sbuf *errs);

/* Values of the built-in variables (SPEC §3) for one run. */
struct plan_builtins {
	const char *run_id;
	const char *sandbox_id;
	const char *workspace;
	const char *mount;
	const int *ports;	/* nports entries: PORT0.. */
	const char *const *port_names;	/* NULL, or the nports names: PORT_NAME.. */
	size_t nports;
	/* a triggered run's (SPEC §9): NULL is "" */
	const char *trigger_event;	/* the event's JSON line */
	const char *trigger_run_id;
	const char *trigger_sandbox;
};

/* Replace ${NAME} and $$ in every command, args, env value and cwd (STEP_ID is
 * each step's own id), and rewrite plan->doc to the plan as run. Every reference
 * was checked by plan_parse(); what is left: a PORTk beyond nports (or a
 * PORT_NAME of the plan's that the sandbox's port_names lack), and a
 * "command" or "cwd" that substitutes to nothing (the plan as run could not
 * be read again on resume). 0, or -EINVAL with the message appended to ERRS,
 * or -ENOMEM. */
int plan_substitute(struct plan *plan, const char *name, const struct plan_opts *opts,
		    const struct plan_builtins *b, struct sbuf *errs);

void plan_free(struct plan *plan);

/* Is URL one a health check may GET: http:// or https:// to 127.0.0.0/8,
 * [::1] or localhost (the sandbox's own services; the daemon probes nothing
 * else for a plan), with no user or password in it? */
bool plan_health_url_ok(const char *url);

const char *on_failure_name(enum on_failure f);

/* Is S a user name, or "@" and a group name, as "approvers" takes them?
 * (1 to 32 of A-Z a-z 0-9 _ . -, not starting with "-", a user name may
 * end in "$") */
bool plan_approver_ok(const char *s);

/* Is S a port name: 1 to PLAN_PORT_NAME_MAX of a-z 0-9 _, starting with a-z? */
bool plan_port_name_ok(const char *s);
/* "PORT_" and NAME upper-cased (a valid port name) into OUT: the variable
 * of a named port, in a step's environment and as ${PORT_NAME}. */
void plan_port_var(char out[PLAN_PORT_VAR_MAX], const char *name);

#endif
