/* core/health.c — health checks of sandboxes (SPEC §11; see core/health.h).
 *
 * A check never waits on the engine thread: an HTTP check is a request on
 * the shared curl multi handle; a command goes to a spawner thread (its
 * command may lie anywhere, our mount included), comes back with a pidfd
 * the loop watches, and is killed (its process group) at its timeout. A
 * command whose check stopped meanwhile (the last step ended, the sandbox
 * went away) is killed and reaped all the same, by the same watch. */
#include "core/health.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/engine_i.h"
#include "core/proc.h"

/* ---- the pure part ---- */

const char *health_state_name(enum health_state s)
{
	switch (s) {
	case HEALTH_HEALTHY: return "healthy";
	case HEALTH_DEGRADED: return "degraded";
	case HEALTH_UNHEALTHY: return "unhealthy";
	default: return "unknown";
	}
}

enum health_state health_worse(enum health_state a, enum health_state b) { return a > b ? a : b; }

bool health_count(struct health_tally *t, bool ok, unsigned unhealthy_after)
{
	enum health_state was = t->state;
	if (ok) {
		t->passed++;
		t->streak = 0;
		t->state = HEALTH_HEALTHY;
	} else {
		t->failed++;
		t->streak++;
		if (t->state != HEALTH_UNHEALTHY)
			t->state = t->streak >= unhealthy_after ? HEALTH_UNHEALTHY : HEALTH_DEGRADED;
	}
	return t->state != was;
}

char *health_cfg_json(const struct plan_health *ph)
{
	json_t *o = json_object(), *argv = NULL;
	if (!o)
		return NULL;
	int bad = 0;
	if (ph->url) {
		bad |= json_object_set_new(o, "url", json_string(ph->url));
	} else {
		argv = json_array();
		for (size_t i = 0; argv && i < ph->ncommand; i++)
			bad |= json_array_append_new(argv, json_string(ph->command[i]));
		bad |= json_object_set_new(o, "command", argv ? argv : json_null());
	}
	bad |= json_object_set_new(o, "interval_ms", json_integer((json_int_t)llround(ph->interval_sec * 1000)));
	bad |= json_object_set_new(o, "timeout_ms", json_integer((json_int_t)llround(ph->timeout_sec * 1000)));
	bad |= json_object_set_new(o, "unhealthy_after", json_integer(ph->unhealthy_after));
	char *s = bad ? NULL : json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!s)
		return NULL;
	char *r = orch_strdup(s);
	free(s);
	return r;
}

void health_cfg_release(struct health_cfg *c)
{
	orch_free(c->url);
	for (size_t i = 0; c->argv && i < c->argc; i++)
		orch_free(c->argv[i]);
	orch_free(c->argv);
	memset(c, 0, sizeof(*c));
}

int health_cfg_parse(const char *text, struct health_cfg *c)
{
	memset(c, 0, sizeof(*c));
	json_t *o = json_loads(text, 0, NULL);
	if (!json_is_object(o)) {
		json_decref(o);
		return -EINVAL;
	}
	int rc = 0;
	json_t *url = json_object_get(o, "url"), *argv = json_object_get(o, "command");
	json_t *iv = json_object_get(o, "interval_ms"), *to = json_object_get(o, "timeout_ms");
	json_t *ua = json_object_get(o, "unhealthy_after");
	if (!json_is_integer(iv) || !json_is_integer(to) || !json_is_integer(ua) || json_integer_value(iv) <= 0 ||
	    json_integer_value(to) <= 0 || json_integer_value(ua) < 1 || (!json_is_string(url) == !json_is_array(argv))) {
		rc = -EINVAL;
		goto out;
	}
	c->interval_ms = json_integer_value(iv);
	c->timeout_ms = json_integer_value(to);
	c->unhealthy_after = (unsigned)json_integer_value(ua);
	if (json_is_string(url)) {
		rc = (c->url = orch_strdup(json_string_value(url))) ? 0 : -ENOMEM;
		goto out;
	}
	size_t n = json_array_size(argv);
	if (!n) {
		rc = -EINVAL;
		goto out;
	}
	if (!(c->argv = orch_calloc(n + 1, sizeof(char *)))) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n && !rc; i++) {
		json_t *a = json_array_get(argv, i);
		if (!json_is_string(a))
			rc = -EINVAL;
		else if (!(c->argv[c->argc++] = orch_strdup(json_string_value(a))))
			rc = -ENOMEM;
	}
