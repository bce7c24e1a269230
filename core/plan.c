/* core/plan.c — parse and validate a plan (SPEC §3), then substitute ${VAR}s.
 *
 * plan_parse() does not stop at the first problem: a person fixing a plan
 * wants every mistake at once, so it walks the whole document and appends one
 * line per problem (top-level fields, then steps, then dependencies, then one
 * cycle), each naming where. The plan is built while walking and thrown away
 * when anything was wrong. plan_substitute() later fills in the values only a
 * run knows (RUN_ID, ports...) and rewrites the JSON document to match, so
 * the plan as run can be stored and parsed again with opts->literal.
 * Nothing here recurses on plan data: a 100,000-step chain is a valid plan. */
#include "core/plan.h"
#include "core/schedule.h"
#include "core/trigger.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SHOW_MAX 80		/* bytes of user text quoted in a message */
#define PLAN_ID_MAX 256

static const char *const top_fields[] = {
	"plan_id", "version", "metadata", "variables", "env", "globals", "sandbox", "steps", "on",
	"schedule",
};
static const char *const step_fields[] = {
	"id", "name", "command", "args", "shell", "env", "cwd", "depends_on", "timeout_sec",
	"retries", "retry_delay_sec", "retry_backoff", "on_failure", "critical",
	"heartbeat_ttl_sec", "kill_grace_sec", "heartbeat_grace_sec", "type", "prompt", "approvers",
	"on_timeout", "loop", "max_turns", "budget", "limits",
};
static const char *const globals_fields[] = {
	"max_concurrency", "default_timeout_sec", "kill_grace_sec", "loop",
};
static const char *const loop_fields[] = { "same_failures", "repeated_actions" };
static const char *const budget_fields[] = { "cost_usd", "tokens" };
/* fields that only a step with a command takes */
static const char *const command_only[] = {
	"command", "args", "shell", "env", "cwd", "retries", "retry_delay_sec", "retry_backoff",
	"heartbeat_ttl_sec", "heartbeat_grace_sec", "kill_grace_sec", "loop", "max_turns", "budget",
	"limits",
};
/* fields that only an approval step takes */
static const char *const approval_only[] = { "prompt", "approvers", "on_timeout" };
static const char *const sandbox_fields[] = { "id", "isolation", "network", "ports", "health", "window",
					      "limits" };
static const char *const limits_fields[] = { "memory_mb", "pids", "cpu_sec", "open_files", "cpus" };
static const char *const window_fields[] = { "duration_sec", "max_duration_sec", "extend_sec", "extend_when",
					     "idle_sec", "on_end" };
static const char *const window_rule_fields[] = { "event_type", "count", "within_sec" };
static const char *const health_fields[] = { "url", "command", "interval_sec", "timeout_sec", "unhealthy_after" };
static const char *const builtin_vars[] = {
	"RUN_ID", "PLAN_ID", "STEP_ID", "SANDBOX_ID", "WORKSPACE", "MOUNT",
	/* a plan with "on" only (SPEC §9) */
	"TRIGGER_EVENT", "TRIGGER_RUN_ID", "TRIGGER_SANDBOX",
};
#define BUILTIN_TRIGGER_FIRST 6
static const char *const on_fields[] = { "event_type", "match" };
static const char *const schedule_fields[] = { "every_sec", "cron", "overlap" };

/* Where problems go while one plan is checked or substituted. */
struct ctx {
	struct sbuf *errs;
	unsigned nerrs;
	bool oom;
	bool dep_errors;	/* an unknown dependency or a duplicate id: no cycle check */
};

/* What a ${NAME} may refer to. While parsing (b == NULL) only names matter. */
struct vars {
	const struct plan_opts *opts;
	json_t *variables;		/* borrowed: the plan's "variables", or NULL */
	size_t nports;			/* parsing: PORT0..PORT(nports-1) exist */
	/* parsing: the ports' names, for ${PORT_NAME}: the plan's own list
	 * (a JSON array, its strings that are no names ignored), else the
	 * existing sandbox's names; neither: none */
	json_t *port_list;
	char *const *port_names;
	const struct plan_builtins *b;	/* substituting: the run's values */
	const char *plan_id;
	const char *step_id;		/* NULL at plan level, where STEP_ID has no value */
	bool trigger;			/* the plan has "on": TRIGGER_* exist */
};

enum ref_kind { REF_END, REF_UNTERMINATED, REF_BAD_NAME, REF_UNKNOWN, REF_NO_PORT };

struct ref {
	const char *name;	/* the text between "${" and "}" */
	size_t len;
	unsigned long port;	/* REF_NO_PORT: which PORTk */
};

static const char *show(char buf[SHOW_MAX + 1], const char *s, size_t len)
{
	return text_show(buf, SHOW_MAX + 1, s, len);
}

/* Append one problem line, unless PLAN_MAX_ERRORS lines are there already. */
static void __attribute__((format(printf, 2, 3))) report(struct ctx *c, const char *fmt, ...)
{
	va_list ap;

	if (c->nerrs >= PLAN_MAX_ERRORS)
		return;
	c->nerrs++;
	va_start(ap, fmt);
	sbuf_vaddf(c->errs, fmt, ap);
	va_end(ap);
	sbuf_addc(c->errs, '\n');
}

/* orch_strdup() that records a failure in C. */
static char *dup(struct ctx *c, const char *s)
{
	char *d = orch_strdup(s);
	if (!d)
		c->oom = true;
	return d;
}

static void type_err(struct ctx *c, const char *pfx, const char *field, const char *kind)
{
	report(c, "%s\"%s\" must be %s", pfx, field, kind);
}

/* true when V is a JSON string holding a NUL byte (possible with \u0000) */
static bool has_nul(const json_t *v)
{
	return strlen(json_string_value(v)) != json_string_length(v);
}

/* A string field: true with *OUT set, or false after reporting why not. */
static bool get_str(struct ctx *c, const char *pfx, const char *field, const json_t *v,
		    bool nonempty, const char **out)
{
	if (!json_is_string(v) || (nonempty && json_string_length(v) == 0)) {
		type_err(c, pfx, field, nonempty ? "a non-empty string" : "a string");
		return false;
	}
	if (has_nul(v)) {
		report(c, "%s\"%s\" must not contain NUL bytes", pfx, field);
		return false;
	}
	*out = json_string_value(v);
	return true;
}

static bool get_bool(struct ctx *c, const char *pfx, const char *field, const json_t *v,
		     bool *out)
{
	if (!json_is_boolean(v)) {
		type_err(c, pfx, field, "a boolean");
		return false;
	}
	*out = json_is_true(v);
	return true;
}

/* A number in [LO, HI], or greater than LO when HI is HUGE_VAL. */
static bool get_num(struct ctx *c, const char *pfx, const char *field, const json_t *v,
		    double lo, double hi, double *out)
{
	if (!json_is_number(v)) {
		type_err(c, pfx, field, "a number");
		return false;
	}
	double x = json_number_value(v);
	if (hi == HUGE_VAL ? !(x > lo) : !(x >= lo && x <= hi)) {
		if (hi == HUGE_VAL)
			report(c, "%s\"%s\" must be greater than %g", pfx, field, lo);
		else
			report(c, "%s\"%s\" must be between %g and %g", pfx, field, lo, hi);
		return false;
	}
	*out = x;
	return true;
}

/* The longest time a plan may give: a year. Larger values only overflow the
 * engine's millisecond clocks (a timeout of 1e308 would fire at once). */
#define TIME_MAX_SEC 31536000.0

/* A duration: greater than 0 and at most TIME_MAX_SEC. */
static bool get_secs(struct ctx *c, const char *pfx, const char *field, const json_t *v, double *out)
{
	if (!get_num(c, pfx, field, v, 0, HUGE_VAL, out))
		return false;
	if (*out > TIME_MAX_SEC) {
		report(c, "%s\"%s\" must be at most %g (a year)", pfx, field, TIME_MAX_SEC);
		return false;
	}
	return true;
}

/* A JSON integer in [LO, HI]. */
static bool get_int(struct ctx *c, const char *pfx, const char *field, const json_t *v,
		    long long lo, long long hi, long long *out)
{
	if (!json_is_integer(v)) {
		type_err(c, pfx, field, "an integer");
		return false;
	}
	long long x = json_integer_value(v);
	if (x < lo || x > hi) {
		/* exactly: "1e+09" would be no integer in JSON */
		report(c, "%s\"%s\" must be between %lld and %lld", pfx, field, lo, hi);
		return false;
	}
	*out = x;
	return true;
}

/* "unknown field", naming the nearest of KNOWN when it is near enough. */
static void unknown_field(struct ctx *c, const char *pfx, const char *key,
			  const char *const *known, size_t nknown)
{
	char b[SHOW_MAX + 1];
	size_t len = strlen(key), best = SIZE_MAX, pick = 0;
	size_t limit = len / 3 > 2 ? len / 3 : 2;

	for (size_t i = 0; i < nknown; i++) {
		size_t d = edit_distance(key, known[i]);
		if (d < best) {
			best = d;
			pick = i;
		}
	}
	if (best <= limit)
		report(c, "%sunknown field \"%s\" (did you mean \"%s\"?)", pfx,
		       show(b, key, len), known[pick]);
	else
		report(c, "%sunknown field \"%s\"", pfx, show(b, key, len));
}

/* variables */

/* [A-Za-z_][A-Za-z0-9_]* */
static bool var_name_ok(const char *s, size_t len)
{
	if (len == 0 || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') ||
			  s[0] == '_'))
		return false;
	for (size_t i = 1; i < len; i++) {
		char ch = s[i];
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		      (ch >= '0' && ch <= '9') || ch == '_'))
			return false;
	}
	return true;
}

/* "PORT" and digits: true with *K set (saturated; "PORT01" is no port name). */
static bool port_name(const char *s, size_t len, unsigned long *k)
{
	if (len < 5 || memcmp(s, "PORT", 4) != 0 || (s[4] == '0' && len > 5))
		return false;
	unsigned long n = 0;
	for (size_t i = 4; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		n = n > 100000000 ? n : n * 10 + (unsigned long)(s[i] - '0');
	}
	*k = n;
	return true;
}

