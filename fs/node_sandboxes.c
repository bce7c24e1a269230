/* fs/node_sandboxes.c — sandboxes/ and sandboxes/ID/. */
#include "fs/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

static int sandboxes_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	attr_fill(st, S_IFDIR | 01777, fs->uid, fs->gid, 0, clock_wall_ms(), fs->started_ms);
	return 0;
}

static int sandboxes_lookup(struct fs *fs, struct fs_node dir, const char *name, struct fs_node *child)
{
	struct orch_sandbox_attr a;
	int rc = orch_sandbox_by_name(fs->eng, name, &a);
	if (rc)
		return rc;
	child->type = NT_SB;
	child->id = a.rowid;
	return 0;
}

struct sb_ls {
	struct fs_dirbuf *db;
};

static int sb_ls_cb(void *ctx, int64_t rowid, const char *name)
{
	struct sb_ls *ls = ctx;
	struct fs_node n = { NT_SB, rowid };
	return dirbuf_add(ls->db, name, n, S_IFDIR, (uint64_t)rowid + 2);
}

static int sandboxes_readdir(struct fs *fs, struct fs_node dir, uint64_t cookie, struct fs_dirbuf *db)
{
	struct sb_ls ls = { db };
	return orch_sandbox_list(fs->eng, cookie > 2 ? (int64_t)(cookie - 2) : 0, sb_ls_cb, &ls);
}

/* a sandbox may go away without the kernel seeing it (a run's retry may
 * recreate it): names are not cached */
const struct node_ops node_sandboxes = {
	.type = S_IFDIR,
	.getattr = sandboxes_getattr,
	.lookup = sandboxes_lookup,
	.readdir = sandboxes_readdir,
	.entry_timeout = 3600,
};

static const struct fixed_entry sb_entries[] = {
	{ "status", NT_SB_STATUS },
	{ "events", NT_SB_EVENTS },
	{ "workspace", NT_SB_WORKSPACE },
};

static int sb_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	struct orch_sandbox_attr a;
	int rc = orch_sandbox_by_rowid(fs->eng, n.id, &a);
	if (rc)
		return rc;
	attr_fill(st, S_IFDIR | 0755, a.uid, a.gid, 0, a.ctime_ms, a.ctime_ms);
	return 0;
}

static int sb_lookup(struct fs *fs, struct fs_node dir, const char *name, struct fs_node *child)
{
	return fixed_lookup(sb_entries, ARRAY_SIZE(sb_entries), dir, name, child);
}

static int sb_readdir(struct fs *fs, struct fs_node dir, uint64_t cookie, struct fs_dirbuf *db)
{
	return fixed_readdir(sb_entries, ARRAY_SIZE(sb_entries), dir, cookie, db);
}

const struct node_ops node_sb = {
	.type = S_IFDIR,
	.getattr = sb_getattr,
	.lookup = sb_lookup,
	.readdir = sb_readdir,
	.entry_timeout = 0,
};

static int sb_status_render(struct fs *fs, struct fs_node n, struct sbuf *out)
{
	return orch_sandbox_render(fs->eng, n.id, out);
}

static int sb_status_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	struct orch_sandbox_attr a;
	int rc = orch_sandbox_by_rowid(fs->eng, n.id, &a);
	if (rc)
		return rc;
	return snap_getattr(fs, n, st, S_IFREG | 0444, a.uid, a.gid, clock_wall_ms(), a.ctime_ms);
}

const struct node_ops node_sb_status = {
	.type = S_IFREG,
	.getattr = sb_status_getattr,
	.render = sb_status_render,
};

static int sb_events_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	struct orch_sandbox_attr a;
	int rc = orch_sandbox_by_rowid(fs->eng, n.id, &a);
	if (rc)
		return rc;
	attr_fill(st, S_IFREG | 0444, a.uid, a.gid, (off_t)orch_events_size(fs->eng, EV_SANDBOX, n.id),
		  clock_wall_ms(), a.ctime_ms);
	return 0;
}

static int sb_events_open(struct fs *fs, struct fs_node n, int flags, struct fs_fh *fh)
{
	if ((flags & O_ACCMODE) != O_RDONLY)
		return -EROFS;
	fh->kind = FH_EVENTS;
	fh->scope = EV_SANDBOX;
	return 0;
}

const struct node_ops node_sb_events = {
	.type = S_IFREG,
	.getattr = sb_events_getattr,
	.open = sb_events_open,
};

static int sb_ws_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	struct orch_sandbox_attr a;
	int rc = orch_sandbox_by_rowid(fs->eng, n.id, &a);
	if (rc)
		return rc;
	char *ws = orch_sandbox_workspace(fs->eng, n.id);
	attr_fill(st, S_IFLNK | 0777, a.uid, a.gid, ws ? (off_t)strlen(ws) : 0, a.ctime_ms, a.ctime_ms);
	orch_free(ws);
	return 0;
}

const struct node_ops node_sb_workspace = {
	.type = S_IFLNK,
	.getattr = sb_ws_getattr,
};