out:
	json_decref(o);
	if (rc)
		health_cfg_release(c);
	return rc;
}

/* ---- a sandbox's check (engine thread) ---- */

struct health {
	struct orch_engine *e;
	struct sandbox *sb;
	struct health_cfg cfg;
	char *json;		/* cfg as saved */
	struct health_tally t;
	int64_t last_at;	/* wall ms of the last check's end; 0: none */
	char last_error[256];	/* why the last check failed; "" when it passed */
	bool active;		/* checking: a step runs in the sandbox */
	struct loop_timer timer;	/* the next check */
	int64_t started;	/* mono ms the current (or last) check began */
	struct http_req *req;	/* an HTTP check in flight */
	struct hcmd *cmd;	/* a command check in flight */
};

/* A check's process, from its hand-over to a spawner thread until it is
 * reaped: it may outlive its check (h NULL). */
struct hcmd {
	struct orch_engine *e;
	struct health *h;
	char prog[64];		/* its command, for messages */
	pid_t pid;
	bool running;		/* spawned, not reaped */
	bool timed_out;
	int outfd;		/* the read end of its stdout and stderr */
	struct loop_watch wpid;
	struct loop_timer timer;	/* its timeout */
	struct hcmd *next;	/* the engine's list */
};

static void reap_cb(struct loop_timer *t)
{
	struct orch_engine *e = t->data;
	while (e->health.dead) {
		struct hcmd *c = e->health.dead;
		e->health.dead = c->next;
		orch_free(c);
	}
}

void health_engine_init(struct orch_engine *e)
{
	memset(&e->health, 0, sizeof(e->health));
	e->health.reap = (struct loop_timer)LOOP_TIMER_INIT(reap_cb, e);
}

static void check_schedule(struct health *h);

/* The end of a check: count it, say a change of verdict, plan the next. */
static void check_end(struct health *h, bool ok, const char *why)
{
	struct orch_engine *e = h->e;
	h->last_at = clock_wall_ms();
	snprintf(h->last_error, sizeof(h->last_error), "%s", ok ? "" : why);
	if (ok)
		e->health.passed++;
	else
		e->health.failed++;
	if (health_count(&h->t, ok, h->cfg.unhealthy_after)) {
		char type[32];
		snprintf(type, sizeof(type), "sandbox.%s", health_state_name(h->t.state));
		eng_log(e, "sandboxes/%s: %s%s%s", h->sb->name, health_state_name(h->t.state), ok ? "" : ": ",
			ok ? "" : why);
		json_t *x = json_pack("{s:s, s:i}", "check", h->cfg.url ? "http" : "command", "failures",
				      (int)h->t.streak);
		if (x && !ok)
			json_object_set_new(x, "error", json_string(why));
		ev_emit(e, type, h->sb->holder, NULL, h->sb, x);
	}
	if (h->active)
		check_schedule(h);
}

static void http_done(void *arg, int status, const char *err)
{
	struct health *h = arg;
	char why[300];
	h->req = NULL;
	if (status)
		snprintf(why, sizeof(why), "HTTP status %d", status);
	else
		snprintf(why, sizeof(why), "%s", err && *err ? err : "no answer");
	check_end(h, status >= 200 && status < 400, why);
}

/* c is done with: off the list, its check told (when it has one), freed
 * after the turn (the loop may still hold its watch in this batch). */
