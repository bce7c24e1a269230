/* core/planstore.c — the plans/ directory (SPEC §3): plain files kept on
 * disk under STATE/plans/<id> with their names and owners in the store, the
 * generated NAME.error, NAME.run, NAME.trigger and NAME.schedule entries,
 * and plan submission. */
#include "core/engine_i.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

/* If NAME is STEM + SUFFIX with a valid plan name as STEM, copy STEM out. */
static bool split_name(const char *name, const char *suffix, char stem[PLAN_NAME_MAX + 1])
{
	size_t n = strlen(name), sl = strlen(suffix);
	if (n <= sl || strcmp(name + n - sl, suffix) || n - sl > PLAN_NAME_MAX)
		return false;
	memcpy(stem, name, n - sl);
	stem[n - sl] = '\0';
	return id_valid(stem, PLAN_NAME_MAX);
}

/* Names orchfs generates: a user may not create, rename or remove them. */
static bool reserved(const char *name)
{
	char stem[PLAN_NAME_MAX + 1];
	return split_name(name, ".error", stem) || split_name(name, ".run", stem) ||
	       split_name(name, ".trigger", stem) || split_name(name, ".schedule", stem);
}

char *orch_plans_path(struct orch_engine *e, int64_t id)
{
	return orch_asprintf("%s/plans/%lld", e->state_dir, (long long)id);
}

/* STATE/plans/ID: the daemon's alone (0600 in a 0700 directory), reached
 * through plans_fd, a regular file or nothing (core/statedir.h). */
static int plan_file(struct orch_engine *e, int64_t id, int flags, mode_t mode)
{
	char name[32];
	snprintf(name, sizeof(name), "%lld", (long long)id);
	mode_t found;
	int fd = sd_open_reg(e->plans_fd, name, flags, mode, &found, NULL);
	if (fd == -EIO)
		eng_log(e, "plans/%s is %s, not a regular file: not opened", name, sd_type_name(found));
	return fd;
}

int orch_plans_open(struct orch_engine *e, int64_t id, int flags)
{
	return plan_file(e, id, flags & (O_ACCMODE | O_APPEND | O_TRUNC), 0);
}

