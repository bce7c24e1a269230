/* core/sandbox.c — sandboxes (SPEC §5): a workspace directory of their own
 * under the state directory and TCP ports no other live sandbox holds.
 * Loaded on first use and kept in memory while they exist. */
#include "core/ctl.h"
#include "core/engine_i.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void sb_free(struct sandbox *sb)
{
	if (!sb)
		return;
	msgq_forget(sb);
	orch_free(sb->logs_path);
	orch_free(sb->workspace);
	orch_free(sb->ports);
	orch_free(sb);
}

void sb_free_all(struct orch_engine *e)
{
	while (e->sandboxes) {
		struct sandbox *sb = e->sandboxes;
		e->sandboxes = sb->next;
		sb_free(sb);
	}
}

static char *sb_dir(struct orch_engine *e, const char *name)
{
	return orch_asprintf("%s/sandboxes/%s", e->state_dir, name);
}

/* Build the in-memory sandbox from its row (columns as in SB_COLS). */
#define SB_COLS \
	"id, name, isolation, network, nports, uid, gid, created_at, last_heartbeat, restarts, state"
static struct sandbox *sb_from_row(struct orch_engine *e, sqlite3_stmt *q)
{
	struct sandbox *sb = orch_calloc(1, sizeof(*sb));
	if (!sb)
		return NULL;
	sb->rowid = sqlite3_column_int64(q, 0);
	snprintf(sb->name, sizeof(sb->name), "%s", (const char *)sqlite3_column_text(q, 1));
	sb->isolation = (enum isolation)sqlite3_column_int(q, 2);
	sb->network = sqlite3_column_int(q, 3) != 0;
	sb->nports = sqlite3_column_int(q, 4);
	sb->uid = (uid_t)sqlite3_column_int64(q, 5);
	sb->gid = (gid_t)sqlite3_column_int64(q, 6);
	sb->created_at = sqlite3_column_int64(q, 7);
	sb->last_heartbeat = sqlite3_column_int64(q, 8);
	sb->restarts = sqlite3_column_int64(q, 9);
	const char *state = (const char *)sqlite3_column_text(q, 10);
	sb->stopped = state && !strcmp(state, "stopped");
	char *dir = sb_dir(e, sb->name);
	sb->workspace = dir ? orch_asprintf("%s/workspace", dir) : NULL;
	sb->logs_path = dir ? orch_asprintf("%s/logs", dir) : NULL;
	orch_free(dir);
	sb->ports = orch_calloc((size_t)(sb->nports > 0 ? sb->nports : 1), sizeof(int));
	sb->ev_epoch = -1;
	if (!sb->workspace || !sb->logs_path || !sb->ports) {
		sb_free(sb);
		return NULL;
	}
	return sb;
}

/* Ports and the events view size come from their own tables. */
static int sb_load_rest(struct orch_engine *e, struct sandbox *sb)
{
	int rc, n = 0;
	sqlite3_stmt *q = store_query(&e->st, "SELECT port FROM ports WHERE sandbox = ? ORDER BY port",
				      &rc, "i", sb->rowid);
	for (; q; q = store_next(q) ? q : (store_done(q), NULL))
		if (n < sb->nports)
			sb->ports[n++] = sqlite3_column_int(q, 0);
	if (rc)
		return rc;
	sb->nports = n;
	sb->msg_queued = store_int(&e->st, "SELECT count(*) FROM messages WHERE sandbox = ? AND state = 'queued'",
				   0, "i", sb->rowid);
	sb->msg_delivered = store_int(&e->st,
				      "SELECT count(*) FROM messages WHERE sandbox = ? AND state = 'delivered'", 0,
				      "i", sb->rowid);
	sb->msg_bytes = msgq_bytes_load(e, sb->rowid);
	sb->ev_epoch = -1;	/* its events view size: computed on first use */
	return 0;
}

static struct sandbox *sb_load(struct orch_engine *e, sqlite3_stmt *q)
{
	struct sandbox *sb = sb_from_row(e, q);
	store_done(q);
	if (!sb)
		return NULL;
	if (sb_load_rest(e, sb)) {
		sb_free(sb);
		return NULL;
	}
	sb->next = e->sandboxes;
	e->sandboxes = sb;
	return sb;
}

