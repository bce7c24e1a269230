/* core/activity.c — workspace activity (SPEC §11; see core/activity.h).
 *
 * One inotify instance per engine watches the directories of every watched
 * workspace. Each watched directory is a node of a tree rooted at its
 * workspace (a root node knows its sandbox); nodes are found by watch
 * descriptor (events) and by parent and name (renames). A node leaving a
 * workspace (moved out, deleted, its sandbox no longer watched) goes under
 * the grave, a node of no workspace, whose subtrees are removed a slice at
 * a time; an event for a node whose topmost ancestor is not a root is
 * nobody's and is dropped. Directories to read (a workspace's tree when
 * watching begins, a directory that appears while watched) wait in two
 * queues, the new ones first, and are read a slice at a time by the walk
 * timer: each directory found is watched at once, through a descriptor
 * opened below its parent; what a new directory already holds when it is
 * read is reported as changed (it was made after the watch on its parent,
 * before the watch on itself).
 *
 * Per sandbox, the changes since its last event gather in a struct
 * act_batch; its timer sends them ACT_GATHER_MS after the first (so a burst
 * makes one event), never sooner than ACT_GAP_MS after its last event, and
 * once no step has run there for ACT_LINGER_MS (and nothing is left to
 * send), it stops watching. */
#include "core/activity.h"
#include "core/engine_i.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#define ACT_MASK                                                                                  \
	(IN_CREATE | IN_DELETE | IN_MODIFY | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR | \
	 IN_EXCL_UNLINK)
#define ACT_GAP_MS 1010		/* between two events of a sandbox: over a second, in ms of its ts */
#define ACT_GATHER_MS 200	/* a first change waits this long for others */
#define ACT_LINGER_MS 1000	/* no step for this long: watching stops */
#define ACT_CHECK_MS 30000	/* while steps run: a look, in case an end went unseen */
#define ACT_READ_GAP_MS 20	/* reading pauses this long after a batch */
#define ACT_READS 1		/* reads of the fd per batch (64 KiB: some 2,000 changes) */
#define ACT_BUF (64 << 10)
#define ACT_SLICE_US 2000	/* the walk's (and removals') share of a loop turn */
#define ACT_REST_MS 2		/* then the loop's own, at least: half of the engine at most */
#define ACT_MOVES 64		/* renames of directories waiting for their other half */
#define ACT_MOVE_MS 100		/* a half alone this long: moved out of the workspace */

struct act_node {
	int wd;
	bool ignored;		/* the kernel removed its watch already */
	bool fresh;		/* appeared while watched: what it holds is new */
	bool named;		/* in the (parent, name) table */
	signed char queued;	/* 0, or in act.qhead[queued - 1] */
	char *name;		/* in its parent; NULL for a root and the grave */
	struct act_sb *as;	/* a root's sandbox; NULL otherwise */
	struct act_node *parent, *child, *prev, *next;
	struct act_node *wnext, *nnext;	/* hash chains: by wd, by (parent, name) */
	struct act_node *qprev, *qnext;
};

struct act_sb {
	struct act *act;
	struct sandbox *sb;
	struct act_node *root;	/* NULL: not watching */
	int rootfd;		/* the workspace, while watching */
	struct loop_timer timer;
	int64_t last_active;	/* mono ms a step last started or ended there */
	int64_t last_emit;	/* mono ms of its last workspace.changed */
	int64_t emit_at;	/* mono ms the batch goes out; 0: no batch */
	struct act_batch batch;
	size_t nwatches, unwatched;
	bool limit_logged;
	struct act_sb *prev, *next;	/* the watched ones */
};

struct act_move {
	uint32_t cookie;
	struct act_node *node;
	int64_t at;
};

struct act {
	struct orch_engine *eng;
	struct loop_watch w;	/* the inotify instance */
	struct loop_timer read_timer;	/* the pause after a batch */
	struct loop_timer walk_timer;
	bool paused;
	char *buf;
	struct act_node **wtab, **ntab;
	size_t wcap, ncap, nw, nn;
	struct act_node grave;
	struct act_node *qhead[2], *qtail[2];	/* new directories, then the others */
	DIR *dir;		/* the directory being read */
	struct act_node *dir_node;
	struct act_sb *dir_as;
	struct act_move moves[ACT_MOVES];
	size_t nmoves;
	struct act_sb *watching;
	size_t max_watches;	/* a sandbox's watches at most */
	size_t max_total;	/* the engine's watches at most (a->nw) */
	int64_t walk_t0;	/* mono us the walk began; 0: no walk */
	size_t walked;
	int64_t overflow_logged;
	bool proc_logged;
	bool broken;		/* no inotify here: nothing is watched */
};

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- the changes of one event ---- */

