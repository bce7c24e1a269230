/* fs/node_sandboxes.c — sandboxes/ and sandboxes/ID/. */
#include "fs/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

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
	struct fs_node n = { NT_SB, rowid, 0 };
	return dirbuf_add(ls->db, name, n, S_IFDIR, (uint64_t)rowid + 2);
}

static int sandboxes_readdir(struct fs *fs, struct fs_node dir, uint64_t cookie, struct fs_dirbuf *db)
{
	struct sb_ls ls = { db };
	return orch_sandbox_list(fs->eng, cookie > 2 ? (int64_t)(cookie - 2) : 0, sb_ls_cb, &ls);
}

const struct node_ops node_sandboxes = {
	.type = S_IFDIR,
	.getattr = sandboxes_getattr,
	.lookup = sandboxes_lookup,
	.readdir = sandboxes_readdir,
	.entry_timeout = 3600,
};

static const struct fixed_entry sb_entries[] = {
	{ "status", NT_SB_STATUS }, { "logs", NT_SB_LOGS },	  { "messages", NT_SB_MESSAGES },
	{ "inbox", NT_SB_INBOX },   { "events", NT_SB_EVENTS },	  { "ctl", NT_SB_CTL },
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

/* a sandbox may go away without the kernel seeing it (its ctl "delete"):
 * the engine then has the kernel forget its name (fs_inval_entry) */
const struct node_ops node_sb = {
	.type = S_IFDIR,
	.getattr = sb_getattr,
	.lookup = sb_lookup,
	.readdir = sb_readdir,
	.entry_timeout = 3600,
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
	.entry_timeout = 3600,
};

/* The owner of the sandbox owns its files; others may read them. */
static int sb_file_attr(struct fs *fs, struct fs_node n, struct stat *st, mode_t mode, off_t size)
{
	struct orch_sandbox_attr a;
	int rc = orch_sandbox_by_rowid(fs->eng, n.id, &a);
	if (rc)
		return rc;
	attr_fill(st, S_IFREG | mode, a.uid, a.gid, size, clock_wall_ms(), a.ctime_ms);
	return 0;
}

static int sb_events_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	return sb_file_attr(fs, n, st, 0644, (off_t)orch_events_size(fs->eng, EV_SANDBOX, n.id));
}

/* Appending lines to messages or events: a line assembly per open file. */
static int open_lines(struct fs_fh *fh, enum line_kind kind)
{
	fh->lines = orch_calloc(1, sizeof(*fh->lines));
	if (!fh->lines)
		return -ENOMEM;
	*fh->lines = (struct line_asm)LINE_ASM_INIT(kind);
	pthread_mutex_init(&fh->lines_lock, NULL);
	return 0;
}

static int sb_events_open(struct fs *fs, struct fs_node n, int flags, struct fs_fh *fh)
{
	/* the name may be cached (fs.h): a sandbox gone since ends here */
	struct orch_sandbox_attr a;
	int rc = orch_sandbox_by_rowid(fs->eng, n.id, &a);
	if (rc)
		return rc;
	fh->kind = FH_EVENTS;
	fh->scope = EV_SANDBOX;
	/* O_TRUNC (a `>` redirection) appends all the same: nothing is removed */
	return (flags & O_ACCMODE) != O_RDONLY ? open_lines(fh, LINES_EVENTS) : 0;
}

/* messages and events: each lookup picks an inode, and the name is cached
 * only while no writer holds it (fs.h, nonce_pick) */
const struct node_ops node_sb_events = {
	.type = S_IFREG,
	.getattr = sb_events_getattr,
	.open = sb_events_open,
};

static int sb_messages_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	return sb_file_attr(fs, n, st, 0644, (off_t)orch_messages_size(fs->eng, n.id));
}

static int sb_messages_open(struct fs *fs, struct fs_node n, int flags, struct fs_fh *fh)
{
	/* the name may be cached (fs.h): a sandbox gone since ends here */
	struct orch_sandbox_attr a;
	int rc = orch_sandbox_by_rowid(fs->eng, n.id, &a);
	if (rc)
		return rc;
	/* read like events, a part at a time (a line never moves): an open
	 * costs nothing whatever the sandbox holds */
	fh->kind = FH_EVENTS;
	fh->scope = EV_MESSAGES;
	return (flags & O_ACCMODE) != O_RDONLY ? open_lines(fh, LINES_MESSAGES) : 0;
}

const struct node_ops node_sb_messages = {
	.type = S_IFREG,
	.getattr = sb_messages_getattr,
	.open = sb_messages_open,
};

static int sb_inbox_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	/* its size is what an open would take: unknown until then. Reading it
	 * takes the messages: only the owner may */
	return sb_file_attr(fs, n, st, 0400, 0);
}

static int sb_inbox_open(struct fs *fs, struct fs_node n, int flags, struct fs_fh *fh)
{
	if ((flags & O_ACCMODE) != O_RDONLY)
		return -EROFS;
	struct sbuf sb = SBUF_INIT;
	int rc = orch_inbox_take(fs->eng, n.id, &fh->lease, &sb);
	if (!rc && sbuf_failed(&sb))
		rc = -ENOMEM;
	if (!rc)
		rc = sb_file_attr(fs, n, &fh->st, 0400, (off_t)sb.len);
	if (rc) {
		orch_inbox_done(fs->eng, n.id, fh->lease, false);
		fh->lease = 0;
		sbuf_release(&sb);
		return rc;
	}
	fh->kind = FH_INBOX;
	fh->buf = sbuf_detach(&sb, &fh->len);
	if (!fh->buf) {
		orch_inbox_done(fs->eng, n.id, fh->lease, false);
		fh->lease = 0;
		return -ENOMEM;
	}
	return 0;
}

const struct node_ops node_sb_inbox = {
	.type = S_IFREG,
	.getattr = sb_inbox_getattr,
	.open = sb_inbox_open,
	.entry_timeout = 3600,
};

static int sb_logs_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	struct stat ds;
	bool have = orch_sandbox_logs_stat(fs->eng, n.id, &ds) == 0 && S_ISREG(ds.st_mode);
	int rc = sb_file_attr(fs, n, st, 0444, have ? ds.st_size : 0);
	if (!rc && have)
		st->st_mtim = ds.st_mtim;
	return rc;
}

static int sb_logs_open(struct fs *fs, struct fs_node n, int flags, struct fs_fh *fh)
{
	if ((flags & O_ACCMODE) != O_RDONLY)
		return -EROFS;
	return open_log(fh, orch_sandbox_logs_open(fs->eng, n.id));
}

const struct node_ops node_sb_logs = {
	.type = S_IFREG,
	.getattr = sb_logs_getattr,
	.open = sb_logs_open,
	.entry_timeout = 3600,
};

static int sb_ctl_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	return sb_file_attr(fs, n, st, 0644, 0);
}

static int sb_ctl_open(struct fs *fs, struct fs_node n, int flags, struct fs_fh *fh)
{
	fh->kind = FH_CTL;
	return 0;
}

const struct node_ops node_sb_ctl = {
	.type = S_IFREG,
	.getattr = sb_ctl_getattr,
	.open = sb_ctl_open,
	.entry_timeout = 3600,
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
	.entry_timeout = 3600,
};
