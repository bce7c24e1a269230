/* fs/fs.c — the FUSE low-level operations, on the engine thread (fs.h).
 *
 * Each operation that needs engine state is copied into a struct fs_req and
 * executed (exec_req); a change that must be durable replies only after the
 * turn's commit (deferred_reply), and so do reads in a turn with changes not
 * yet committed. */
#include "fs/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "core/plan.h"
#include "core/proc.h"

enum fs_op {
	OP_LOOKUP, OP_GETATTR, OP_SETATTR, OP_READLINK, OP_MKDIR, OP_UNLINK, OP_RMDIR, OP_RENAME,
	OP_OPEN, OP_CREATE, OP_READ, OP_WRITE, OP_FLUSH, OP_READDIR,
	OP_APPEND,		/* lines for messages or events, already validated */
	OP_INBOX,		/* an inbox handle closed: deliver or hand back */
};

struct fs_req {
	struct loop_work work;	/* first: posted to the engine */
	struct orch_done done;
	struct fs *fs;
	fuse_req_t req;
	enum fs_op op;
	fuse_ino_t ino, ino2;
	char *name, *name2;
	struct fuse_file_info fi;
	bool has_fi;
	struct stat attr;
	int to_set;
	mode_t mode;
	unsigned flags;
	size_t size;
	off_t off;
	char *data;
	uid_t uid;
	gid_t gid;
	pid_t pid;		/* the caller's thread */
	int result;		/* deferred: 0 / byte count, or -errno */
	struct fuse_entry_param entry;
	struct fs_fh *fh;
	struct line_batch batch;	/* OP_APPEND */
	uint64_t lease;		/* OP_INBOX */
	bool deliver;
	bool no_reply;		/* OP_INBOX from release: already answered */
	bool closing;		/* OP_APPEND from a flush */
};

static void req_free(struct fs_req *rq)
{
	line_batch_release(&rq->batch);
	free(rq->name);
	free(rq->name2);
	free(rq->data);
	free(rq);
}

static struct fs *fs_of(fuse_req_t req) { return fuse_req_userdata(req); }

static void exec_req(struct loop_work *w, void *ctx);

/* Allocate a request for OP; on failure answer ENOMEM and return NULL. */
static struct fs_req *req_new(fuse_req_t req, enum fs_op op, fuse_ino_t ino)
{
	struct fs_req *rq = calloc(1, sizeof(*rq));
	if (!rq) {
		fuse_reply_err(req, ENOMEM);
		return NULL;
	}
	const struct fuse_ctx *c = fuse_req_ctx(req);
	rq->fs = fs_of(req);
	rq->req = req;
	rq->op = op;
	rq->ino = ino;
	rq->uid = c->uid;
	rq->gid = c->gid;
	rq->pid = c->pid;
	rq->work.fn = exec_req;
	return rq;
}

/* every handler runs on the engine thread: execute at once */
static void post(struct fs_req *rq) { exec_req(&rq->work, NULL); }

static bool copy_name(struct fs_req *rq, char **dst, const char *name)
{
	*dst = strdup(name);
	if (*dst)
		return true;
	fuse_reply_err(rq->req, ENOMEM);
	req_free(rq);
	return false;
}

/* ---- engine-thread helpers ---- */

static int node_getattr(struct fs *fs, struct fs_node n, struct stat *st)
{
	const struct node_ops *ops = node_ops_of(n);
	if (!ops || !ops->getattr)
		return -ENOENT;
	int rc = ops->getattr(fs, n, st);
	n.nonce = 0;	/* one number for every inode of a file */
	if (!rc)
		st->st_ino = node_ino(n);
	return rc;
}

static int fill_entry(struct fs *fs, struct fs_node n, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	int rc = node_getattr(fs, n, &e->attr);
	if (rc)
		return rc;
	const struct node_ops *ops = node_ops_of(n);
	e->ino = node_ino(n);
	e->generation = 1;
	e->entry_timeout = ops->entry_timeout;
	e->attr_timeout = ops->attr_timeout;
	return 0;
}

static struct fs_fh *fh_new(struct fs *fs)
{
	struct fs_fh *fh = calloc(1, sizeof(*fh));
	if (!fh)
		return NULL;
	atomic_init(&fh->refs, 1);
	fh->fd = -1;
	fh->fs = fs;
	pthread_mutex_lock(&fs->fh_lock);
	fh->next = fs->fh_list;
	if (fh->next)
		fh->next->prev = fh;
	fs->fh_list = fh;
	pthread_mutex_unlock(&fs->fh_lock);
	return fh;
}

static void req_free(struct fs_req *rq);

/* ---- the inode numbers of a sandbox's messages and events (fs.h) ---- */

static struct fs_nonces *nonces_find(struct fs *fs, struct fs_node n)
{
	for (size_t i = 0; i < fs->nnonces; i++)
		if (fs->nonces[i].type == n.type && fs->nonces[i].id == n.id)
			return &fs->nonces[i];
	return NULL;
}

/* A name the kernel keeps is over: nothing is open on its entry and its
 * timeout has passed (nonce_lock held). */
static void nonces_prune(struct fs *fs, int64_t now)
{
	for (size_t i = 0; i < fs->nnonces;) {
		struct fs_nonces *t = &fs->nonces[i];
		unsigned busy = 0;
		for (unsigned k = 0; k < NODE_NONCES; k++)
			busy += t->open[k];
		if (!busy && now >= t->cached_until)
			*t = fs->nonces[--fs->nnonces];
		else
			i++;
	}
}

/* At lookup: with no writer open, the inode last handed out, and the
 * kernel may keep the name for NODE_APPEND_ENTRY_S (a lone writer, or a
 * shell loop of `echo >>`, then opens it without a LOOKUP). With writers
 * open, the inode last handed out while none of them holds it, else the
 * least used one, and the name is not kept: the dentry is shared, and a
 * lookup answering another inode than the one it holds makes the kernel
 * drop it and look up again, so concurrent lookups must agree (one picked
 * per caller would bounce between them). Returns the entry timeout. */
static double nonce_pick(struct fs *fs, struct fs_node *n)
{
	double timeout = 0;
	int64_t now = clock_mono_ms();
	pthread_mutex_lock(&fs->nonce_lock);
	nonces_prune(fs, now);
	struct fs_nonces *t = nonces_find(fs, *n);
	unsigned busy = 0;
	for (unsigned k = 0; t && k < NODE_NONCES; k++)
		busy += t->open[k];
	if (!t) {
		struct fs_nonces *v = realloc(fs->nonces, (fs->nnonces + 1) * sizeof(*v));
		if (v) {
			fs->nonces = v;
			t = &v[fs->nnonces++];
			*t = (struct fs_nonces){ .type = n->type, .id = n->id };
		}
	}
	n->nonce = 0;
	if (t && t->open[t->last]) {
		for (unsigned k = 1; k < NODE_NONCES; k++)
			if (t->open[k] < t->open[n->nonce])
				n->nonce = k;
		t->last = n->nonce;
	} else if (t) {
		n->nonce = t->last;
	}
	if (t && !busy) {
		/* the kernel counts from the reply, a little later: a margin */
		timeout = NODE_APPEND_ENTRY_S;
		t->cached_until = now + NODE_APPEND_ENTRY_S * 1000 + 100;
	} else if (t) {
		t->cached_until = 0;	/* this reply's timeout 0 replaces the kernel's */
	}
	pthread_mutex_unlock(&fs->nonce_lock);
	return timeout;
}