/* Does NAME (LEN bytes) say "PORT_" and port name PN upper-cased? */
static bool port_var_is(const char *name, size_t len, const char *pn)
{
	size_t n = strlen(pn);
	if (len != 5 + n || memcmp(name, "PORT_", 5) != 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (name[5 + i] != (pn[i] >= 'a' && pn[i] <= 'z' ? pn[i] - 'a' + 'A' : pn[i]))
			return false;
	return true;
}

/* The index of the named port whose variable is NAME ("PORT_API"), or -1.
 * Parsing (or PLAN set): among the names of V (port_list or port_names);
 * substituting: among the run's sandbox's. */
static long port_var_index(const struct vars *v, const char *name, size_t len, bool plan)
{
	if (len <= 5 || memcmp(name, "PORT_", 5) != 0)
		return -1;
	if (v->b && !plan) {
		for (size_t i = 0; v->b->port_names && i < v->b->nports; i++)
			if (v->b->port_names[i] && port_var_is(name, len, v->b->port_names[i]))
				return (long)i;
		return -1;
	}
	if (v->port_list) {
		for (size_t i = 0; i < json_array_size(v->port_list); i++) {
			const char *pn = json_string_value(json_array_get(v->port_list, i));
			if (pn && plan_port_name_ok(pn) && port_var_is(name, len, pn))
				return (long)i;
		}
		return -1;
	}
	for (size_t i = 0; v->port_names && v->port_names[i]; i++)
		if (port_var_is(name, len, v->port_names[i]))
			return (long)i;
	return -1;
}

/* Index+1 in builtin_vars[] of NAME, or 0. */
static size_t builtin_index(const char *s, size_t len)
{
	for (size_t i = 0; i < ARRAY_SIZE(builtin_vars); i++)
		if (strlen(builtin_vars[i]) == len && !memcmp(builtin_vars[i], s, len))
			return i + 1;
	return 0;
}

/* The value of ${NAME}, or why there is none. Built-ins win over the plan's
 * "variables", which win over the --var defaults (the last one given). */
static enum ref_kind lookup(const struct vars *v, const char *name, size_t len,
			    const char **val, char portbuf[24], unsigned long *port)
{
	unsigned long k;
	size_t bi;

	if (port_name(name, len, &k)) {
		if (!v->b)
			return k < v->nports ? REF_END : REF_UNKNOWN;
		if (k >= v->b->nports) {
			*port = k;
			return REF_NO_PORT;
		}
		snprintf(portbuf, 24, "%d", v->b->ports[k]);
		*val = portbuf;
		return REF_END;
	}
	/* a named port's; a name no port has may be a variable of the plan's */
	long pk = port_var_index(v, name, len, false);
	if (pk >= 0) {
		if (v->b) {
			snprintf(portbuf, 24, "%d", v->b->ports[pk]);
			*val = portbuf;
		}
		return REF_END;
	}
	if (v->b && port_var_index(v, name, len, true) >= 0) {
		*port = ULONG_MAX;	/* the plan names it, the run's sandbox has no such port */
		return REF_NO_PORT;
	}
	bi = builtin_index(name, len);
	if (bi) {
		const char *s = NULL;
		if (!strcmp(builtin_vars[bi - 1], "STEP_ID") && !v->step_id)
			return REF_UNKNOWN;
		if (bi - 1 >= BUILTIN_TRIGGER_FIRST && !v->trigger)
			return REF_UNKNOWN;
		if (v->b) {
			switch (bi - 1) {
			case 0: s = v->b->run_id; break;
			case 1: s = v->plan_id; break;
			case 2: s = v->step_id; break;
			case 3: s = v->b->sandbox_id; break;
			case 4: s = v->b->workspace; break;
			case 5: s = v->b->mount; break;
			case 6: s = v->b->trigger_event; break;
			case 7: s = v->b->trigger_run_id; break;
			default: s = v->b->trigger_sandbox; break;
			}
		}
		*val = s ? s : "";
		return REF_END;
	}
	json_t *jv = v->variables ? json_object_getn(v->variables, name, len) : NULL;
	if (jv) {
		*val = json_is_string(jv) ? json_string_value(jv) : "";
		return REF_END;
	}
	for (size_t i = v->opts->nvar_defaults; i-- > 0;) {
		const char *d = v->opts->var_defaults[i];
		if (d && !strncmp(d, name, len) && (d[len] == '=' || d[len] == '\0')) {
			*val = d[len] ? d + len + 1 : "";
			return REF_END;
		}
	}
	return REF_UNKNOWN;
}

/* Scan S from *POS up to the next problem (or the end), appending the text
 * with references replaced to OUT when OUT is not NULL. */
static enum ref_kind expand_next(const struct vars *v, const char *s, size_t *pos,
				 struct sbuf *out, struct ref *r)
{
	size_t i = *pos;

	while (s[i]) {
		if (s[i] != '$' || (s[i + 1] != '$' && s[i + 1] != '{')) {
			size_t n = strcspn(s + i + 1, "$") + 1;
			if (out)
				sbuf_add(out, s + i, n);
			i += n;
			continue;
		}
		if (s[i + 1] == '$') {
			if (out)
				sbuf_addc(out, '$');
			i += 2;
			continue;
		}
		const char *name = s + i + 2, *end = strchr(name, '}');
		if (!end) {
			*pos = strlen(s);
			return REF_UNTERMINATED;
		}
		r->name = name;
		r->len = (size_t)(end - name);
		*pos = i = (size_t)(end - s) + 1;
		if (!var_name_ok(name, r->len))
			return REF_BAD_NAME;
		const char *val = NULL;
		char portbuf[24];
		enum ref_kind k = lookup(v, name, r->len, &val, portbuf, &r->port);
		if (k != REF_END)
			return k;
		if (out)
			sbuf_adds(out, val);
	}
	*pos = i;
	return REF_END;
}

/* A problem at LOC: "step "S": WHAT in LOC" in a step (or "step "S": WHAT"
 * without IN), "LOC: WHAT" at plan level. */
static void loc_report(struct ctx *c, const char *pfx, const char *loc, const char *what,
		       bool in)
{
	if (pfx && !in)
		report(c, "%s%s", pfx, what);
	else if (pfx)
		report(c, "%s%s in %s", pfx, what, loc);
	else
		report(c, "%s: %s", loc, what);
}

/* Describe reference problem K in WHAT. */
static void ref_what(char *what, size_t n, enum ref_kind k, const struct ref *r,
		     const struct vars *v)
{
	char b[SHOW_MAX + 1];

	switch (k) {
	case REF_UNTERMINATED:
		snprintf(what, n, "unterminated \"${\"");
		break;
	case REF_BAD_NAME:
		snprintf(what, n, "invalid variable name \"${%s}\"", show(b, r->name, r->len));
		break;
	case REF_NO_PORT:
		if (r->port == ULONG_MAX)
			snprintf(what, n, "%s is not allocated (the sandbox has no port of that name)",
				 show(b, r->name, r->len));
		else
			snprintf(what, n, "PORT%lu is not allocated (the sandbox has %zu ports)", r->port,
				 v->b ? v->b->nports : 0);
		break;
	default:
		snprintf(what, n, "unknown variable \"${%s}\"", show(b, r->name, r->len));
		break;
	}
}

/* Report every bad reference in S (parsing). PFX is NULL at plan level. */
static void check_refs(struct ctx *c, const struct vars *v, const char *pfx, const char *loc,
		       const char *s)
{
	size_t pos = 0;
	struct ref r;
	enum ref_kind k;
	char what[SHOW_MAX * 2 + 64];

	if (v->opts->literal)
		return;
	while ((k = expand_next(v, s, &pos, NULL, &r)) != REF_END) {
		ref_what(what, sizeof(what), k, &r, v);
		loc_report(c, pfx, loc, what, k != REF_NO_PORT);
	}
}

/* The location "env.KEY" for messages. */
static const char *env_loc(char buf[SHOW_MAX + 8], const char *key)
{
	char b[SHOW_MAX + 1];
	snprintf(buf, SHOW_MAX + 8, "env.%s", show(b, key, strlen(key)));
	return buf;
}

/* parsing */

/* "env" of the plan (PFX "") or of a step: an object of strings, into "KEY=VALUE"s. */
static void parse_env(struct ctx *c, const struct vars *v, const char *pfx, json_t *obj,
		      char ***out, size_t *nout)
{
	const char *key;
	json_t *val;
	bool typed = false;
	char b[SHOW_MAX + 1], loc[SHOW_MAX + 8];

	if (!json_is_object(obj)) {
		type_err(c, pfx, "env", "an object of strings");
		return;
	}
	*out = orch_calloc(json_object_size(obj) + 1, sizeof(char *));
	if (!*out) {
		c->oom = true;
		return;
	}
	json_object_foreach(obj, key, val) {
		bool ok = true;
		if (!*key || strchr(key, '=')) {
			report(c, "%senv: invalid name \"%s\"", pfx, show(b, key, strlen(key)));
			ok = false;
		}
		if (!json_is_string(val)) {
			if (!typed)
				type_err(c, pfx, "env", "an object of strings");
			typed = true;
			continue;
		}
		env_loc(loc, key);
		if (has_nul(val)) {
			report(c, "%s\"%s\" must not contain NUL bytes", pfx, loc);
			continue;
		}
		check_refs(c, v, *pfx ? pfx : NULL, loc, json_string_value(val));
		if (!ok)
			continue;
		char *e = orch_asprintf("%s=%s", key, json_string_value(val));
		if (!e) {
			c->oom = true;
			return;
		}
		(*out)[(*nout)++] = e;
	}
}

/* "variables": names that may be defined, string values. */
static void check_variables(struct ctx *c, const struct vars *v, json_t *obj)
{
	const char *key;
	json_t *val;
	char b[SHOW_MAX + 1];

	if (!json_is_object(obj)) {
		type_err(c, "", "variables", "an object");
		return;
	}
	json_object_foreach(obj, key, val) {
		size_t len = strlen(key);
		if (!var_name_ok(key, len))
			report(c, "variables: invalid name \"%s\"", show(b, key, len));
		else if (builtin_index(key, len) ||
			 (len > 4 && !memcmp(key, "PORT", 4) && strspn(key + 4, "0123456789") == len - 4) ||
			 port_var_index(v, key, len, false) >= 0)
			report(c, "variables: \"%s\" is a built-in variable", show(b, key, len));
		if (!json_is_string(val))
			report(c, "\"variables.%s\" must be a string", show(b, key, len));
		else if (has_nul(val))
			report(c, "\"variables.%s\" must not contain NUL bytes", show(b, key, len));
	}
}

/* "loop": {"same_failures": N, "repeated_actions": N} into *SAME and *REP. */
static void parse_loop(struct ctx *c, const char *pfx, const char *field, json_t *obj,
		       unsigned *same, unsigned *rep)
{
	char name[64];
	const char *key;
	json_t *val;
	long long n;

	if (!json_is_object(obj)) {
		type_err(c, pfx, field, "an object");
		return;
	}
	json_object_foreach(obj, key, val) {
		if (!strcmp(key, "same_failures") || !strcmp(key, "repeated_actions")) {
			snprintf(name, sizeof(name), "%s.%s", field, key);
			if (get_int(c, pfx, name, val, 0, 1000, &n))
				*(key[0] == 's' ? same : rep) = (unsigned)n;
		} else {
			char where[STEP_ID_MAX + 48];
			snprintf(where, sizeof(where), "%s%s: ", pfx, field);
			unknown_field(c, where, key, loop_fields, ARRAY_SIZE(loop_fields));
		}
	}
}

/* "globals" into the plan (steps take their defaults from it later). */
static void parse_globals(struct ctx *c, struct plan *p, json_t *obj)
{
	const char *key;
	json_t *val;
	long long n;

	if (!json_is_object(obj)) {
		type_err(c, "", "globals", "an object");
		return;
	}
	json_object_foreach(obj, key, val) {
		if (!strcmp(key, "max_concurrency")) {
			if (get_int(c, "", "globals.max_concurrency", val, 1, 100000, &n))
				p->max_concurrency = (unsigned)n;
		} else if (!strcmp(key, "default_timeout_sec")) {
			get_secs(c, "", "globals.default_timeout_sec", val, &p->default_timeout_sec);
		} else if (!strcmp(key, "kill_grace_sec")) {
			get_num(c, "", "globals.kill_grace_sec", val, 0, 3600, &p->kill_grace_sec);
		} else if (!strcmp(key, "loop")) {
			parse_loop(c, "", "globals.loop", val, &p->same_failures, &p->repeated_actions);
		} else {
			unknown_field(c, "globals: ", key, globals_fields, ARRAY_SIZE(globals_fields));
		}
	}
}

static const char *isolation_name(enum isolation i)
{
	return i == ISOLATION_BWRAP ? "bwrap" : i == ISOLATION_NONE ? "none" : "unset";
}

bool plan_port_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > PLAN_PORT_NAME_MAX || !(s[0] >= 'a' && s[0] <= 'z'))
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

