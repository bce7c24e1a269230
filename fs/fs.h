/* fs/fs.h — the FUSE layer: maps inodes, paths and file operations onto
 * engine calls. The engine's loop reads the FUSE channel itself (fs_attach):
 * every request is taken and answered on the engine thread, a batch per
 * wake-up, so that the writes of one batch share one commit and no request
 * costs a hand-over between threads (the profile of issue 6: those
 * wake-ups were most of the daemon's time). */
#ifndef ORCH_FS_H
#define ORCH_FS_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "core/engine.h"
#include "core/lines.h"
#include "core/logfile.h"

/* Node types. The fixed top-level nodes are their own inode numbers; every
 * other inode is (type << 48 | id), id being a stable row id of the store
 * (row ids are never reused, so inode numbers never are either). */
enum ntype {
	NT_NONE,
	NT_ROOT,		/* = FUSE_ROOT_ID */
	NT_README,
	NT_PLANS,
	NT_RUNS,
	NT_SANDBOXES,
	NT_EVENTS,
	NT_METRICS,
	NT_ATTENTION,
	NT_HEALTH,
	NT_FIXED_END,
	NT_PLANFILE = 16,	/* id: plan_files.id */
	NT_PLANERR,		/* id: plan_names.id */
	NT_PLANRUN,		/* id: plan_names.id */
	NT_RUN,			/* id: runs.id, as for every NT_RUN_* */
	NT_RUN_STATUS,
	NT_RUN_SUMMARY,
	NT_RUN_PLAN,
	NT_RUN_EVENTS,
	NT_RUN_GRAPH,
	NT_RUN_CTL,
	NT_RUN_STEPS,
	NT_STEP,		/* id: steps.id, as for every NT_STEP_* */
	NT_STEP_STATUS,
	NT_STEP_LOG,
	NT_SB,			/* id: sandboxes.id, as for every NT_SB_* */
	NT_SB_STATUS,
	NT_SB_WORKSPACE,
	NT_SB_EVENTS,
	NT_SB_LOGS,
	NT_SB_MESSAGES,
	NT_SB_INBOX,
	NT_SB_CTL,
	NT_STEP_CTL,
	NT_RUN_WAIT,		/* id: runs.id */
	NT_PLANTRIG,		/* id: triggers.id */
	NT_PLANSCHED,		/* id: schedules.id */
	NT_MAX
};

struct fs_node {
	enum ntype type;
	int64_t id;
	unsigned nonce;		/* appendable files: which of their inode numbers */
};

#define NODE_ID_BITS 48
/* A sandbox's messages and events have several inode numbers, told apart by
 * a nonce in bits 32..47: the kernel runs the writes to one inode one at a
 * time (O_APPEND holds its lock across the round trip), and a durable write
 * waits for its commit, so writers on one inode could never share a commit.
 * Each lookup hands out an inode no open writer holds (fs_nonce_pick), and
 * stat() shows the one number without the nonce. */
#define NODE_NONCE_SHIFT 32
#define NODE_NONCES 16
static inline bool node_appendable(enum ntype t) { return t == NT_SB_MESSAGES || t == NT_SB_EVENTS; }

static inline fuse_ino_t node_ino(struct fs_node n)
{
	if (n.type < NT_FIXED_END)
		return (fuse_ino_t)n.type;
	fuse_ino_t ino = ((fuse_ino_t)n.type << NODE_ID_BITS) | (fuse_ino_t)n.id;
	if (node_appendable(n.type) && n.id < (1LL << NODE_NONCE_SHIFT))
		ino |= (fuse_ino_t)(n.nonce % NODE_NONCES) << NODE_NONCE_SHIFT;
	return ino;
}

static inline struct fs_node ino_node(fuse_ino_t ino)
{
	struct fs_node n = { NT_NONE, 0, 0 };
	if (ino < NT_FIXED_END) {
		n.type = (enum ntype)ino;
	} else if ((ino >> NODE_ID_BITS) < NT_MAX) {
		n.type = (enum ntype)(ino >> NODE_ID_BITS);
		n.id = (int64_t)(ino & ((1ULL << NODE_ID_BITS) - 1));
		if (node_appendable(n.type)) {
			n.nonce = (unsigned)(n.id >> NODE_NONCE_SHIFT);
			n.id &= (1LL << NODE_NONCE_SHIFT) - 1;
		}
	}
	return n;
}