/* a writer opened FH: count it on its inode. A second writer on the inode
 * the kernel keeps the name of: have the kernel forget the name (inval
 * thread), so that the writers after it look up and spread out. */
static void nonce_hold(struct fs *fs, struct fs_fh *fh)
{
	int64_t now = clock_mono_ms();
	bool forget = false;
	pthread_mutex_lock(&fs->nonce_lock);
	struct fs_nonces *t = nonces_find(fs, fh->node);
	if (!t) {
		struct fs_nonces *v = realloc(fs->nonces, (fs->nnonces + 1) * sizeof(*v));
		if (v) {
			fs->nonces = v;
			t = &v[fs->nnonces++];
			*t = (struct fs_nonces){ .type = fh->node.type, .id = fh->node.id,
						 .last = fh->node.nonce % NODE_NONCES };
		}
	}
	if (t) {
		unsigned k = fh->node.nonce % NODE_NONCES;
		if (t->open[k] && k == t->last && now < t->cached_until) {
			forget = true;
			t->cached_until = 0;
		}
		t->open[k]++;
		atomic_store(&fh->nonce_held, true);
	}
	pthread_mutex_unlock(&fs->nonce_lock);
	if (forget) {
		fs->appendable_forgets++;
		fs_inval_entry(fs, node_ino((struct fs_node){ NT_SB, fh->node.id, 0 }),
			       fh->node.type == NT_SB_MESSAGES ? "messages" : "events");
	}
}

/* its release (not its first flush: a shell's `>>` dup2()s and closes
 * the file it opened before it writes) */
static void nonce_drop(struct fs_fh *fh)
{
	if (!atomic_exchange(&fh->nonce_held, false))
		return;
	struct fs *fs = fh->fs;
	pthread_mutex_lock(&fs->nonce_lock);
	struct fs_nonces *t = nonces_find(fs, fh->node);
	if (t) {
		t->open[fh->node.nonce % NODE_NONCES]--;
		nonces_prune(fs, clock_mono_ms());
	}
	pthread_mutex_unlock(&fs->nonce_lock);
}

/* ---- plan files open for writing (fs.h: struct fs_planw) ---- */

static struct fs_planw **planw_slot(struct fs *fs, int64_t id)
{
	struct fs_planw **pp = &fs->planw[(uint64_t)id & (fs->planw_cap - 1)];
	while (*pp && (*pp)->id != id)
		pp = &(*pp)->next;
	return pp;
}

static struct fs_planw *planw_find(struct fs *fs, int64_t id)
{
	return fs->planw_cap ? *planw_slot(fs, id) : NULL;
}

/* A writable handle FH of a plan file opened: hold its file's entry. */
static int planw_hold(struct fs *fs, struct fs_fh *fh)
{
	struct fs_planw *w = planw_find(fs, fh->node.id);
	if (!w) {
		if (fs->nplanw >= fs->planw_cap) {
			/* at most one entry per chain on average: double and rehash */
			size_t cap = fs->planw_cap ? fs->planw_cap * 2 : 16;
			struct fs_planw **t = calloc(cap, sizeof(*t));
			if (!t)
				return -ENOMEM;
			for (size_t i = 0; i < fs->planw_cap; i++)
				for (struct fs_planw *e = fs->planw[i], *next; e; e = next) {
					next = e->next;
					e->next = t[(uint64_t)e->id & (cap - 1)];
					t[(uint64_t)e->id & (cap - 1)] = e;
				}
			free(fs->planw);
			fs->planw = t;
			fs->planw_cap = cap;
		}
		if (!(w = calloc(1, sizeof(*w))))
			return -ENOMEM;
		w->id = fh->node.id;
		struct fs_planw **pp = planw_slot(fs, w->id);
		*pp = w;
		fs->nplanw++;
	}
	w->refs++;
	fh->pw = w;
	return 0;
}

static void planw_drop(struct fs_fh *fh)
{
	struct fs_planw *w = fh->pw;
	fh->pw = NULL;
	if (!w || --w->refs)
		return;
	struct fs_planw **pp = planw_slot(fh->fs, w->id);
	*pp = w->next;
	fh->fs->nplanw--;
	free(w);
}

static void fh_destroy(struct fs_fh *fh)
{
	fs_poll_drop(fh);
	if (fh->counted)
		orch_handle_put(fh->fs->eng, fh->opener);
	nonce_drop(fh);
	planw_drop(fh);
	if (fh->settle)
		req_free(fh->settle);
	if (fh->lines) {
		line_asm_release(fh->lines);
		orch_free(fh->lines);
		pthread_mutex_destroy(&fh->lines_lock);
	}
	if (fh->kind == FH_DISK && fh->fd >= 0)
		close(fh->fd);
	orch_free(fh->buf);
	free(fh);
}

void fs_free_handles(struct fs *fs)
{
	pthread_mutex_lock(&fs->fh_lock);
	while (fs->fh_list) {
		struct fs_fh *fh = fs->fh_list;
		fs->fh_list = fh->next;
		fh_destroy(fh);
	}
	pthread_mutex_unlock(&fs->fh_lock);
	free(fs->nonces);
	fs->nonces = NULL;
	fs->nnonces = 0;
	free(fs->planw);	/* its entries went with the handles */
	fs->planw = NULL;
	fs->planw_cap = fs->nplanw = 0;
}

static void fh_free(struct fs_fh *fh)
{
	if (!fh || atomic_fetch_sub(&fh->refs, 1) != 1)
		return;
	pthread_mutex_lock(&fh->fs->fh_lock);
	if (fh->prev)
		fh->prev->next = fh->next;
	else
		fh->fs->fh_list = fh->next;
	if (fh->next)
		fh->next->prev = fh->prev;
	pthread_mutex_unlock(&fh->fs->fh_lock);
	fh_destroy(fh);
}

void fs_fh_put(struct fs_fh *fh) { fh_free(fh); }

/* Replies that wait for the commit of the turn that made the change. */
static void deferred_reply(struct orch_done *d, int commit_rc)
{
	struct fs_req *rq = (struct fs_req *)((char *)d - offsetof(struct fs_req, done));
	int rc = rq->result;
	if (commit_rc && rc >= 0)
		rc = commit_rc;
	if (rc < 0) {
		if (rq->fh)
			fh_free(rq->fh);
		fuse_reply_err(rq->req, -rc);
		req_free(rq);
		return;
	}
	switch (rq->op) {
	case OP_MKDIR:
		fuse_reply_entry(rq->req, &rq->entry);
		break;
	case OP_CREATE:
		rq->fi.fh = (uint64_t)(uintptr_t)rq->fh;
		if (fuse_reply_create(rq->req, &rq->entry, &rq->fi))
			fh_free(rq->fh);	/* the caller was interrupted */
		break;
	case OP_WRITE:
		fuse_reply_write(rq->req, (size_t)rc);
		break;
	case OP_APPEND:
		if (rq->closing)
			fuse_reply_err(rq->req, 0);
		else
			fuse_reply_write(rq->req, (size_t)rc);
		break;
	case OP_SETATTR:
		fuse_reply_attr(rq->req, &rq->attr, 0);
		break;
	default:
		fuse_reply_err(rq->req, 0);
	}
	req_free(rq);
}