static uint32_t fnv(const char *s, uintptr_t seed)
{
	uint32_t h = 2166136261u ^ (uint32_t)(seed ^ (seed >> 32));
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

void act_batch_add(struct act_batch *b, const char *path)
{
	b->count++;
	if (!path || act_batch_full(b))
		return;
	uint32_t h = fnv(path, 0);
	for (size_t i = 0; i < b->npaths; i++)
		if (b->hash[i] == h && !strcmp(b->paths[i], path))
			return;
	char *p = orch_strdup(path);
	if (!p)
		return;	/* counted, not named */
	b->hash[b->npaths] = h;
	b->paths[b->npaths++] = p;
}

json_t *act_batch_json(const struct act_batch *b)
{
	json_t *paths = json_array();
	for (size_t i = 0; paths && i < b->npaths; i++) {
		/* a name that is not UTF-8 is shown with its bad bytes as '?'
		 * (JSON holds no other), not dropped with the whole batch */
		json_t *name = json_string(b->paths[i]);
		if (!name) {
			size_t len = strlen(b->paths[i]);
			char *shown = orch_malloc(len + 1);
			if (shown)
				name = json_string(text_show(shown, len + 1, b->paths[i], len));
			orch_free(shown);
		}
		if (!name || json_array_append_new(paths, name)) {
			json_decref(paths);
			paths = NULL;
		}
	}
	if (!paths)
		return NULL;
	json_t *o = json_pack("{s:o, s:I}", "paths", paths, "count", (json_int_t)b->count);
	if (o && b->overflow && json_object_set_new(o, "overflow", json_true())) {
		json_decref(o);
		o = NULL;
	}
	return o;
}

void act_batch_clear(struct act_batch *b)
{
	for (size_t i = 0; i < b->npaths; i++)
		orch_free(b->paths[i]);
	b->npaths = 0;
	b->count = 0;
	b->overflow = false;
}

/* ---- the tables ---- */

static size_t wslot(const struct act *a, int wd) { return (size_t)(unsigned)wd & (a->wcap - 1); }
static size_t nslot(const struct act *a, const struct act_node *parent, const char *name)
{
	return fnv(name, (uintptr_t)parent) & (a->ncap - 1);
}

/* Double table *TAB (CAP slots) when it holds more than CAP; NEXT is the
 * chain's field, SLOT where a node goes. Left as it is for no memory. */
static void grow(struct act *a, struct act_node ***tab, size_t *cap, size_t n, bool by_wd)
{
	if (n <= *cap)
		return;
	size_t ncap = *cap * 2;
	struct act_node **nt = orch_calloc(ncap, sizeof(*nt));
	if (!nt)
		return;
	struct act_node **old = *tab;
	size_t ocap = *cap;
	*tab = nt;
	*cap = ncap;
	for (size_t i = 0; i < ocap; i++)
		for (struct act_node *x = old[i], *next; x; x = next) {
			if (by_wd) {
				next = x->wnext;
				size_t s = wslot(a, x->wd);
				x->wnext = nt[s];
				nt[s] = x;
			} else {
				next = x->nnext;
				size_t s = nslot(a, x->parent, x->name);
				x->nnext = nt[s];
				nt[s] = x;
			}
		}
	orch_free(old);
}

static struct act_node *by_wd(const struct act *a, int wd)
{
	for (struct act_node *x = a->wtab[wslot(a, wd)]; x; x = x->wnext)
		if (x->wd == wd)
			return x;
	return NULL;
}

static void wd_add(struct act *a, struct act_node *n)
{
	size_t s = wslot(a, n->wd);
	n->wnext = a->wtab[s];
	a->wtab[s] = n;
	grow(a, &a->wtab, &a->wcap, ++a->nw, true);
}

static void wd_del(struct act *a, struct act_node *n)
{
	for (struct act_node **pp = &a->wtab[wslot(a, n->wd)]; *pp; pp = &(*pp)->wnext)
		if (*pp == n) {
			*pp = n->wnext;
			a->nw--;
			return;
		}
}

static struct act_node *by_name(const struct act *a, const struct act_node *parent, const char *name)
{
	for (struct act_node *x = a->ntab[nslot(a, parent, name)]; x; x = x->nnext)
		if (x->parent == parent && !strcmp(x->name, name))
			return x;
	return NULL;
}

static void name_add(struct act *a, struct act_node *n)
{
	size_t s = nslot(a, n->parent, n->name);
	n->nnext = a->ntab[s];
	a->ntab[s] = n;
	n->named = true;
	grow(a, &a->ntab, &a->ncap, ++a->nn, false);
}

static void name_del(struct act *a, struct act_node *n)
{
	if (!n->named)
		return;
	for (struct act_node **pp = &a->ntab[nslot(a, n->parent, n->name)]; *pp; pp = &(*pp)->nnext)
		if (*pp == n) {
			*pp = n->nnext;
			a->nn--;
			break;
		}
	n->named = false;
}

/* ---- the tree ---- */

static void detach(struct act *a, struct act_node *n)
{
	name_del(a, n);
	if (!n->parent)
		return;
	if (n->prev)
		n->prev->next = n->next;
	else
		n->parent->child = n->next;
	if (n->next)
		n->next->prev = n->prev;
	n->parent = n->prev = n->next = NULL;
}

/* N (detached) becomes PARENT's child; named unless under the grave. */
static void attach(struct act *a, struct act_node *parent, struct act_node *n)
{
	n->parent = parent;
	n->prev = NULL;
	n->next = parent->child;
	if (parent->child)
		parent->child->prev = n;
	parent->child = n;
	if (parent != &a->grave && n->name)
		name_add(a, n);
}

/* Is N ANC or below it? */
static bool below(const struct act_node *n, const struct act_node *anc)
{
	for (; n; n = n->parent)
		if (n == anc)
			return true;
	return false;
}

/* The root above N when N is in a watched workspace, else NULL. */
static struct act_node *live_top(struct act_node *n)
{
	while (n->parent)
		n = n->parent;
	return n->as ? n : NULL;
}

/* N's path in its workspace, then "/" and LEAF (when not NULL), in BUF;
 * "." for a root without LEAF. NULL when longer than ACT_PATH_MAX. */
static const char *relpath(const struct act_node *n, const char *leaf, char buf[ACT_PATH_MAX])
{
	size_t pos = ACT_PATH_MAX - 1;
	buf[pos] = '\0';
	const char *part = leaf;
	for (const struct act_node *p = n;; p = p->parent) {
		if (part) {
			size_t len = strlen(part);
			if (pos < len + (pos < ACT_PATH_MAX - 1))
				return NULL;
			if (pos < ACT_PATH_MAX - 1)
				buf[--pos] = '/';
			pos -= len;
			memcpy(buf + pos, part, len);
		}
		if (!p->parent)
			break;
		part = p->name;
	}
	return buf[pos] ? buf + pos : ".";
}

/* The walk goes on now, or after a rest when it has just had a slice. */
static void walk_arm(struct act *a, int64_t at)
{
	if (!loop_timer_armed(&a->walk_timer))
		loop_timer_set(&a->eng->loop, &a->walk_timer, at);
}

/* N's directory is to be read: new ones (FRESH) before the rest. */
static void q_push(struct act *a, struct act_node *n, bool fresh)
{
	if (n->queued)
		return;
	if (!a->walk_t0)
		a->walk_t0 = mono_us();
	int q = fresh ? 0 : 1;
	n->queued = (signed char)(q + 1);
	n->qnext = NULL;
	n->qprev = a->qtail[q];
	if (a->qtail[q])
		a->qtail[q]->qnext = n;
	else
		a->qhead[q] = n;
	a->qtail[q] = n;
	walk_arm(a, 0);
}

static void q_del(struct act *a, struct act_node *n)
{
	if (!n->queued)
		return;
	int q = n->queued - 1;
	if (n->qprev)
		n->qprev->qnext = n->qnext;
	else
		a->qhead[q] = n->qnext;
	if (n->qnext)
		n->qnext->qprev = n->qprev;
	else
		a->qtail[q] = n->qprev;
	n->queued = 0;
	n->qprev = n->qnext = NULL;
}

/* N and what is below it leave their workspace: removed by the walk timer. */
static void doom(struct act *a, struct act_node *n)
{
	detach(a, n);
	n->as = NULL;
	attach(a, &a->grave, n);
	walk_arm(a, 0);
}

static void node_free(struct act *a, struct act_node *n)
{
	wd_del(a, n);
	name_del(a, n);
	q_del(a, n);
	if (a->dir_node == n) {
		closedir(a->dir);
		a->dir = NULL;
		a->dir_node = NULL;
	}
	for (size_t i = 0; i < a->nmoves; i++)
		if (a->moves[i].node == n)
			a->moves[i--] = a->moves[--a->nmoves];
	orch_free(n->name);
	orch_free(n);
}

/* Remove the first node under the grave (its children take its place). */
static void bury_one(struct act *a)
{
	struct act_node *n = a->grave.child;
	while (n->child) {
		struct act_node *c = n->child;
		detach(a, c);
		attach(a, &a->grave, c);
	}
	detach(a, n);
	if (!n->ignored)
		inotify_rm_watch(a->w.fd, n->wd);
	node_free(a, n);
}

/* ---- watching a directory ---- */

static void limit_log(struct act_sb *as, const char *why)
{
	as->unwatched++;
	if (as->limit_logged)
		return;
	as->limit_logged = true;
	eng_log(as->act->eng, "sandbox %s: some directories of its workspace are not watched: %s"
		" (workspace.changed misses what changes in them; status activity.unwatched counts them)",
		as->sb->name, why);
}

/* Watch the directory REL below DFD, the entry NAME of PARENT (a node of
 * AS's tree), and read it later; FRESH: it appeared while watched. A
 * directory watched already (moved, or coming back) takes its new place. */
static void watch_dir(struct act *a, struct act_sb *as, struct act_node *parent, int dfd, const char *rel,
		      const char *name, bool fresh)
{
	if (as->nwatches >= a->max_watches || a->nw >= a->max_total) {
		char why[160];
		if (as->nwatches >= a->max_watches)
			snprintf(why, sizeof(why), "it has %zu watches, ORCHFS_ACTIVITY_MAX_WATCHES", as->nwatches);
		else
			snprintf(why, sizeof(why), "the daemon holds %zu watches, half of"
				 " fs.inotify.max_user_watches (what other programs of its user need)", a->nw);
		limit_log(as, why);
		return;
	}
	int fd = sd_open(dfd, rel, O_PATH | O_DIRECTORY, 0);
	if (fd < 0) {
		/* gone, not a directory, a symlink: nothing to watch; another
		 * file system (a mount) is never entered; the rest is noted */
		if (fd != -ENOENT && fd != -ENOTDIR && fd != -ELOOP)
			as->unwatched++;
		return;
	}
	char path[32];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	int wd = inotify_add_watch(a->w.fd, path, ACT_MASK);
	int err = errno;
	close(fd);
	if (wd < 0) {
		if (err == ENOSPC) {
			limit_log(as, "the limit of inotify watches is reached (sysctl fs.inotify.max_user_watches)");
		} else if (err == ENOENT && !a->proc_logged) {
			a->proc_logged = true;
			eng_log(a->eng, "workspace activity: cannot watch through %s (is /proc mounted?)", path);
		} else if (err != ENOENT && err != ENOTDIR) {
			as->unwatched++;
		}
		return;
	}
	char *nm = orch_strdup(name);
	struct act_node *n = by_wd(a, wd);
	if (n) {
		bool dead = !live_top(n);
		if (!nm || !n->parent || below(parent, n)) {
			/* a root, or an ancestor of its new parent (our tree
			 * lags behind renames): stays where it is */
			orch_free(nm);
			return;
		}
		detach(a, n);
		orch_free(n->name);
		n->name = nm;
		n->fresh = fresh;
		attach(a, parent, n);
		if (dead) {
			as->nwatches++;
			q_push(a, n, fresh);
		}
		return;
	}
	n = nm ? orch_calloc(1, sizeof(*n)) : NULL;
	if (!n) {
		orch_free(nm);
		inotify_rm_watch(a->w.fd, wd);
		as->unwatched++;
		return;
	}
	n->wd = wd;
	n->name = nm;
	n->fresh = fresh;
	wd_add(a, n);
	attach(a, parent, n);
	as->nwatches++;
	q_push(a, n, fresh);
}

/* ---- sending ---- */

static bool step_running(const struct sandbox *sb) { return sb->holder && sb->holder->nrunning; }

/* AS's timer: at its batch's time, or to see whether watching may stop. */
static void as_arm(struct act_sb *as)
{
	int64_t now = clock_mono_ms(), at;
	if (!act_batch_empty(&as->batch)) {
		if (!as->emit_at) {
			as->emit_at = now + ACT_GATHER_MS;
			if (as->last_emit && as->emit_at < as->last_emit + ACT_GAP_MS)
				as->emit_at = as->last_emit + ACT_GAP_MS;
		}
		at = as->emit_at;
	} else if (step_running(as->sb)) {
		at = now + ACT_CHECK_MS;	/* the step's end arms it sooner */
	} else {
		at = as->last_active + ACT_LINGER_MS;
	}
	if (!loop_timer_armed(&as->timer) || as->timer.deadline > at)
		loop_timer_set(&as->act->eng->loop, &as->timer, at);
}

static void changed(struct act_sb *as, const struct act_node *n, const char *name)
{
	char buf[ACT_PATH_MAX];
	act_batch_add(&as->batch, act_batch_full(&as->batch) ? NULL : relpath(n, name, buf));
	if (as->sb->win)
		win_activity(as->sb);	/* a workspace change is activity (SPEC §9) */
	if (!as->emit_at)
		as_arm(as);
}

static void emit(struct act_sb *as)
{
	struct orch_engine *e = as->act->eng;
	struct sandbox *sb = as->sb;
	json_t *extra = json_pack("{s:o}", "event_data", act_batch_json(&as->batch));
	/* last_at is the event's ts: the newest row's */
	if (ev_emit(e, "workspace.changed", sb->holder, NULL, sb, extra) == 0)
		store_exec(&e->st,
			   "UPDATE sandboxes SET activity_changes = activity_changes + ?,"
			   " activity_at = (SELECT ts FROM events ORDER BY g_off DESC LIMIT 1) WHERE id = ?",
			   "ii", as->batch.count, sb->rowid);
	act_batch_clear(&as->batch);
	as->last_emit = clock_mono_ms();
	as->emit_at = 0;
}

static void as_stop(struct act_sb *as)
{
	struct act *a = as->act;
	if (!as->root)
		return;
	doom(a, as->root);
	as->root = NULL;
	close(as->rootfd);
	as->rootfd = -1;
	if (a->dir_as == as)
		a->dir_as = NULL;
	if (as->prev)
		as->prev->next = as->next;
	else
		a->watching = as->next;
	if (as->next)
		as->next->prev = as->prev;
	as->prev = as->next = NULL;
}

/* ---- events ---- */

/* What renamed away waits for the other half of its rename; alone for
 * ACT_MOVE_MS (ALL: at once), it left the workspace. */
static void moves_expire(struct act *a, bool all)
{
	int64_t now = clock_mono_ms();
	for (size_t i = 0; i < a->nmoves; i++)
		if (all || now - a->moves[i].at >= ACT_MOVE_MS) {
			struct act_node *n = a->moves[i].node;
			a->moves[i--] = a->moves[--a->nmoves];
			doom(a, n);
		}
}

static void on_event(struct act *a, const struct inotify_event *ev)
{
	if (ev->mask & IN_Q_OVERFLOW) {
		for (struct act_sb *as = a->watching; as; as = as->next) {
			as->batch.overflow = true;
			as_arm(as);
		}
		int64_t now = clock_mono_ms();
		if (!a->overflow_logged || now - a->overflow_logged >= 60000) {
			a->overflow_logged = now;
			eng_log(a->eng, "workspace activity: the kernel's queue of changes overflowed: some were"
				" lost (their events say \"overflow\": true; sysctl fs.inotify.max_queued_events)");
		}
		return;
	}
	struct act_node *n = by_wd(a, ev->wd);
	if (!n)
		return;
	struct act_node *top = live_top(n);
	if (ev->mask & IN_IGNORED) {
		n->ignored = true;
		if (top && top != n)
			top->as->nwatches--;
		if (top == n)
			return;	/* a workspace going away: its sandbox stops watching it */
		doom(a, n);
		return;
	}
	if (!top || !ev->len || !ev->name[0])
		return;	/* nobody's, or about the directory itself (its parent says it with its name) */
	struct act_sb *as = top->as;
	if (ev->mask & IN_ISDIR) {
		if (ev->mask & IN_MOVED_FROM) {
			struct act_node *c = by_name(a, n, ev->name);
			if (c) {
				if (a->nmoves == ACT_MOVES)
					moves_expire(a, true);
				a->moves[a->nmoves++] = (struct act_move){ ev->cookie, c, clock_mono_ms() };
			}
		} else if (ev->mask & (IN_CREATE | IN_MOVED_TO)) {
			struct act_node *c = NULL;
			for (size_t i = 0; (ev->mask & IN_MOVED_TO) && i < a->nmoves; i++)
				if (a->moves[i].cookie == ev->cookie) {
					c = a->moves[i].node;
					a->moves[i] = a->moves[--a->nmoves];
					break;
				}
			char *nm = c && !below(n, c) ? orch_strdup(ev->name) : NULL;
			if (nm) {
				/* renamed inside the workspace: what is below it keeps its watches */
				bool dead = !live_top(c);
				detach(a, c);
				orch_free(c->name);
				c->name = nm;
				attach(a, n, c);
				if (dead)
					q_push(a, c, true);
			} else {
				orch_free(nm);
				char buf[ACT_PATH_MAX];
				const char *rel = relpath(n, ev->name, buf);
				if (rel)
					watch_dir(a, as, n, as->rootfd, rel, ev->name, true);
				else
					as->unwatched++;
			}
		}
	}
	changed(as, n, ev->name);
}

/* Read what the kernel has, at most MAX reads. */
static void drain(struct act *a, int max)
{
	for (int k = 0; k < max; k++) {
		ssize_t got = read(a->w.fd, a->buf, ACT_BUF);
		if (got <= 0)
			break;
		for (ssize_t off = 0; off + (ssize_t)sizeof(struct inotify_event) <= got;) {
			const struct inotify_event *ev = (const void *)(a->buf + off);
			on_event(a, ev);
			off += (ssize_t)(sizeof(*ev) + ev->len);
		}
	}
	moves_expire(a, false);
}

static void read_resume_cb(struct loop_timer *t)
{
	struct act *a = t->data;
	if (loop_watch_add(&a->eng->loop, &a->w, EPOLLIN) == 0)
		a->paused = false;
	else
		loop_timer_set(&a->eng->loop, &a->read_timer, clock_mono_ms() + ACT_READ_GAP_MS);
}

static void read_cb(struct loop_watch *w, uint32_t events)
{
	struct act *a = w->data;
	(void)events;
	drain(a, ACT_READS);
	/* what changes meanwhile waits in the kernel's queue (where repeats
	 * merge): a storm of changes costs the engine at most one batch per
	 * ACT_READ_GAP_MS. Out of the epoll set, not just without EPOLLIN:
	 * inotify wakes its waiters with no key, so every change would still
	 * wake the loop for nothing (thousands of times a second in a build) */
	if (!a->paused && loop_timer_set(&a->eng->loop, &a->read_timer, clock_mono_ms() + ACT_READ_GAP_MS) == 0) {
		loop_watch_del(&a->eng->loop, &a->w);
		a->paused = true;
	}
}

static void as_timer_cb(struct loop_timer *t)
{
	struct act_sb *as = t->data;
	struct act *a = as->act;
	drain(a, ACT_READS);	/* what is there now belongs in the event */
	int64_t now = clock_mono_ms();
	if (!act_batch_empty(&as->batch) && as->emit_at && now >= as->emit_at)
		emit(as);
	if (act_batch_empty(&as->batch) && !step_running(as->sb) && now - as->last_active >= ACT_LINGER_MS) {
		as_stop(as);
		return;
	}
	as_arm(as);
}

/* ---- the walk ---- */

static void walk_log(struct act *a)
{
	int64_t us = mono_us() - a->walk_t0;
	if (a->walked >= 1000 || us >= 100000)
		eng_log(a->eng, "workspace activity: %zu directories read and watched in %lld ms", a->walked,
			(long long)(us / 1000));
	a->walk_t0 = 0;
	a->walked = 0;
}

/* Open the next directory to read; false when there is none. */
static bool walk_next(struct act *a)
{
	struct act_node *n = a->qhead[0] ? a->qhead[0] : a->qhead[1];
	if (!n)
		return false;
	q_del(a, n);
	struct act_node *top = live_top(n);
	if (!top)
		return true;
	struct act_sb *as = top->as;
	char buf[ACT_PATH_MAX];
	const char *rel = relpath(n, NULL, buf);
	int fd = rel ? sd_opendir(as->rootfd, rel) : -ENAMETOOLONG;
	if (fd < 0) {
		/* gone or renamed meanwhile: its parent's event says so; what
		 * cannot be read keeps what is below it unwatched */
		if (fd != -ENOENT && fd != -ENOTDIR && fd != -ELOOP)
			as->unwatched++;
		return true;
	}
	a->dir = fdopendir(fd);
	if (!a->dir) {
		close(fd);
		return true;
	}
	a->dir_node = n;
	a->dir_as = as;
	a->walked++;
	return true;
}

/* One entry of the directory being read. */
static void walk_entry(struct act *a)
{
	struct dirent *de = readdir(a->dir);
	if (!de) {
		closedir(a->dir);
		a->dir = NULL;
		a->dir_node = NULL;
		return;
	}
	const char *name = de->d_name;
	if (name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2])))
		return;
	struct act_node *n = a->dir_node;
	struct act_sb *as = a->dir_as;
	if (n->fresh)
		changed(as, n, name);
	if (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN)
		watch_dir(a, as, n, dirfd(a->dir), name, name, n->fresh);
}