struct sandbox *sb_get(struct orch_engine *e, const char *name)
{
	for (struct sandbox *sb = e->sandboxes; sb; sb = sb->next)
		if (!strcmp(sb->name, name))
			return sb;
	int rc;
	sqlite3_stmt *q = store_query(&e->st, "SELECT " SB_COLS " FROM sandboxes WHERE name = ?", &rc,
				      "s", name);
	return q ? sb_load(e, q) : NULL;
}

struct sandbox *sb_get_rowid(struct orch_engine *e, int64_t rowid)
{
	for (struct sandbox *sb = e->sandboxes; sb; sb = sb->next)
		if (sb->rowid == rowid)
			return sb;
	int rc;
	sqlite3_stmt *q = store_query(&e->st, "SELECT " SB_COLS " FROM sandboxes WHERE id = ?", &rc,
				      "i", rowid);
	return q ? sb_load(e, q) : NULL;
}

/* Is PORT free for us: held by no sandbox, and not bound by anyone on this machine? */
static bool port_free(struct orch_engine *e, int port)
{
	if (store_int(&e->st, "SELECT 1 FROM ports WHERE port = ?", 0, "i", (int64_t)port))
		return false;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return true;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_ANY);
	bool ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

/* Take NPORTS ports for SB from the configured range, starting after the
 * last port handed out (so a freed port is not reused at once). */
static int ports_alloc(struct orch_engine *e, struct sandbox *sb, int nports)
{
	int lo = e->cfg.port_min, hi = e->cfg.port_max;
	if (nports == 0)
		return 0;
	if (lo <= 0 || hi < lo)
		return -ENOSPC;
	int64_t last = store_int(&e->st, "SELECT value FROM meta WHERE key = 'last_port'", lo - 1, NULL);
	int span = hi - lo + 1, got = 0;
	int p = (int)last;
	for (int tries = 0; tries < span && got < nports; tries++) {
		p = p >= hi || p < lo ? lo : p + 1;
		if (!port_free(e, p))
			continue;
		int rc = store_exec(&e->st, "INSERT INTO ports(port, sandbox) VALUES(?, ?)", "ii",
				    (int64_t)p, sb->rowid);
		if (rc)
			return rc;
		sb->ports[got++] = p;
	}
	if (got < nports)
		return -ENOSPC;
	sb->nports = got;
	return store_exec(&e->st, "INSERT OR REPLACE INTO meta(key, value) VALUES('last_port', ?)", "i",
			  (int64_t)p);
}

int sb_create(struct orch_engine *e, const char *name, enum isolation iso, bool network, int nports,
	      uid_t uid, gid_t gid, struct sandbox **out)
{
	if (!id_valid(name, SANDBOX_ID_MAX))
		return -EINVAL;
	if (sb_get(e, name))
		return -EEXIST;
	if (iso == ISOLATION_UNSET)
		iso = e->bwrap_ok ? ISOLATION_BWRAP : ISOLATION_NONE;
	if (nports < 0)
		nports = 1;
	int64_t now = clock_wall_ms();
	int rc = store_savepoint(&e->st, "sb_create");
	if (rc)
		return rc;
	rc = store_exec(&e->st,
			"INSERT INTO sandboxes(name, isolation, network, nports, created_at, uid, gid)"
			" VALUES(?, ?, ?, ?, ?, ?, ?)",
			"siiiiii", name, (int64_t)iso, (int64_t)network, (int64_t)nports, now,
			(int64_t)uid, (int64_t)gid);
	struct sandbox *sb = NULL;
	if (!rc) {
		int qrc;
		sqlite3_stmt *q = store_query(&e->st, "SELECT " SB_COLS " FROM sandboxes WHERE name = ?",
					      &qrc, "s", name);
		sb = q ? sb_from_row(e, q) : NULL;
		store_done(q);
		rc = sb ? 0 : (qrc ? qrc : -ENOMEM);
	}
	if (!rc)
		rc = ports_alloc(e, sb, nports);
	if (!rc)
		rc = mkdir_p(sb->workspace, 0755);
	if (!rc && uid != getuid()) {
		char *dir = sb_dir(e, name);
		if (dir && chown(dir, uid, gid) < 0)
			rc = -errno;
		if (!rc && chown(sb->workspace, uid, gid) < 0)
			rc = -errno;
		orch_free(dir);
	}
	if (rc) {
		store_release(&e->st, "sb_create", false);
		sb_free(sb);
		return rc;
	}
	store_release(&e->st, "sb_create", true);
	sb->next = e->sandboxes;
	e->sandboxes = sb;
	quota_add(&e->quota, uid, QUOTA_SANDBOXES, 1);
	quota_add(&e->quota, uid, QUOTA_PORTS, sb->nports);
	ev_emit(e, "sandbox.created", NULL, NULL, sb, NULL);
	*out = sb;
	return 0;
}

