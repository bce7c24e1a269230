/* core/sandbox.c — sandboxes (SPEC §5): a workspace directory of their own
 * under the state directory and TCP ports no other live sandbox holds.
 * Loaded on first use and kept in memory while they exist. */
#include "core/engine_i.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void sb_free(struct sandbox *sb)
{
	if (!sb)
		return;
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
#define SB_COLS "id, name, isolation, network, nports, uid, gid, created_at"
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
	char *dir = sb_dir(e, sb->name);
	sb->workspace = dir ? orch_asprintf("%s/workspace", dir) : NULL;
	orch_free(dir);
	sb->ports = orch_calloc((size_t)(sb->nports > 0 ? sb->nports : 1), sizeof(int));
	if (!sb->workspace || !sb->ports) {
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
	sb->ev_bytes = store_int(&e->st,
				 "SELECT s_off + length(CAST(line AS BLOB)) + 1 FROM events"
				 " WHERE sandbox = ? ORDER BY s_off DESC LIMIT 1",
				 0, "i", sb->rowid);
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
	ev_emit(e, "sandbox.created", NULL, NULL, sb, NULL);
	*out = sb;
	return 0;
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
	int rc;
	sqlite3_stmt *q = store_query(&e->st, "SELECT id, name FROM sandboxes WHERE id > ? ORDER BY id",
				      &rc, "i", after);
	if (!q)
		return rc;
	do {
		if (cb(ctx, sqlite3_column_int64(q, 0), (const char *)sqlite3_column_text(q, 1)))
			break;
	} while (store_next(q));
	store_done(q);
	return 0;
}

char *orch_sandbox_workspace(struct orch_engine *e, int64_t rowid)
{
	struct sandbox *sb = sb_get_rowid(e, rowid);
	return sb ? orch_strdup(sb->workspace) : NULL;
}

int orch_sandbox_render(struct orch_engine *e, int64_t rowid, struct sbuf *out)
{
	struct sandbox *sb = sb_get_rowid(e, rowid);
	if (!sb)
		return -ENOENT;
	char created[ISO8601_LEN];
	fmt_iso8601(sb->created_at, created);
	json_t *ports = json_array();
	for (int i = 0; ports && i < sb->nports; i++)
		json_array_append_new(ports, json_integer(sb->ports[i]));
	struct run *holder = sb->holder;
	const char *state = holder && holder->state == RUN_RUNNING ? "running" : "ready";
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:s, s:n, s:i, s:s, s:{s:i, s:i}}",
			      "id", sb->name, "state", state, "isolation",
			      sb->isolation == ISOLATION_BWRAP ? "bwrap" : "none", "workspace",
			      sb->workspace, "ports", ports ? ports : json_null(), "run_id",
			      holder ? json_string(holder->name) : json_null(), "created_at", created,
			      "last_heartbeat", "restarts", 0, "health", "ok", "messages", "queued", 0,
			      "delivered", 0);
	if (!o)
		return -ENOMEM;
	char *txt = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!txt)
		return -ENOMEM;
	sbuf_adds(out, txt);
	sbuf_addc(out, '\n');
	free(txt);
	return sbuf_failed(out) ? -ENOMEM : 0;
}

int orch_sandbox_create(struct orch_engine *e, const char *name, uid_t uid, gid_t gid,
			struct orch_sandbox_attr *a)
{
	struct sandbox *sb;
	int rc = sb_create(e, name, ISOLATION_UNSET, true, -1, uid, gid, &sb);
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
	if (rc)
		return rc;
	ev_emit(e, "sandbox.deleted", NULL, NULL, sb, NULL);
	orch_need_durable(e);
	char *dir = sb_dir(e, sb->name);
	if (dir) {
		/* the row is gone; a failure here leaves only disk to reclaim */
		int r = rm_rf(dir);
		if (r)
			eng_log(e, "cannot remove %s: %s", dir, strerror(-r));
		orch_free(dir);
	}
	for (struct sandbox **pp = &e->sandboxes; *pp; pp = &(*pp)->next)
		if (*pp == sb) {
			*pp = sb->next;
			break;
		}
	sb_free(sb);
	return 0;
}