static void walk_cb(struct loop_timer *t)
{
	struct act *a = t->data;
	/* what an event took out of its workspace since the last slice */
	if (a->dir && (!a->dir_as || !live_top(a->dir_node))) {
		closedir(a->dir);
		a->dir = NULL;
		a->dir_node = NULL;
	}
	int64_t end = mono_us() + ACT_SLICE_US;
	for (unsigned k = 1;; k++) {
		if (!(k % 8) && mono_us() >= end) {
			walk_arm(a, clock_mono_ms() + ACT_REST_MS);
			return;
		}
		if (a->grave.child)
			bury_one(a);
		else if (a->dir)
			walk_entry(a);
		else if (!walk_next(a))
			break;
	}
	if (a->walk_t0)
		walk_log(a);
}

/* ---- the engine's side ---- */

/* The engine's inotify instance, made at the first watch; NULL where there
 * is none (said once in the log; steps run as ever). */
static struct act *act_get(struct orch_engine *e)
{
	if (e->act)
		return e->act->broken ? NULL : e->act;
	struct act *a = orch_calloc(1, sizeof(*a));
	if (!a)
		return NULL;	/* tried again at the next step */
	a->eng = e;
	a->w = (struct loop_watch){ .fd = -1, .cb = read_cb, .data = a };
	a->read_timer = (struct loop_timer)LOOP_TIMER_INIT(read_resume_cb, a);
	a->walk_timer = (struct loop_timer)LOOP_TIMER_INIT(walk_cb, a);
	a->grave.wd = -1;
	/* inotify watches are counted per user: what the daemon takes, other
	 * programs of its user (root's: systemd, udev...) cannot have. It
	 * takes at most half of them, a sandbox at most a quarter and 65,536
	 * (ORCHFS_ACTIVITY_MAX_WATCHES sets that) */
	size_t kmax = 8192;
	FILE *f = fopen("/proc/sys/fs/inotify/max_user_watches", "re");
	if (f) {
		unsigned long v;
		if (fscanf(f, "%lu", &v) == 1 && v > 0)
			kmax = v;
		fclose(f);
	}
	a->max_total = kmax / 2;
	a->max_watches = kmax / 4 < 65536 ? kmax / 4 : 65536;
	const char *max = getenv("ORCHFS_ACTIVITY_MAX_WATCHES");
	if (max && strtoul(max, NULL, 10) > 0)
		a->max_watches = strtoul(max, NULL, 10);
	a->wcap = a->ncap = 64;
	a->buf = orch_malloc(ACT_BUF);
	a->wtab = orch_calloc(a->wcap, sizeof(*a->wtab));
	a->ntab = orch_calloc(a->ncap, sizeof(*a->ntab));
	e->act = a;
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	int rc = fd < 0 ? -errno : 0;
	if (!rc && (!a->buf || !a->wtab || !a->ntab))
		rc = -ENOMEM;
	if (!rc) {
		a->w.fd = fd;
		rc = loop_watch_add(&e->loop, &a->w, EPOLLIN);
	}
	if (rc) {
		eng_log(e, "workspace activity: workspaces are not watched: %s", strerror(-rc));
		if (fd >= 0)
			close(fd);
		a->w.fd = -1;
		a->broken = true;
		return NULL;
	}
	return a;
}