static void defer(struct fs_req *rq, int result)
{
	rq->result = result;
	rq->done.fn = deferred_reply;
	orch_after_commit(rq->fs->eng, &rq->done);
}

/* ---- permissions ----
 * Mounted with -o default_permissions the kernel checks modes and owners from
 * our attributes before we see a request. Without it (allow_other alone) the
 * same rules are ours to apply: these keep other users from writing, removing
 * or taking (an inbox) what is not theirs. */

#define MAY_READ 4
#define MAY_WRITE 2

static bool may(const struct fs_req *rq, const struct stat *st, int want)
{
	if (rq->uid == 0)
		return true;
	mode_t m = st->st_mode;
	if (rq->uid == st->st_uid)
		return (m >> 6) & want;
	if (rq->gid == st->st_gid)
		return (m >> 3) & want;
	return m & want;
}

/* In a sticky directory (plans/, sandboxes/) only the owner (or root) may
 * remove or replace an entry. */
static bool may_remove(const struct fs_req *rq, uid_t owner)
{
	return rq->uid == 0 || rq->uid == owner;
}

/* ---- the operations, on the engine thread ---- */

static void do_lookup(struct fs_req *rq)
{
	struct fs_node dir = ino_node(rq->ino), child;
	const struct node_ops *ops = node_ops_of(dir);
	if (!ops || !ops->lookup) {
		fuse_reply_err(rq->req, ops ? ENOTDIR : ENOENT);
		return;
	}
	child.nonce = 0;
	int rc = ops->lookup(rq->fs, dir, rq->name, &child);
	struct fuse_entry_param e;
	double keep = 0;
	if (!rc && node_appendable(child.type))
		keep = nonce_pick(rq->fs, &child);
	if (!rc)
		rc = fill_entry(rq->fs, child, &e);
	if (!rc && node_appendable(child.type))
		e.entry_timeout = keep;
	if (rc)
		fuse_reply_err(rq->req, -rc);
	else
		fuse_reply_entry(rq->req, &e);
}

static void do_getattr(struct fs_req *rq)
{
	struct fs_node n = ino_node(rq->ino);
	struct stat st;
	int rc = node_getattr(rq->fs, n, &st);
	if (rc)
		fuse_reply_err(rq->req, -rc);
	else
		fuse_reply_attr(rq->req, &st, node_ops_of(n)->attr_timeout);
}

/* Is the caller of RQ in group GID (its own, or one of its others)? */
static bool in_group(const struct fs_req *rq, gid_t gid)
{
	if (gid == rq->gid)
		return true;
	gid_t some[64], *list = some;
	int cap = (int)ARRAY_SIZE(some);
	int n = fuse_req_getgroups(rq->req, cap, some);
	if (n > cap && (list = malloc((size_t)n * sizeof(*list)))) {
		cap = n;
		n = fuse_req_getgroups(rq->req, cap, list);
	}
	if (n > cap)
		n = cap;	/* more than it had room for: the first CAP */
	bool in = false;
	for (int i = 0; list && i < n && !in; i++)
		in = list[i] == gid;
	if (list != some)
		free(list);
	return in;
}

static int setattr_planfile(struct fs_req *rq, struct fs_node n)
{
	struct orch_engine *eng = rq->fs->eng;
	struct orch_pentry own;
	int rc = orch_plans_get(eng, PK_FILE, n.id, &own);
	if (rc)
		return rc;
	bool owner = rq->uid == 0 || rq->uid == own.uid;
	if ((rq->to_set & FUSE_SET_ATTR_MODE) && !owner)
		return -EPERM;
	if ((rq->to_set & FUSE_SET_ATTR_UID) && rq->uid != 0 && rq->attr.st_uid != own.uid)
		return -EPERM;
	/* the owner may give it a group they are in (the kernel checks that
	 * only with default_permissions) */
	if ((rq->to_set & FUSE_SET_ATTR_GID) &&
	    (!owner || (rq->uid != 0 && rq->attr.st_gid != own.gid && !in_group(rq, rq->attr.st_gid))))
		return -EPERM;
	if ((rq->to_set & (FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) && !owner &&
	    !(own.mode & 0002))
		return -EACCES;
	struct fs_fh *fh = rq->has_fi ? (struct fs_fh *)(uintptr_t)rq->fi.fh : NULL;
	if (rq->to_set & FUSE_SET_ATTR_SIZE)
		rc = orch_plans_truncate(eng, n.id, fh && fh->kind == FH_DISK ? fh->fd : -1, rq->attr.st_size);
	if (!rc && (rq->to_set & FUSE_SET_ATTR_MODE))
		rc = orch_plans_chmod(eng, n.id, rq->attr.st_mode);
	if (!rc && (rq->to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
		struct orch_pentry p;
		rc = orch_plans_get(eng, PK_FILE, n.id, &p);
		if (!rc)
			rc = orch_plans_chown(eng, n.id,
					      (rq->to_set & FUSE_SET_ATTR_UID) ? rq->attr.st_uid : p.uid,
					      (rq->to_set & FUSE_SET_ATTR_GID) ? rq->attr.st_gid : p.gid);
	}
	if (!rc && (rq->to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))) {
		struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };
		if (rq->to_set & FUSE_SET_ATTR_ATIME_NOW)
			ts[0].tv_nsec = UTIME_NOW;
		else if (rq->to_set & FUSE_SET_ATTR_ATIME)
			ts[0] = rq->attr.st_atim;
		if (rq->to_set & FUSE_SET_ATTR_MTIME_NOW)
			ts[1].tv_nsec = UTIME_NOW;
		else if (rq->to_set & FUSE_SET_ATTR_MTIME)
			ts[1] = rq->attr.st_mtim;
		rc = orch_plans_utimens(eng, n.id, ts);
	}
	return rc;
}

static void do_setattr(struct fs_req *rq)
{
	struct fs_node n = ino_node(rq->ino);
	int rc;
	if (n.type == NT_PLANFILE) {
		rc = setattr_planfile(rq, n);
	} else if ((n.type == NT_RUN_CTL || n.type == NT_SB_CTL || n.type == NT_STEP_CTL ||
		    n.type == NT_SB_MESSAGES ||
		    n.type == NT_SB_EVENTS) &&
		   rq->to_set == FUSE_SET_ATTR_SIZE) {
		rc = 0;	/* `>` on a file that takes appends or commands truncates nothing */
	} else {
		const struct node_ops *ops = node_ops_of(n);
		rc = !ops ? -ENOENT : (ops->type == S_IFDIR ? -EACCES : -EROFS);
	}
	if (!rc)
		rc = node_getattr(rq->fs, n, &rq->attr);
	defer(rq, rc);
}