/* Writers open on each inode of the appendable files (fs->nonce_lock). */
struct fs_nonces {
	enum ntype type;
	int64_t id;
	unsigned open[NODE_NONCES];
	unsigned last;		/* the inode lookups hand out while it is free */
	int64_t cached_until;	/* CLOCK_MONOTONIC ms: the kernel may hold the
				 * name on inode `last` without asking, until */
};

/* How long the kernel may keep a sandbox's messages or events name when no
 * writer has it open (a lone writer's `>>` then costs no LOOKUP). */
#define NODE_APPEND_ENTRY_S 1

/* Names the kernel must forget (a sandbox deleted through its ctl): told
 * by a thread of their own, as the kernel may first wait for a request
 * only the engine thread can answer. */
struct fs_inval {
	struct fs_inval *next;
	fuse_ino_t parent;
	char name[];
};

/* A plan file with writable handles open on it (fs->planw, engine thread).
 * GEN counts its submissions (by a close or a rename onto NAME.json) since
 * the first of them opened: a close submits only when its handle wrote since
 * the last one (fh->wrote_gen == gen), so that bytes already submitted by a
 * rename, or by another handle's close, are not submitted again. */
struct fs_planw {
	struct fs_planw *next;	/* hash chain */
	int64_t id;		/* plan_files.id (a rename keeps it) */
	unsigned refs;		/* handles holding it */
	uint64_t gen;
};

/* the kernel's requests counted by opcode below this (linux/fuse.h) */
#define FS_KREQ_OPS 64

/* Handles holding a pollhandle, chained by what they follow (fs/poll.c). */
#define FS_POLL_BUCKETS 64
struct fs_waiter;

struct fs {
	struct orch_engine *eng;
	struct fuse_session *se;
	uid_t uid;		/* the daemon's: owner of the top of the tree */
	gid_t gid;
	int64_t started_ms;
	/* engine thread: a snapshot just rendered at open(), so that the getattr
	 * that follows takes its size instead of rendering it again */
	const struct sbuf *rendered;
	/* every open file: those still open when the connection ends never get
	 * a release, and are freed by fs_free_handles() */
	pthread_mutex_t fh_lock;
	struct fs_fh *fh_list;
	/* the FUSE channel, read by the engine's loop */
	struct loop_watch chan;
	struct fuse_buf rbuf;
	uint64_t kreq[FS_KREQ_OPS];	/* requests from the kernel, by opcode (metrics) */
	uint64_t appendable_forgets;	/* names of messages/events the kernel was told to forget */
	void (*on_gone)(void *);	/* the connection ended (engine thread) */
	void *on_gone_arg;
	pthread_mutex_t nonce_lock;
	struct fs_nonces *nonces;
	size_t nnonces;
	/* plan files open for writing: a hash of planw_cap chains (a power of 2) */
	struct fs_planw **planw;
	size_t planw_cap, nplanw;
	/* the invalidation thread */
	pthread_t inval_thread;
	bool inval_started, inval_quit;
	pthread_mutex_t inval_lock;
	pthread_cond_t inval_cond;
	struct fs_inval *inval_head, *inval_tail;
	/* readers that wait for more (fs/poll.c; engine thread): handles a
	 * poll() left a pollhandle with, and parked reads of runs/ID/wait */
	struct fs_fh *polled[FS_POLL_BUCKETS];
	size_t npolled;
	struct fs_waiter *waiters;
	size_t nwaiters;
	bool wait_reap;		/* an interrupt came for a parked read */
};

/* Have the engine's loop serve the session's requests (before the engine
 * starts); ON_GONE(ARG) runs on the engine thread when the connection ends. */
int fs_attach(struct fs *fs, void (*on_gone)(void *), void *arg);
/* After the engine thread ended. */
void fs_detach(struct fs *fs);

/* The invalidation thread: start it once the session exists; stop it
 * before the session goes. It gives up after TIMEOUT_MS if the kernel holds
 * it, and says so (false): abort the connection and call it again, or leave
 * the session unfreed. */