void activity_step_start(struct orch_engine *e, struct sandbox *sb)
{
	struct act_sb *as = sb->act;
	if (as && as->root) {
		as->last_active = clock_mono_ms();
		return;
	}
	struct act *a = act_get(e);
	if (!a)
		return;
	if (!as) {
		as = orch_calloc(1, sizeof(*as));
		if (!as)
			return;
		as->act = a;
		as->sb = sb;
		as->rootfd = -1;
		as->timer = (struct loop_timer)LOOP_TIMER_INIT(as_timer_cb, as);
		sb->act = as;
	}
	as->last_active = clock_mono_ms();
	as->nwatches = as->unwatched = 0;
	as->limit_logged = false;
	char rel[SANDBOX_ID_MAX + 16];
	snprintf(rel, sizeof(rel), "%s/workspace", sb->name);
	int fd = sd_opendir(e->sbs_fd, rel);
	if (fd < 0) {
		eng_log(e, "sandbox %s: cannot watch its workspace: %s", sb->name, strerror(-fd));
		return;
	}
	char path[32];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	int wd = inotify_add_watch(a->w.fd, path, ACT_MASK);
	if (wd < 0) {
		eng_log(e, "sandbox %s: cannot watch its workspace: %s%s", sb->name, strerror(errno),
			errno == ENOSPC ? " (the limit of inotify watches, sysctl fs.inotify.max_user_watches)" : "");
		close(fd);
		return;
	}
	/* its old root, when watching stopped a moment ago and it is not yet
	 * removed: it comes back with what is below it */
	struct act_node *n = by_wd(a, wd);
	if (n) {
		detach(a, n);
		orch_free(n->name);
		n->name = NULL;
	} else if ((n = orch_calloc(1, sizeof(*n)))) {
		n->wd = wd;
		wd_add(a, n);
	} else {
		inotify_rm_watch(a->w.fd, wd);
		close(fd);
		return;
	}
	n->as = as;
	n->fresh = false;
	as->root = n;
	as->rootfd = fd;
	as->nwatches = 1;
	q_push(a, n, false);
	as->next = a->watching;
	if (a->watching)
		a->watching->prev = as;
	a->watching = as;
	as_arm(as);
}