void plan_port_var(char out[PLAN_PORT_VAR_MAX], const char *name)
{
	size_t i = 0;
	memcpy(out, "PORT_", 5);
	for (; name[i] && i < PLAN_PORT_NAME_MAX; i++)
		out[5 + i] = name[i] >= 'a' && name[i] <= 'z' ? (char)(name[i] - 'a' + 'A') : name[i];
	out[5 + i] = '\0';
}

/* "sandbox.ports" as a list of names: each a valid name, none twice, at
 * most PLAN_MAX_PORTS. An empty list is no ports, as 0 is. */
static void parse_port_names(struct ctx *c, struct plan_sandbox *sb, json_t *arr)
{
	char b[SHOW_MAX + 1];
	size_t n = json_array_size(arr);
	bool bad = false;

	if (n > PLAN_MAX_PORTS) {
		report(c, "\"sandbox.ports\" has more than %d names", PLAN_MAX_PORTS);
		return;
	}
	char **names = orch_calloc(n + 1, sizeof(char *));
	if (!names) {
		c->oom = true;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *jn = json_array_get(arr, i);
		if (!json_is_string(jn) || has_nul(jn)) {
			report(c, "\"sandbox.ports[%zu]\" must be a port name (a string)", i);
			bad = true;
			continue;
		}
		const char *s = json_string_value(jn);
		if (!plan_port_name_ok(s)) {
			report(c, "sandbox: invalid port name \"%s\" in ports[%zu] (use 1 to %d of a-z 0-9 _,"
				  " starting with a-z)", show(b, s, strlen(s)), i, PLAN_PORT_NAME_MAX);
			bad = true;
			continue;
		}
		bool twice = false;
		for (size_t j = 0; j < i && !twice; j++) {
			const char *sj = json_string_value(json_array_get(arr, j));
			if (sj && !strcmp(sj, s)) {
				report(c, "sandbox: duplicate port name \"%s\" in ports[%zu] (first in ports[%zu])",
				       s, i, j);
				twice = bad = true;
			}
		}
		if (!twice && !(names[i] = dup(c, s)))
			bad = true;
	}
	if (bad || n == 0) {
		for (size_t i = 0; i < n; i++)
			orch_free(names[i]);
		orch_free(names);
		if (!bad)
			sb->ports = 0;
		return;
	}
	sb->ports = (int)n;
	sb->port_names = names;
}

/* The ports of a sandbox for a message: "2 ports" or "ports [\"api\", \"web\"]". */
static void ports_desc(struct sbuf *out, int n, char *const *names)
{
	if (!names) {
		sbuf_addf(out, "%d ports", n);
		return;
	}
	sbuf_adds(out, "ports [");
	for (int i = 0; i < n && names[i]; i++)
		sbuf_addf(out, "%s\"%s\"", i ? ", " : "", names[i]);
	sbuf_addc(out, ']');
}

/* Does the plan's "ports" (SB) describe the existing sandbox INFO? A number
 * asks for that many ports, named or not; names ask for the same names in
 * the same order. */
static bool ports_match(const struct plan_sandbox *sb, const struct plan_sandbox_info *info)
{
	if (sb->ports != info->ports)
		return false;
	if (!sb->port_names)
		return true;
	if (!info->port_names)
		return false;
	for (int i = 0; i < sb->ports; i++)
		if (!info->port_names[i] || strcmp(sb->port_names[i], info->port_names[i]))
			return false;
	return true;
}

/* Seconds as whole milliseconds. */
static int64_t sec_ms(double sec) { return (int64_t)(sec * 1000.0 + 0.5); }

/* "sandbox.window.extend_when[I]" into R. */
static bool parse_window_rule(struct ctx *c, struct window_rule *r, size_t i, json_t *obj)
{
	char pfx[64];
	const char *key, *s;
	json_t *val;
	long long n;
	double d;
	bool ok = true;

	snprintf(pfx, sizeof(pfx), "sandbox.window.extend_when[%zu]", i);
	if (!json_is_object(obj)) {
		report(c, "\"%s\" must be an object {\"event_type\", \"count\", \"within_sec\"}", pfx);
		return false;
	}
	json_object_foreach(obj, key, val) {
		char field[96];
		snprintf(field, sizeof(field), "%s.%s", pfx, key);
		if (!strcmp(key, "event_type")) {
			if (!get_str(c, "", field, val, true, &s)) {
				ok = false;
			} else if (strlen(s) > WINDOW_EVENT_TYPE_MAX) {
				report(c, "\"%s\" must be at most %d bytes", field, WINDOW_EVENT_TYPE_MAX);
				ok = false;
			} else if (!(r->event_type = dup(c, s))) {
				ok = false;
			}
		} else if (!strcmp(key, "count")) {
			if (get_int(c, "", field, val, 1, WINDOW_MAX_COUNT, &n))
				r->count = (unsigned)n;
			else
				ok = false;
		} else if (!strcmp(key, "within_sec")) {
			if (get_secs(c, "", field, val, &d))
				r->within_ms = sec_ms(d) > 0 ? sec_ms(d) : 1;
			else
				ok = false;
		} else {
			char where[112];
			snprintf(where, sizeof(where), "%s: ", pfx);
			unknown_field(c, where, key, window_rule_fields, ARRAY_SIZE(window_rule_fields));
			ok = false;
		}
	}
	if (ok && (!r->event_type || !r->count || !r->within_ms)) {
		report(c, "\"%s\" needs \"event_type\", \"count\" and \"within_sec\"", pfx);
		ok = false;
	}
	return ok;
}

/* "sandbox.window" (SPEC §9): a deadline duration_sec after the sandbox
 * is made, extended up to max_duration_sec, ended early by idle_sec. */
static void parse_window(struct ctx *c, struct window_spec *w, json_t *obj)
{
	const char *key, *s;
	json_t *val;
	double d, dur = 0, max = 0, ext = 0;
	bool has_max = false, has_ext = false, bad = false;
	json_t *rules = NULL;

	if (!json_is_object(obj)) {
		type_err(c, "", "sandbox.window", "an object");
		return;
	}
	json_object_foreach(obj, key, val) {
		if (!strcmp(key, "duration_sec")) {
			if (get_secs(c, "", "sandbox.window.duration_sec", val, &d))
				dur = d;
			else
				bad = true;
		} else if (!strcmp(key, "max_duration_sec")) {
			if (get_secs(c, "", "sandbox.window.max_duration_sec", val, &d))
				max = d, has_max = true;
			else
				bad = true;
		} else if (!strcmp(key, "extend_sec")) {
			if (get_secs(c, "", "sandbox.window.extend_sec", val, &d))
				ext = d, has_ext = true;
			else
				bad = true;
		} else if (!strcmp(key, "idle_sec")) {
			if (get_secs(c, "", "sandbox.window.idle_sec", val, &d))
				w->idle_ms = sec_ms(d) > 0 ? sec_ms(d) : 1;
			else
				bad = true;
		} else if (!strcmp(key, "on_end")) {
			if (!get_str(c, "", "sandbox.window.on_end", val, false, &s)) {
				bad = true;
			} else if (!strcmp(s, "stop")) {
				w->on_end = WINDOW_END_STOP;
			} else if (!strcmp(s, "pause")) {
				w->on_end = WINDOW_END_PAUSE;
			} else if (!strcmp(s, "delete")) {
				w->on_end = WINDOW_END_DELETE;
			} else {
				report(c, "\"sandbox.window.on_end\" must be \"stop\", \"pause\" or \"delete\"");
				bad = true;
			}
		} else if (!strcmp(key, "extend_when")) {
			if (!json_is_array(val)) {
				type_err(c, "", "sandbox.window.extend_when", "a list of rules");
				bad = true;
			} else if (json_array_size(val) > WINDOW_MAX_RULES) {
				report(c, "\"sandbox.window.extend_when\" has more than %d rules", WINDOW_MAX_RULES);
				bad = true;
			} else {
				rules = val;
			}
		} else {
			unknown_field(c, "sandbox.window: ", key, window_fields, ARRAY_SIZE(window_fields));
			bad = true;
		}
	}
	if (!dur && !bad) {
		report(c, "\"sandbox.window\" needs \"duration_sec\" (how long the window lasts)");
		bad = true;
	}
	if (dur && has_max && max < dur) {
		report(c, "\"sandbox.window.max_duration_sec\" (%g) must be at least \"duration_sec\" (%g)", max,
		       dur);
		bad = true;
	}
	if (rules && json_array_size(rules) && !has_ext) {
		report(c, "\"sandbox.window.extend_when\" needs \"extend_sec\" (how much each rule extends)");
		bad = true;
	}
	size_t n = rules ? json_array_size(rules) : 0;
	if (n && !(w->rules = orch_calloc(n, sizeof(*w->rules)))) {
		c->oom = true;
		return;
	}
	w->nrules = n;
	for (size_t i = 0; i < n; i++)
		bad |= !parse_window_rule(c, &w->rules[i], i, json_array_get(rules, i));
	if (bad) {
		window_spec_release(w);
		return;
	}
	w->duration_ms = sec_ms(dur) > 0 ? sec_ms(dur) : 1;
	w->max_ms = has_max ? sec_ms(max) : w->duration_ms;
	if (w->max_ms < w->duration_ms)
		w->max_ms = w->duration_ms;
	w->extend_ms = has_ext ? sec_ms(ext) : 0;
	w->set = true;
}

