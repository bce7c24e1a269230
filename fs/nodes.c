/* fs/nodes.c — the node table and the helpers node files share. */
#include "fs/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

const struct node_ops *const node_table[NT_MAX] = {
	[NT_ROOT] = &node_root,
	[NT_README] = &node_readme,
	[NT_PLANS] = &node_plans,
	[NT_RUNS] = &node_runs,
	[NT_SANDBOXES] = &node_sandboxes,
	[NT_EVENTS] = &node_events,
	[NT_METRICS] = &node_metrics,
	[NT_ATTENTION] = &node_attention,
	[NT_PLANFILE] = &node_planfile,
	[NT_PLANERR] = &node_planerr,
	[NT_PLANRUN] = &node_planrun,
	[NT_PLANTRIG] = &node_plantrig,
	[NT_PLANSCHED] = &node_plansched,
	[NT_RUN] = &node_run,
	[NT_RUN_STATUS] = &node_run_status,
	[NT_RUN_SUMMARY] = &node_run_summary,
	[NT_RUN_PLAN] = &node_run_plan,
	[NT_RUN_EVENTS] = &node_run_events,
	[NT_RUN_GRAPH] = &node_run_graph,
	[NT_RUN_CTL] = &node_run_ctl,
	[NT_RUN_STEPS] = &node_run_steps,
	[NT_STEP] = &node_step,
	[NT_STEP_STATUS] = &node_step_status,
	[NT_STEP_LOG] = &node_step_log,
	[NT_SB] = &node_sb,
	[NT_SB_STATUS] = &node_sb_status,
	[NT_SB_WORKSPACE] = &node_sb_workspace,
	[NT_SB_EVENTS] = &node_sb_events,
	[NT_SB_LOGS] = &node_sb_logs,
	[NT_SB_MESSAGES] = &node_sb_messages,
	[NT_SB_INBOX] = &node_sb_inbox,
	[NT_SB_CTL] = &node_sb_ctl,
	[NT_STEP_CTL] = &node_step_ctl,
	[NT_RUN_WAIT] = &node_run_wait,
	[NT_HEALTH] = &node_health,
};

void attr_fill(struct stat *st, mode_t mode, uid_t uid, gid_t gid, off_t size, int64_t mtime_ms,
	       int64_t ctime_ms)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = mode;
	st->st_nlink = S_ISDIR(mode) ? 2 : 1;
	st->st_uid = uid;
	st->st_gid = gid;
	st->st_size = size;
	st->st_blksize = 4096;
	st->st_blocks = (size + 511) / 512;
	st->st_mtim.tv_sec = mtime_ms / 1000;
	st->st_mtim.tv_nsec = (mtime_ms % 1000) * 1000000;
	st->st_ctim.tv_sec = ctime_ms / 1000;
	st->st_ctim.tv_nsec = (ctime_ms % 1000) * 1000000;
	st->st_atim = st->st_mtim;
}

int dirbuf_add(struct fs_dirbuf *db, const char *name, struct fs_node n, mode_t type, uint64_t cookie)
{
	struct stat st = { .st_ino = node_ino(n), .st_mode = type };
	size_t need = fuse_add_direntry(db->req, NULL, 0, name, NULL, 0);
	if (db->len + need > db->size)
		return 1;
	fuse_add_direntry(db->req, db->buf + db->len, db->size - db->len, name, &st, (off_t)cookie);
	db->len += need;
	return 0;
}

int fixed_lookup(const struct fixed_entry *t, size_t n, struct fs_node dir, const char *name,
		 struct fs_node *child)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(t[i].name, name)) {
			child->type = t[i].type;
			child->id = dir.id;
			return 0;
		}
	return -ENOENT;
}

int fixed_readdir(const struct fixed_entry *t, size_t n, struct fs_node dir, uint64_t cookie,
		  struct fs_dirbuf *db)
{
	/* cookies 1 and 2 are "." and ".."; entry i is cookie i + 3 */
	for (size_t i = cookie >= 3 ? cookie - 2 : 0; i < n; i++) {
		struct fs_node c = { t[i].type, dir.id, 0 };
		const struct node_ops *ops = node_ops_of(c);
		if (dirbuf_add(db, t[i].name, c, ops ? ops->type : S_IFREG, i + 3))
			break;
	}
	return 0;
}

int snap_getattr(struct fs *fs, struct fs_node n, struct stat *st, mode_t mode, uid_t uid, gid_t gid,
		 int64_t mtime_ms, int64_t ctime_ms)
{
	if (fs->rendered) {
		attr_fill(st, mode, uid, gid, (off_t)fs->rendered->len, mtime_ms, ctime_ms);
		return 0;
	}
	struct sbuf sb = SBUF_INIT;
	const struct node_ops *ops = node_ops_of(n);
	int rc = ops && ops->render ? ops->render(fs, n, &sb) : 0;
	if (!rc)
		attr_fill(st, mode, uid, gid, (off_t)sb.len, mtime_ms, ctime_ms);
	sbuf_release(&sb);
	return rc;
}

int open_log(struct fs_fh *fh, int fd)
{
	if (fd < 0)
		return fd;
	fh->kind = FH_DISK;
	fh->fd = fd;
	fh->lines_only = true;
	fh->lv = (struct logview)LOGVIEW_INIT;
	return 0;
}