void sb_forget(struct orch_engine *e, struct sandbox *sb)
{
	/* a lookup may have seen it meanwhile: the kernel must forget it too */
	if (e->on_sb_gone)
		e->on_sb_gone(e->on_sb_gone_arg, sb->name);
	for (struct sandbox **pp = &e->sandboxes; *pp; pp = &(*pp)->next)
		if (*pp == sb) {
			*pp = sb->next;
			break;
		}
	quota_add(&e->quota, sb->uid, QUOTA_SANDBOXES, -1);
	quota_add(&e->quota, sb->uid, QUOTA_PORTS, -sb->nports);
	char *dir = sb_dir(e, sb->name);
	if (dir)
		rm_rf(dir);
	orch_free(dir);
	sb_free(sb);
}

bool sb_in_use(struct orch_engine *e, const struct sandbox *sb)
{
	for (struct run *r = e->active_head; r; r = r->next)
		if (r->sb == sb)
			return true;
	return false;
}

/* ---- the API the tree uses ---- */

static void sb_attr(const struct sandbox *sb, struct orch_sandbox_attr *a)
{
	a->rowid = sb->rowid;
	snprintf(a->name, sizeof(a->name), "%s", sb->name);
	a->uid = sb->uid;
	a->gid = sb->gid;
	a->ctime_ms = sb->created_at;
}

int orch_sandbox_by_name(struct orch_engine *e, const char *name, struct orch_sandbox_attr *a)
{
	if (!id_valid(name, SANDBOX_ID_MAX))
		return -ENOENT;
	struct sandbox *sb = sb_get(e, name);
	if (!sb)
		return -ENOENT;
	sb_attr(sb, a);
	return 0;
}

int orch_sandbox_by_rowid(struct orch_engine *e, int64_t rowid, struct orch_sandbox_attr *a)
{
	struct sandbox *sb = sb_get_rowid(e, rowid);
	if (!sb)
		return -ENOENT;
	sb_attr(sb, a);
	return 0;
}

int orch_sandbox_list(struct orch_engine *e, int64_t after,
		      int (*cb)(void *ctx, int64_t rowid, const char *name), void *ctx)
{
	return store_list(&e->st, "SELECT id, name FROM sandboxes WHERE id > ? ORDER BY id", after, cb,
			  ctx);
}

char *orch_sandbox_workspace(struct orch_engine *e, int64_t rowid)
{
	struct sandbox *sb = sb_get_rowid(e, rowid);
	return sb ? orch_strdup(sb->workspace) : NULL;
}

/* The run a sandbox shows: the one active in it, else the last that ran there. */
static int last_run(struct orch_engine *e, struct sandbox *sb, char name[RUN_ID_MAX + 1],
		    char state[16])
{
	name[0] = state[0] = '\0';
	if (sb->holder) {
		snprintf(name, RUN_ID_MAX + 1, "%s", sb->holder->name);
		snprintf(state, 16, "%s", run_state_name(sb->holder->state));
		return 1;
	}
	int rc;
	sqlite3_stmt *q = store_query(&e->st,
				      "SELECT runs.name, runs.state FROM sandboxes JOIN runs"
				      " ON runs.name = sandboxes.owner_run WHERE sandboxes.id = ?",
				      &rc, "i", sb->rowid);
	if (!q)
		return 0;
	snprintf(name, RUN_ID_MAX + 1, "%s", (const char *)sqlite3_column_text(q, 0));
	snprintf(state, 16, "%s", (const char *)sqlite3_column_text(q, 1));
	store_done(q);
	return 1;
}