/* "sandbox", then what it asks for against what this host and the named
 * sandbox (INFO, when it exists) have. */
/* "limits" (SPEC §10) at PFX ("" or a step's "steps[i] (id): "), WHAT
 * ("limits" or "sandbox.limits"): each a positive integer (cpus a number)
 * within its bounds (plan.h); one that needs a cgroup the machine does not
 * give orchfs makes the plan invalid, saying why. */
static void parse_limits(struct ctx *c, const char *pfx, const char *what, json_t *obj,
			 const struct plan_opts *opts, struct plan_limits *l)
{
	const char *key;
	json_t *val;
	long long n;
	char f[64];

	if (!json_is_object(obj)) {
		type_err(c, pfx, what, "an object of memory_mb, pids, cpu_sec, open_files, cpus");
		return;
	}
	json_object_foreach(obj, key, val) {
		unsigned need = 0;
		snprintf(f, sizeof(f), "%s.%s", what, key);
		if (!strcmp(key, "memory_mb")) {
			if (get_int(c, pfx, f, val, 4, PLAN_LIMIT_MEMORY_MB_MAX, &n))
				l->memory_mb = n;
			need = PLAN_LIMIT_MEMORY;
		} else if (!strcmp(key, "pids")) {
			if (get_int(c, pfx, f, val, 1, PLAN_LIMIT_PIDS_MAX, &n))
				l->pids = n;
			need = PLAN_LIMIT_PIDS;
		} else if (!strcmp(key, "cpu_sec")) {
			if (get_int(c, pfx, f, val, 1, (long long)TIME_MAX_SEC, &n))
				l->cpu_sec = n;
		} else if (!strcmp(key, "open_files")) {
			if (get_int(c, pfx, f, val, PLAN_LIMIT_OPEN_FILES_MIN, PLAN_LIMIT_OPEN_FILES_MAX, &n))
				l->open_files = n;
		} else if (!strcmp(key, "cpus")) {
			double x;
			if (get_num(c, pfx, f, val, 0.01, PLAN_LIMIT_CPUS_MAX, &x))
				l->cpus = x;
			need = PLAN_LIMIT_CPUS;
		} else {
			char where[STEP_ID_MAX + 64];
			snprintf(where, sizeof(where), "%s%s: ", pfx, what);
			unknown_field(c, where, key, limits_fields, ARRAY_SIZE(limits_fields));
		}
		if (need && !opts->literal && !(opts->limits_available & need))
			report(c, "%s\"%s\" needs a cgroup, and orchfs has none to manage here: %s", pfx, f,
			       opts->limits_unavailable_reason ? opts->limits_unavailable_reason
							       : "the machine offers no cgroup controller for it");
	}
}

static void parse_sandbox(struct ctx *c, struct plan *p, json_t *obj,
			  const struct plan_opts *opts, const struct plan_sandbox_info *info)
{
	const char *key, *s;
	json_t *val;
	long long n;
	bool bv;
	struct plan_sandbox *sb = &p->sandbox;

	if (!json_is_object(obj)) {
		type_err(c, "", "sandbox", "an object");
		return;
	}
	json_object_foreach(obj, key, val) {
		if (!strcmp(key, "id")) {
			if (!get_str(c, "", "sandbox.id", val, false, &s))
				continue;
			if (!id_valid(s, SANDBOX_ID_MAX))
				report(c, "\"sandbox.id\" must be 1 to %d of A-Z a-z 0-9 _ -",
				       SANDBOX_ID_MAX);
			else
				sb->id = dup(c, s);
		} else if (!strcmp(key, "isolation")) {
			if (!get_str(c, "", "sandbox.isolation", val, false, &s))
				continue;
			if (!strcmp(s, "bwrap"))
				sb->isolation = ISOLATION_BWRAP;
			else if (!strcmp(s, "none"))
				sb->isolation = ISOLATION_NONE;
			else
				report(c, "\"sandbox.isolation\" must be \"bwrap\" or \"none\"");
		} else if (!strcmp(key, "network")) {
			if (get_bool(c, "", "sandbox.network", val, &bv))
				sb->network = bv;
		} else if (!strcmp(key, "ports")) {
			if (json_is_array(val))
				parse_port_names(c, sb, val);
			else if (!json_is_integer(val))
				type_err(c, "", "sandbox.ports", "an integer or a list of port names");
			else if (get_int(c, "", "sandbox.ports", val, 0, PLAN_MAX_PORTS, &n))
				sb->ports = (int)n;
		} else if (!strcmp(key, "health")) {
			/* parse_health(), once the walk knows the variables */
		} else if (!strcmp(key, "window")) {
			parse_window(c, &sb->window, val);
		} else if (!strcmp(key, "limits")) {
			parse_limits(c, "", "sandbox.limits", val, opts, &sb->limits);
		} else {
			unknown_field(c, "sandbox: ", key, sandbox_fields, ARRAY_SIZE(sandbox_fields));
		}
	}
	if (sb->isolation == ISOLATION_BWRAP && !opts->bwrap_available)
		report(c, "sandbox.isolation \"bwrap\" is not available here: %s",
		       opts->bwrap_unavailable_reason ? opts->bwrap_unavailable_reason
						      : "bubblewrap not found");
	if (!sb->id || !info->exists)
		return;
	if (sb->isolation != ISOLATION_UNSET && sb->isolation != info->isolation)
		report(c, "sandbox \"%s\": isolation is \"%s\", the plan asks for \"%s\"", sb->id,
		       isolation_name(info->isolation), isolation_name(sb->isolation));
	if (sb->network >= 0 && sb->network != (int)info->network)
		report(c, "sandbox \"%s\": network is %s, the plan asks for %s", sb->id,
		       info->network ? "true" : "false", sb->network ? "true" : "false");
	if (sb->ports >= 0 && !ports_match(sb, info)) {
		struct sbuf have = SBUF_INIT, want = SBUF_INIT;
		ports_desc(&have, info->ports, info->port_names);
		if (sb->port_names)
			ports_desc(&want, sb->ports, sb->port_names);
		else
			sbuf_addf(&want, "%d", sb->ports);
		if (sbuf_failed(&have) || sbuf_failed(&want))
			c->oom = true;
		else
			report(c, "sandbox \"%s\": has %s, the plan asks for %s", sb->id, sbuf_str(&have),
			       sbuf_str(&want));
		sbuf_release(&have);
		sbuf_release(&want);
	}
}