static void do_readlink(struct fs_req *rq)
{
	struct fs_node n = ino_node(rq->ino);
	struct sbuf sb = SBUF_INIT;
	int rc;
	if (n.type == NT_PLANRUN) {
		rc = orch_plans_generated(rq->fs->eng, PK_RUNLINK, n.id, &sb);
	} else if (n.type == NT_SB_WORKSPACE) {
		char *ws = orch_sandbox_workspace(rq->fs->eng, n.id);
		rc = ws ? 0 : -ENOENT;
		if (ws)
			sbuf_adds(&sb, ws);
		orch_free(ws);
	} else {
		rc = -EINVAL;
	}
	if (!rc && sbuf_failed(&sb))
		rc = -ENOMEM;
	if (rc)
		fuse_reply_err(rq->req, -rc);
	else
		fuse_reply_readlink(rq->req, sbuf_str(&sb));
	sbuf_release(&sb);
}

static void do_mkdir(struct fs_req *rq)
{
	struct fs_node dir = ino_node(rq->ino);
	int rc = -EACCES;
	if (dir.type == NT_SANDBOXES) {
		struct orch_sandbox_attr a;
		rc = orch_sandbox_create(rq->fs->eng, rq->name, rq->uid, rq->gid, &a);
		if (!rc)
			rc = fill_entry(rq->fs, (struct fs_node){ NT_SB, a.rowid, 0 }, &rq->entry);
	} else if (!node_ops_of(dir) || !node_ops_of(dir)->lookup) {
		rc = -ENOTDIR;
	}
	defer(rq, rc);
}

static void do_unlink(struct fs_req *rq)
{
	struct fs_node dir = ino_node(rq->ino);
	int rc = -EACCES;
	if (dir.type == NT_PLANS) {
		struct orch_pentry p;
		rc = orch_plans_lookup(rq->fs->eng, rq->name, &p);
		if (!rc)
			rc = may_remove(rq, p.uid) ? orch_plans_unlink(rq->fs->eng, rq->name) : -EACCES;
	}
	defer(rq, rc);
}

static void do_rmdir(struct fs_req *rq)
{
	struct fs_node dir = ino_node(rq->ino);
	int rc = -EACCES;
	if (dir.type == NT_RUNS) {
		struct orch_run_attr a;
		rc = orch_run_by_name(rq->fs->eng, rq->name, &a);
		if (!rc)
			rc = may_remove(rq, a.uid) ? orch_run_remove(rq->fs->eng, a.rowid) : -EACCES;
	} else if (dir.type == NT_SANDBOXES) {
		struct orch_sandbox_attr a;
		rc = orch_sandbox_by_name(rq->fs->eng, rq->name, &a);
		if (!rc)
			rc = may_remove(rq, a.uid) ? orch_sandbox_remove(rq->fs->eng, a.rowid) : -EACCES;
	}
	defer(rq, rc);
}

static void do_rename(struct fs_req *rq)
{
	struct fs_node from = ino_node(rq->ino), to = ino_node(rq->ino2);
	int rc;
	if (from.type != to.type)
		rc = -EXDEV;
	else if (from.type != NT_PLANS)
		rc = -EACCES;
	else {
		struct orch_pentry src, dst;
		rc = orch_plans_lookup(rq->fs->eng, rq->name, &src);
		if (!rc && (!may_remove(rq, src.uid) ||
			    (orch_plans_lookup(rq->fs->eng, rq->name2, &dst) == 0 && !may_remove(rq, dst.uid))))
			rc = -EACCES;
		bool submitted = false;
		if (!rc)
			rc = orch_plans_rename(rq->fs->eng, rq->name, rq->name2, rq->flags, rq->uid, rq->gid,
					       &submitted);
		/* what the file's open handles wrote so far is submitted: their
		 * closes submit it no more (only what they write after) */
		struct fs_planw *w = submitted ? planw_find(rq->fs, src.id) : NULL;
		if (w)
			w->gen++;
	}
	defer(rq, rc);
}

/* Fill FH for node N opened with FLAGS. */
static int open_node(struct fs *fs, struct fs_node n, int flags, struct fs_fh *fh,
		     struct fuse_file_info *fi)
{
	const struct node_ops *ops = node_ops_of(n);
	if (!ops)
		return -ENOENT;
	if (ops->type == S_IFDIR)
		return -EISDIR;
	fh->node = n;
	fh->fd = -1;
	int rc;
	if (ops->render) {
		if ((flags & O_ACCMODE) != O_RDONLY)
			return -EROFS;
		struct sbuf sb = SBUF_INIT;
		rc = ops->render(fs, n, &sb);
		if (!rc && sbuf_failed(&sb))
			rc = -ENOMEM;
		if (!rc) {
			fs->rendered = &sb;
			rc = node_getattr(fs, n, &fh->st);
			fs->rendered = NULL;
		}
		if (rc) {
			sbuf_release(&sb);
			return rc;
		}
		fh->kind = FH_SNAP;
		fh->buf = sbuf_detach(&sb, &fh->len);
		if (!fh->buf)
			return -ENOMEM;
		if (n.type == NT_ATTENTION)	/* a poll() wakes when the list changes */
			fh->att_gen = orch_attention_gen(fs->eng);
	} else if (ops->open) {
		if ((rc = ops->open(fs, n, flags, fh)))
			return rc;
	} else {
		return -EACCES;
	}
	bool writing = (flags & O_ACCMODE) != O_RDONLY;
	if (n.type == NT_PLANFILE && writing && (rc = planw_hold(fs, fh)))
		return rc;
	/* files whose bytes change bypass the page cache: every read is ours.
	 * So do plan files opened for writing: their writes must come from
	 * the writer (a page of a shared mapping is written back later by the
	 * kernel, as no one: such a mapping is refused, ENODEV) */
	fi->direct_io = n.type != NT_PLANFILE || writing;
	fi->keep_cache = 0;
	if (fh->kind == FH_CTL)
		fi->nonseekable = 1;
	/* closing what was opened to read asks nothing of us (but an inbox's
	 * first close, which settles its messages): no FLUSH round trip */
	fi->noflush = !writing && fh->kind != FH_INBOX;
	if (fh->kind == FH_INBOX && !fh->len)
		atomic_store(&fh->read_to_end, true);
	return 0;
}

/* Hand an inbox's messages back to the queue now (engine thread). */
static void inbox_give_back(struct fs *fs, struct fs_fh *fh)
{
	if (fh && fh->kind == FH_INBOX && fh->lease && !atomic_exchange(&fh->settled, true))
		orch_inbox_done(fs->eng, fh->node.id, fh->lease, false);
}

/* May the caller open N so? Writes need write permission; taking an inbox's
 * messages needs read permission, which only its owner has. */
