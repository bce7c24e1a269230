/* fs/node_runs.c — runs/, runs/ID/ and runs/ID/steps/STEP/. */
#include "fs/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* ---- runs/ ---- */

static int runs_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	/* sticky and writable, as plans/: each user may rmdir their own runs
	 * (orchfs itself refuses to make entries here) */
	attr_fill(st, S_IFDIR | 01777, fs->uid, fs->gid, 0, clock_wall_ms(), fs->started_ms);
	return 0;
}

static int runs_lookup(struct fs *fs, struct fs_node dir, const char *name, struct fs_node *child)
{
	struct orch_run_attr a;
	int rc = orch_run_by_name(fs->eng, name, &a);
	if (rc)
		return rc;
	child->type = NT_RUN;
	child->id = a.rowid;
	return 0;
}

struct ls_ctx {
	struct fs_dirbuf *db;
	enum ntype type;
	uint64_t base;		/* cookie = key + base */
};

static int ls_cb(void *ctx, int64_t rowid, const char *name)
{
	struct ls_ctx *ls = ctx;
	struct fs_node n = { ls->type, rowid, 0 };
	return dirbuf_add(ls->db, name, n, S_IFDIR, (uint64_t)rowid + ls->base);
}

static int runs_readdir(struct fs *fs, struct fs_node dir, uint64_t cookie, struct fs_dirbuf *db)
{
	struct ls_ctx ls = { db, NT_RUN, 2 };
	return orch_run_list(fs->eng, cookie > 2 ? (int64_t)(cookie - 2) : 0, ls_cb, &ls);
}

/* Only the run's own rmdir removes runs/ID, and the kernel sees it: names
 * may stay cached. */
const struct node_ops node_runs = {
	.type = S_IFDIR,
	.getattr = runs_getattr,
	.lookup = runs_lookup,
	.readdir = runs_readdir,
	.entry_timeout = 3600,
};

/* ---- runs/ID/ ---- */

static const struct fixed_entry run_entries[] = {
	{ "status", NT_RUN_STATUS }, { "summary", NT_RUN_SUMMARY }, { "plan.json", NT_RUN_PLAN },
	{ "events", NT_RUN_EVENTS }, { "graph.dot", NT_RUN_GRAPH },  { "ctl", NT_RUN_CTL },
	{ "steps", NT_RUN_STEPS },   { "wait", NT_RUN_WAIT },
};

static int run_attr(struct fs *fs, int64_t id, struct orch_run_attr *a)
{
	return orch_run_by_rowid(fs->eng, id, a);
}

static int run_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	struct orch_run_attr a;
	int rc = run_attr(fs, n.id, &a);
	if (rc)
		return rc;
	attr_fill(st, S_IFDIR | 0755, a.uid, a.gid, 0, a.mtime_ms, a.ctime_ms);
	st->st_nlink = 3;
	return 0;
}

static int run_lookup(struct fs *fs, struct fs_node dir, const char *name, struct fs_node *child)
{
	return fixed_lookup(run_entries, ARRAY_SIZE(run_entries), dir, name, child);
}

static int run_readdir(struct fs *fs, struct fs_node dir, uint64_t cookie, struct fs_dirbuf *db)
{
	return fixed_readdir(run_entries, ARRAY_SIZE(run_entries), dir, cookie, db);
}

const struct node_ops node_run = {
	.type = S_IFDIR,
	.getattr = run_getattr,
	.lookup = run_lookup,
	.readdir = run_readdir,
	.entry_timeout = 3600,
	.attr_timeout = 0,
};

/* run snapshot files */

static enum orch_run_file run_file_of(enum ntype t)
{
	switch (t) {
	case NT_RUN_SUMMARY: return RUNF_SUMMARY;
	case NT_RUN_PLAN: return RUNF_PLAN;
	case NT_RUN_GRAPH: return RUNF_GRAPH;
	default: return RUNF_STATUS;
	}
}

static int run_file_render(struct fs *fs, struct fs_node n, struct sbuf *out)
{
	return orch_run_render(fs->eng, n.id, run_file_of(n.type), out);
}