bool plan_health_url_ok(const char *url)
{
	const char *p;
	if (!strncasecmp(url, "http://", 7))
		p = url + 7;
	else if (!strncasecmp(url, "https://", 8))
		p = url + 8;
	else
		return false;
	for (const char *q = url; *q; q++)
		if ((unsigned char)*q <= ' ' || *q == 0x7f)
			return false;
	size_t alen = strcspn(p, "/?#");
	if (memchr(p, '@', alen))
		return false;	/* no user or password */
	char host[64];
	size_t hlen;
	if (p[0] == '[') {
		const char *end = memchr(p, ']', alen);
		if (!end)
			return false;
		hlen = (size_t)(end - p) + 1;
	} else {
		hlen = strcspn(p, ":/?#");
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return false;
	memcpy(host, p, hlen);
	host[hlen] = '\0';
	const char *rest = p + hlen;
	if (*rest == ':') {
		size_t digits = strspn(rest + 1, "0123456789");
		if (digits == 0 || digits > 5 || atoi(rest + 1) < 1 || atoi(rest + 1) > 65535)
			return false;
		rest += 1 + digits;
	}
	if (*rest && *rest != '/' && *rest != '?' && *rest != '#')
		return false;
	if (!strcasecmp(host, "localhost") || !strcmp(host, "[::1]"))
		return true;
	/* 127.0.0.0/8, dotted quad in decimal: inet_pton's form, which takes
	 * no leading zero (curl reads "0127.0.0.1" as octal: 87.0.0.1) */
	struct in_addr in;
	return inet_pton(AF_INET, host, &in) == 1 && (ntohl(in.s_addr) >> 24) == 127;
}

/* "sandbox.health" (SPEC §11): a url or a command, how often, how long, how
 * many failures in a row. After the walk: it may use the plan's variables
 * (V), and checks the sandbox's network (INFO, when it exists). */
static void parse_health(struct ctx *c, struct plan *p, const struct vars *v, json_t *obj,
			 const struct plan_opts *opts, const struct plan_sandbox_info *info)
{
	struct plan_health *h = &p->sandbox.health;
	const char *key, *s;
	json_t *val;
	long long n;
	char b[SHOW_MAX + 1], loc[48];

	if (json_is_null(obj)) {
		h->set = true;	/* the sandbox's check goes */
		return;
	}
	if (!json_is_object(obj)) {
		type_err(c, "", "sandbox.health",
			 "an object such as {\"url\": \"http://127.0.0.1:${PORT0}/health\"} (null: no check)");
		return;
	}
	h->interval_sec = PLAN_HEALTH_INTERVAL;
	h->timeout_sec = PLAN_HEALTH_TIMEOUT;
	h->unhealthy_after = PLAN_HEALTH_UNHEALTHY_AFTER;
	json_object_foreach(obj, key, val) {
		if (!strcmp(key, "url")) {
			if (!get_str(c, "", "sandbox.health.url", val, true, &s))
				continue;
			check_refs(c, v, NULL, "sandbox.health.url", s);
			/* with a ${VAR} in it, the URL is checked once substituted */
			if ((opts->literal || !strstr(s, "${")) && !plan_health_url_ok(s))
				report(c, "\"sandbox.health.url\" must be an http:// or https:// URL of 127.0.0.1, [::1] or"
				       " localhost (the sandbox's own services), not \"%s\"", show(b, s, strlen(s)));
			else if (!(h->url = dup(c, s)))
				return;
		} else if (!strcmp(key, "command")) {
			size_t na = json_is_array(val) ? json_array_size(val) : 0;
			if (na == 0 || na > PLAN_HEALTH_MAX_ARGS) {
				type_err(c, "", "sandbox.health.command",
					 "a list of 1 to 256 strings, the program first (exit 0 is healthy)");
				continue;
			}
			h->command = orch_calloc(na + 1, sizeof(char *));
			if (!h->command) {
				c->oom = true;
				return;
			}
			for (size_t i = 0; i < na; i++) {
				snprintf(loc, sizeof(loc), "sandbox.health.command[%zu]", i);
				if (!get_str(c, "", loc, json_array_get(val, i), i == 0, &s))
					continue;
				check_refs(c, v, NULL, loc, s);
				if (!(h->command[h->ncommand++] = dup(c, s)))
					return;
			}
		} else if (!strcmp(key, "interval_sec")) {
			get_num(c, "", "sandbox.health.interval_sec", val, 0.1, 86400, &h->interval_sec);
		} else if (!strcmp(key, "timeout_sec")) {
			get_num(c, "", "sandbox.health.timeout_sec", val, 0.1, 3600, &h->timeout_sec);
		} else if (!strcmp(key, "unhealthy_after")) {
			if (get_int(c, "", "sandbox.health.unhealthy_after", val, 1, 1000, &n))
				h->unhealthy_after = (unsigned)n;
		} else {
			unknown_field(c, "sandbox.health: ", key, health_fields, ARRAY_SIZE(health_fields));
		}
	}
	bool url = json_object_get(obj, "url") != NULL, cmd = json_object_get(obj, "command") != NULL;
	if (url && cmd)
		report(c, "\"sandbox.health\" takes \"url\" or \"command\", not both");
	else if (!url && !cmd)
		report(c, "\"sandbox.health\" needs \"url\" (an HTTP check) or \"command\" (exit 0 is healthy)");
	/* a sandbox of its own network (bubblewrap, network false) has a
	 * loopback of its own: the daemon's requests cannot reach it */
	int network = p->sandbox.network >= 0 ? p->sandbox.network : info->exists ? info->network : 1;
	enum isolation iso = p->sandbox.isolation != ISOLATION_UNSET ? p->sandbox.isolation
			     : info->exists				   ? info->isolation
			     : opts->bwrap_available			   ? ISOLATION_BWRAP
									   : ISOLATION_NONE;
	if (url && !network && iso == ISOLATION_BWRAP)
		report(c, "\"sandbox.health.url\": a sandbox without network has a loopback of its own, out of"
		       " the daemon's reach: check it with \"command\" instead");
	h->set = true;
}

/* Step ids to indexes: open addressing, slots hold index + 1 (0 = empty). */
struct idmap {
	size_t *slot;
	size_t mask;
};

/* FNV-1a */
static size_t hash_str(const char *s)
{
	size_t h = 1469598103934665603u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	return h;
}

/* A table for N ids, at most half full. */
static int idmap_init(struct idmap *m, size_t n)
{
	size_t cap = 16;
	while (cap < 2 * n)
		cap *= 2;
	m->slot = orch_calloc(cap, sizeof(size_t));
	m->mask = cap - 1;
	return m->slot ? 0 : -ENOMEM;
}

/* The slot where ID is, or where it would go. */
static size_t *idmap_slot(const struct idmap *m, const struct plan *p, const char *id)
{
	size_t i = hash_str(id) & m->mask;
	while (m->slot[i] && strcmp(p->steps[m->slot[i] - 1].id, id))
		i = (i + 1) & m->mask;
	return &m->slot[i];
}

/* "step "S": " for a step with a valid id, else "step N: ". */
static void step_prefix(char buf[STEP_ID_MAX + 32], const struct plan_step *ps, size_t i)
{
	if (ps->id)
		snprintf(buf, STEP_ID_MAX + 32, "step \"%s\": ", ps->id);
	else
		snprintf(buf, STEP_ID_MAX + 32, "step %zu: ", i + 1);
}

/* "cwd" is relative to the workspace and stays inside it: no absolute path,
 * no ".." component (a symlink on the way is the spawner's to refuse:
 * core/spawner.h). AFTER says where the value came from, for the message. */
static bool cwd_ok(struct ctx *c, const char *pfx, const char *cwd, const char *after)
{
	char b[SHOW_MAX + 1];
	if (cwd[0] == '/') {
		report(c, "%s\"cwd\" must be relative to the workspace, not the absolute path \"%s\"%s", pfx,
		       show(b, cwd, strlen(cwd)), after);
		return false;
	}
	for (const char *p = cwd; *p;) {
		size_t len = strcspn(p, "/");
		if (len == 2 && p[0] == '.' && p[1] == '.') {
			report(c, "%s\"cwd\" must stay inside the workspace: \"..\" in \"%s\"%s", pfx,
			       show(b, cwd, strlen(cwd)), after);
			return false;
		}
		p += len;
		p += strspn(p, "/");
	}
	return true;
}

/* A string list field (args, depends_on): checked, and copied into a
 * NULL-terminated array when OUT is not NULL. */
static void parse_strings(struct ctx *c, const char *pfx, const char *field, json_t *arr,
			  char ***out, size_t *nout)
{
	size_t i;
	json_t *val;

	if (!json_is_array(arr)) {
		type_err(c, pfx, field, "an array of strings");
		return;
	}
	json_array_foreach(arr, i, val) {
		if (!json_is_string(val)) {
			type_err(c, pfx, field, "an array of strings");
			return;
		}
	}
	if (out && !(*out = orch_calloc(json_array_size(arr) + 1, sizeof(char *)))) {
		c->oom = true;
		return;
	}
	json_array_foreach(arr, i, val) {
		if (has_nul(val)) {
			report(c, "%s\"%s[%zu]\" must not contain NUL bytes", pfx, field, i);
			continue;
		}
		if (!out)
			continue;
		char *d = dup(c, json_string_value(val));
		if (!d)
			return;
		(*out)[(*nout)++] = d;
	}
}

static bool is_in(const char *key, const char *const *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(key, v[i]))
			return true;
	return false;
}

/* "budget": {"cost_usd": X, "tokens": N}, each greater than 0. */
static void parse_budget(struct ctx *c, const char *pfx, json_t *obj, struct plan_step *ps)
{
	const char *key;
	json_t *val;
	long long n;

	if (!json_is_object(obj)) {
		type_err(c, pfx, "budget", "an object");
		return;
	}
	json_object_foreach(obj, key, val) {
		if (!strcmp(key, "cost_usd")) {
			get_num(c, pfx, "budget.cost_usd", val, 0, HUGE_VAL, &ps->budget_cost_usd);
			if (ps->budget_cost_usd > 1e12) {
				report(c, "%s\"budget.cost_usd\" must be at most 1e12", pfx);
				ps->budget_cost_usd = 0;
			}
		} else if (!strcmp(key, "tokens")) {
			if (get_int(c, pfx, "budget.tokens", val, 1, (long long)1e15, &n))
				ps->budget_tokens = n;
		} else {
			char where[STEP_ID_MAX + 48];
			snprintf(where, sizeof(where), "%sbudget: ", pfx);
			unknown_field(c, where, key, budget_fields, ARRAY_SIZE(budget_fields));
		}
	}
}

