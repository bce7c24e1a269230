/* core/sandbox.c — sandboxes (SPEC §5): a workspace directory of their own
 * under the state directory and TCP ports no other live sandbox holds.
 * Loaded on first use and kept in memory while they exist. */
#include "core/activity.h"
#include "core/ctl.h"
#include "core/engine_i.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static void sb_free(struct sandbox *sb)
{
	if (!sb)
		return;
	activity_sb_gone(sb);
	win_detach(sb);
	msgq_forget(sb);
	health_free(sb->health);
	orch_free(sb->workspace);
	orch_free(sb->ports);
	for (char **n = sb->port_names; n && *n; n++)
		orch_free(*n);
	orch_free(sb->port_names);
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

/* Its port names from the column ("api,web"; NULL: none): -ENOMEM or 0. */
static int names_parse(struct sandbox *sb, const char *text)
{
	if (!text || !*text)
		return 0;
	size_t n = 1;
	for (const char *p = text; *p; p++)
		n += *p == ',';
	sb->port_names = orch_calloc(n + 1, sizeof(char *));
	if (!sb->port_names)
		return -ENOMEM;
	const char *p = text;
	for (size_t i = 0; i < n; i++) {
		size_t len = strcspn(p, ",");
		if (!(sb->port_names[i] = orch_strndup(p, len)))
			return -ENOMEM;
		p += len + (p[len] == ',');
	}
	return 0;
}

/* Build the in-memory sandbox from its row (columns as in SB_COLS). */
#define SB_COLS \
	"id, name, isolation, network, nports, uid, gid, created_at, last_heartbeat, restarts, state, health," \
	" port_names"
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
	sb->paused = state && !strcmp(state, "paused");
	char *dir = sb_dir(e, sb->name);
	sb->workspace = dir ? orch_asprintf("%s/workspace", dir) : NULL;
	orch_free(dir);
	sb->ports = orch_calloc((size_t)(sb->nports > 0 ? sb->nports : 1), sizeof(int));
	sb->ev_epoch = -1;
	if (!sb->workspace || !sb->ports ||
	    health_load(e, sb, (const char *)sqlite3_column_text(q, 11)) ||
	    names_parse(sb, (const char *)sqlite3_column_text(q, 12))) {
		sb_free(sb);
		return NULL;
	}
	return sb;
}