static int run_file_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	struct orch_run_attr a;
	int rc = run_attr(fs, n.id, &a);
	if (rc)
		return rc;
	return snap_getattr(fs, n, st, S_IFREG | 0444, a.uid, a.gid, a.mtime_ms, a.ctime_ms);
}

#define RUN_SNAPSHOT(var)                        \
	const struct node_ops var = {            \
		.type = S_IFREG,                 \
		.getattr = run_file_getattr,     \
		.render = run_file_render,       \
		.entry_timeout = 3600,           \
	}
RUN_SNAPSHOT(node_run_status);
RUN_SNAPSHOT(node_run_summary);
RUN_SNAPSHOT(node_run_plan);
RUN_SNAPSHOT(node_run_graph);

static int run_events_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	struct orch_run_attr a;
	int rc = run_attr(fs, n.id, &a);
	if (rc)
		return rc;
	attr_fill(st, S_IFREG | 0444, a.uid, a.gid, (off_t)orch_events_size(fs->eng, EV_RUN, n.id),
		  a.mtime_ms, a.ctime_ms);
	return 0;
}

static int run_events_open(struct fs *fs, struct fs_node n, int flags, struct fs_fh *fh)
{
	if ((flags & O_ACCMODE) != O_RDONLY)
		return -EROFS;
	fh->kind = FH_EVENTS;
	fh->scope = EV_RUN;
	return 0;
}

const struct node_ops node_run_events = {
	.type = S_IFREG,
	.getattr = run_events_getattr,
	.open = run_events_open,
	.entry_timeout = 3600,
};

static int run_ctl_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	struct orch_run_attr a;
	int rc = run_attr(fs, n.id, &a);
	if (rc)
		return rc;
	attr_fill(st, S_IFREG | 0644, a.uid, a.gid, 0, a.mtime_ms, a.ctime_ms);
	return 0;
}

static int run_ctl_open(struct fs *fs, struct fs_node n, int flags, struct fs_fh *fh)
{
	fh->kind = FH_CTL;	/* reading it gives nothing */
	return 0;
}

const struct node_ops node_run_ctl = {
	.type = S_IFREG,
	.getattr = run_ctl_getattr,
	.open = run_ctl_open,
	.entry_timeout = 3600,
	.attr_timeout = 1,
};

/* runs/ID/wait: a read blocks until the run has finished, then gives its
 * final status (SPEC §11; fs/poll.c). Its size says nothing: 0. */
static int run_wait_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	struct orch_run_attr a;
	int rc = run_attr(fs, n.id, &a);
	if (rc)
		return rc;
	attr_fill(st, S_IFREG | 0444, a.uid, a.gid, 0, a.mtime_ms, a.ctime_ms);
	return 0;
}

static int run_wait_open(struct fs *fs, struct fs_node n, int flags, struct fs_fh *fh)
{
	if ((flags & O_ACCMODE) != O_RDONLY)
		return -EROFS;
	fh->kind = FH_WAIT;
	return 0;
}

const struct node_ops node_run_wait = {
	.type = S_IFREG,
	.getattr = run_wait_getattr,
	.open = run_wait_open,
	.entry_timeout = 3600,
};

/* ---- runs/ID/steps/ ---- */

static int steps_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	struct orch_run_attr a;
	int rc = run_attr(fs, n.id, &a);
	if (rc)
		return rc;
	attr_fill(st, S_IFDIR | 0755, a.uid, a.gid, 0, a.mtime_ms, a.ctime_ms);
	return 0;
}

static int steps_lookup(struct fs *fs, struct fs_node dir, const char *name, struct fs_node *child)
{
	struct orch_step_attr a;
	int rc = orch_step_by_name(fs->eng, dir.id, name, &a);
	if (rc)
		return rc;
	child->type = NT_STEP;
	child->id = a.rowid;
	return 0;
}

static int steps_ls_cb(void *ctx, size_t idx, int64_t rowid, const char *name)
{
	struct ls_ctx *ls = ctx;
	struct fs_node n = { NT_STEP, rowid, 0 };
	return dirbuf_add(ls->db, name, n, S_IFDIR, idx + ls->base);
}

