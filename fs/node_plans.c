/* fs/node_plans.c — plans/: plain files on disk, NAME.error, NAME.run,
 * NAME.trigger, NAME.schedule. */
#include "fs/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static const enum ntype kind_type[] = {
	[PK_FILE] = NT_PLANFILE, [PK_ERROR] = NT_PLANERR, [PK_RUNLINK] = NT_PLANRUN,
	[PK_TRIGGER] = NT_PLANTRIG, [PK_SCHEDULE] = NT_PLANSCHED,
};

static int plans_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	/* sticky and world-writable, like /tmp: anyone may drop a plan, and
	 * only its owner may remove or replace it */
	attr_fill(st, S_IFDIR | 01777, fs->uid, fs->gid, 0, clock_wall_ms(), fs->started_ms);
	return 0;
}

static int plans_lookup(struct fs *fs, struct fs_node dir, const char *name, struct fs_node *child)
{
	struct orch_pentry p;
	int rc = orch_plans_lookup(fs->eng, name, &p);
	if (rc)
		return rc;
	child->type = kind_type[p.kind];
	child->id = p.id;
	return 0;
}

struct plans_ls {
	struct fs_dirbuf *db;
};

static int plans_ls_cb(void *ctx, uint64_t cookie, const struct orch_pentry *p)
{
	struct plans_ls *ls = ctx;
	struct fs_node n = { kind_type[p->kind], p->id, 0 };
	return dirbuf_add(ls->db, p->name, n, p->kind == PK_RUNLINK ? S_IFLNK : S_IFREG, cookie);
}

static int plans_readdir(struct fs *fs, struct fs_node dir, uint64_t cookie, struct fs_dirbuf *db)
{
	struct plans_ls ls = { db };
	return orch_plans_list(fs->eng, cookie > 2 ? cookie : 0, plans_ls_cb, &ls);
}

const struct node_ops node_plans = {
	.type = S_IFDIR,
	.getattr = plans_getattr,
	.lookup = plans_lookup,
	.readdir = plans_readdir,
	.entry_timeout = 3600,
};

static int planfile_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	struct orch_pentry p;
	int rc = orch_plans_get(fs->eng, PK_FILE, n.id, &p);
	if (rc)
		return rc;
	struct stat ds;
	if ((rc = orch_plans_stat(fs->eng, n.id, &ds)))
		return rc;
	attr_fill(st, S_IFREG | (p.mode & 07777), p.uid, p.gid, ds.st_size, 0, 0);
	st->st_mtim = ds.st_mtim;
	st->st_atim = ds.st_atim;
	st->st_ctim = ds.st_ctim;
	return 0;
}

static int planfile_open(struct fs *fs, struct fs_node n, int flags, struct fs_fh *fh)
{
	/* O_TRUNC through the engine, which counts its owner's bytes */
	if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY) {
		int rc = orch_plans_truncate(fs->eng, n.id, -1, 0);
		if (rc)
			return rc;
	}
	int fd = orch_plans_open(fs->eng, n.id, flags & ~O_TRUNC);
	if (fd < 0)
		return fd;
	fh->kind = FH_DISK;
	fh->fd = fd;
	return 0;
}

const struct node_ops node_planfile = {
	.type = S_IFREG,
	.getattr = planfile_getattr,
	.open = planfile_open,
};

static int planerr_render(struct fs *fs, struct fs_node n, struct sbuf *out)
{
	return orch_plans_generated(fs->eng, PK_ERROR, n.id, out);
}

static int planerr_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	struct orch_pentry p;
	int rc = orch_plans_get(fs->eng, PK_ERROR, n.id, &p);
	if (rc)
		return rc;
	attr_fill(st, S_IFREG | 0444, p.uid, p.gid, p.size, p.mtime_ms, p.mtime_ms);
	return 0;
}

const struct node_ops node_planerr = {
	.type = S_IFREG,
	.getattr = planerr_getattr,
	.render = planerr_render,
};

static int planrun_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	struct orch_pentry p;
	int rc = orch_plans_get(fs->eng, PK_RUNLINK, n.id, &p);
	if (rc)
		return rc;
	attr_fill(st, S_IFLNK | 0777, p.uid, p.gid, p.size, p.mtime_ms, p.mtime_ms);
	return 0;
}

const struct node_ops node_planrun = {
	.type = S_IFLNK,
	.getattr = planrun_getattr,
};

static int plantrig_render(struct fs *fs, struct fs_node n, struct sbuf *out)
{
	return orch_plans_generated(fs->eng, PK_TRIGGER, n.id, out);
}

static int plantrig_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	struct orch_pentry p;
	int rc = orch_plans_get(fs->eng, PK_TRIGGER, n.id, &p);
	if (rc)
		return rc;
	attr_fill(st, S_IFREG | 0444, p.uid, p.gid, p.size, p.mtime_ms, p.mtime_ms);
	return 0;
}

const struct node_ops node_plantrig = {
	.type = S_IFREG,
	.getattr = plantrig_getattr,
	.render = plantrig_render,
};

static int plansched_render(struct fs *fs, struct fs_node n, struct sbuf *out)
{
	return orch_plans_generated(fs->eng, PK_SCHEDULE, n.id, out);
}

static int plansched_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	struct orch_pentry p;
	int rc = orch_plans_get(fs->eng, PK_SCHEDULE, n.id, &p);
	if (rc)
		return rc;
	attr_fill(st, S_IFREG | 0444, p.uid, p.gid, p.size, p.mtime_ms, p.mtime_ms);
	return 0;
}

const struct node_ops node_plansched = {
	.type = S_IFREG,
	.getattr = plansched_getattr,
	.render = plansched_render,
};