int fs_inval_start(struct fs *fs);
bool fs_inval_stop(struct fs *fs, int timeout_ms);
/* engine thread: the kernel should forget NAME in directory PARENT */
void fs_inval_entry(struct fs *fs, fuse_ino_t parent, const char *name);

/* After the engine thread is gone: free what was still open. */
void fs_free_handles(struct fs *fs);

/* ---- readers that wait for more (fs/poll.c) ---- */
/* FUSE_POLL (the operation of fs_ops). */
void fs_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct fuse_pollhandle *ph);
/* A read of runs/ID/wait through FH: answered now when the run has
 * finished, else parked until it has (or the read is interrupted). */
void fs_wait_read(struct fs *fs, fuse_req_t req, struct fs_fh *fh, size_t size, off_t off);
/* A read of MOUNT/attention from offset 0 through FH after the list
 * changed since FH rendered it: render it again, and answer. */
void fs_attention_reread(struct fs *fs, fuse_req_t req, struct fs_fh *fh, size_t size);
/* The engine's change callback (core/engine.h: orch_engine_on_change). */
void fs_on_change(void *arg, enum orch_change what, int64_t a, int64_t b);
/* After a request was processed: answer the parked reads an interrupt
 * came for (EINTR). */
void fs_wait_reap(struct fs *fs);
/* A handle goes: its pollhandle with it. */
void fs_poll_drop(struct fs_fh *fh);
/* The engine thread is gone (the daemon stops): parked reads of a wait get
 * ENOTCONN (the run is not finished, and the mount is going), and every
 * poller is woken (its next poll() sees the mount gone). Main thread. */
void fs_waiters_end(struct fs *fs);
/* A reference on FH dropped (the last one frees it). */
void fs_fh_put(struct fs_fh *fh);

/* An open file. */
enum fh_kind {
	FH_SNAP,		/* bytes rendered at open(): buf/len */
	FH_DISK,		/* a file on disk: fd (plans/ files, step logs) */
	FH_EVENTS,		/* a JSONL view of the event log (or messages), read through the engine */
	FH_CTL,			/* a control file: each write is a command */
	FH_INBOX,		/* a snapshot of leased messages (buf/len, lease) */
	FH_WAIT,		/* runs/ID/wait: the run's final status once finished (buf/len) */
};

struct fs_fh {
	/* references: the open file holds one, a reply in progress another
	 * (the reader may close, and release run, while our reply is still in
	 * writev on another thread) */
	atomic_int refs;
	struct fs *fs;
	struct fs_fh *prev, *next;	/* fs->fh_list */
	enum fh_kind kind;
	struct fs_node node;
	/* Who acts through the handle (issue 12): its opener, recorded at open
	 * or create; a write by a user through a handle root opened makes it
	 * that user's, a write by another user than its own (root aside) is
	 * refused (fh_write_as). A plan is submitted as this identity, and
	 * lines reach messages and events only from it (they carry no uid of
	 * their own): never as the uid of the FLUSH or RELEASE, which is
	 * whoever closes a descriptor first. */
	uid_t uid;
	gid_t gid;
	uid_t opener;		/* counted against its limits.open_files (orch_handle_take) */
	bool counted;
	char *buf;		/* FH_SNAP */
	size_t len;
	struct stat st;		/* FH_SNAP: attributes at open, for fstat() */
	int fd;			/* FH_DISK */
	bool lines_only;	/* FH_DISK: a log, read through lv (short reads end at a whole line) */
	struct logview lv;
	atomic_bool wrote;	/* FH_DISK in plans/: written through since its last close */
	struct fs_planw *pw;	/* FH_DISK in plans/ opened for writing: its file's submissions */
	uint64_t wrote_gen;	/* pw->gen at its last write */
	enum orch_ev_scope scope;	/* FH_EVENTS */
	/* messages and events opened for writing: lines assembled across
	 * writes, under a lock (writes through one handle may be concurrent) */
	struct line_asm *lines;
	pthread_mutex_t lines_lock;
	uint64_t lease;		/* FH_INBOX: the messages it holds (0: none) */
	struct fs_req *settle;	/* FH_INBOX: made at open, so settling never lacks memory */
	atomic_bool read_to_end;	/* FH_INBOX: its last byte was read */
	atomic_bool settled;	/* FH_INBOX: delivered or handed back */
	atomic_bool nonce_held;	/* a writer counted in fs->nonces until its release */
	/* what a poller waits for (fs/poll.c) */
	int64_t pos;		/* where its last read ended (FH_EVENTS, FH_SNAP, FH_INBOX, FH_WAIT) */
	uint64_t att_gen;	/* MOUNT/attention: the list's generation at open */
	struct fuse_pollhandle *ph;	/* the last poll()'s, until a change is told */
	struct fs_fh *poll_prev, *poll_next;	/* fs->polled chain while ph */
};