int orch_sandbox_render(struct orch_engine *e, int64_t rowid, struct sbuf *out)
{
	struct sandbox *sb = sb_get_rowid(e, rowid);
	if (!sb)
		return -ENOENT;
	char created[ISO8601_LEN], hb[ISO8601_LEN], run[RUN_ID_MAX + 1], rstate[16];
	fmt_iso8601(sb->created_at, created);
	fmt_iso8601(sb->last_heartbeat, hb);
	bool have_run = last_run(e, sb, run, rstate);
	const char *state = "ready";
	if (sb->stopped)
		state = "stopped";
	else if (sb->holder && sb->holder->state == RUN_RUNNING)
		state = "running";
	else if (!sb->holder && have_run && !strcmp(rstate, "failed"))
		state = "failed";
	const char *health = sb->missed ? "unhealthy" : sb->last_heartbeat ? "healthy" : "unknown";
	json_t *ports = json_array();
	for (int i = 0; ports && i < sb->nports; i++)
		json_array_append_new(ports, json_integer(sb->ports[i]));
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:s, s:o, s:I, s:s, s:{s:I, s:I}}", "id",
			      sb->name, "state", state, "isolation",
			      sb->isolation == ISOLATION_BWRAP ? "bwrap" : "none", "workspace",
			      sb->workspace, "ports", ports ? ports : json_null(), "run_id",
			      have_run ? json_string(run) : json_null(), "created_at", created,
			      "last_heartbeat", sb->last_heartbeat ? json_string(hb) : json_null(),
			      "restarts", (json_int_t)sb->restarts, "health", health, "messages",
			      "queued", (json_int_t)sb->msg_queued, "delivered",
			      (json_int_t)sb->msg_delivered);
	if (o)
		json_object_set_new(o, "network", json_boolean(sb->network));
	return sbuf_put_json(out, o);
}

char *orch_sandbox_logs_path(struct orch_engine *e, int64_t rowid)
{
	struct sandbox *sb = sb_get_rowid(e, rowid);
	return sb ? orch_strdup(sb->logs_path) : NULL;
}

int sb_save(struct orch_engine *e, struct sandbox *sb)
{
	return store_exec(&e->st,
			  "UPDATE sandboxes SET state = ?, last_heartbeat = ?, restarts = ? WHERE id = ?",
			  "siii", sb->stopped ? "stopped" : "ready", sb->last_heartbeat, sb->restarts,
			  sb->rowid);
}

/* Posted event types may not pass for the engine's own. */
static bool reserved_type(const char *t)
{
	static const char *const prefixes[] = { "run.", "step.", "sandbox.", "message." };
	for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++)
		if (!strncmp(t, prefixes[i], strlen(prefixes[i])))
			return true;
	return false;
}

int orch_events_post(struct orch_engine *e, int64_t sbid, const struct line_batch *b, pid_t writer)
{
	struct sandbox *sb = sb_get_rowid(e, sbid);
	if (!sb)
		return -ENOENT;
	for (size_t i = 0; i < b->n; i++)
		if (reserved_type(json_string_value(json_object_get(b->events[i], "event_type"))))
			return -EINVAL;
	int room = eng_room(e);
	if (room)
		return room;
	struct step *s = run_step_by_pid(e, sb, writer);
	struct run *r = s ? s->run : sb->holder;
	bool heartbeat = false;
	int rc = store_savepoint(&e->st, "post");
	for (size_t i = 0; !rc && i < b->n; i++) {
		const char *type = json_string_value(json_object_get(b->events[i], "event_type"));
		rc = ev_emit(e, type, r, s, sb, json_incref(b->events[i]));
		heartbeat |= !strcmp(type, "heartbeat");
	}
	if (!rc && heartbeat) {
		sb->last_heartbeat = clock_wall_ms();
		sb->missed = false;
		rc = sb_save(e, sb);
	}
	store_release(&e->st, "post", rc == 0);
	if (rc)
		return rc;
	if (heartbeat)
		run_heartbeat(e, sb, s);
	orch_need_durable(e);
	return 0;
}

/* reset: empty the workspace but for persist/, and the logs. */
static int sb_reset(struct orch_engine *e, struct sandbox *sb)
{
	DIR *d = opendir(sb->workspace);
	if (!d)
		return -errno;
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || !strcmp(de->d_name, "persist"))
			continue;
		char *p = orch_asprintf("%s/%s", sb->workspace, de->d_name);
		int r = p ? rm_rf(p) : -ENOMEM;
		if (r && !rc)
			rc = r;
		orch_free(p);
	}
	closedir(d);
	if (truncate(sb->logs_path, 0) < 0 && errno != ENOENT && !rc)
		rc = -errno;
	if (!rc)
		ev_emit(e, "sandbox.reset", NULL, NULL, sb, NULL);
	return rc;
}