static int open_allowed(struct fs_req *rq, struct fs_node n)
{
	const struct node_ops *ops = node_ops_of(n);
	bool writing = (rq->fi.flags & O_ACCMODE) != O_RDONLY;
	if (!ops || ops->render || (!writing && n.type != NT_SB_INBOX))
		return 0;	/* snapshots refuse writes themselves (EROFS) */
	struct stat st;
	int rc = node_getattr(rq->fs, n, &st);
	if (rc)
		return rc;
	return may(rq, &st, writing ? MAY_WRITE : MAY_READ) ? 0 : -EACCES;
}

/* A new handle of RQ's caller, who acts through it (fs_fh.uid) and holds it
 * against their limits.open_files: NULL with *RC -EDQUOT or -ENOMEM. */
static struct fs_fh *fh_new_as(struct fs_req *rq, int *rc)
{
	if ((*rc = orch_handle_take(rq->fs->eng, rq->uid)))
		return NULL;
	struct fs_fh *fh = fh_new(rq->fs);
	if (!fh) {
		orch_handle_put(rq->fs->eng, rq->uid);
		*rc = -ENOMEM;
		return NULL;
	}
	fh->uid = fh->opener = rq->uid;
	fh->gid = rq->gid;
	fh->counted = true;
	return fh;
}

static void do_open(struct fs_req *rq)
{
	int rc = open_allowed(rq, ino_node(rq->ino));
	if (rc) {
		fuse_reply_err(rq->req, -rc);
		return;
	}
	struct fs_fh *fh = fh_new_as(rq, &rc);
	if (fh)
		rc = open_node(rq->fs, ino_node(rq->ino), rq->fi.flags, fh, &rq->fi);
	if (!rc && fh->kind == FH_INBOX && fh->lease) {
		fh->settle = calloc(1, sizeof(*fh->settle));
		if (!fh->settle)
			rc = -ENOMEM;
	}
	if (rc) {
		inbox_give_back(rq->fs, fh);
		fh_free(fh);
		fuse_reply_err(rq->req, -rc);
		return;
	}
	rq->fi.fh = (uint64_t)(uintptr_t)fh;
	if (node_appendable(fh->node.type) && (rq->fi.flags & O_ACCMODE) != O_RDONLY)
		nonce_hold(rq->fs, fh);
	if (fuse_reply_open(rq->req, &rq->fi)) {
		inbox_give_back(rq->fs, fh);	/* the opener was interrupted */
		fh_free(fh);
	}
}

static void do_create(struct fs_req *rq)
{
	struct fs_node dir = ino_node(rq->ino);
	int rc = -EACCES;
	if (dir.type == NT_PLANS) {
		struct orch_pentry p;
		rc = orch_plans_create(rq->fs->eng, rq->name, rq->mode & 07777, rq->uid, rq->gid, &p);
		struct fs_node n = { NT_PLANFILE, p.id, 0 };
		if (!rc)
			rc = fill_entry(rq->fs, n, &rq->entry);
		if (!rc) {
			rq->fh = fh_new_as(rq, &rc);
			if (rq->fh)
				rc = open_node(rq->fs, n, rq->fi.flags & ~O_TRUNC, rq->fh, &rq->fi);
		}
	}
	defer(rq, rc);
}

static void do_read_events(struct fs_req *rq)
{
	struct fs_fh *fh = (struct fs_fh *)(uintptr_t)rq->fi.fh;
	struct sbuf sb = SBUF_INIT;
	int rc = orch_events_read(rq->fs->eng, fh->scope, fh->node.id, rq->off, rq->size, &sb);
	if (rc) {
		fuse_reply_err(rq->req, -rc);
	} else {
		fh->pos = rq->off + (int64_t)sb.len;	/* what a poll() compares with */
		fuse_reply_buf(rq->req, sb.buf, sb.len);
	}
	sbuf_release(&sb);
}

/* A command to a step's ctl: a decision, which depends on who writes
 * (SPEC §8): the handle's identity (fh_write_as), with the groups of the
 * writing process when that process is the handle's user. */
static int step_ctl(struct fs_req *rq, struct fs_fh *fh)
{
	gid_t some[64], *list = some;
	int n = 0;
	if (fuse_req_ctx(rq->req)->uid == fh->uid) {
		int cap = (int)ARRAY_SIZE(some);
		n = fuse_req_getgroups(rq->req, cap, some);
		if (n > cap && (list = malloc((size_t)n * sizeof(*list)))) {
			cap = n;
			n = fuse_req_getgroups(rq->req, cap, list);
		}
		if (n > cap)
			n = cap;
		if (n < 0 || !list)
			n = 0;
	}
	struct orch_who who = { fh->uid, fh->gid, list ? list : some, (size_t)n };
	int rc = orch_step_ctl(rq->fs->eng, fh->node.id, rq->data, rq->size, &who);
	if (list != some)
		free(list);
	return rc;
}

static void do_write_ctl(struct fs_req *rq)
{
	struct fs_fh *fh = (struct fs_fh *)(uintptr_t)rq->fi.fh;
	int rc = -EINVAL;
	if (fh->node.type == NT_RUN_CTL)
		rc = orch_run_ctl(rq->fs->eng, fh->node.id, rq->data, rq->size);
	else if (fh->node.type == NT_SB_CTL)
		rc = orch_sandbox_ctl(rq->fs->eng, fh->node.id, rq->data, rq->size);
	else if (fh->node.type == NT_STEP_CTL)
		rc = step_ctl(rq, fh);
	defer(rq, rc ? rc : (int)rq->size);
}

/* Record validated lines; the reply (the write's size, or 0 for a flush)
 * waits for the durable commit. */
static void do_append(struct fs_req *rq)
{
	struct fs_node n = ino_node(rq->ino);
	int rc = n.type == NT_SB_MESSAGES
			 ? orch_messages_append(rq->fs->eng, n.id, &rq->batch)
			 : orch_events_post(rq->fs->eng, n.id, &rq->batch, rq->pid);
	defer(rq, rc ? rc : (int)rq->size);
}

static void do_inbox(struct fs_req *rq)
{
	struct fs_node n = ino_node(rq->ino);
	int rc = orch_inbox_done(rq->fs->eng, n.id, rq->lease, rq->deliver);
	if (rq->no_reply) {
		req_free(rq);
		return;
	}
	defer(rq, rc);
}

/* The first close of a plan handle that wrote since its file's last
 * submission: submit as the handle's identity (ll_flush put it in RQ; the
 * FLUSH's own uid is whoever closes a descriptor first). */
static void do_flush(struct fs_req *rq)
{
	struct fs_fh *fh = (struct fs_fh *)(uintptr_t)rq->fi.fh;
	int rc = orch_plans_written(rq->fs->eng, fh->node.id, rq->uid, rq->gid);
	/* submitted (or refused with NAME.error): the other handles' writes
	 * so far went with it. Another failure (ENOSPC...) submitted nothing,
	 * and leaves their closes to try. */
	if (fh->pw && (rc == 0 || rc == -EINVAL || rc == -EACCES))
		fh->pw->gen++;
	defer(rq, rc);
}