static int steps_readdir(struct fs *fs, struct fs_node dir, uint64_t cookie, struct fs_dirbuf *db)
{
	/* cookie = index + 3: the next listing starts at index cookie - 2 */
	struct ls_ctx ls = { db, NT_STEP, 3 };
	return orch_step_list(fs->eng, dir.id, cookie >= 3 ? (size_t)(cookie - 2) : 0, steps_ls_cb, &ls);
}

const struct node_ops node_run_steps = {
	.type = S_IFDIR,
	.getattr = steps_getattr,
	.lookup = steps_lookup,
	.readdir = steps_readdir,
	.entry_timeout = 3600,
};

/* ---- runs/ID/steps/STEP/ ---- */

static const struct fixed_entry step_entries[] = {
	{ "status", NT_STEP_STATUS },
	{ "log", NT_STEP_LOG },
	{ "ctl", NT_STEP_CTL },
};

/* the owner and times of a step's files are its run's */
static int step_run_attr(struct fs *fs, int64_t step, struct orch_run_attr *a)
{
	struct orch_step_attr s;
	int rc = orch_step_by_rowid(fs->eng, step, &s);
	return rc ? rc : run_attr(fs, s.run_rowid, a);
}

static int step_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	struct orch_run_attr a;
	int rc = step_run_attr(fs, n.id, &a);
	if (rc)
		return rc;
	attr_fill(st, S_IFDIR | 0755, a.uid, a.gid, 0, a.mtime_ms, a.ctime_ms);
	return 0;
}

static int step_lookup(struct fs *fs, struct fs_node dir, const char *name, struct fs_node *child)
{
	return fixed_lookup(step_entries, ARRAY_SIZE(step_entries), dir, name, child);
}

static int step_readdir(struct fs *fs, struct fs_node dir, uint64_t cookie, struct fs_dirbuf *db)
{
	return fixed_readdir(step_entries, ARRAY_SIZE(step_entries), dir, cookie, db);
}

const struct node_ops node_step = {
	.type = S_IFDIR,
	.getattr = step_getattr,
	.lookup = step_lookup,
	.readdir = step_readdir,
	.entry_timeout = 3600,
};

static int step_status_render(struct fs *fs, struct fs_node n, struct sbuf *out)
{
	return orch_step_render(fs->eng, n.id, out);
}

static int step_status_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	struct orch_run_attr a;
	int rc = step_run_attr(fs, n.id, &a);
	if (rc)
		return rc;
	return snap_getattr(fs, n, st, S_IFREG | 0444, a.uid, a.gid, a.mtime_ms, a.ctime_ms);
}

const struct node_ops node_step_status = {
	.type = S_IFREG,
	.getattr = step_status_getattr,
	.render = step_status_render,
	.entry_timeout = 3600,
};

static int step_log_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	struct orch_run_attr a;
	int rc = step_run_attr(fs, n.id, &a);
	if (rc)
		return rc;
	struct stat ds;
	bool have = orch_step_log_stat(fs->eng, n.id, &ds) == 0 && S_ISREG(ds.st_mode);
	attr_fill(st, S_IFREG | 0444, a.uid, a.gid, have ? ds.st_size : 0, a.mtime_ms, a.ctime_ms);
	if (have)
		st->st_mtim = ds.st_mtim;
	return 0;
}

static int step_log_open(struct fs *fs, struct fs_node n, int flags, struct fs_fh *fh)
{
	if ((flags & O_ACCMODE) != O_RDONLY)
		return -EROFS;
	return open_log(fh, orch_step_log_open(fs->eng, n.id));
}

const struct node_ops node_step_log = {
	.type = S_IFREG,
	.getattr = step_log_getattr,
	.open = step_log_open,
	.entry_timeout = 3600,
};

/* steps/STEP/ctl: anyone may write to it; orchfs decides who may decide
 * (the step's approvers, else the run's owner, and root: EACCES otherwise) */
static int step_ctl_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	struct orch_run_attr a;
	int rc = step_run_attr(fs, n.id, &a);
	if (rc)
		return rc;
	attr_fill(st, S_IFREG | 0622, a.uid, a.gid, 0, a.mtime_ms, a.ctime_ms);
	return 0;
}

const struct node_ops node_step_ctl = {
	.type = S_IFREG,
	.getattr = step_ctl_getattr,
	.open = run_ctl_open,
	.entry_timeout = 3600,
	.attr_timeout = 1,
};
