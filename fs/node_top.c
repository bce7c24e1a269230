/* fs/node_top.c — the top of the tree: the root, README, events, metrics,
 * attention. */
#include "fs/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>

static const struct fixed_entry root_entries[] = {
	{ "README", NT_README }, { "plans", NT_PLANS }, { "runs", NT_RUNS },
	{ "sandboxes", NT_SANDBOXES }, { "events", NT_EVENTS }, { "metrics", NT_METRICS },
	{ "attention", NT_ATTENTION }, { "health", NT_HEALTH },
};

static int root_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	attr_fill(st, S_IFDIR | 0755, fs->uid, fs->gid, 0, fs->started_ms, fs->started_ms);
	st->st_nlink = 5;
	return 0;
}

static int root_lookup(struct fs *fs, struct fs_node dir, const char *name, struct fs_node *child)
{
	return fixed_lookup(root_entries, ARRAY_SIZE(root_entries), dir, name, child);
}

static int root_readdir(struct fs *fs, struct fs_node dir, uint64_t cookie, struct fs_dirbuf *db)
{
	return fixed_readdir(root_entries, ARRAY_SIZE(root_entries), dir, cookie, db);
}

const struct node_ops node_root = {
	.type = S_IFDIR,
	.getattr = root_getattr,
	.lookup = root_lookup,
	.readdir = root_readdir,
	.entry_timeout = 3600,
	.attr_timeout = 1,
};

static int readme_render(struct fs *fs, struct fs_node n, struct sbuf *out)
{
	orch_render_readme(out);
	return sbuf_failed(out) ? -ENOMEM : 0;
}

static int readme_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	return snap_getattr(fs, n, st, S_IFREG | 0444, fs->uid, fs->gid, fs->started_ms, fs->started_ms);
}

const struct node_ops node_readme = {
	.type = S_IFREG,
	.getattr = readme_getattr,
	.render = readme_render,
	.entry_timeout = 3600,
	.attr_timeout = 3600,
};

/* the kernel's requests worth watching (how a cache does, what a workload
 * costs), by their opcodes */
static const struct { uint32_t opcode; const char *name; } kreq_names[] = {
	{ FUSE_LOOKUP, "lookup" },   { FUSE_FORGET, "forget" },	  { FUSE_GETATTR, "getattr" },
	{ FUSE_SETATTR, "setattr" }, { FUSE_READLINK, "readlink" }, { FUSE_MKDIR, "mkdir" },
	{ FUSE_UNLINK, "unlink" },   { FUSE_RMDIR, "rmdir" },	  { FUSE_RENAME, "rename" },
	{ FUSE_OPEN, "open" },	     { FUSE_READ, "read" },	  { FUSE_WRITE, "write" },
	{ FUSE_STATFS, "statfs" },   { FUSE_RELEASE, "release" }, { FUSE_FLUSH, "flush" },
	{ FUSE_OPENDIR, "opendir" }, { FUSE_READDIR, "readdir" }, { FUSE_RELEASEDIR, "releasedir" },
	{ FUSE_CREATE, "create" },   { FUSE_INTERRUPT, "interrupt" },
	{ FUSE_BATCH_FORGET, "batch_forget" }, { FUSE_READDIRPLUS, "readdirplus" },
	{ FUSE_RENAME2, "rename2" }, { FUSE_POLL, "poll" },
};

static int metrics_render(struct fs *fs, struct fs_node n, struct sbuf *out)
{
	int rc = orch_render_metrics(fs->eng, out);
	if (rc)
		return rc;
	sbuf_adds(out, "# HELP orchfs_fuse_requests_total Requests the kernel sent, by operation.\n"
		       "# TYPE orchfs_fuse_requests_total counter\n");
	for (size_t i = 0; i < ARRAY_SIZE(kreq_names); i++)
		sbuf_addf(out, "orchfs_fuse_requests_total{op=\"%s\"} %llu\n", kreq_names[i].name,
			  (unsigned long long)fs->kreq[kreq_names[i].opcode]);
	sbuf_addf(out, "# HELP orchfs_fuse_append_forgets_total Cached messages/events names the kernel was told to"
		       " forget (a second writer opened them).\n"
		       "# TYPE orchfs_fuse_append_forgets_total counter\n"
		       "orchfs_fuse_append_forgets_total %llu\n",
		  (unsigned long long)fs->appendable_forgets);
	return sbuf_failed(out) ? -ENOMEM : 0;
}

static int metrics_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	return snap_getattr(fs, n, st, S_IFREG | 0444, fs->uid, fs->gid, clock_wall_ms(), fs->started_ms);
}

const struct node_ops node_metrics = {
	.type = S_IFREG,
	.getattr = metrics_getattr,
	.render = metrics_render,
	.entry_timeout = 3600,
};

/* MOUNT/attention: what waits for a person, rendered at open (SPEC §8) */
static int attention_render(struct fs *fs, struct fs_node n, struct sbuf *out)
{
	return orch_render_attention(fs->eng, out);
}

const struct node_ops node_attention = {
	.type = S_IFREG,
	.getattr = metrics_getattr,
	.render = attention_render,
	.entry_timeout = 3600,
};

/* MOUNT/health: the daemon's own health, rendered at open (SPEC §11) */
static int health_render(struct fs *fs, struct fs_node n, struct sbuf *out)
{
	return orch_render_health(fs->eng, out);
}

const struct node_ops node_health = {
	.type = S_IFREG,
	.getattr = metrics_getattr,
	.render = health_render,
	.entry_timeout = 3600,
};

static int events_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	attr_fill(st, S_IFREG | 0444, fs->uid, fs->gid, (off_t)orch_events_size(fs->eng, EV_GLOBAL, 0),
		  clock_wall_ms(), fs->started_ms);
	return 0;
}

static int events_open(struct fs *fs, struct fs_node n, int flags, struct fs_fh *fh)
{
	if ((flags & O_ACCMODE) != O_RDONLY)
		return -EROFS;
	fh->kind = FH_EVENTS;
	fh->scope = EV_GLOBAL;
	return 0;
}

const struct node_ops node_events = {
	.type = S_IFREG,
	.getattr = events_getattr,
	.open = events_open,
	.entry_timeout = 3600,
};