int orch_sandbox_ctl(struct orch_engine *e, int64_t rowid, const char *cmd, size_t len)
{
	static const char *const verbs[] = { "stop", "restart", "reset", "delete" };
	int v = ctl_parse(cmd, len, verbs, ARRAY_SIZE(verbs));
	if (v < 0)
		return v;
	struct sandbox *sb = sb_get_rowid(e, rowid);
	if (!sb)
		return -ENOENT;
	/* stop and delete free the disk; the others must find room first */
	int rc = (v == 1 || v == 2) ? eng_room(e) : 0;
	if (rc)
		return rc;
	switch (v) {
	case 0:	/* stop */
		if (sb->stopped)
			return -EINVAL;
		sb->stopped = true;
		if (sb->holder)
			run_cancel(e, sb->holder);
		rc = sb_save(e, sb);
		if (!rc)
			ev_emit(e, "sandbox.stopped", NULL, NULL, sb, NULL);
		break;
	case 1:	/* restart */
		sb->stopped = false;
		sb->restarts++;
		if (sb->holder)
			run_interrupt(e, sb->holder);
		rc = sb_save(e, sb);
		if (!rc)
			ev_emit(e, "sandbox.restarted", sb->holder, NULL, sb, NULL);
		e->sched_all = true;
		break;
	case 2:	/* reset */
		if (sb_in_use(e, sb))
			return -EBUSY;
		rc = sb_reset(e, sb);
		break;
	default:	/* delete */
		return orch_sandbox_remove(e, rowid);
	}
	if (!rc)
		orch_need_durable(e);
	return rc;
}

int orch_sandbox_create(struct orch_engine *e, const char *name, uid_t uid, gid_t gid,
			struct orch_sandbox_attr *a)
{
	struct sandbox *sb;
	int rc = eng_room(e);
	if (rc)
		return rc;
	/* one user may not take every sandbox or port: mkdir past a limit
	 * fails with EDQUOT ("Disk quota exceeded"), said in the log */
	if (!sb_get(e, name) && ((rc = eng_quota(e, uid, QUOTA_SANDBOXES, 1, NULL)) ||
				 (rc = eng_quota(e, uid, QUOTA_PORTS, 1, NULL))))
		return rc;
	rc = sb_create(e, name, ISOLATION_UNSET, true, -1, uid, gid, &sb);
	if (rc)
		return rc;
	orch_need_durable(e);
	sb_attr(sb, a);
	return 0;
}

int orch_sandbox_remove(struct orch_engine *e, int64_t rowid)
{
	struct sandbox *sb = sb_get_rowid(e, rowid);
	if (!sb)
		return -ENOENT;
	if (sb_in_use(e, sb))
		return -EBUSY;
	int rc = store_exec(&e->st, "DELETE FROM sandboxes WHERE id = ?", "i", rowid);
	if (!rc)
		rc = store_exec(&e->st, "DELETE FROM ports WHERE sandbox = ?", "i", rowid);
	if (!rc)
		rc = store_exec(&e->st, "DELETE FROM messages WHERE sandbox = ?", "i", rowid);
	if (rc)
		return rc;
	ev_emit(e, "sandbox.deleted", NULL, NULL, sb, NULL);
	e->msg_queued -= sb->msg_queued;
	quota_add(&e->quota, sb->uid, QUOTA_SANDBOXES, -1);
	quota_add(&e->quota, sb->uid, QUOTA_PORTS, -sb->nports);
	quota_add(&e->quota, sb->uid, QUOTA_QUEUED_MESSAGES, -sb->msg_queued);
	orch_need_durable(e);
	char *dir = sb_dir(e, sb->name);
	if (dir) {
		/* the row is gone; a failure here leaves only disk to reclaim */
		int r = rm_rf(dir);
		if (r)
			eng_log(e, "cannot remove %s: %s", dir, strerror(-r));
		orch_free(dir);
	}
	if (e->on_sb_gone)
		e->on_sb_gone(e->on_sb_gone_arg, sb->name);
	for (struct sandbox **pp = &e->sandboxes; *pp; pp = &(*pp)->next)
		if (*pp == sb) {
			*pp = sb->next;
			break;
		}
	sb_free(sb);
	return 0;
}