/* Ports and the events view size come from their own tables. */
static int sb_load_rest(struct orch_engine *e, struct sandbox *sb)
{
	int rc, n = 0;
	sqlite3_stmt *q = store_query(&e->st, "SELECT port FROM ports WHERE sandbox = ? ORDER BY idx, port",
				      &rc, "i", sb->rowid);
	for (; q; q = store_next(q) ? q : (store_done(q), NULL))
		if (n < sb->nports)
			sb->ports[n++] = sqlite3_column_int(q, 0);
	if (rc)
		return rc;
	sb->nports = n;
	/* a name for each port, or none at all */
	size_t nn = 0;
	while (sb->port_names && sb->port_names[nn])
		nn++;
	if (sb->port_names && nn != (size_t)n) {
		eng_log(e, "sandbox %s: %zu port names for %d ports: its ports are shown unnamed", sb->name, nn, n);
		for (size_t i = 0; i < nn; i++)
			orch_free(sb->port_names[i]);
		orch_free(sb->port_names);
		sb->port_names = NULL;
	}
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
	win_attach(e, sb);
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
 * last port handed out (so a freed port is not reused at once). Each keeps
 * its place (idx: PORT0, PORT1... and their names), whatever its number:
 * the range wraps around. */
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
		int rc = store_exec(&e->st, "INSERT INTO ports(port, sandbox, idx) VALUES(?, ?, ?)", "iii",
				    (int64_t)p, sb->rowid, (int64_t)got);
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

/* ---- the sandbox's directory: STATE/sandboxes/ID/{workspace/,logs} ----
 *
 * STATE/sandboxes/ID is the daemon's (0755): only the daemon makes, renames
 * or removes names in it, so none of them can be swapped under it. Only
 * the workspace is the sandbox owner's. Everything here goes through
 * descriptors (core/statedir.h). */

/* Make directory NAME in DFD for UID:GID with MODE: made 0700 and given
 * to the user through its descriptor, so no one else may enter it before
 * it is theirs, and no name is followed to do so. */
static int ws_make(int dfd, const char *name, uid_t uid, gid_t gid, mode_t mode)
{
	if (mkdirat(dfd, name, 0700) < 0)
		return -errno;
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = 0;
	if ((uid != geteuid() || gid != getegid()) && fchown(fd, uid, gid) < 0)
		rc = -errno;
	if (!rc && fchmod(fd, mode) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* The owner of what is left at sandboxes/NAME: its workspace's. */
static uid_t leftover_owner(int sfd, const char *name)
{
	char ws[SANDBOX_ID_MAX + 16];
	struct stat st;
	snprintf(ws, sizeof(ws), "%s/workspace", name);
	return fstatat(sfd, ws, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) ? st.st_uid : geteuid();
}

static int sb_make_dirs(struct orch_engine *e, struct sandbox *sb, bool *made)
{
	int sfd = e->sbs_fd;
	if (mkdirat(sfd, sb->name, 0755) < 0) {
		if (errno != EEXIST)
			return -errno;
		/* left by a creation a crash undid: out of the way, not reused */
		int rc = sd_trash_put(&e->trash, sfd, sb->name, leftover_owner(sfd, sb->name));
		eng_log(e, "sandboxes/%s was left from before: %s", sb->name,
			rc ? strerror(-rc) : "moved to the trash");
		if (rc)
			return rc;
		if (mkdirat(sfd, sb->name, 0755) < 0)
			return -errno;
	}
	*made = true;
	int dfd = openat(sfd, sb->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	int rc = fchmod(dfd, 0755) < 0 ? -errno : 0;	/* whatever the umask */
	if (!rc)
		rc = ws_make(dfd, "workspace", sb->uid, sb->gid, 0755);
	close(dfd);
	return rc;
}

/* STATE/sandboxes/ID: a descriptor or -errno. */
static int sb_dirfd(struct orch_engine *e, const char *name)
{
	return sd_opendir(e->sbs_fd, name);
}

int sb_logs_open(struct orch_engine *e, struct sandbox *sb, bool writer)
{
	int dfd = sb_dirfd(e, sb->name);
	if (dfd < 0)
		return dfd;
	int flags = writer ? O_WRONLY | O_APPEND | O_CREAT : O_RDONLY | O_CREAT;
	mode_t found;
	int fd = sd_open_reg(dfd, "logs", flags, 0644, &found, NULL);
	if (fd == -EIO && writer) {
		/* only the daemon writes here: whatever stands in its place goes */
		int r = unlinkat(dfd, "logs", S_ISDIR(found) ? AT_REMOVEDIR : 0) < 0 ? -errno : 0;
		eng_log(e, "sandboxes/%s/logs was %s, not a regular file: %s", sb->name, sd_type_name(found),
			r ? strerror(-r) : "removed it (not followed), a new log starts");
		if (!r)
			fd = sd_open_reg(dfd, "logs", flags, 0644, &found, NULL);
	} else if (fd == -EIO) {
		eng_log(e, "sandboxes/%s/logs is %s, not a regular file: not opened", sb->name,
			sd_type_name(found));
	}
	close(dfd);
	return fd;
}

/* ---- repairing what older versions left ---- */

/* SANDBOXES/NAME (ST) was not as it must be: the daemon's again, with a
 * workspace of the sandbox's owner and a regular logs. */
static void sb_repair(struct orch_engine *e, int sfd, const char *name, const struct stat *st)
{
	int dfd = openat(sfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat ds;
	if (dfd < 0 || fstat(dfd, &ds) < 0 || ds.st_ino != st->st_ino) {
		eng_log(e, "repair: cannot open sandboxes/%s: %s", name, strerror(errno));
		if (dfd >= 0)
			close(dfd);
		return;
	}
	int rc = 0;
	sqlite3_stmt *q = id_valid(name, SANDBOX_ID_MAX)
				  ? store_query(&e->st, "SELECT uid, gid FROM sandboxes WHERE name = ?", &rc, "s", name)
				  : NULL;
	if (!q && rc) {
		eng_log(e, "repair: sandboxes/%s: cannot read its row: %s", name, strerror(-rc));
		close(dfd);
		return;
	}
	if (!q) {
		close(dfd);
		/* no such sandbox: a leftover, its owner's to lose */
		rc = sd_trash_put(&e->trash, sfd, name, ds.st_uid);
		eng_log(e, "repair: sandboxes/%s (uid %u) belongs to no sandbox: %s", name, (unsigned)ds.st_uid,
			rc ? strerror(-rc) : "moved to the trash");
		return;
	}
	uid_t uid = (uid_t)sqlite3_column_int64(q, 0);
	gid_t gid = (gid_t)sqlite3_column_int64(q, 1);
	store_done(q);
	if (fchown(dfd, geteuid(), getegid()) < 0 || fchmod(dfd, 0755) < 0) {
		eng_log(e, "repair: sandboxes/%s: cannot make it the daemon's: %s", name, strerror(errno));
		close(dfd);
		return;
	}
	eng_log(e, "repair: sandboxes/%s was uid %u's, mode %04o: now the daemon's, 0755", name,
		(unsigned)ds.st_uid, (unsigned)(ds.st_mode & 07777));
	struct stat ls;
	if (fstatat(dfd, "logs", &ls, AT_SYMLINK_NOFOLLOW) == 0 &&
	    (!S_ISREG(ls.st_mode) || ls.st_nlink != 1 || ls.st_uid != geteuid())) {
		if (S_ISDIR(ls.st_mode))
			rc = sd_trash_put(&e->trash, dfd, "logs", uid);
		else
			rc = unlinkat(dfd, "logs", 0) < 0 ? -errno : 0;
		eng_log(e, "repair: sandboxes/%s/logs was %s (uid %u): %s", name,
			S_ISREG(ls.st_mode) && ls.st_nlink == 1 ? "a user's file" : sd_type_name(ls.st_mode),
			(unsigned)ls.st_uid, rc ? strerror(-rc) : "removed, not followed");
	}
	struct stat ws;
	bool make = false;
	if (fstatat(dfd, "workspace", &ws, AT_SYMLINK_NOFOLLOW) < 0) {
		make = true;
	} else if (!S_ISDIR(ws.st_mode)) {
		rc = unlinkat(dfd, "workspace", 0) < 0 ? -errno : 0;
		eng_log(e, "repair: sandboxes/%s/workspace was %s: %s", name, sd_type_name(ws.st_mode),
			rc ? strerror(-rc) : "removed it (what it named is untouched), a new one made");
		make = !rc;
	} else if (ws.st_uid != uid) {
		/* not the owner's: no telling what it holds; kept for root */
		char aside[64];
		snprintf(aside, sizeof(aside), "workspace.moved-%lld", (long long)clock_wall_ms());
		rc = renameat(dfd, "workspace", dfd, aside) < 0 ? -errno : 0;
		eng_log(e, "repair: sandboxes/%s/workspace belonged to uid %u, not the sandbox's owner (%u): %s%s",
			name, (unsigned)ws.st_uid, (unsigned)uid, rc ? strerror(-rc) : "moved aside to ",
			rc ? "" : aside);
		make = !rc;
	}
	if (make && (rc = ws_make(dfd, "workspace", uid, gid, 0755)))
		eng_log(e, "repair: cannot make sandboxes/%s/workspace: %s", name, strerror(-rc));
	close(dfd);
}

void sb_repair_all(struct orch_engine *e)
{
	int fd = dup(e->sbs_fd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		eng_log(e, "repair: cannot read sandboxes/: %s", strerror(errno));
		return;
	}
	uid_t self = geteuid();
	struct dirent *de;
	/* one fstatat per sandbox: a directory of the daemon's that no one
	 * else may write holds only what the daemon put there */
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (!S_ISDIR(st.st_mode)) {
			int rc = unlinkat(dirfd(d), de->d_name, 0) < 0 ? -errno : 0;
			eng_log(e, "repair: sandboxes/%s was %s: %s", de->d_name, sd_type_name(st.st_mode),
				rc ? strerror(-rc) : "removed, not followed");
			continue;
		}
		if (st.st_uid != self || (st.st_mode & 022))
			sb_repair(e, dirfd(d), de->d_name, &st);
	}
	closedir(d);
}

int sb_create(struct orch_engine *e, const char *name, enum isolation iso, bool network, int nports,
	      char *const *port_names, uid_t uid, gid_t gid, struct sandbox **out)
{
	if (!id_valid(name, SANDBOX_ID_MAX))
		return -EINVAL;
	if (sb_get(e, name))
		return -EEXIST;
	if (iso == ISOLATION_UNSET)
		iso = eng_bwrap_for(e, uid) ? ISOLATION_BWRAP : ISOLATION_NONE;
	if (nports < 0)
		nports = 1;
	/* the names, as the column keeps them: "api,web" (names have no comma) */
	struct sbuf names = SBUF_INIT;
	for (int i = 0; port_names && i < nports && port_names[i]; i++)
		sbuf_addf(&names, "%s%s", i ? "," : "", port_names[i]);
	if (sbuf_failed(&names))
		return -ENOMEM;
	int64_t now = clock_wall_ms();
	int rc = store_savepoint(&e->st, "sb_create");
	if (rc) {
		sbuf_release(&names);
		return rc;
	}
	rc = store_exec(&e->st,
			"INSERT INTO sandboxes(name, isolation, network, nports, created_at, uid, gid, port_names)"
			" VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
			"siiiiiis", name, (int64_t)iso, (int64_t)network, (int64_t)nports, now,
			(int64_t)uid, (int64_t)gid, names.len ? sbuf_str(&names) : NULL);
	sbuf_release(&names);
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
	bool made = false;
	if (!rc)
		rc = sb_make_dirs(e, sb, &made);
	if (rc) {
		store_release(&e->st, "sb_create", false);
		if (made)
			sd_trash_put(&e->trash, e->sbs_fd, name, uid);
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
	sd_trash_put(&e->trash, e->sbs_fd, sb->name, sb->uid);
	if (sb->win)
		win_sb_deleted(e, sb);
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

/* status "ports": an array of numbers, or for named ports an object
 * {"api": 20001} with *URLS {"api": "http://127.0.0.1:20001/"} ({} for
 * unnamed ones). NULL for no memory (the caller's json_pack fails then). */
static json_t *sb_ports_json(const struct sandbox *sb, json_t **urls)
{
	json_t *ports = sb->port_names ? json_object() : json_array();
	*urls = json_object();
	for (int i = 0; ports && *urls && i < sb->nports; i++) {
		if (!sb->port_names) {
			json_array_append_new(ports, json_integer(sb->ports[i]));
			continue;
		}
		char url[48];
		snprintf(url, sizeof(url), "http://127.0.0.1:%d/", sb->ports[i]);
		json_object_set_new(ports, sb->port_names[i], json_integer(sb->ports[i]));
		json_object_set_new(*urls, sb->port_names[i], json_string(url));
	}
	if (!*urls) {
		json_decref(ports);
		return NULL;
	}
	return ports;
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
	else if (sb_frozen(sb))
		state = "paused";
	else if (sb->holder && (sb->holder->state == RUN_RUNNING || sb->holder->state == RUN_NEEDS_HUMAN))
		state = "running";
	else if (!sb->holder && have_run && !strcmp(rstate, "failed"))
		state = "failed";
	/* the heartbeat's verdict; health_render() shows the worse of it and
	 * the health checks' */
	enum health_state hbs = sb->degraded ? HEALTH_DEGRADED : sb->missed ? HEALTH_UNHEALTHY
				: sb->last_heartbeat ? HEALTH_HEALTHY : HEALTH_UNKNOWN;
	json_t *urls = NULL, *ports = sb_ports_json(sb, &urls);
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:s, s:o, s:I, s:s, s:{s:I, s:I}}", "id",
			      sb->name, "state", state, "isolation",
			      sb->isolation == ISOLATION_BWRAP ? "bwrap" : "none", "workspace",
			      sb->workspace, "ports", ports ? ports : json_null(), "run_id",
			      have_run ? json_string(run) : json_null(), "created_at", created,
			      "last_heartbeat", sb->last_heartbeat ? json_string(hb) : json_null(),
			      "restarts", (json_int_t)sb->restarts, "health", health_state_name(hbs), "messages",
			      "queued", (json_int_t)sb->msg_queued, "delivered",
			      (json_int_t)sb->msg_delivered);
	if (o) {
		json_object_set_new(o, "network", json_boolean(sb->network));
		health_render(sb, hbs, o);
		json_object_set_new(o, "urls", urls ? urls : json_null());
		activity_render(e, sb, o);
		if (sb->win)
			win_render(e, sb, o);
	} else {
		json_decref(urls);
	}
	return sbuf_put_json(out, o);
}

int orch_sandbox_logs_open(struct orch_engine *e, int64_t rowid)
{
	struct sandbox *sb = sb_get_rowid(e, rowid);
	return sb ? sb_logs_open(e, sb, false) : -ENOENT;
}

int orch_sandbox_logs_stat(struct orch_engine *e, int64_t rowid, struct stat *st)
{
	struct sandbox *sb = sb_get_rowid(e, rowid);
	if (!sb)
		return -ENOENT;
	int dfd = sb_dirfd(e, sb->name);
	if (dfd < 0)
		return dfd;
	int rc = fstatat(dfd, "logs", st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
	close(dfd);
	return rc;
}

int sb_save(struct orch_engine *e, struct sandbox *sb)
{
	return store_exec(&e->st,
			  "UPDATE sandboxes SET state = ?, last_heartbeat = ?, restarts = ? WHERE id = ?",
			  "siii", sb->stopped ? "stopped" : sb->paused ? "paused" : "ready", sb->last_heartbeat,
			  sb->restarts,
			  sb->rowid);
}

/* Posted event types may not pass for the engine's own. */
static bool reserved_type(const char *t)
{
	static const char *const prefixes[] = { "run.", "step.", "sandbox.", "message.", "attention.", "webhook.",
						"window." };
	for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++)
		if (!strncmp(t, prefixes[i], strlen(prefixes[i])))
			return true;
	return !strcmp(t, "agent.loop_detected");
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
	/* its window: activity, and extend_when rules (core/windows.c) */
	if (sb->win)
		win_posted(e, sb, b);
	/* the supervision rules (core/supervise.h): questions, turns, budgets,
	 * repeated actions; a step they stop may end s's run, so s is not
	 * used after them */
	for (size_t i = 0; i < b->n; i++) {
		const char *type = json_string_value(json_object_get(b->events[i], "event_type"));
		sup_on_event(e, sb, s, type, b->events[i]);
	}
	orch_need_durable(e);
	return 0;
}

/* The workspace of SB (in its directory DFD) replaced by an empty one of
 * the same owner and mode holding the old one's persist/; the old one goes
 * to the trash. O(1) on the engine thread, whatever the workspace holds:
 * the trash's thread removes it, as its owner could have. */
static int ws_reset(struct orch_engine *e, struct sandbox *sb, int dfd)
{
	struct stat st;
	/* a reset a crash cut short: its persist/ goes back first */
	if (fstatat(dfd, "workspace.new", &st, AT_SYMLINK_NOFOLLOW) == 0) {
		int nfd = openat(dfd, "workspace.new", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int ofd = openat(dfd, "workspace", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd >= 0 && ofd >= 0)
			renameat2(nfd, "persist", ofd, "persist", RENAME_NOREPLACE);
		if (nfd >= 0)
			close(nfd);
		if (ofd >= 0)
			close(ofd);
		int rc = sd_trash_put(&e->trash, dfd, "workspace.new", sb->uid);
		if (rc)
			return rc;
	}
	int ofd = openat(dfd, "workspace", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (ofd < 0 && errno != ENOENT) {
		/* not a directory: nothing of the owner's to keep */
		int r = fstatat(dfd, "workspace", &st, AT_SYMLINK_NOFOLLOW) == 0 && unlinkat(dfd, "workspace", 0) == 0;
		eng_log(e, "sandboxes/%s/workspace was %s: %s", sb->name, r ? sd_type_name(st.st_mode) : "unreadable",
			r ? "removed (not followed), a new one made" : strerror(errno));
		if (!r)
			return -EIO;
	}
	if (ofd < 0)
		return ws_make(dfd, "workspace", sb->uid, sb->gid, 0755);
	mode_t mode = fstat(ofd, &st) == 0 ? st.st_mode & 07777 : 0755;
	int rc = ws_make(dfd, "workspace.new", sb->uid, sb->gid, mode);
	int nfd = rc ? -1 : openat(dfd, "workspace.new", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (!rc && nfd < 0)
		rc = -errno;
	/* persist/ as it is (a symlink moves as a symlink) */
	if (!rc && renameat2(ofd, "persist", nfd, "persist", RENAME_NOREPLACE) < 0 && errno != ENOENT)
		rc = -errno;
	close(ofd);
	if (nfd >= 0)
		close(nfd);
	if (rc)
		return rc;
	if (renameat2(dfd, "workspace", dfd, "workspace.new", RENAME_EXCHANGE) == 0)
		return sd_trash_put(&e->trash, dfd, "workspace.new", sb->uid);
	/* no exchange on this file system: the old one goes, then the new one comes */
	if ((rc = sd_trash_put(&e->trash, dfd, "workspace", sb->uid)))
		return rc;
	return renameat(dfd, "workspace.new", dfd, "workspace") < 0 ? -errno : 0;
}

/* reset: an empty workspace but for persist/, and empty logs. */
static int sb_reset(struct orch_engine *e, struct sandbox *sb)
{
	int dfd = sb_dirfd(e, sb->name);
	if (dfd < 0)
		return dfd;
	activity_sb_unwatch(sb);	/* its emptying is no step's doing */
	int rc = ws_reset(e, sb, dfd);
	if (rc)
		eng_log(e, "sandboxes/%s: cannot reset the workspace: %s", sb->name, strerror(-rc));
	mode_t found;
	int fd = sd_open_reg(dfd, "logs", O_WRONLY, 0, &found, NULL);
	if (fd >= 0) {
		if (ftruncate(fd, 0) < 0 && !rc)
			rc = -errno;
		close(fd);
	} else if (fd == -EIO) {
		int r = unlinkat(dfd, "logs", S_ISDIR(found) ? AT_REMOVEDIR : 0) < 0 ? -errno : 0;
		eng_log(e, "sandboxes/%s/logs was %s, not a regular file: %s", sb->name, sd_type_name(found),
			r ? strerror(-r) : "removed (not followed)");
	} else if (fd != -ENOENT && !rc) {
		rc = fd;
	}
	close(dfd);
	if (!rc)
		ev_emit(e, "sandbox.reset", NULL, NULL, sb, NULL);
	return rc;
}

int orch_sandbox_ctl(struct orch_engine *e, int64_t rowid, const char *cmd, size_t len)
{
	int rc;
	static const char *const verbs[] = { "stop", "restart", "reset", "delete", "extend", "resume", "pause" };
	const char *arg;
	size_t alen;
	int v = ctl_parse_arg(cmd, len, verbs, ARRAY_SIZE(verbs), &arg, &alen);
	if (v < 0)
		return v;
	if (alen && v != 4)
		return -EINVAL;	/* only extend takes words */
	struct sandbox *sb = sb_get_rowid(e, rowid);
	if (!sb)
		return -ENOENT;
	if (v >= 4) {
		if ((rc = eng_room(e)))
			return rc;
		/* windows (SPEC §9): extend SEC [REASON]; pause and resume
		 * (SPEC §10, core/freeze.c), the latter also of a window's pause */
		return v == 4 ? win_ctl_extend(e, sb, arg, alen) : v == 5 ? sb_ctl_resume(e, sb)
								: sb_ctl_pause(e, sb);
	}
	/* stop and delete free the disk; the others must find room first */
	rc = (v == 1 || v == 2) ? eng_room(e) : 0;
	if (rc)
		return rc;
	switch (v) {
	case 0:	/* stop */
		if (sb->stopped)
			return -EINVAL;
		sb->stopped = true;
		if (sb->paused) {
			/* its runs end: nothing stays frozen (but by its window) */
			sb->paused = false;
			if (!(sb->win && win_paused(sb)))
				sb_thaw(e, sb);
		}
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
	rc = sb_create(e, name, ISOLATION_UNSET, true, -1, NULL, uid, gid, &sb);
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
	if (!rc && sb->win)
		win_sb_deleted(e, sb);
	if (rc)
		return rc;
	ev_emit(e, "sandbox.deleted", NULL, NULL, sb, NULL);
	e->msg_queued -= sb->msg_queued;
	quota_add(&e->quota, sb->uid, QUOTA_SANDBOXES, -1);
	quota_add(&e->quota, sb->uid, QUOTA_PORTS, -sb->nports);
	quota_add(&e->quota, sb->uid, QUOTA_QUEUED_MESSAGES, -sb->msg_queued);
	orch_need_durable(e);
	/* the row is gone; its directory goes to the trash at once (the name
	 * is free again), removed as its owner could have; a failure here
	 * leaves only disk to reclaim */
	int r = sd_trash_put(&e->trash, e->sbs_fd, sb->name, sb->uid);
	if (r)
		eng_log(e, "cannot remove sandboxes/%s: %s", sb->name, strerror(-r));
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