/* A directory listing being filled. */
struct fs_dirbuf {
	fuse_req_t req;
	char *buf;
	size_t size, len;
};
/* Add an entry whose successor starts after COOKIE: non-zero when full. */
int dirbuf_add(struct fs_dirbuf *db, const char *name, struct fs_node n, mode_t type, uint64_t cookie);

/* What each node type does; NULL members: the operation does not apply.
 * All run on the engine thread. */
struct node_ops {
	mode_t type;		/* S_IFDIR, S_IFREG or S_IFLNK */
	int (*getattr)(struct fs *fs, struct fs_node n, struct stat *st);
	int (*lookup)(struct fs *fs, struct fs_node dir, const char *name, struct fs_node *child);
	/* entries after COOKIE (0: the first after "." and "..") */
	int (*readdir)(struct fs *fs, struct fs_node dir, uint64_t cookie, struct fs_dirbuf *db);
	/* snapshot files: their text */
	int (*render)(struct fs *fs, struct fs_node n, struct sbuf *out);
	/* other files: fill FH for FLAGS */
	int (*open)(struct fs *fs, struct fs_node n, int flags, struct fs_fh *fh);
	double entry_timeout;	/* how long the kernel may keep a name of this type */
	double attr_timeout;
};

extern const struct node_ops *const node_table[NT_MAX];

static inline const struct node_ops *node_ops_of(struct fs_node n)
{
	return n.type > NT_NONE && n.type < NT_MAX ? node_table[n.type] : NULL;
}

/* Attribute helpers for node files. */
void attr_fill(struct stat *st, mode_t mode, uid_t uid, gid_t gid, off_t size, int64_t mtime_ms,
	       int64_t ctime_ms);

/* Node op tables, one per file. */
extern const struct node_ops node_root, node_readme, node_events, node_metrics, node_attention, node_health;
extern const struct node_ops node_plans, node_planfile, node_planerr, node_planrun, node_plantrig,
	node_plansched;
extern const struct node_ops node_runs, node_run, node_run_status, node_run_summary, node_run_plan,
	node_run_events, node_run_graph, node_run_ctl, node_run_steps, node_step, node_step_status,
	node_step_log, node_step_ctl, node_run_wait;
extern const struct node_ops node_sandboxes, node_sb, node_sb_status, node_sb_workspace,
	node_sb_events, node_sb_logs, node_sb_messages, node_sb_inbox, node_sb_ctl;

/* fs.c: the FUSE operations */
extern const struct fuse_lowlevel_ops fs_ops;

/* Fixed directories: a table of (name, child type); children share the id. */
struct fixed_entry {
	const char *name;
	enum ntype type;
};
int fixed_lookup(const struct fixed_entry *t, size_t n, struct fs_node dir, const char *name,
		 struct fs_node *child);
int fixed_readdir(const struct fixed_entry *t, size_t n, struct fs_node dir, uint64_t cookie,
		  struct fs_dirbuf *db);

/* FH reads the log FD (taken; from orch_*_log_open(), -errno passed on):
 * an FH_DISK read through a struct logview (core/logfile.h). */
int open_log(struct fs_fh *fh, int fd);

/* Snapshot-file getattr: render it to know its size. */
int snap_getattr(struct fs *fs, struct fs_node n, struct stat *st, mode_t mode, uid_t uid, gid_t gid,
		 int64_t mtime_ms, int64_t ctime_ms);

#endif