static void do_readdir(struct fs_req *rq)
{
	struct fs_node dir = ino_node(rq->ino);
	const struct node_ops *ops = node_ops_of(dir);
	if (!ops || !ops->readdir) {
		fuse_reply_err(rq->req, ops ? ENOTDIR : ENOENT);
		return;
	}
	struct fs_dirbuf db = { rq->req, malloc(rq->size), rq->size, 0 };
	if (!db.buf) {
		fuse_reply_err(rq->req, ENOMEM);
		return;
	}
	uint64_t cookie = (uint64_t)rq->off;
	int rc = 0;
	if (cookie < 1 && dirbuf_add(&db, ".", dir, S_IFDIR, 1))
		goto reply;
	if (cookie < 2 && dirbuf_add(&db, "..", (struct fs_node){ NT_ROOT, 0, 0 }, S_IFDIR, 2))
		goto reply;
	rc = ops->readdir(rq->fs, dir, cookie, &db);
reply:
	if (rc)
		fuse_reply_err(rq->req, -rc);
	else
		fuse_reply_buf(rq->req, db.buf, db.len);
	free(db.buf);
}

/* Reads answer from committed state only. */
static void exec_read(struct fs_req *rq)
{
	switch (rq->op) {
	case OP_LOOKUP: do_lookup(rq); break;
	case OP_GETATTR: do_getattr(rq); break;
	case OP_READLINK: do_readlink(rq); break;
	case OP_OPEN: do_open(rq); break;
	case OP_READ: {
		struct fs_fh *fh = (struct fs_fh *)(uintptr_t)rq->fi.fh;
		if (fh->kind == FH_WAIT)
			fs_wait_read(rq->fs, rq->req, fh, rq->size, rq->off);
		else if (fh->kind == FH_SNAP)
			fs_attention_reread(rq->fs, rq->req, fh, rq->size);
		else
			do_read_events(rq);
		break;
	}
	case OP_READDIR: do_readdir(rq); break;
	default: break;
	}
	req_free(rq);
}

static void exec_read_committed(struct orch_done *d, int commit_rc)
{
	(void)commit_rc;
	exec_read((struct fs_req *)((char *)d - offsetof(struct fs_req, done)));
}

static void exec_req(struct loop_work *w, void *ctx)
{
	struct fs_req *rq = (struct fs_req *)w;
	(void)ctx;
	switch (rq->op) {
	case OP_LOOKUP:
	case OP_GETATTR:
	case OP_READLINK:
	case OP_OPEN:
	case OP_READ:
	case OP_READDIR:
		/* an inbox hands its messages over to be acted on: only once
		 * every message it may hand is durable (after any sync in flight) */
		if (rq->op == OP_OPEN && ino_node(rq->ino).type == NT_SB_INBOX) {
			rq->done.fn = exec_read_committed;
			orch_after_commit(rq->fs->eng, &rq->done);
			return;
		}
		/* this turn changed something (a step ended, say): answer once
		 * that is committed, so no reader sees what a failed commit undoes
		 * (what a sync in flight covers may be read: a machine crash could
		 * still take it back, as it could a message not yet written) */
		if (orch_uncommitted(rq->fs->eng)) {
			rq->done.fn = exec_read_committed;
			orch_after_commit_read(rq->fs->eng, &rq->done);
		} else {
			exec_read(rq);
		}
		return;
	/* reading an inbox writes nothing: its deliveries name no one */
	case OP_INBOX: do_inbox(rq); return;
	default: break;
	}
	/* the rest write to the tree, as RQ's identity (for appends and
	 * flushes, the handle's: fh_write_as): the events they cause carry
	 * its name. They reply after the commit, and free the request then */
	struct orch_engine *eng = rq->fs->eng;
	orch_actor_begin(eng, rq->uid);
	switch (rq->op) {
	case OP_SETATTR: do_setattr(rq); break;
	case OP_MKDIR: do_mkdir(rq); break;
	case OP_UNLINK: do_unlink(rq); break;
	case OP_RMDIR: do_rmdir(rq); break;
	case OP_RENAME: do_rename(rq); break;
	case OP_CREATE: do_create(rq); break;
	case OP_WRITE: do_write_ctl(rq); break;
	case OP_FLUSH: do_flush(rq); break;
	case OP_APPEND: do_append(rq); break;
	default: req_free(rq); break;
	}
	orch_actor_end(eng);
}

/* ---- the channel ---- */

/* requests taken per wake-up: the writes among them share a commit; then
 * the loop's other work (child exits, timers) gets its turn */
#define CHAN_BATCH 64

static void chan_cb(struct loop_watch *w, uint32_t events)
{
	struct fs *fs = w->data;
	for (int i = 0; i < CHAN_BATCH; i++) {
		int r = fuse_session_receive_buf(fs->se, &fs->rbuf);
		if (r == -EAGAIN)
			return;
		if (r == -EINTR || r == -ENOENT)	/* ENOENT: an interrupted request */
			continue;
		if (r <= 0 || fuse_session_exited(fs->se)) {
			/* unmounted, or the connection was aborted */
			orch_engine_unwatch(fs->eng, w);
			fs->chan.fd = -1;
			if (fs->on_gone)
				fs->on_gone(fs->on_gone_arg);
			return;
		}
		if (!(fs->rbuf.flags & FUSE_BUF_IS_FD) && (size_t)r >= sizeof(struct fuse_in_header)) {
			uint32_t opc = ((const struct fuse_in_header *)fs->rbuf.mem)->opcode;
			if (opc < FS_KREQ_OPS)
				fs->kreq[opc]++;
		}
		fuse_session_process_buf(fs->se, &fs->rbuf);
		if (fs->wait_reap)
			fs_wait_reap(fs);
	}
}

int fs_attach(struct fs *fs, void (*on_gone)(void *), void *arg)
{
	int fd = fuse_session_fd(fs->se);
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	fs->on_gone = on_gone;
	fs->on_gone_arg = arg;
	orch_engine_on_change(fs->eng, fs_on_change, fs);
	fs->chan = (struct loop_watch){ .fd = fd, .cb = chan_cb, .data = fs };
	return orch_engine_watch(fs->eng, &fs->chan);
}

void fs_detach(struct fs *fs)
{
	free(fs->rbuf.mem);
	fs->rbuf.mem = NULL;
}

/* ---- the handlers ---- */

static void ll_init(void *userdata, struct fuse_conn_info *conn)
{
	/* O_TRUNC arrives with open(): `> plans/x.json` and `echo cancel > ctl`
	 * need no separate setattr */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
#ifdef FUSE_CAP_DIRECT_IO_ALLOW_MMAP
	/* no shared mapping of a direct_io file (plan files opened for
	 * writing): its pages would be written back by no one (fh_write_as) */
	conn->want &= ~(unsigned)FUSE_CAP_DIRECT_IO_ALLOW_MMAP;
#endif
}

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_req *rq = req_new(req, OP_LOOKUP, parent);
	if (rq && copy_name(rq, &rq->name, name))
		post(rq);
}

static void ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	/* inode numbers are row ids: nothing is kept per inode */
	fuse_reply_none(req);
}