int orch_plans_stat(struct orch_engine *e, int64_t id, struct stat *st)
{
	char name[32];
	snprintf(name, sizeof(name), "%lld", (long long)id);
	return fstatat(e->plans_fd, name, st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

int orch_plans_utimens(struct orch_engine *e, int64_t id, const struct timespec ts[2])
{
	int fd = plan_file(e, id, O_RDONLY, 0);
	if (fd < 0)
		return fd;
	int rc = futimens(fd, ts) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

static int file_entry(sqlite3_stmt *q, struct orch_pentry *p)
{
	memset(p, 0, sizeof(*p));
	p->kind = PK_FILE;
	p->id = sqlite3_column_int64(q, 0);
	snprintf(p->name, sizeof(p->name), "%s", (const char *)sqlite3_column_text(q, 1));
	p->uid = (uid_t)sqlite3_column_int64(q, 2);
	p->gid = (gid_t)sqlite3_column_int64(q, 3);
	p->mode = (unsigned)sqlite3_column_int64(q, 4);
	store_done(q);
	return 0;
}

/* PN_COLS: id, name, error, error_at, uid, gid, newest_run, and the newest
 * run's created_at. NAME.error's times are when the error was written;
 * NAME.run's when its run was created (a run's removal clears newest_run, so
 * the run is there whenever the link is). */
static int name_entry(sqlite3_stmt *q, enum orch_pkind kind, struct orch_pentry *p)
{
	memset(p, 0, sizeof(*p));
	p->kind = kind;
	p->id = sqlite3_column_int64(q, 0);
	const char *stem = (const char *)sqlite3_column_text(q, 1);
	snprintf(p->name, sizeof(p->name), "%s%s", stem, kind == PK_ERROR ? ".error" : ".run");
	p->uid = (uid_t)sqlite3_column_int64(q, 4);
	p->gid = (gid_t)sqlite3_column_int64(q, 5);
	p->mtime_ms = sqlite3_column_int64(q, kind == PK_ERROR ? 3 : 7);
	p->size = kind == PK_ERROR ? sqlite3_column_bytes(q, 2)
				   : (int64_t)strlen("../runs/") + sqlite3_column_bytes(q, 6);
	store_done(q);
	return 0;
}

/* TG_COLS: a trigger's id, name, uid, gid, and when NAME.trigger last
 * changed. Its size is its JSON's, rendered. */
#define TG_COLS "id, name, uid, gid, coalesce(last_at, created_at)"

static int trig_entry(struct orch_engine *e, sqlite3_stmt *q, struct orch_pentry *p)
{
	memset(p, 0, sizeof(*p));
	p->kind = PK_TRIGGER;
	p->id = sqlite3_column_int64(q, 0);
	snprintf(p->name, sizeof(p->name), "%s.trigger", (const char *)sqlite3_column_text(q, 1));
	p->uid = (uid_t)sqlite3_column_int64(q, 2);
	p->gid = (gid_t)sqlite3_column_int64(q, 3);
	p->mtime_ms = sqlite3_column_int64(q, 4);
	store_done(q);
	struct sbuf sb = SBUF_INIT;
	int rc = trig_render(e, p->id, &sb);
	p->size = (int64_t)sb.len;
	sbuf_release(&sb);
	return rc;
}

/* SC_COLS: a schedule's id, name, uid, gid, and when NAME.schedule last
 * changed (its last run, else its registration: its anchor). */
#define SC_COLS "id, name, uid, gid, coalesce(last_at, anchor)"

static int sched_entry(struct orch_engine *e, sqlite3_stmt *q, struct orch_pentry *p)
{
	memset(p, 0, sizeof(*p));
	p->kind = PK_SCHEDULE;
	p->id = sqlite3_column_int64(q, 0);
	snprintf(p->name, sizeof(p->name), "%s.schedule", (const char *)sqlite3_column_text(q, 1));
	p->uid = (uid_t)sqlite3_column_int64(q, 2);
	p->gid = (gid_t)sqlite3_column_int64(q, 3);
	p->mtime_ms = sqlite3_column_int64(q, 4);
	store_done(q);
	struct sbuf sb = SBUF_INIT;
	int rc = sch_render(e, p->id, &sb);
	p->size = (int64_t)sb.len;
	sbuf_release(&sb);
	return rc;
}

#define PN_COLS                                              \
	"id, name, error, error_at, uid, gid, newest_run,"   \
	" (SELECT created_at FROM runs WHERE runs.name = plan_names.newest_run)"

int orch_plans_lookup(struct orch_engine *e, const char *name, struct orch_pentry *p)
{
	char stem[PLAN_NAME_MAX + 1];
	int rc;
	sqlite3_stmt *q;
	if (split_name(name, ".error", stem)) {
		q = store_query(&e->st, "SELECT " PN_COLS " FROM plan_names WHERE name = ? AND error IS NOT NULL",
				&rc, "s", stem);
		return q ? name_entry(q, PK_ERROR, p) : (rc ? rc : -ENOENT);
	}
	if (split_name(name, ".run", stem)) {
		q = store_query(&e->st,
				"SELECT " PN_COLS " FROM plan_names WHERE name = ? AND newest_run IS NOT NULL",
				&rc, "s", stem);
		return q ? name_entry(q, PK_RUNLINK, p) : (rc ? rc : -ENOENT);
	}
	if (split_name(name, ".trigger", stem)) {
		q = store_query(&e->st, "SELECT " TG_COLS " FROM triggers WHERE name = ?", &rc, "s", stem);
		return q ? trig_entry(e, q, p) : (rc ? rc : -ENOENT);
	}
	if (split_name(name, ".schedule", stem)) {
		q = store_query(&e->st, "SELECT " SC_COLS " FROM schedules WHERE name = ?", &rc, "s", stem);
		return q ? sched_entry(e, q, p) : (rc ? rc : -ENOENT);
	}
	q = store_query(&e->st, "SELECT id, name, uid, gid, mode FROM plan_files WHERE name = ?", &rc, "s",
			name);
	return q ? file_entry(q, p) : (rc ? rc : -ENOENT);
}

int orch_plans_get(struct orch_engine *e, enum orch_pkind kind, int64_t id, struct orch_pentry *p)
{
	int rc;
	sqlite3_stmt *q;
	switch (kind) {
	case PK_FILE:
		q = store_query(&e->st, "SELECT id, name, uid, gid, mode FROM plan_files WHERE id = ?", &rc,
				"i", id);
		return q ? file_entry(q, p) : (rc ? rc : -ENOENT);
	case PK_ERROR:
		q = store_query(&e->st, "SELECT " PN_COLS " FROM plan_names WHERE id = ? AND error IS NOT NULL",
				&rc, "i", id);
		return q ? name_entry(q, PK_ERROR, p) : (rc ? rc : -ENOENT);
	case PK_RUNLINK:
		q = store_query(&e->st,
				"SELECT " PN_COLS " FROM plan_names WHERE id = ? AND newest_run IS NOT NULL",
				&rc, "i", id);
		return q ? name_entry(q, PK_RUNLINK, p) : (rc ? rc : -ENOENT);
	case PK_TRIGGER:
		q = store_query(&e->st, "SELECT " TG_COLS " FROM triggers WHERE id = ?", &rc, "i", id);
		return q ? trig_entry(e, q, p) : (rc ? rc : -ENOENT);
	case PK_SCHEDULE:
		q = store_query(&e->st, "SELECT " SC_COLS " FROM schedules WHERE id = ?", &rc, "i", id);
		return q ? sched_entry(e, q, p) : (rc ? rc : -ENOENT);
	}
	return -ENOENT;
}

int orch_plans_generated(struct orch_engine *e, enum orch_pkind kind, int64_t id, struct sbuf *out)
{
	if (kind == PK_TRIGGER)
		return trig_render(e, id, out);
	if (kind == PK_SCHEDULE)
		return sch_render(e, id, out);
	int rc;
	sqlite3_stmt *q = store_query(&e->st, "SELECT error, newest_run FROM plan_names WHERE id = ?", &rc,
				      "i", id);
	if (!q)
		return rc ? rc : -ENOENT;
	const char *t = (const char *)sqlite3_column_text(q, kind == PK_ERROR ? 0 : 1);
	if (!t) {
		store_done(q);
		return -ENOENT;
	}
	if (kind == PK_RUNLINK)
		sbuf_adds(out, "../runs/");
	sbuf_adds(out, t);
	store_done(q);
	return sbuf_failed(out) ? -ENOMEM : 0;
}

#define COOKIE(kind, id) (((uint64_t)(kind) + 1) << 48 | (uint64_t)(id))

int orch_plans_list(struct orch_engine *e, uint64_t after,
		    int (*cb)(void *ctx, uint64_t cookie, const struct orch_pentry *p), void *ctx)
{
	static const char *const sql[] = {
		[PK_FILE] = "SELECT id, name, uid, gid, mode FROM plan_files WHERE id > ? ORDER BY id",
		[PK_ERROR] = "SELECT " PN_COLS " FROM plan_names WHERE id > ? AND error IS NOT NULL ORDER BY id",
		[PK_RUNLINK] = "SELECT " PN_COLS " FROM plan_names WHERE id > ? AND newest_run IS NOT NULL"
			       " ORDER BY id",
		[PK_TRIGGER] = "SELECT id, name FROM triggers WHERE id > ? ORDER BY id",
		[PK_SCHEDULE] = "SELECT id, name FROM schedules WHERE id > ? ORDER BY id",
	};
	static const char *const suffix[] = {
		[PK_ERROR] = ".error", [PK_RUNLINK] = ".run", [PK_TRIGGER] = ".trigger",
		[PK_SCHEDULE] = ".schedule",
	};
	unsigned from_kind = after ? (unsigned)(after >> 48) - 1 : 0;
	int64_t from_id = after ? (int64_t)(after & ((1ULL << 48) - 1)) : 0;
	for (unsigned k = from_kind; k <= PK_SCHEDULE; k++, from_id = 0) {
		int rc;
		sqlite3_stmt *q = store_query(&e->st, sql[k], &rc, "i", from_id);
		if (!q) {
			if (rc)
				return rc;
			continue;
		}
		bool stop = false;
		do {
			struct orch_pentry p;
			int64_t id = sqlite3_column_int64(q, 0);
			/* the entry helpers finish the statement: copy the row first */
			memset(&p, 0, sizeof(p));
			p.kind = (enum orch_pkind)k;
			p.id = id;
			if (k == PK_FILE) {
				snprintf(p.name, sizeof(p.name), "%s", (const char *)sqlite3_column_text(q, 1));
				p.uid = (uid_t)sqlite3_column_int64(q, 2);
				p.gid = (gid_t)sqlite3_column_int64(q, 3);
				p.mode = (unsigned)sqlite3_column_int64(q, 4);
			} else {
				snprintf(p.name, sizeof(p.name), "%s%s", (const char *)sqlite3_column_text(q, 1),
					 suffix[k]);
			}
			stop = cb(ctx, COOKIE(k, id), &p) != 0;
		} while (!stop && store_next(q));
		store_done(q);
		if (stop)
			break;
	}
	return 0;
}

int orch_plans_create(struct orch_engine *e, const char *name, unsigned mode, uid_t uid, gid_t gid,
		      struct orch_pentry *p)
{
	/* FUSE lets longer names through; statfs and readdir promise 255 */
	if (strlen(name) > 255)
		return -ENAMETOOLONG;
	if (reserved(name))
		return -EACCES;
	struct orch_pentry old;
	if (orch_plans_lookup(e, name, &old) == 0)
		return -EEXIST;
	int room = eng_room(e);
	if (room)
		return room;
	int rc = eng_quota(e, uid, QUOTA_PLAN_FILES, 1, NULL);
	if (rc)
		return rc;
	rc = store_exec(&e->st, "INSERT INTO plan_files(name, uid, gid, mode) VALUES(?, ?, ?, ?)", "siii",
			name, (int64_t)uid, (int64_t)gid, (int64_t)(mode & 07777));
	if (rc)
		return rc;
	int64_t id = sqlite3_last_insert_rowid(e->st.db);
	int fd = plan_file(e, id, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	rc = fd < 0 ? fd : 0;
	if (fd >= 0)
		close(fd);
	if (rc) {
		store_exec(&e->st, "DELETE FROM plan_files WHERE id = ?", "i", id);
		return rc;
	}
	quota_add(&e->quota, uid, QUOTA_PLAN_FILES, 1);
	return orch_plans_get(e, PK_FILE, id, p);
}

/* ---- what a user holds in plans/ ---- */

/* The owner of file ID: 0, or -ENOENT once it left plans/. Its open handles
 * may still write to it, but not make it grow (EDQUOT): its bytes were
 * given back when it left, and would count for no one, so that handles of
 * removed files could hold any number of bytes past limits.plan_bytes. */
static int file_owner(struct orch_engine *e, int64_t id, uid_t *uid)
{
	int64_t u = store_int(&e->st, "SELECT uid FROM plan_files WHERE id = ?", -1, "i", id);
	if (u < 0)
		return -ENOENT;
	*uid = (uid_t)u;
	return 0;
}

/* Bytes of file ID on disk: through FD when >= 0, else its name in plans/. */
static int64_t file_size(struct orch_engine *e, int64_t id, int fd)
{
	struct stat st;
	if (fd >= 0)
		return fstat(fd, &st) == 0 ? (int64_t)st.st_size : 0;
	return orch_plans_stat(e, id, &st) == 0 ? (int64_t)st.st_size : 0;
}

ssize_t orch_plans_pwrite(struct orch_engine *e, int64_t id, int fd, const void *buf, size_t size,
			  off_t off, bool append)
{
	if (off < 0 || (uint64_t)off + size > PLAN_MAX_BYTES)
		return -EFBIG;
	uid_t uid = 0;
	bool owned = file_owner(e, id, &uid) == 0;
	int64_t before = file_size(e, id, fd);
	int64_t end = append ? before + (int64_t)size : (int64_t)off + (int64_t)size;
	if (append && end > (int64_t)PLAN_MAX_BYTES)
		return -EFBIG;
	if (end > before) {
		int rc = owned ? eng_quota(e, uid, QUOTA_PLAN_BYTES, end - before, NULL) : -EDQUOT;
		if (rc)
			return rc;
	}
	ssize_t n = pwrite(fd, buf, size, off);
	if (n < 0)
		return -errno;
	if (owned)
		quota_add(&e->quota, uid, QUOTA_PLAN_BYTES, file_size(e, id, fd) - before);
	return n;
}

int orch_plans_truncate(struct orch_engine *e, int64_t id, int fd, off_t size)
{
	if (size < 0)
		return -EINVAL;
	if ((uint64_t)size > PLAN_MAX_BYTES)
		return -EFBIG;
	uid_t uid = 0;
	bool owned = file_owner(e, id, &uid) == 0;
	int64_t before = file_size(e, id, fd);
	if (size > before) {
		int rc = owned ? eng_quota(e, uid, QUOTA_PLAN_BYTES, size - before, NULL) : -EDQUOT;
		if (rc)
			return rc;
	}
	int own_fd = fd < 0 ? plan_file(e, id, O_WRONLY, 0) : -1;
	if (fd < 0 && own_fd < 0)
		return own_fd;
	int rc = ftruncate(fd >= 0 ? fd : own_fd, size) < 0 ? -errno : 0;
	if (owned)
		quota_add(&e->quota, uid, QUOTA_PLAN_BYTES, file_size(e, id, fd >= 0 ? fd : own_fd) - before);
	if (own_fd >= 0)
		close(own_fd);
	return rc;
}

/* The bytes of a dropped file go once the drop is committed. */
struct unlink_later {
	struct orch_done done;
	struct orch_engine *e;
	int64_t id;
};

static void unlink_done(struct orch_done *d, int commit_rc)
{
	struct unlink_later *u = (struct unlink_later *)d;
	/* committed, and not undone by a savepoint: the row is gone */
	if (!commit_rc && !store_int(&u->e->st, "SELECT 1 FROM plan_files WHERE id = ?", 0, "i", u->id)) {
		char name[32];
		snprintf(name, sizeof(name), "%lld", (long long)u->id);
		unlinkat(u->e->plans_fd, name, 0);
	}
	orch_free(u);
}

/* Drop file ID: its row now, its bytes after the commit (open handles keep
 * their fd either way). Its owner's counts are the caller's to give back
 * (file_give_back), once the drop cannot be undone by a savepoint. */
static int file_drop(struct orch_engine *e, int64_t id)
{
	struct unlink_later *u = orch_calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	int rc = store_exec(&e->st, "DELETE FROM plan_files WHERE id = ?", "i", id);
	if (rc) {
		orch_free(u);
		return rc;
	}
	u->done.fn = unlink_done;
	u->e = e;
	u->id = id;
	orch_after_commit(e, &u->done);
	return 0;
}

/* File ID of OWNER, dropped: what it held no longer counts (its bytes are
 * still on disk until the commit). */
static void file_give_back(struct orch_engine *e, uid_t owner, int64_t id)
{
	quota_add(&e->quota, owner, QUOTA_PLAN_FILES, -1);
	quota_add(&e->quota, owner, QUOTA_PLAN_BYTES, -file_size(e, id, -1));
}

int orch_plans_unlink(struct orch_engine *e, const char *name)
{
	struct orch_pentry p;
	int rc = orch_plans_lookup(e, name, &p);
	if (rc)
		return rc;
	if (p.kind != PK_FILE)
		return -EACCES;
	rc = file_drop(e, p.id);
	if (!rc)
		file_give_back(e, p.uid, p.id);
	char stem[PLAN_NAME_MAX + 1];
	if (!rc && split_name(name, ".json", stem)) {
		/* removing the plan ends its trigger or schedule, not its runs (SPEC §9) */
		trig_end(e, stem);
		sch_end(e, stem);
	}
	return rc;
}

int orch_plans_chmod(struct orch_engine *e, int64_t id, unsigned mode)
{
	return store_exec(&e->st, "UPDATE plan_files SET mode = ? WHERE id = ?", "ii",
			  (int64_t)(mode & 07777), id);
}

int orch_plans_chown(struct orch_engine *e, int64_t id, uid_t uid, gid_t gid)
{
	uid_t old = 0;
	bool owned = file_owner(e, id, &old) == 0;
	int rc = store_exec(&e->st, "UPDATE plan_files SET uid = ?, gid = ? WHERE id = ?", "iii",
			    (int64_t)uid, (int64_t)gid, id);
	if (!rc && owned && old != uid) {
		/* only root gives a file away (fs/fs.c): it moves, unrefused */
		int64_t n = file_size(e, id, -1);
		quota_add(&e->quota, old, QUOTA_PLAN_FILES, -1);
		quota_add(&e->quota, old, QUOTA_PLAN_BYTES, -n);
		quota_add(&e->quota, uid, QUOTA_PLAN_FILES, 1);
		quota_add(&e->quota, uid, QUOTA_PLAN_BYTES, n);
	}
	return rc;
}

/* ---- submission ---- */

static void sandbox_info_cb(void *ctx, const char *id, struct plan_sandbox_info *info)
{
	struct orch_engine *e = ctx;
	struct sandbox *sb = sb_get(e, id);
	memset(info, 0, sizeof(*info));
	if (!sb)
		return;
	info->exists = true;
	info->isolation = sb->isolation;
	info->network = sb->network;
	info->ports = sb->nports;
	info->port_names = sb->port_names;
}

static int set_error(struct orch_engine *e, const char *stem, const char *text, uid_t uid, gid_t gid)
{
	int rc = store_exec(&e->st,
			    "INSERT INTO plan_names(name, error, error_at, uid, gid) VALUES(?, ?, ?, ?, ?)"
			    " ON CONFLICT(name) DO UPDATE SET error = excluded.error,"
			    " error_at = excluded.error_at, uid = excluded.uid, gid = excluded.gid",
			    "ssiii", stem, text, clock_wall_ms(), (int64_t)uid, (int64_t)gid);
	/* the error is what the refused close() explains: keep it with the refusal */
	orch_need_durable(e);
	return rc;
}

static const struct plan_opts *submit_opts(struct orch_engine *e, uid_t uid, struct plan_opts *opts)
{
	*opts = (struct plan_opts){
		.var_defaults = e->cfg.vars,
		.nvar_defaults = e->cfg.nvars,
		.bwrap_available = eng_bwrap_for(e, uid),
		.bwrap_unavailable_reason = !e->bwrap_ok ? "bubblewrap (bwrap) is not installed or cannot create namespaces"
							 : ENG_BWRAP_USERS_WHY,
		.limits_available = e->cg.avail,
		.limits_unavailable_reason = e->cg.why,
		.sandbox_info = sandbox_info_cb,
		.ctx = e,
	};
	return opts;
}

/* Would a run of PLAN take UID past a limit (its steps, and the sandbox it
 * makes with its ports)? 0, or -EDQUOT with the reason in ERRS. */
static int submit_quota(struct orch_engine *e, const struct plan *plan, uid_t uid, struct sbuf *errs)
{
	int rc = eng_quota(e, uid, QUOTA_ACTIVE_STEPS, (int64_t)plan->nsteps, errs);
	bool new_sb = !plan->sandbox.id || !sb_get(e, plan->sandbox.id);
	if (!rc && new_sb)
		rc = eng_quota(e, uid, QUOTA_SANDBOXES, 1, errs);
	if (!rc && new_sb)
		rc = eng_quota(e, uid, QUOTA_PORTS, plan->sandbox.ports < 0 ? 1 : plan->sandbox.ports, errs);
	return rc;
}

/* Validate TEXT as plan STEM: a new plan, or NULL with STEM.error written
 * (the error stays even when the caller undoes what follows) and *rc set. */
static struct plan *submit_check(struct orch_engine *e, const char *stem, const char *text, size_t len,
				 uid_t uid, gid_t gid, uid_t owner, int *rc)
{
	struct sbuf errs = SBUF_INIT;
	struct plan_opts opts;
	if (owner != uid && owner != 0) {
		/* the file's owner may change its bytes at any time, up to the
		 * close (or rename) that submits them: a submission as anyone else
		 * would run the owner's bytes as that user (root copying a plan
		 * onto a name a user made first, say) */
		sbuf_addf(&errs, "plans/%s.json belongs to uid %u, who can change it: uid %u may not submit it"
			  " (remove it, or submit it under a name of your own)\n",
			  stem, (unsigned)owner, (unsigned)uid);
		*rc = sbuf_failed(&errs) ? -ENOMEM : set_error(e, stem, sbuf_str(&errs), uid, gid);
		if (!*rc)
			*rc = -EACCES;
		sbuf_release(&errs);
		return NULL;
	}
	if (geteuid() != 0 && uid != geteuid()) {
		/* steps run as their submitter: only a daemon running as root can */
		sbuf_addf(&errs, "orchfs runs as uid %u and cannot run steps as uid %u (mount it as root"
			  " to take plans from other users)\n", (unsigned)geteuid(), (unsigned)uid);
		*rc = sbuf_failed(&errs) ? -ENOMEM : set_error(e, stem, sbuf_str(&errs), uid, gid);
		if (!*rc)
			*rc = -EACCES;
		sbuf_release(&errs);
		return NULL;
	}
	/* a user past a limit is told before the plan is parsed, where it can */
	if (eng_quota(e, uid, QUOTA_ACTIVE_RUNS, 1, &errs)) {
		sbuf_addc(&errs, '\n');
		*rc = sbuf_failed(&errs) ? -ENOMEM : set_error(e, stem, sbuf_str(&errs), uid, gid);
		if (!*rc)
			*rc = -EDQUOT;
		sbuf_release(&errs);
		return NULL;
	}
	struct plan *plan = plan_parse(text, len, stem, submit_opts(e, uid, &opts), &errs);
	/* the tree of a large plan is gone again by the end of the turn: its
	 * memory goes back to the system then */
	eng_trim_later(e, (int64_t)len * 16);
	*rc = 0;
	if (!plan) {
		*rc = sbuf_failed(&errs) ? -ENOMEM : set_error(e, stem, sbuf_str(&errs), uid, gid);
		if (!*rc)
			*rc = -EINVAL;
	} else if (plan->sandbox.id) {
		/* another user's sandbox is not the submitter's to run in */
		struct sandbox *sb = sb_get(e, plan->sandbox.id);
		if (sb && uid != 0 && sb->uid != uid) {
			sbuf_addf(&errs, "sandbox \"%s\": belongs to another user (uid %u)\n", sb->name,
				  (unsigned)sb->uid);
			*rc = sbuf_failed(&errs) ? -ENOMEM : set_error(e, stem, sbuf_str(&errs), uid, gid);
			if (!*rc)
				*rc = -EACCES;
			plan_free(plan);
			plan = NULL;
		}
	}
	if (plan && submit_quota(e, plan, uid, &errs)) {
		sbuf_addc(&errs, '\n');
		*rc = sbuf_failed(&errs) ? -ENOMEM : set_error(e, stem, sbuf_str(&errs), uid, gid);
		if (!*rc)
			*rc = -EDQUOT;
		plan_free(plan);
		plan = NULL;
	}
	sbuf_release(&errs);
	return plan;
}

/* Start a run of the checked PLAN (taken): its sandbox made if needed, its
 * variables substituted. Call inside a savepoint the caller undoes on
 * failure; a sandbox made here is then forgotten again. -EINVAL: the plan
 * as substituted is wrong, said in WHY (for STEM.error, written once the
 * savepoint is undone: submit_refused()). */
static int submit_start(struct orch_engine *e, const char *stem, struct plan *plan, uid_t uid, gid_t gid,
			struct sbuf *why, const char *const trig[3])
{
	bool triggered = plan->triggered, scheduled = plan->scheduled;
	int64_t n = store_int(&e->st, "SELECT next_n FROM plan_names WHERE name = ?", 1, "s", stem);
	char run_name[RUN_ID_MAX + 1];
	snprintf(run_name, sizeof(run_name), "%s-%lld", stem, (long long)n);
	const char *sbname = plan->sandbox.id ? plan->sandbox.id : run_name;
	struct sandbox *sb = sb_get(e, sbname), *made = NULL;
	struct sbuf errs = SBUF_INIT;
	struct plan_opts opts;
	int rc = 0;
	if (!sb) {
		rc = sb_create(e, sbname, plan->sandbox.isolation, plan->sandbox.network != 0,
			       plan->sandbox.ports, plan->sandbox.port_names, uid, gid, &sb);
		made = rc ? NULL : sb;
	}
	if (!rc) {
		struct plan_builtins b = { .run_id = run_name, .sandbox_id = sb->name,
					   .workspace = sb->workspace, .mount = e->mountpoint,
					   .ports = sb->ports,
					   .port_names = (const char *const *)sb->port_names,
					   .nports = (size_t)sb->nports,
					   .trigger_event = trig ? trig[0] : NULL,
					   .trigger_run_id = trig ? trig[1] : NULL,
					   .trigger_sandbox = trig ? trig[2] : NULL };
		rc = plan_substitute(plan, stem, submit_opts(e, uid, &opts), &b, &errs);
	}
	struct run *r = NULL;
	if (!rc)
		rc = run_create(e, stem, n, plan, sb, uid, gid, &r);
	if (!rc)
		rc = store_exec(&e->st,
				"INSERT INTO plan_names(name, next_n, newest_run, uid, gid) VALUES(?, ?, ?, ?, ?)"
				" ON CONFLICT(name) DO UPDATE SET next_n = excluded.next_n,"
				" newest_run = excluded.newest_run, error = NULL, error_at = NULL,"
				" uid = excluded.uid, gid = excluded.gid",
				"sisii", stem, n + 1, run_name, (int64_t)uid, (int64_t)gid);
	/* its window (SPEC §9): last, nothing after it can fail */
	if (!rc && r->plan->sandbox.window.set)
		rc = win_plan(e, sb, &r->plan->sandbox.window);
	if (rc && rc != -ENOMEM && sbuf_failed(&errs) == false && errs.len) {
		eng_log(e, "plan %s: %s", stem, sbuf_str(&errs));
		if (rc == -EINVAL)
			sbuf_adds(why, sbuf_str(&errs));
	}
	sbuf_release(&errs);
	if (rc) {
		if (r)
			run_forget(e, r);	/* the plan went with it */
		else
			plan_free(plan);
		if (made)
			sb_forget(e, made);
		return rc;
	}
	if (!triggered)
		trig_end(e, stem);	/* NAME.json is a plan without "on" now */
	if (!scheduled)
		sch_end(e, stem);	/* or without "schedule" */
	orch_need_durable(e);
	return 0;
}

/* After submit_start() failed with RC and its savepoint was undone: a plan
 * refused once substituted gets STEM.error (WHY, released) like any other.
 * Returns RC, or the error of writing it. */
static int submit_refused(struct orch_engine *e, const char *stem, int rc, struct sbuf *why, uid_t uid,
			  gid_t gid)
{
	if (rc == -EINVAL && why->len && !sbuf_failed(why)) {
		int w = set_error(e, stem, sbuf_str(why), uid, gid);
		if (w)
			rc = w;
	}
	sbuf_release(why);
	return rc;
}

/* Validate TEXT as plan STEM and start a run of it. 0, or -EINVAL with
 * STEM.error written, or another -errno with nothing changed. */
static int submit(struct orch_engine *e, const char *stem, const char *text, size_t len, uid_t uid,
		  gid_t gid, uid_t owner)
{
	int rc = eng_room(e);
	if (rc)
		return rc;
	struct plan *plan = submit_check(e, stem, text, len, uid, gid, owner, &rc);
	if (!plan)
		return rc;
	if ((rc = store_savepoint(&e->st, "submit"))) {
		plan_free(plan);
		return rc;
	}
	struct sbuf why = SBUF_INIT;
	if (plan->triggered) {
		/* "on": no run now, a trigger (SPEC §9) */
		sch_end(e, stem);
		rc = trig_register(e, stem, plan, uid, gid);
		plan_free(plan);
	} else if (plan->scheduled) {
		/* "schedule": no run now, a schedule (SPEC §9) */
		trig_end(e, stem);
		rc = sch_register(e, stem, plan, uid, gid);
		plan_free(plan);
	} else {
		rc = submit_start(e, stem, plan, uid, gid, &why, NULL);
	}
	store_release(&e->st, "submit", rc == 0);
	rc = submit_refused(e, stem, rc, &why, uid, gid);
	return rc;
}

/* Read file ID whole (a plan is at most PLAN_MAX_BYTES). */
static int file_text(struct orch_engine *e, int64_t id, char **text, size_t *len)
{
	int fd = plan_file(e, id, O_RDONLY, 0);
	if (fd < 0)
		return fd;
	int rc = read_fd(fd, PLAN_MAX_BYTES, text, len);
	close(fd);
	return rc;
}

int orch_plans_written(struct orch_engine *e, int64_t id, uid_t uid, gid_t gid)
{
	struct orch_pentry p;
	char stem[PLAN_NAME_MAX + 1];
	if (orch_plans_get(e, PK_FILE, id, &p) || !split_name(p.name, ".json", stem))
		return 0;	/* renamed away or removed meanwhile, or no plan name */
	char *text;
	size_t len;
	int rc = file_text(e, id, &text, &len);
	if (rc)
		return rc;
	rc = submit(e, stem, text, len, uid, gid, p.uid);
	orch_free(text);
	return rc;
}

int orch_plans_rename(struct orch_engine *e, const char *from, const char *to, unsigned flags,
		      uid_t uid, gid_t gid, bool *submitted)
{
	struct orch_pentry src, dst;
	if (submitted)
		*submitted = false;
	int rc = orch_plans_lookup(e, from, &src);
	if (rc)
		return rc;
	if (strlen(to) > 255)
		return -ENAMETOOLONG;
	if (src.kind != PK_FILE || reserved(to))
		return -EACCES;
	if (flags & ~(unsigned)RENAME_NOREPLACE)
		return -EINVAL;	/* RENAME_EXCHANGE, RENAME_WHITEOUT, anything new */
	bool have_dst = orch_plans_lookup(e, to, &dst) == 0;
	if (have_dst && (flags & RENAME_NOREPLACE))
		return -EEXIST;
	if (!strcmp(from, to))
		return 0;
	/* onto NAME.json: the plan is checked first (a refusal writes
	 * NAME.error and moves nothing); then the move and the run's start
	 * happen together or not at all */
	char stem[PLAN_NAME_MAX + 1];
	struct plan *plan = NULL;
	if (split_name(to, ".json", stem)) {
		if ((rc = eng_room(e)))
			return rc;
		char *text;
		size_t len;
		if ((rc = file_text(e, src.id, &text, &len)))
			return rc;
		plan = submit_check(e, stem, text, len, uid, gid, src.uid, &rc);
		orch_free(text);
		if (!plan)
			return rc;
	}
	if ((rc = store_savepoint(&e->st, "rename"))) {
		plan_free(plan);
		return rc;
	}
	if (have_dst)
		rc = file_drop(e, dst.id);
	if (!rc)
		rc = store_exec(&e->st, "UPDATE plan_files SET name = ? WHERE id = ?", "si", to, src.id);
	bool started = false;
	struct sbuf why = SBUF_INIT;
	char from_stem[PLAN_NAME_MAX + 1];
	if (!rc && split_name(from, ".json", from_stem)) {
		trig_end(e, from_stem);	/* plans/FROM.json is gone */
		sch_end(e, from_stem);
	}
	if (!rc && plan && plan->triggered) {
		sch_end(e, stem);
		rc = trig_register(e, stem, plan, uid, gid);
	} else if (!rc && plan && plan->scheduled) {
		trig_end(e, stem);
		rc = sch_register(e, stem, plan, uid, gid);
	} else if (!rc && plan) {
		rc = submit_start(e, stem, plan, uid, gid, &why, NULL);
		plan = NULL;
		started = rc == 0;
	}
	plan_free(plan);
	store_release(&e->st, "rename", rc == 0);
	/* the file replaced is gone only now: a run refused above undid its
	 * drop, and it still counts against its owner */
	if (!rc && have_dst)
		file_give_back(e, dst.uid, dst.id);
	rc = submit_refused(e, stem, rc, &why, uid, gid);
	if (!rc)
		orch_need_durable(e);
	if (submitted)
		*submitted = started;
	return rc;
}

/* The trigger or schedule (BY) of STEM is over. */
static void fire_end(struct orch_engine *e, enum plans_by by, const char *stem)
{
	if (by == PLANS_BY_TRIGGER)
		trig_end(e, stem);
	else
		sch_end(e, stem);
}

int plans_fire(struct orch_engine *e, enum plans_by by, const char *stem, uid_t uid, gid_t gid,
	       const char *const trig[3], char made[RUN_ID_MAX + 1])
{
	char fname[PLAN_NAME_MAX + 8];
	struct orch_pentry p;
	snprintf(fname, sizeof(fname), "%s.json", stem);
	if (orch_plans_lookup(e, fname, &p) || p.kind != PK_FILE) {
		fire_end(e, by, stem);
		return -ENOENT;
	}
	int rc = eng_room(e);
	if (rc)
		return rc;
	char *text;
	size_t len;
	if ((rc = file_text(e, p.id, &text, &len)))
		return rc;
	struct plan *plan = submit_check(e, stem, text, len, uid, gid, p.uid, &rc);
	orch_free(text);
	if (!plan)
		return rc;
	if (by == PLANS_BY_TRIGGER ? !plan->triggered : !plan->scheduled) {
		plan_free(plan);
		fire_end(e, by, stem);
		return -ENOENT;
	}
	if ((rc = store_savepoint(&e->st, "fire"))) {
		plan_free(plan);
		return rc;
	}
	struct sbuf why = SBUF_INIT;
	rc = submit_start(e, stem, plan, uid, gid, &why, by == PLANS_BY_TRIGGER ? trig : NULL);
	store_release(&e->st, "fire", rc == 0);
	rc = submit_refused(e, stem, rc, &why, uid, gid);
	if (!rc) {
		int64_t n = store_int(&e->st, "SELECT next_n FROM plan_names WHERE name = ?", 1, "s", stem);
		snprintf(made, RUN_ID_MAX + 1, "%s-%lld", stem, (long long)(n - 1));
	}
	return rc;
}