static void cmd_finish(struct hcmd *c, bool ok, const char *why)
{
	struct orch_engine *e = c->e;
	for (struct hcmd **pp = &e->health.cmds; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	loop_timer_cancel(&e->loop, &c->timer);
	loop_watch_close(&e->loop, &c->wpid);
	if (c->outfd >= 0)
		close(c->outfd);
	c->outfd = -1;
	struct health *h = c->h;
	c->next = e->health.dead;
	e->health.dead = c;
	if (!loop_timer_armed(&e->health.reap) && loop_timer_set(&e->loop, &e->health.reap, clock_mono_ms()))
		e->health.dead = c->next;	/* no timer: leaked rather than freed under the loop */
	if (h) {
		h->cmd = NULL;
		check_end(h, ok, why);
	}
}

/* The last non-empty line of what the command printed (what the pipe
 * holds: at most its 64 KiB; a command that prints more waits for its
 * timeout). */
static void last_line(int fd, char *out, size_t size)
{
	enum { CAP = 65536 };
	char *buf = orch_malloc(CAP + 1);
	ssize_t n = 0, k;
	out[0] = '\0';
	if (!buf)
		return;
	while (n < CAP && (k = read(fd, buf + n, (size_t)(CAP - n))) > 0)
		n += k;
	if (n <= 0) {
		orch_free(buf);
		return;
	}
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	char *l = strrchr(buf, '\n');
	text_show(out, size, l ? l + 1 : buf, strlen(l ? l + 1 : buf));
	orch_free(buf);
}

static void cmd_exit_cb(struct loop_watch *w, uint32_t events)
{
	struct hcmd *c = w->data;
	int status = 0;
	(void)events;
	/* a zombie now: whatever it left in its group goes with it */
	proc_kill_group(c->pid, SIGKILL);
	int rc = proc_reap(w->fd, &status);
	if (rc == -EAGAIN)
		return;
	c->running = false;
	char line[160], why[300];
	last_line(c->outfd, line, sizeof(line));
	bool ok = false;
	if (rc)
		snprintf(why, sizeof(why), "cannot reap the command: %s", strerror(-rc));
	else if (c->timed_out)
		snprintf(why, sizeof(why), "timed out after %gs", c->h ? c->h->cfg.timeout_ms / 1000.0 : 0);
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		ok = true, why[0] = '\0';
	else if (WIFEXITED(status))
		snprintf(why, sizeof(why), "exit status %d%s%s", WEXITSTATUS(status), line[0] ? ": " : "", line);
	else
		snprintf(why, sizeof(why), "killed by signal %d", WTERMSIG(status));
	cmd_finish(c, ok, why);
}

static void cmd_timer_cb(struct loop_timer *t)
{
	struct hcmd *c = t->data;
	c->timed_out = true;
	if (c->running)
		proc_kill_group(c->pid, SIGKILL);	/* its exit comes by cmd_exit_cb */
}

/* The spawner is done with a check's job. */
static void cmd_spawned(struct loop_work *w, void *ctx)
{
	struct orch_engine *e = ctx;
	struct spawn_job *j = (struct spawn_job *)w;
	struct hcmd *c = j->owner;
	char why[300];
	if (j->err) {
		snprintf(why, sizeof(why), "cannot run \"%s\": %s", c->prog, strerror(-j->err));
		spawn_job_free(j);
		cmd_finish(c, false, why);
		return;
	}
	c->pid = j->pid;
	int pidfd = j->pidfd;
	spawn_job_free(j);
	c->wpid = (struct loop_watch){ .fd = pidfd, .cb = cmd_exit_cb, .data = c };
	int rc = pidfd < 0 ? -ENOSYS : loop_watch_add(&e->loop, &c->wpid, EPOLLIN);
	if (rc) {
		/* no way to see its end: it ends now, a spawner thread reaps it */
		c->wpid.fd = -1;
		if (pidfd >= 0)
			close(pidfd);
		run_kill_and_reap(e, c->pid);
		snprintf(why, sizeof(why), "cannot watch the command: %s", strerror(-rc));
		cmd_finish(c, false, why);
		return;
	}
	c->running = true;
	if (!c->h || c->timed_out)
		proc_kill_group(c->pid, SIGKILL);
}

static void cmd_start(struct health *h)
{
	struct orch_engine *e = h->e;
	char why[300];
	int p[2];
	struct hcmd *c = orch_calloc(1, sizeof(*c));
	if (!c || pipe2(p, O_CLOEXEC) < 0) {
		orch_free(c);
		check_end(h, false, "cannot start the command: out of memory or descriptors");
		return;
	}
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	c->e = e;
	c->h = h;
	text_show(c->prog, sizeof(c->prog), h->cfg.argv[0], strlen(h->cfg.argv[0]));
	c->outfd = p[0];
	c->wpid.fd = -1;
	c->timer = (struct loop_timer)LOOP_TIMER_INIT(cmd_timer_cb, c);
	int rc = run_spawn_check(e, h->sb->holder, h->cfg.argv, h->cfg.argc, p[1], cmd_spawned, c);
	if (rc) {
		close(p[0]);
		orch_free(c);
		snprintf(why, sizeof(why), "cannot run \"%s\": %s", h->cfg.argv[0], strerror(-rc));
		check_end(h, false, why);
		return;
	}
	c->next = e->health.cmds;
	e->health.cmds = c;
	h->cmd = c;
	loop_timer_set(&e->loop, &c->timer, h->started + h->cfg.timeout_ms);
}

static void check_cb(struct loop_timer *t)
{
	struct health *h = t->data;
	if (!h->active || h->req || h->cmd || !h->sb->holder)
		return;
	h->started = clock_mono_ms();
	if (!h->cfg.url) {
		cmd_start(h);
		return;
	}
	struct http_opts o = { .method = "GET", .url = h->cfg.url, .timeout_ms = h->cfg.timeout_ms, .no_proxy = true };
	int rc = http_start(&h->e->http, &o, http_done, h, &h->req);
	if (rc) {
		char why[128];
		snprintf(why, sizeof(why), "cannot send the request: %s", strerror(-rc));
		check_end(h, false, why);
	}
}

/* The next check: interval_ms after the last one began, never before it ended. */
static void check_schedule(struct health *h)
{
	int64_t now = clock_mono_ms(), at = h->started + h->cfg.interval_ms;
	loop_timer_set(&h->e->loop, &h->timer, at > now ? at : now);
}

/* Stop checking: a check in flight is dropped (its process killed). */
static void check_stop(struct health *h)
{
	h->active = false;
	loop_timer_cancel(&h->e->loop, &h->timer);
	if (h->req) {
		http_cancel(&h->e->http, h->req);
		h->req = NULL;
	}
	if (h->cmd) {
		struct hcmd *c = h->cmd;
		c->h = NULL;
		h->cmd = NULL;
		if (c->running)
			proc_kill_group(c->pid, SIGKILL);
	}
}

void health_sync(struct orch_engine *e, struct sandbox *sb)
{
	struct health *h = sb->health;
	if (!h)
		return;
	bool want = sb->holder && sb->holder->nrunning > 0;
	if (want == h->active)
		return;
	if (!want) {
		check_stop(h);
		return;
	}
	h->active = true;
	h->t.streak = 0;
	h->started = clock_mono_ms();	/* the first check: an interval from now */
	check_schedule(h);
	(void)e;
}

void health_free(struct health *h)
{
	if (!h)
		return;
	check_stop(h);
	health_cfg_release(&h->cfg);
	orch_free(h->json);
	orch_free(h);
}

/* SB's check becomes CFG (taken), saved as JSON (taken). */
static int health_take(struct orch_engine *e, struct sandbox *sb, struct health_cfg *cfg, char *json)
{
	struct health *h = orch_calloc(1, sizeof(*h));
	if (!h) {
		health_cfg_release(cfg);
		orch_free(json);
		return -ENOMEM;
	}
	h->e = e;
	h->sb = sb;
	h->cfg = *cfg;
	h->json = json;
	h->timer = (struct loop_timer)LOOP_TIMER_INIT(check_cb, h);
	bool was_active = sb->health && sb->health->active;
	health_free(sb->health);
	sb->health = h;
	if (was_active)
		health_sync(e, sb);
	return 0;
}

int health_load(struct orch_engine *e, struct sandbox *sb, const char *json)
{
	if (!json)
		return 0;
	struct health_cfg cfg;
	char *copy = orch_strdup(json);
	int rc = copy ? health_cfg_parse(json, &cfg) : -ENOMEM;
	if (rc) {
		orch_free(copy);
		if (rc == -EINVAL)
			eng_log(e, "sandboxes/%s: its saved health check is unreadable: none", sb->name);
		return rc == -EINVAL ? 0 : rc;
	}
	return health_take(e, sb, &cfg, copy);
}

int health_set(struct orch_engine *e, struct sandbox *sb, const struct plan_health *ph)
{
	if (!ph->url && !ph->command) {
		/* "health": null: no check any more */
		if (!sb->health)
			return 0;
		int rc = store_exec(&e->st, "UPDATE sandboxes SET health = NULL WHERE id = ?", "i", sb->rowid);
		if (!rc) {
			health_free(sb->health);
			sb->health = NULL;
		}
		return rc;
	}
	char *json = health_cfg_json(ph);
	if (!json)
		return -ENOMEM;
	if (sb->health && !strcmp(sb->health->json, json)) {
		orch_free(json);
		return 0;
	}
	struct health_cfg cfg;
	int rc = health_cfg_parse(json, &cfg);
	if (rc) {
		orch_free(json);
		return rc;
	}
	rc = store_exec(&e->st, "UPDATE sandboxes SET health = ? WHERE id = ?", "si", json, sb->rowid);
	if (rc) {
		health_cfg_release(&cfg);
		orch_free(json);
		return rc;
	}
	return health_take(e, sb, &cfg, json);
}

void health_engine_release(struct orch_engine *e)
{
	while (e->health.cmds) {
		struct hcmd *c = e->health.cmds;
		e->health.cmds = c->next;
		if (c->running)
			proc_kill_group(c->pid, SIGKILL);
		loop_watch_close(&e->loop, &c->wpid);
		if (c->outfd >= 0)
			close(c->outfd);
		orch_free(c);
	}
	loop_timer_cancel(&e->loop, &e->health.reap);
	reap_cb(&e->health.reap);
}

void health_render(const struct sandbox *sb, enum health_state hb, json_t *o)
{
	const struct health *h = sb->health;
	enum health_state st = health_worse(hb, h ? h->t.state : HEALTH_UNKNOWN);
	json_object_set_new(o, "health", json_string(health_state_name(st)));
	if (!h) {
		json_object_set_new(o, "checks", json_null());
		return;
	}
	char at[ISO8601_LEN];
	fmt_iso8601(h->last_at, at);
	json_object_set_new(o, "checks",
			    json_pack("{s:I, s:I, s:o, s:o}", "passed", (json_int_t)h->t.passed, "failed",
				      (json_int_t)h->t.failed, "last_at", h->last_at ? json_string(at) : json_null(),
				      "last_error", h->last_error[0] ? json_string(h->last_error) : json_null()));
}

void health_metrics(struct orch_engine *e, struct sbuf *out)
{
	sbuf_addf(out,
		  "# HELP orchfs_health_checks_total Sandbox health checks since start, by result.\n"
		  "# TYPE orchfs_health_checks_total counter\n"
		  "orchfs_health_checks_total{result=\"passed\"} %lld\n"
		  "orchfs_health_checks_total{result=\"failed\"} %lld\n",
		  (long long)e->health.passed, (long long)e->health.failed);
}