static void ll_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	fuse_reply_none(req);
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_fh *fh = fi ? (struct fs_fh *)(uintptr_t)fi->fh : NULL;
	if (fh && (fh->kind == FH_SNAP || fh->kind == FH_INBOX)) {
		/* fstat of an open snapshot: its attributes at open, no store query */
		atomic_fetch_add(&fh->refs, 1);
		fuse_reply_attr(req, &fh->st, 0);
		fh_free(fh);
		return;
	}
	struct fs_req *rq = req_new(req, OP_GETATTR, ino);
	if (rq)
		post(rq);
}

static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct fs_req *rq = req_new(req, OP_SETATTR, ino);
	if (!rq)
		return;
	rq->attr = *attr;
	rq->to_set = to_set;
	if (fi) {
		rq->fi = *fi;
		rq->has_fi = true;
	}
	post(rq);
}

static void ll_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs_req *rq = req_new(req, OP_READLINK, ino);
	if (rq)
		post(rq);
}

static void ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct fs_req *rq = req_new(req, OP_MKDIR, parent);
	if (rq && copy_name(rq, &rq->name, name)) {
		rq->mode = mode;
		post(rq);
	}
}

/* No symlinks, device nodes, FIFOs or hard links in the tree. */
static void ll_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, EPERM);
}

static void ll_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	fuse_reply_err(req, EPERM);
}

static void ll_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	fuse_reply_err(req, EPERM);
}

static void ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_req *rq = req_new(req, OP_UNLINK, parent);
	if (rq && copy_name(rq, &rq->name, name))
		post(rq);
}

static void ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_req *rq = req_new(req, OP_RMDIR, parent);
	if (rq && copy_name(rq, &rq->name, name))
		post(rq);
}

static void ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct fs_req *rq = req_new(req, OP_RENAME, parent);
	if (!rq || !copy_name(rq, &rq->name, name) || !copy_name(rq, &rq->name2, newname))
		return;
	rq->ino2 = newparent;
	rq->flags = flags;
	post(rq);
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_req *rq = req_new(req, OP_OPEN, ino);
	if (!rq)
		return;
	rq->fi = *fi;
	post(rq);
}

static void ll_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct fs_req *rq = req_new(req, OP_CREATE, parent);
	if (!rq || !copy_name(rq, &rq->name, name))
		return;
	rq->mode = mode;
	rq->fi = *fi;
	post(rq);
}

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fs_fh *fh = (struct fs_fh *)(uintptr_t)fi->fh;
	switch (fh->kind) {
	case FH_WAIT:
		if (!fh->buf) {	/* the run has not finished yet (as far as we know) */
			struct fs_req *rq = req_new(req, OP_READ, ino);
			if (!rq)
				return;
			rq->fi = *fi;
			rq->size = size;
			rq->off = off;
			post(rq);
			return;
		}
		__attribute__((fallthrough));	/* its final status, rendered */
	case FH_SNAP:
	case FH_INBOX: {
		if (fh->node.type == NT_ATTENTION && off == 0 && fh->att_gen != orch_attention_gen(fs_of(req)->eng)) {
			/* MOUNT/attention read again from its start after the list
			 * changed: the list now (fs/poll.c) */
			struct fs_req *rq = req_new(req, OP_READ, ino);
			if (!rq)
				return;
			rq->fi = *fi;
			rq->size = size;
			post(rq);
			return;
		}
		if (off < 0 || (size_t)off >= fh->len) {
			if (fh->kind == FH_INBOX)
				atomic_store(&fh->read_to_end, true);
			if (off >= 0)
				fh->pos = off;
			fuse_reply_buf(req, NULL, 0);
			return;
		}
		size_t n = size < fh->len - (size_t)off ? size : fh->len - (size_t)off;
		if (fh->kind == FH_INBOX && (size_t)off + n == fh->len)
			atomic_store(&fh->read_to_end, true);
		fh->pos = off + (int64_t)n;
		atomic_fetch_add(&fh->refs, 1);
		fuse_reply_buf(req, fh->buf + off, n);
		fh_free(fh);
		return;
	}
	case FH_DISK: {
		char *buf = malloc(size ? size : 1);
		if (!buf) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		/* a log: what its cap dropped reads as one line, and a read
		 * that reached the end stops after the last whole line (a line
		 * being written is never handed out half) */
		ssize_t n = fh->lines_only ? logview_read(fh->fd, &fh->lv, buf, size, off, orch_log_cap(fh->fs->eng))
					   : pread(fh->fd, buf, size, off);
		if (n < 0)
			fuse_reply_err(req, fh->lines_only ? (int)-n : errno);
		else
			fuse_reply_buf(req, buf, (size_t)n);
		free(buf);
		return;
	}
	case FH_CTL:
		fuse_reply_buf(req, NULL, 0);
		return;
	case FH_EVENTS: {
		struct fs_req *rq = req_new(req, OP_READ, ino);
		if (!rq)
			return;
		rq->fi = *fi;
		rq->size = size;
		rq->off = off;
		post(rq);
		return;
	}
	}
}

/* A write through FH by the caller of REQ: 0, or -EACCES. The handle's
 * identity is the least privileged party that wrote through it: its own
 * writes and root's change nothing; a user's write through a handle root
 * opened (and passed on) makes the handle that user's; a write by another
 * user than the handle's is refused, lest one user's bytes be submitted or
 * recorded as another's. A page written back from a shared mapping comes
 * from no one (the kernel, uid 0): refused where identity matters (plan
 * files opened for writing are direct_io, which refuses such a mapping). */
static int fh_write_as(struct fs_fh *fh, fuse_req_t req, const struct fuse_file_info *fi)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	if (fi->writepage)
		return -EACCES;
	if (c->uid == fh->uid || c->uid == 0)
		return 0;
	if (fh->uid != 0)
		return -EACCES;
	fh->uid = c->uid;
	fh->gid = c->gid;
	return 0;
}

/* Lines one write of messages or events records at most: each costs the
 * engine a row, an event and their JSON (about 10 us), and a write of
 * 128 KiB of short lines would hold it for a second. A write with more
 * complete lines is taken in part: a short write, whose rest the writer's
 * write loop sends again (README "Limits"). */
#define APPEND_MAX_LINES 256

/* A write (or, with CLOSING, the flush) of a messages or events file: the
 * lines it completes are checked here, all or nothing, then recorded by the
 * engine, which answers once they are durable. The lines are the handle's
 * (a write from another identity was refused: fh_write_as); the request
 * carries its identity, never the flushing caller's: the events they cause
 * name it (`by`). */
static void append_lines(fuse_req_t req, fuse_ino_t ino, struct fs_fh *fh, const char *buf, size_t size,
			 bool closing)
{
	struct line_batch batch = LINE_BATCH_INIT;
	struct sbuf err = SBUF_INIT;
	pthread_mutex_lock(&fh->lines_lock);
	int rc = closing ? line_asm_close(fh->lines, &batch, &err)
			 : line_asm_write_some(fh->lines, buf, size, APPEND_MAX_LINES, &batch, &err, &size);
	pthread_mutex_unlock(&fh->lines_lock);
	sbuf_release(&err);
	if (rc || !batch.n) {
		line_batch_release(&batch);
		if (rc)
			fuse_reply_err(req, -rc);
		else if (closing)
			fuse_reply_err(req, 0);
		else
			fuse_reply_write(req, size);	/* only an unfinished line so far */
		return;
	}
	struct fs_req *rq = req_new(req, OP_APPEND, ino);
	if (!rq) {
		line_batch_release(&batch);
		return;
	}
	rq->batch = batch;
	rq->size = closing ? 0 : size;
	rq->closing = closing;
	rq->uid = fh->uid;
	rq->gid = fh->gid;
	post(rq);
}