void activity_step_end(struct sandbox *sb)
{
	struct act_sb *as = sb->act;
	if (!as || !as->root)
		return;
	as->last_active = clock_mono_ms();
	if (!step_running(sb))
		as_arm(as);
}

void activity_sb_unwatch(struct sandbox *sb)
{
	if (sb->act)
		as_stop(sb->act);
}

void activity_sb_gone(struct sandbox *sb)
{
	struct act_sb *as = sb->act;
	if (!as)
		return;
	as_stop(as);
	loop_timer_cancel(&as->act->eng->loop, &as->timer);
	act_batch_clear(&as->batch);
	orch_free(as);
	sb->act = NULL;
}

void activity_render(struct orch_engine *e, struct sandbox *sb, json_t *o)
{
	int rc;
	int64_t at = 0, changes = 0;
	sqlite3_stmt *q = store_query(&e->st, "SELECT activity_at, activity_changes FROM sandboxes WHERE id = ?",
				      &rc, "i", sb->rowid);
	if (q) {
		at = sqlite3_column_int64(q, 0);
		changes = sqlite3_column_int64(q, 1);
		store_done(q);
	}
	char ts[ISO8601_LEN];
	fmt_iso8601(at, ts);
	const struct act_sb *as = sb->act;
	json_object_set_new(o, "activity",
			    json_pack("{s:o, s:I, s:b, s:I}", "last_at", at ? json_string(ts) : json_null(),
				      "changes", (json_int_t)changes, "watching", as && as->root,
				      "unwatched", (json_int_t)(as ? as->unwatched : 0)));
}

void activity_release(struct orch_engine *e)
{
	struct act *a = e->act;
	if (!a)
		return;
	while (a->watching)
		as_stop(a->watching);
	if (a->dir)
		closedir(a->dir);
	a->dir = NULL;
	for (size_t i = 0; a->wtab && i < a->wcap; i++)
		for (struct act_node *n = a->wtab[i], *next; n; n = next) {
			next = n->wnext;
			orch_free(n->name);
			orch_free(n);
		}
	loop_timer_cancel(&e->loop, &a->read_timer);
	loop_timer_cancel(&e->loop, &a->walk_timer);
	loop_watch_close(&e->loop, &a->w);	/* (an EPOLL_CTL_DEL of a paused one fails harmlessly) */
	orch_free(a->wtab);
	orch_free(a->ntab);
	orch_free(a->buf);
	orch_free(a);
	e->act = NULL;
}