bool plan_approver_ok(const char *s)
{
	const char *p = s[0] == '@' ? s + 1 : s;
	size_t n = strlen(p);

	if (n == 0 || n > 32 || p[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = p[i];
		if (ch == '$' && i == n - 1 && i > 0 && p == s)	/* "svc$", not "$" */
			continue;
		if (!(ch >= 'a' && ch <= 'z') && !(ch >= 'A' && ch <= 'Z') && !(ch >= '0' && ch <= '9') &&
		    ch != '_' && ch != '.' && ch != '-')
			return false;
	}
	return true;
}

/* Step I: its fields, defaults first. Ids go into MAP for the dependency pass. */
static void parse_step(struct ctx *c, struct plan *p, size_t i, json_t *o, struct idmap *map,
		       const struct vars *pv)
{
	struct plan_step *ps = &p->steps[i];
	char pfx[STEP_ID_MAX + 32], b[SHOW_MAX + 1], loc[SHOW_MAX + 8];
	const char *key, *s;
	json_t *val, *jid = json_object_get(o, "id");
	struct vars v = *pv;
	long long n;

	ps->timeout_sec = p->default_timeout_sec;
	ps->kill_grace_sec = p->kill_grace_sec;
	ps->retry_backoff = 1;
	ps->on_failure = ON_FAILURE_ABORT;
	ps->critical = true;
	v.step_id = "";

	step_prefix(pfx, ps, i);
	if (!jid) {
		report(c, "%s\"id\" is required", pfx);
	} else if (get_str(c, pfx, "id", jid, false, &s)) {
		if (!id_valid(s, STEP_ID_MAX)) {
			report(c, "%sinvalid id \"%s\" (use 1 to %d of A-Z a-z 0-9 _ -)", pfx,
			       show(b, s, strlen(s)), STEP_ID_MAX);
		} else if ((ps->id = dup(c, s))) {
			size_t *slot = idmap_slot(map, p, s);
			step_prefix(pfx, ps, i);
			if (*slot) {
				report(c, "%sduplicate id (first defined as step %zu)", pfx, *slot);
				c->dep_errors = true;
			} else {
				*slot = i + 1;
			}
		}
	}
	/* a "type" that is neither: which fields the step may have is unknown,
	 * so only their values are checked */
	bool typed = true;
	json_t *jtype = json_object_get(o, "type");
	if (jtype && get_str(c, pfx, "type", jtype, false, &s)) {
		if (!strcmp(s, "approval")) {
			ps->approval = true;
		} else if (strcmp(s, "command")) {
			report(c, "%sunknown type \"%s\" (use command or approval)", pfx,
			       show(b, s, strlen(s)));
			typed = false;
		}
	} else if (jtype) {
		typed = false;
	}
	/* a person's decision has no process: no command's timeout applies */
	if (ps->approval)
		ps->timeout_sec = 0;
	else if (typed && !json_object_get(o, "command"))
		report(c, "%s\"command\" is required", pfx);
	ps->same_failures = p->same_failures;
	ps->repeated_actions = p->repeated_actions;

	json_object_foreach(o, key, val) {
		if (c->oom)
			return;
		if (!strcmp(key, "id") || !strcmp(key, "type")) {
			continue;
		} else if (typed && ps->approval && is_in(key, command_only, ARRAY_SIZE(command_only))) {
			report(c, "%san approval step takes no \"%s\"", pfx, key);
		} else if (typed && !ps->approval && is_in(key, approval_only, ARRAY_SIZE(approval_only))) {
			report(c, "%s\"%s\" applies only to \"type\": \"approval\"", pfx, key);
		} else if (!strcmp(key, "name")) {
			if (get_str(c, pfx, "name", val, false, &s))
				ps->name = dup(c, s);
		} else if (!strcmp(key, "command")) {
			if (!get_str(c, pfx, "command", val, true, &s))
				continue;
			check_refs(c, &v, pfx, "command", s);
			ps->command = dup(c, s);
		} else if (!strcmp(key, "args")) {
			parse_strings(c, pfx, "args", val, &ps->args, &ps->nargs);
			for (size_t k = 0; k < ps->nargs; k++) {
				snprintf(loc, sizeof(loc), "args[%zu]", k);
				check_refs(c, &v, pfx, loc, ps->args[k]);
			}
		} else if (!strcmp(key, "shell")) {
			get_bool(c, pfx, "shell", val, &ps->shell);
		} else if (!strcmp(key, "env")) {
			parse_env(c, &v, pfx, val, &ps->env, &ps->nenv);
		} else if (!strcmp(key, "cwd")) {
			if (!get_str(c, pfx, "cwd", val, true, &s))
				continue;
			check_refs(c, &v, pfx, "cwd", s);
			/* with ${...} in it, once substituted; a stored plan as
			 * run (literal) is left to the spawner */
			if (!v.opts->literal && !strchr(s, '$'))
				cwd_ok(c, pfx, s, "");
			ps->cwd = dup(c, s);
		} else if (!strcmp(key, "depends_on")) {
			/* checked here, resolved once every id is known */
			parse_strings(c, pfx, "depends_on", val, NULL, NULL);
		} else if (!strcmp(key, "timeout_sec")) {
			get_secs(c, pfx, "timeout_sec", val, &ps->timeout_sec);
		} else if (!strcmp(key, "retries")) {
			if (get_int(c, pfx, "retries", val, 0, 1000, &n))
				ps->retries = (unsigned)n;
		} else if (!strcmp(key, "retry_delay_sec")) {
			get_num(c, pfx, "retry_delay_sec", val, 0, 86400, &ps->retry_delay_sec);
		} else if (!strcmp(key, "retry_backoff")) {
			get_num(c, pfx, "retry_backoff", val, 1, 100, &ps->retry_backoff);
		} else if (!strcmp(key, "on_failure")) {
			if (!get_str(c, pfx, "on_failure", val, false, &s))
				continue;
			if (!strcmp(s, "abort"))
				ps->on_failure = ON_FAILURE_ABORT;
			else if (!strcmp(s, "skip_dependents"))
				ps->on_failure = ON_FAILURE_SKIP_DEPENDENTS;
			else if (!strcmp(s, "continue"))
				ps->on_failure = ON_FAILURE_CONTINUE;
			else
				report(c, "%sunknown on_failure \"%s\" (use abort, skip_dependents or continue)",
				       pfx, show(b, s, strlen(s)));
		} else if (!strcmp(key, "critical")) {
			get_bool(c, pfx, "critical", val, &ps->critical);
		} else if (!strcmp(key, "heartbeat_ttl_sec")) {
			get_secs(c, pfx, "heartbeat_ttl_sec", val, &ps->heartbeat_ttl_sec);
		} else if (!strcmp(key, "kill_grace_sec")) {
			/* the step's own overrides globals.kill_grace_sec (already set) */
			get_num(c, pfx, "kill_grace_sec", val, 0, 3600, &ps->kill_grace_sec);
		} else if (!strcmp(key, "heartbeat_grace_sec")) {
			get_num(c, pfx, "heartbeat_grace_sec", val, 0, TIME_MAX_SEC,
				&ps->heartbeat_grace_sec);
		} else if (!strcmp(key, "prompt")) {
			if (!get_str(c, pfx, "prompt", val, false, &s))
				continue;
			check_refs(c, &v, pfx, "prompt", s);
			ps->prompt = dup(c, s);
		} else if (!strcmp(key, "approvers")) {
			parse_strings(c, pfx, "approvers", val, &ps->approvers, &ps->napprovers);
			if (json_is_array(val) && json_array_size(val) == 0)
				report(c, "%s\"approvers\" must not be empty (leave it out: the run's owner decides)",
				       pfx);
			if (json_is_array(val) && json_array_size(val) > PLAN_MAX_APPROVERS)
				report(c, "%s\"approvers\" has more than %d names", pfx, PLAN_MAX_APPROVERS);
			/* by the plan's index (a name with a NUL byte is not in ps->approvers) */
			size_t k;
			json_t *jn;
			if (ps->approvers)
				json_array_foreach(val, k, jn) {
					if (has_nul(jn) || plan_approver_ok(json_string_value(jn)))
						continue;
					s = json_string_value(jn);
					report(c, "%sinvalid approver \"%s\" in approvers[%zu] (use a user name or"
					       " @group: 1 to 32 of A-Z a-z 0-9 _ . -, not starting with -)", pfx,
					       show(b, s, strlen(s)), k);
				}
		} else if (!strcmp(key, "on_timeout")) {
			if (!get_str(c, pfx, "on_timeout", val, false, &s))
				continue;
			if (!strcmp(s, "reject"))
				ps->on_timeout = ON_TIMEOUT_REJECT;
			else if (!strcmp(s, "approve"))
				ps->on_timeout = ON_TIMEOUT_APPROVE;
			else
				report(c, "%sunknown on_timeout \"%s\" (use approve or reject)", pfx,
				       show(b, s, strlen(s)));
		} else if (!strcmp(key, "loop")) {
			parse_loop(c, pfx, "loop", val, &ps->same_failures, &ps->repeated_actions);
		} else if (!strcmp(key, "max_turns")) {
			if (get_int(c, pfx, "max_turns", val, 1, 1000000000, &n))
				ps->max_turns = (unsigned)n;
		} else if (!strcmp(key, "budget")) {
			parse_budget(c, pfx, val, ps);
		} else if (!strcmp(key, "limits")) {
			parse_limits(c, pfx, "limits", val, v.opts, &ps->limits);
		} else {
			unknown_field(c, pfx, key, step_fields, ARRAY_SIZE(step_fields));
		}
	}
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return x < y ? -1 : x > y;
}

/* Resolve every depends_on into sorted, unique indexes. */
static void resolve_deps(struct ctx *c, struct plan *p, json_t *steps, const struct idmap *map)
{
	char pfx[STEP_ID_MAX + 32], b[SHOW_MAX + 1];

	for (size_t i = 0; i < p->nsteps && !c->oom; i++) {
		struct plan_step *ps = &p->steps[i];
		json_t *arr = json_object_get(json_array_get(steps, i), "depends_on"), *val;
		size_t k;

		if (!json_is_array(arr) || json_array_size(arr) == 0)
			continue;
		ps->deps = orch_calloc(json_array_size(arr), sizeof(size_t));
		if (!ps->deps) {
			c->oom = true;
			return;
		}
		step_prefix(pfx, ps, i);
		json_array_foreach(arr, k, val) {
			if (!json_is_string(val) || has_nul(val))
				continue;
			const char *s = json_string_value(val);
			size_t slot = *idmap_slot(map, p, s);
			if (!slot) {
				report(c, "%sdepends on unknown step \"%s\"", pfx, show(b, s, strlen(s)));
				c->dep_errors = true;
				continue;
			}
			ps->deps[ps->ndeps++] = slot - 1;
		}
		qsort(ps->deps, ps->ndeps, sizeof(size_t), cmp_size);
		size_t u = 0;
		for (k = 0; k < ps->ndeps; k++)
			if (u == 0 || ps->deps[u - 1] != ps->deps[k])
				ps->deps[u++] = ps->deps[k];
		ps->ndeps = u;
	}
}

/* Report the cycle MEMBERS[0..n-1], where each member depends on the next and
 * the last on the first, as "is needed by" arrows from its first step in plan order. */
static void report_cycle(struct ctx *c, const struct plan *p, const size_t *m, size_t n)
{
	struct sbuf sb = SBUF_INIT;
	size_t start = 0;

	/* needed-by order is the reverse: m[0], m[n-1], ..., m[1] */
	for (size_t j = 1; j < n; j++)
		if (m[(n - j) % n] < m[(n - start) % n])
			start = j;
	sbuf_adds(&sb, "cycle: ");
	for (size_t t = 0; t <= n; t++) {
		sbuf_adds(&sb, p->steps[m[(n - (start + t) % n) % n]].id);
		if (t < n)
			sbuf_adds(&sb, " -> ");
	}
	if (sbuf_failed(&sb))
		c->oom = true;
	else
		report(c, "%s", sbuf_str(&sb));
	sbuf_release(&sb);
}

/* Find one cycle with an iterative depth-first search from each step in plan
 * order (an explicit stack: a chain may be PLAN_MAX_STEPS deep). */
static void check_cycle(struct ctx *c, const struct plan *p)
{
	enum { WHITE, GREY, BLACK };
	size_t n = p->nsteps, depth;
	unsigned char *color = orch_calloc(n, 1);
	size_t *stk = orch_calloc(n, sizeof(size_t));
	size_t *next = orch_calloc(n, sizeof(size_t));

	if (!color || !stk || !next) {
		c->oom = true;
		goto out;
	}
	for (size_t root = 0; root < n; root++) {
		if (color[root] != WHITE)
			continue;
		color[root] = GREY;
		stk[0] = root;
		next[0] = 0;
		depth = 1;
		while (depth) {
			const struct plan_step *ps = &p->steps[stk[depth - 1]];
			if (next[depth - 1] == ps->ndeps) {
				color[stk[--depth]] = BLACK;
				continue;
			}
			size_t w = ps->deps[next[depth - 1]++];
			if (color[w] == WHITE) {
				color[w] = GREY;
				stk[depth] = w;
				next[depth++] = 0;
			} else if (color[w] == GREY) {
				size_t k = depth - 1;
				while (stk[k] != w)
					k--;
				report_cycle(c, p, stk + k, depth - k);
				goto out;
			}
		}
	}
out:
	orch_free(color);
	orch_free(stk);
	orch_free(next);
}

/* "on" (SPEC §9): a non-empty list of {"event_type": GLOB, "match": {FIELD:
 * VALUE}} (core/trigger.h matches them). */
static void parse_on(struct ctx *c, struct plan *p, json_t *on)
{
	char pfx[64], b[SHOW_MAX + 1];
	size_t i;
	json_t *rule;

	if (!json_is_array(on)) {
		type_err(c, "", "on", "a list of {\"event_type\", \"match\"} objects");
		return;
	}
	if (json_array_size(on) == 0) {
		report(c, "\"on\" must not be empty (remove it for a plan that runs when submitted)");
		return;
	}
	if (json_array_size(on) > TRIGGER_MAX_RULES) {
		report(c, "\"on\" has more than %d entries", TRIGGER_MAX_RULES);
		return;
	}
	p->triggered = true;
	json_array_foreach(on, i, rule) {
		const char *key, *s;
		json_t *val;
		snprintf(pfx, sizeof(pfx), "on[%zu]: ", i);
		if (!json_is_object(rule)) {
			report(c, "on[%zu]: must be an object", i);
			continue;
		}
		if (!json_object_get(rule, "event_type"))
			report(c, "%s\"event_type\" is required", pfx);
		json_object_foreach(rule, key, val) {
			if (!strcmp(key, "event_type")) {
				if (get_str(c, pfx, "event_type", val, true, &s) && strlen(s) > 256)
					report(c, "%s\"event_type\" must be at most 256 bytes", pfx);
			} else if (!strcmp(key, "match")) {
				const char *f;
				json_t *w;
				if (!json_is_object(val)) {
					type_err(c, pfx, "match", "an object of fields and the values they must have");
					continue;
				}
				if (json_object_size(val) > TRIGGER_MAX_MATCH) {
					report(c, "%s\"match\" has more than %d fields", pfx, TRIGGER_MAX_MATCH);
					continue;
				}
				json_object_foreach(val, f, w) {
					if (!f[0] || !strcmp(f, "event_data."))
						report(c, "%s\"match\": field \"%s\" names nothing (a top-level field,"
						       " or \"event_data.NAME\")", pfx, show(b, f, strlen(f)));
				}
			} else {
				unknown_field(c, pfx, key, on_fields, ARRAY_SIZE(on_fields));
			}
		}
	}
}

/* "schedule" (SPEC §9): {"every_sec": N} or {"cron": "m h dom mon dow"},
 * and "overlap" "skip" or "queue" (core/schedule.h reads a valid one). */
static void parse_schedule(struct ctx *c, struct plan *p, json_t *sch)
{
	const char *key, *s;
	json_t *val;
	long long n;

	if (!json_is_object(sch)) {
		type_err(c, "", "schedule", "an object: {\"every_sec\": N} or {\"cron\": \"m h dom mon dow\"}");
		return;
	}
	p->scheduled = true;
	if (!json_object_get(sch, "every_sec") == !json_object_get(sch, "cron"))
		report(c, "\"schedule\": give exactly one of \"every_sec\" and \"cron\"");
	json_object_foreach(sch, key, val) {
		if (!strcmp(key, "every_sec")) {
			get_int(c, "schedule: ", "every_sec", val, 1, SCHEDULE_EVERY_MAX_SEC, &n);
		} else if (!strcmp(key, "cron")) {
			if (!get_str(c, "schedule: ", "cron", val, true, &s))
				continue;
			struct cron cr = CRON_INIT;
			struct sbuf err = SBUF_INIT;
			if (cron_parse(&cr, s, &err)) {
				if (sbuf_failed(&err))
					c->oom = true;
				else	/* the line names the field: cron "61 * * * *": minute 61 ... */
					report(c, "schedule: %s", sbuf_str(&err));
			}
			sbuf_release(&err);
		} else if (!strcmp(key, "overlap")) {
			if (get_str(c, "schedule: ", "overlap", val, true, &s) && strcmp(s, "skip") &&
			    strcmp(s, "queue"))
				type_err(c, "schedule: ", "overlap", "\"skip\" or \"queue\"");
		} else {
			unknown_field(c, "schedule: ", key, schedule_fields, ARRAY_SIZE(schedule_fields));
		}
	}
}

/* Values set before the walk: what PORTk exist and which sandbox is named. */
static void prescan(json_t *doc, const struct plan_opts *opts, struct vars *v,
		    struct plan_sandbox_info *info)
{
	json_t *vars = json_object_get(doc, "variables");
	json_t *sb = json_object_get(doc, "sandbox");
	json_t *id = json_object_get(sb, "id"), *ports = json_object_get(sb, "ports");

	v->variables = json_is_object(vars) ? vars : NULL;
	v->trigger = json_object_get(doc, "on") != NULL;
	if (json_is_string(id) && !has_nul(id) && id_valid(json_string_value(id), SANDBOX_ID_MAX) &&
	    opts->sandbox_info)
		opts->sandbox_info(opts->ctx, json_string_value(id), info);
	if (json_is_integer(ports) && json_integer_value(ports) >= 0 &&
	    json_integer_value(ports) <= PLAN_MAX_PORTS)
		v->nports = (size_t)json_integer_value(ports);
	else if (json_is_array(ports))
		v->nports = json_array_size(ports) <= PLAN_MAX_PORTS ? json_array_size(ports) : 0;
	else if (info->exists)
		v->nports = info->ports > 0 ? (size_t)info->ports : 0;
	else
		v->nports = 1;
	if (json_is_array(ports))
		v->port_list = ports;
	else if (info->exists)
		v->port_names = info->port_names;
}

/* Everything after the JSON syntax: fills P, reports into C. */
static void check_plan(struct ctx *c, struct plan *p, json_t *doc, const struct plan_opts *opts)
{
	struct vars v = { .opts = opts };
	struct plan_sandbox_info info = { .exists = false, .isolation = ISOLATION_UNSET };
	struct idmap map = { NULL, 0 };
	const char *key, *s;
	json_t *val, *steps;

	prescan(doc, opts, &v, &info);
	json_object_foreach(doc, key, val) {
		if (!strcmp(key, "plan_id")) {
			if (!get_str(c, "", "plan_id", val, true, &s))
				continue;
			if (strlen(s) > PLAN_ID_MAX) {
				report(c, "\"plan_id\" must be at most %d bytes", PLAN_ID_MAX);
				continue;
			}
			orch_free(p->plan_id);
			p->plan_id = dup(c, s);
		} else if (!strcmp(key, "variables")) {
			check_variables(c, &v, val);
		} else if (!strcmp(key, "env")) {
			parse_env(c, &v, "", val, &p->env, &p->nenv);
		} else if (!strcmp(key, "globals")) {
			parse_globals(c, p, val);
		} else if (!strcmp(key, "sandbox")) {
			parse_sandbox(c, p, val, opts, &info);
		} else if (!strcmp(key, "on")) {
			parse_on(c, p, val);
		} else if (!strcmp(key, "schedule")) {
			parse_schedule(c, p, val);
		} else if (strcmp(key, "version") && strcmp(key, "metadata") && strcmp(key, "steps")) {
			unknown_field(c, "", key, top_fields, ARRAY_SIZE(top_fields));
		}
		if (c->oom)
			return;
	}

	if (json_object_get(doc, "on") && json_object_get(doc, "schedule"))
		report(c, "a plan takes \"on\" (run at events) or \"schedule\" (run at times), not both:"
		       " make two plans");

	json_t *health = json_object_get(json_object_get(doc, "sandbox"), "health");
	if (health && json_is_object(json_object_get(doc, "sandbox")))
		parse_health(c, p, &v, health, opts, &info);
	if (c->oom)
		return;

	steps = json_object_get(doc, "steps");
	if (!steps) {
		report(c, "\"steps\" is required");
		return;
	}
	if (!json_is_array(steps)) {
		type_err(c, "", "steps", "an array");
		return;
	}
	if (json_array_size(steps) == 0) {
		report(c, "\"steps\" must not be empty");
		return;
	}
	if (json_array_size(steps) > PLAN_MAX_STEPS) {
		report(c, "\"steps\" has more than %d steps", PLAN_MAX_STEPS);
		return;
	}
	p->steps = orch_calloc(json_array_size(steps), sizeof(*p->steps));
	if (!p->steps || idmap_init(&map, json_array_size(steps))) {
		c->oom = true;
		goto out;
	}
	p->nsteps = json_array_size(steps);
	for (size_t i = 0; i < p->nsteps && !c->oom; i++) {
		json_t *o = json_array_get(steps, i);
		if (!json_is_object(o)) {
			report(c, "step %zu: must be an object", i + 1);
			continue;
		}
		parse_step(c, p, i, o, &map, &v);
	}
	if (!c->oom)
		resolve_deps(c, p, steps, &map);
	if (!c->oom && !c->dep_errors)
		check_cycle(c, p);
out:
	orch_free(map.slot);
}

struct plan *plan_parse(const char *text, size_t len, const char *name,
			const struct plan_opts *opts, struct sbuf *errs)
{
	static const struct plan_opts no_opts;
	struct sbuf own = SBUF_INIT;
	struct ctx c = { .errs = errs ? errs : &own };
	size_t start = c.errs->len;
	bool was_failed = sbuf_failed(c.errs);
	struct plan *p = NULL;
	json_error_t jerr;
	json_t *doc;

	if (!opts)
		opts = &no_opts;
	/* DECODE_ANY and ALLOW_NUL so that "plan must be a JSON object" and the
	 * NUL-byte checks can say what is wrong in plan terms */
	doc = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	/* jansson's lexer reports a failure to grow its buffer as a syntax
	 * error: a second try tells a passing shortage from a real mistake */
	if (!doc)
		doc = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (!doc) {
		/* jansson leaves the error empty when its own setup fails to allocate */
		if (json_error_code(&jerr) == json_error_out_of_memory || !jerr.text[0])
			c.oom = true;
		else {
			/* jansson quotes the bytes it choked on: no raw control or
			 * broken UTF-8 bytes into .error */
			char shown[JSON_ERROR_TEXT_LENGTH];
			report(&c, "line %d, column %d: %s", jerr.line, jerr.column,
			       text_show(shown, sizeof(shown), jerr.text, strlen(jerr.text)));
		}
		goto out;
	}
	if (!json_is_object(doc)) {
		report(&c, "plan must be a JSON object, not %s", json_kind(doc));
		json_decref(doc);
		goto out;
	}
	if (json_deeper_than(doc, JSON_DEPTH_MAX)) {
		/* plan.json shows it again: every reader must manage it */
		report(&c, "plan nests JSON deeper than %d levels", JSON_DEPTH_MAX);
		json_decref(doc);
		goto out;
	}
	p = orch_calloc(1, sizeof(*p));
	if (!p) {
		json_decref(doc);
		c.oom = true;
		goto out;
	}
	p->doc = doc;
	p->kill_grace_sec = 5;
	p->same_failures = PLAN_LOOP_SAME_FAILURES;
	p->sandbox = (struct plan_sandbox){ .isolation = ISOLATION_UNSET, .network = -1, .ports = -1 };
	p->plan_id = dup(&c, name ? name : "");
	if (!c.oom)
		check_plan(&c, p, doc, opts);
	if (c.oom || c.nerrs || sbuf_failed(c.errs)) {
		plan_free(p);
		p = NULL;
	}
out:
	if ((c.oom || sbuf_failed(c.errs)) && !was_failed) {
		/* drop the partial list: the only problem worth naming is memory */
		c.errs->oom = false;
		c.errs->len = start;
		if (c.errs->buf)
			c.errs->buf[start] = '\0';
		sbuf_adds(c.errs, "out of memory\n");
	}
	sbuf_release(&own);
	return p;
}

/* substitution */

/* true when S is well-formed UTF-8 (what jansson accepts for a string) */
static bool utf8_ok(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;

	while (*u) {
		unsigned cp, n;
		if (*u < 0x80) {
			u++;
			continue;
		} else if ((*u & 0xE0) == 0xC0) {
			cp = *u & 0x1F;
			n = 1;
		} else if ((*u & 0xF0) == 0xE0) {
			cp = *u & 0x0F;
			n = 2;
		} else if ((*u & 0xF8) == 0xF0) {
			cp = *u & 0x07;
			n = 3;
		} else {
			return false;
		}
		for (unsigned i = 1; i <= n; i++) {
			if ((u[i] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (u[i] & 0x3F);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		u += n + 1;
	}
	return true;
}

/* Substitute the text of *STR after its first SKIP bytes (kept as they are),
 * replace *STR with the result and give the substituted part as a new JSON
 * string in *JOUT. 0, -EINVAL (reported) or -ENOMEM. */
static int subst(struct ctx *c, const struct vars *v, const char *pfx, const char *loc,
		 char **str, size_t skip, json_t **jout)
{
	struct sbuf out = SBUF_INIT;
	size_t pos = skip;
	struct ref r;
	enum ref_kind k;
	char what[SHOW_MAX * 2 + 64];
	int ret = 0;

	sbuf_add(&out, *str, skip);
	k = expand_next(v, *str, &pos, &out, &r);
	if (k != REF_END) {
		ref_what(what, sizeof(what), k, &r, v);
		loc_report(c, pfx, loc, what, k != REF_NO_PORT);
		ret = -EINVAL;
		goto out;
	}
	if (sbuf_failed(&out)) {
		ret = -ENOMEM;
		goto out;
	}
	*jout = json_string(sbuf_str(&out) + skip);
	if (!*jout) {
		if (utf8_ok(sbuf_str(&out) + skip)) {
			ret = -ENOMEM;
		} else {
			loc_report(c, pfx, loc, "invalid UTF-8 after substitution", true);
			ret = -EINVAL;
		}
		goto out;
	}
	char *s = sbuf_detach(&out, NULL);
	if (!s) {
		json_decref(*jout);
		*jout = NULL;
		return -ENOMEM;
	}
	orch_free(*str);
	*str = s;
out:
	sbuf_release(&out);
	return ret;
}

/* Substitute the "KEY=VALUE"s of ENV (nenv) and the matching values of OBJ. */
static int subst_env(struct ctx *c, const struct vars *v, const char *pfx, char **env,
		     size_t nenv, json_t *obj)
{
	const char *key;
	json_t *val, *j;
	size_t i = 0;
	char loc[SHOW_MAX + 8];
	int ret;

	json_object_foreach(obj, key, val) {
		size_t klen = strlen(key);
		if (i >= nenv || strncmp(env[i], key, klen) || env[i][klen] != '=')
			continue;
		env_loc(loc, key);
		ret = subst(c, v, pfx, loc, &env[i], klen + 1, &j);
		if (ret)
			return ret;
		if (json_object_set_new(obj, key, j))
			return -ENOMEM;
		i++;
	}
	return 0;
}

/* Step I of the plan and of its document. */
static int subst_step(struct ctx *c, struct plan *p, size_t i, const struct vars *pv)
{
	struct plan_step *ps = &p->steps[i];
	json_t *o = json_array_get(json_object_get(p->doc, "steps"), i), *j;
	struct vars v = *pv;
	char pfx[STEP_ID_MAX + 32], loc[32];
	int ret;

	v.step_id = ps->id;
	step_prefix(pfx, ps, i);
	if (ps->command) {
		if ((ret = subst(c, &v, pfx, "command", &ps->command, 0, &j)))
			return ret;
		if (json_object_set_new(o, "command", j))
			return -ENOMEM;
		/* the plan as run must parse again on resume, where "command"
		 * may not be empty */
		if (!ps->command[0]) {
			loc_report(c, pfx, "command", "\"command\" is empty after substitution", false);
			return -EINVAL;
		}
	}
	if (ps->prompt) {
		if ((ret = subst(c, &v, pfx, "prompt", &ps->prompt, 0, &j)))
			return ret;
		if (json_object_set_new(o, "prompt", j))
			return -ENOMEM;
	}
	json_t *args = json_object_get(o, "args");
	for (size_t k = 0; k < ps->nargs; k++) {
		snprintf(loc, sizeof(loc), "args[%zu]", k);
		if ((ret = subst(c, &v, pfx, loc, &ps->args[k], 0, &j)))
			return ret;
		if (json_array_set_new(args, k, j))
			return -ENOMEM;
	}
	if (ps->nenv && (ret = subst_env(c, &v, pfx, ps->env, ps->nenv, json_object_get(o, "env"))))
		return ret;
	if (ps->cwd) {
		if ((ret = subst(c, &v, pfx, "cwd", &ps->cwd, 0, &j)))
			return ret;
		if (json_object_set_new(o, "cwd", j))
			return -ENOMEM;
		if (!ps->cwd[0]) {
			loc_report(c, pfx, "cwd", "\"cwd\" is empty after substitution", false);
			return -EINVAL;
		}
		if (!cwd_ok(c, pfx, ps->cwd, " after substitution"))
			return -EINVAL;
	}
	return 0;
}

/* sandbox.health's url or command, in the plan and in its document. */
static int subst_health(struct ctx *c, struct plan *p, const struct vars *v)
{
	struct plan_health *h = &p->sandbox.health;
	json_t *o = json_object_get(json_object_get(p->doc, "sandbox"), "health"), *j;
	char loc[48], b[SHOW_MAX + 1];
	int ret;
	if (h->url) {
		if ((ret = subst(c, v, NULL, "sandbox.health.url", &h->url, 0, &j)))
			return ret;
		if (json_object_set_new(o, "url", j))
			return -ENOMEM;
		if (!plan_health_url_ok(h->url)) {
			report(c, "\"sandbox.health.url\" must be an http:// or https:// URL of 127.0.0.1, [::1] or"
			       " localhost (the sandbox's own services), not \"%s\" (after substitution)",
			       show(b, h->url, strlen(h->url)));
			return -EINVAL;
		}
	}
	json_t *cmd = json_object_get(o, "command");
	for (size_t k = 0; k < h->ncommand; k++) {
		snprintf(loc, sizeof(loc), "sandbox.health.command[%zu]", k);
		if ((ret = subst(c, v, NULL, loc, &h->command[k], 0, &j)))
			return ret;
		if (json_array_set_new(cmd, k, j))
			return -ENOMEM;
		if (k == 0 && !h->command[0][0]) {
			report(c, "\"sandbox.health.command[0]\" is empty after substitution");
			return -EINVAL;
		}
	}
	return 0;
}

/* A triggered run's steps see TRIGGER_EVENT, TRIGGER_RUN_ID and
 * TRIGGER_SANDBOX in their environment (SPEC §9): added to the plan's "env"
 * (and so to the plan as run, which a resume parses again), unless the
 * plan's "env" sets them itself. */
static int trigger_env(struct plan *plan, const struct plan_builtins *b)
{
	const char *const names[] = { "TRIGGER_EVENT", "TRIGGER_RUN_ID", "TRIGGER_SANDBOX" };
	const char *const vals[] = { b->trigger_event, b->trigger_run_id, b->trigger_sandbox };
	json_t *obj = json_object_get(plan->doc, "env");
	if (!obj) {
		obj = json_object();
		if (!obj || json_object_set_new(plan->doc, "env", obj))
			return -ENOMEM;
	}
	if (!json_is_object(obj))
		return 0;	/* cannot be: validated */
	char **env = orch_realloc(plan->env, (plan->nenv + 4) * sizeof(*env));
	if (!env)
		return -ENOMEM;
	plan->env = env;
	for (size_t k = 0; k < 3; k++) {
		if (json_object_get(obj, names[k]))
			continue;
		const char *val = vals[k] ? vals[k] : "";
		char *kv = orch_asprintf("%s=%s", names[k], val);
		if (!kv || json_object_set_new(obj, names[k], json_string(val))) {
			orch_free(kv);
			return -ENOMEM;
		}
		env[plan->nenv++] = kv;
		env[plan->nenv] = NULL;
	}
	return 0;
}

int plan_substitute(struct plan *plan, const char *name, const struct plan_opts *opts,
		    const struct plan_builtins *b, struct sbuf *errs)
{
	static const struct plan_opts no_opts;
	static const struct plan_builtins no_builtins;
	struct sbuf own = SBUF_INIT;
	struct ctx c = { .errs = errs ? errs : &own };
	json_t *vars = json_object_get(plan->doc, "variables");
	json_t *ports = json_object_get(json_object_get(plan->doc, "sandbox"), "ports");
	struct vars v = {
		.opts = opts, .b = b ? b : &no_builtins, .plan_id = plan->plan_id,
		.variables = json_is_object(vars) ? vars : NULL,
		.port_list = json_is_array(ports) ? ports : NULL,
		.trigger = plan->triggered,
	};
	int ret = 0;

	if (!opts)
		opts = &no_opts;
	v.opts = opts;
	if (opts->literal)
		goto out;
	if (plan->nenv &&
	    (ret = subst_env(&c, &v, NULL, plan->env, plan->nenv, json_object_get(plan->doc, "env"))))
		goto out;
	if (plan->triggered && b && (ret = trigger_env(plan, b)))
		goto out;
	if (plan->sandbox.health.set && (ret = subst_health(&c, plan, &v)))
		goto out;
	for (size_t i = 0; i < plan->nsteps; i++)
		if ((ret = subst_step(&c, plan, i, &v)))
			goto out;
out:
	if (ret == -ENOMEM || sbuf_failed(c.errs))
		ret = -ENOMEM;
	sbuf_release(&own);
	return ret;
}

static void free_strv(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		orch_free(v[i]);
	orch_free(v);
}

void plan_free(struct plan *plan)
{
	if (!plan)
		return;
	for (size_t i = 0; i < plan->nsteps; i++) {
		struct plan_step *ps = &plan->steps[i];
		orch_free(ps->id);
		orch_free(ps->name);
		orch_free(ps->command);
		free_strv(ps->args, ps->nargs);
		free_strv(ps->env, ps->nenv);
		orch_free(ps->cwd);
		orch_free(ps->prompt);
		free_strv(ps->approvers, ps->napprovers);
		orch_free(ps->deps);
	}
	orch_free(plan->steps);
	orch_free(plan->plan_id);
	free_strv(plan->env, plan->nenv);
	orch_free(plan->sandbox.id);
	window_spec_release(&plan->sandbox.window);
	orch_free(plan->sandbox.health.url);
	free_strv(plan->sandbox.health.command, plan->sandbox.health.ncommand);
	for (char **n = plan->sandbox.port_names; n && *n; n++)
		orch_free(*n);
	orch_free(plan->sandbox.port_names);
	json_decref(plan->doc);
	orch_free(plan);
}

const char *on_failure_name(enum on_failure f)
{
	switch (f) {
	case ON_FAILURE_SKIP_DEPENDENTS: return "skip_dependents";
	case ON_FAILURE_CONTINUE: return "continue";
	default: return "abort";
	}
}