static void ll_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct fs_fh *fh = (struct fs_fh *)(uintptr_t)fi->fh;
	int rc;
	if (fh->kind == FH_DISK && fh->node.type == NT_PLANFILE) {
		if (!fh->pw) {
			fuse_reply_err(req, EBADF);	/* not opened for writing */
			return;
		}
		if ((rc = fh_write_as(fh, req, fi))) {
			fuse_reply_err(req, -rc);
			return;
		}
		/* EFBIG past a plan's size, EDQUOT past its owner's bytes */
		ssize_t n = orch_plans_pwrite(fs_of(req)->eng, fh->node.id, fh->fd, buf, size, off,
					      (fi->flags & O_APPEND) != 0);
		if (n < 0) {
			fuse_reply_err(req, (int)-n);
			return;
		}
		fh->wrote_gen = fh->pw->gen;
		atomic_store(&fh->wrote, true);
		fuse_reply_write(req, (size_t)n);
		return;
	}
	if (fh->lines) {
		if ((rc = fh_write_as(fh, req, fi)))
			fuse_reply_err(req, -rc);
		else
			append_lines(req, ino, fh, buf, size, false);
		return;
	}
	/* ctl: each write is a command, acted on now; permission was checked
	 * at open (open_allowed), and no command depends on who writes it but
	 * for the events it causes, which name the writer (`by`). Nothing
	 * happens at its close */
	if (fh->kind != FH_CTL) {
		fuse_reply_err(req, EBADF);
		return;
	}
	/* but a step's: who writes decides (step_ctl) */
	int wrc = fh->node.type == NT_STEP_CTL ? fh_write_as(fh, req, fi) : 0;
	if (wrc) {
		fuse_reply_err(req, -wrc);
		return;
	}
	struct fs_req *rq = req_new(req, OP_WRITE, ino);
	if (!rq)
		return;
	if (fh->node.type == NT_STEP_CTL) {
		rq->uid = fh->uid;	/* a decision is the handle's (fh_write_as) */
		rq->gid = fh->gid;
	}
	rq->data = malloc(size ? size : 1);
	if (!rq->data) {
		fuse_reply_err(req, ENOMEM);
		req_free(rq);
		return;
	}
	memcpy(rq->data, buf, size);
	rq->size = size;
	rq->fi = *fi;
	post(rq);
}

/* The settle request an inbox handle made at open; whoever sets `settled`
 * first takes it, so it is used once. */
static struct fs_req *settle_req(fuse_req_t req, struct fs_fh *fh, fuse_ino_t ino)
{
	struct fs_req *rq = fh->settle;
	fh->settle = NULL;
	rq->fs = fs_of(req);
	rq->req = req;
	rq->op = OP_INBOX;
	rq->ino = ino;
	/* no decision here depends on who settles: the messages were taken at
	 * open, by the opener, whom open_allowed checked (only the sandbox's
	 * owner may read its inbox); the first close delivers them or hands
	 * them back, whoever's it is. The identity is the handle's all the same. */
	rq->uid = fh->uid;
	rq->gid = fh->gid;
	rq->lease = fh->lease;
	rq->work.fn = exec_req;
	return rq;
}

static void ll_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_fh *fh = (struct fs_fh *)(uintptr_t)fi->fh;
	if (fh->lines) {
		append_lines(req, ino, fh, NULL, 0, true);	/* the unfinished last line */
		return;
	}
	if (fh->kind == FH_INBOX && fh->lease && !atomic_exchange(&fh->settled, true)) {
		/* first close: read to the end, the messages are delivered; else
		 * they go back to the queue */
		struct fs_req *rq = settle_req(req, fh, ino);
		rq->deliver = atomic_load(&fh->read_to_end);
		post(rq);
		return;
	}
	/* the first close() after writes submits, unless what they wrote was
	 * submitted since (a rename onto NAME.json, another handle's close);
	 * later ones (dup'ed fds) do not. As the handle's identity: the FLUSH
	 * comes from whoever closes a descriptor first (a setuid program the
	 * writer passed it to, say), who need not be the writer */
	if (fh->kind == FH_DISK && fh->node.type == NT_PLANFILE && atomic_exchange(&fh->wrote, false) &&
	    fh->pw && fh->wrote_gen == fh->pw->gen) {
		struct fs_req *rq = req_new(req, OP_FLUSH, ino);
		if (!rq)
			return;
		rq->fi = *fi;
		rq->uid = fh->uid;
		rq->gid = fh->gid;
		post(rq);
		return;
	}
	/* ctl acts at each write, nothing at close */
	fuse_reply_err(req, 0);
}

static void ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_fh *fh = (struct fs_fh *)(uintptr_t)fi->fh;
	if (fh->kind == FH_INBOX && fh->lease && !atomic_exchange(&fh->settled, true)) {
		/* never flushed (the opener died): the messages go back */
		struct fs_req *rq = settle_req(req, fh, ino);
		rq->no_reply = true;
		post(rq);
	}
	fh_free(fh);
	fuse_reply_err(req, 0);
}

static void ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fs_fh *fh = (struct fs_fh *)(uintptr_t)fi->fh;
	int rc = 0;
	if (fh->kind == FH_DISK && (datasync ? fdatasync(fh->fd) : fsync(fh->fd)) < 0)
		rc = errno;
	fuse_reply_err(req, rc);
}

static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fs_req *rq = req_new(req, OP_READDIR, ino);
	if (!rq)
		return;
	rq->size = size;
	rq->off = off;
	post(rq);
}

static void ll_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;
	memset(&sv, 0, sizeof(sv));
	if (statvfs(orch_state_dir(fs_of(req)->eng), &sv) < 0)
		memset(&sv, 0, sizeof(sv));
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

const struct fuse_lowlevel_ops fs_ops = {
	.init = ll_init,
	.lookup = ll_lookup,
	.forget = ll_forget,
	.forget_multi = ll_forget_multi,
	.getattr = ll_getattr,
	.setattr = ll_setattr,
	.readlink = ll_readlink,
	.mkdir = ll_mkdir,
	.symlink = ll_symlink,
	.mknod = ll_mknod,
	.link = ll_link,
	.unlink = ll_unlink,
	.rmdir = ll_rmdir,
	.rename = ll_rename,
	.open = ll_open,
	.create = ll_create,
	.read = ll_read,
	.write = ll_write,
	.flush = ll_flush,
	.release = ll_release,
	.fsync = ll_fsync,
	.readdir = ll_readdir,
	.statfs = ll_statfs,
	.poll = fs_poll,
};
