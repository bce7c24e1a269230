/* fs/poll.c — readers that wait for more (SPEC §11 "Waiting without
 * polling"): poll(), select() and epoll on the files one follows, and reads
 * of runs/ID/wait parked until the run has finished. Engine thread, like
 * every FUSE operation here (fs.h); fs_waiters_end() on the main thread once
 * the engine thread is gone.
 *
 * Polling. The kernel sends FUSE_POLL when a process polls an open file,
 * with a pollhandle when it will sleep on it. A handle is readable when
 * something is new past where its reader's last read ended: the events,
 * messages or log bytes beyond it, the unread part of a snapshot, and for
 * the files whose snapshot cannot grow, what a new open would get (attention
 * changed since the open; messages queued that no inbox holds; a run that
 * finished). Otherwise the pollhandle is kept on the handle, chained by what
 * it follows, and the engine's change callback (core/engine.h) notifies it,
 * once: the kernel wakes the poller, which polls again (and leaves a new
 * pollhandle when it sleeps again). A file nobody polls holds no
 * pollhandle, and the engine calls back only while some handle holds one or
 * a read is parked (orch_engine_waiting): otherwise a change costs a test.
 * Every such file is direct_io (fs.c, open_node): a read after a wake-up
 * comes to us, never from the page cache, so nothing needs invalidating.
 *
 * Waiting. A read of runs/ID/wait before the run has finished is parked: no
 * reply, the engine goes on. The run's end schedules it for after the
 * commit that recorded it (orch_after_commit_read), when its final status is
 * rendered once per handle and the read answered. A signal to the reader
 * makes the kernel send FUSE_INTERRUPT: libfuse calls wait_interrupted()
 * (with its request lock held: no reply there), and the read gets EINTR
 * right after, leaving nothing behind. */
#include "fs/fs.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/stat.h>

/* What a handle follows: a class and an id (a run, step or sandbox rowid). */
enum poll_class {
	PC_NONE,	/* a file that is always readable, as any regular file */
	PC_EVENTS,	/* MOUNT/events */
	PC_RUN_EVENTS,	/* runs/ID/events */
	PC_SB_EVENTS,	/* sandboxes/ID/events */
	PC_MESSAGES,	/* sandboxes/ID/messages */
	PC_INBOX,	/* sandboxes/ID/inbox */
	PC_STEP_LOG,	/* runs/ID/steps/STEP/log */
	PC_SB_LOGS,	/* sandboxes/ID/logs */
	PC_ATTENTION,	/* MOUNT/attention */
	PC_WAIT,	/* runs/ID/wait */
};

static enum poll_class fh_class(const struct fs_fh *fh)
{
	switch (fh->kind) {
	case FH_EVENTS:
		switch (fh->scope) {
		case EV_GLOBAL: return PC_EVENTS;
		case EV_RUN: return PC_RUN_EVENTS;
		case EV_SANDBOX: return PC_SB_EVENTS;
		case EV_MESSAGES: return PC_MESSAGES;
		}
		return PC_NONE;
	case FH_INBOX: return PC_INBOX;
	case FH_DISK:
		return !fh->lines_only ? PC_NONE : fh->node.type == NT_STEP_LOG ? PC_STEP_LOG : PC_SB_LOGS;
	case FH_SNAP: return fh->node.type == NT_ATTENTION ? PC_ATTENTION : PC_NONE;
	case FH_WAIT: return PC_WAIT;
	case FH_CTL: return PC_NONE;
	}
	return PC_NONE;
}

static int64_t class_id(enum poll_class c, const struct fs_fh *fh)
{
	return c == PC_EVENTS || c == PC_ATTENTION ? 0 : fh->node.id;
}

static size_t bucket_of(enum poll_class c, int64_t id)
{
	uint64_t h = (uint64_t)c * 0x9E3779B97F4A7C15ULL ^ (uint64_t)id * 0xC2B2AE3D27D4EB4FULL;
	return (size_t)(h >> 32) % FS_POLL_BUCKETS;
}

/* The engine calls back while anything waits. */
static void waiting_update(struct fs *fs) { orch_engine_waiting(fs->eng, fs->npolled + fs->nwaiters); }

static void unchain(struct fs *fs, struct fs_fh *fh)
{
	enum poll_class c = fh_class(fh);
	if (fh->poll_prev)
		fh->poll_prev->poll_next = fh->poll_next;
	else
		fs->polled[bucket_of(c, class_id(c, fh))] = fh->poll_next;
	if (fh->poll_next)
		fh->poll_next->poll_prev = fh->poll_prev;
	fh->poll_prev = fh->poll_next = NULL;
	fs->npolled--;
}

void fs_poll_drop(struct fs_fh *fh)
{
	if (!fh->ph)
		return;
	unchain(fh->fs, fh);
	fuse_pollhandle_destroy(fh->ph);
	fh->ph = NULL;
	waiting_update(fh->fs);
}

/* Keep PH on FH (replacing the one it had) until a change is told. */
static void arm(struct fs *fs, struct fs_fh *fh, struct fuse_pollhandle *ph)
{
	if (fh->ph) {
		fuse_pollhandle_destroy(fh->ph);
		fh->ph = ph;
		return;
	}
	enum poll_class c = fh_class(fh);
	struct fs_fh **head = &fs->polled[bucket_of(c, class_id(c, fh))];
	fh->ph = ph;
	fh->poll_prev = NULL;
	fh->poll_next = *head;
	if (*head)
		(*head)->poll_prev = fh;
	*head = fh;
	fs->npolled++;
	waiting_update(fs);
}

/* Tell every handle following (C, ID) that something changed. */
static void wake(struct fs *fs, enum poll_class c, int64_t id)
{
	struct fs_fh *fh = fs->polled[bucket_of(c, id)];
	while (fh) {
		struct fs_fh *next = fh->poll_next;
		if (fh_class(fh) == c && class_id(c, fh) == id) {
			unchain(fs, fh);
			fuse_lowlevel_notify_poll(fh->ph);	/* never blocks: the kernel wakes its waiters */
			fuse_pollhandle_destroy(fh->ph);
			fh->ph = NULL;
		}
		fh = next;
	}
}

/* Is anything new for FH's reader? */
static bool fh_ready(struct fs *fs, struct fs_fh *fh, enum poll_class c)
{
	struct orch_run_attr a;
	struct stat st;
	switch (c) {
	case PC_EVENTS:
	case PC_RUN_EVENTS:
	case PC_SB_EVENTS:
	case PC_MESSAGES:
		return orch_events_size(fs->eng, fh->scope, fh->node.id) > fh->pos;
	case PC_STEP_LOG:
	case PC_SB_LOGS:
		/* bytes past the reader's place in the file (or a log copied
		 * shorter: a read then says what happened) */
		return fstat(fh->fd, &st) < 0 || st.st_size != fh->lv.next_abs;
	case PC_INBOX:
		/* its own messages not read yet; or, read (or none taken),
		 * messages an open of the inbox would take now */
		return fh->pos < (int64_t)fh->len || orch_inbox_free(fs->eng, fh->node.id) > 0;
	case PC_ATTENTION:
		/* unread, or the list changed since the open: open it again */
		return fh->pos < (int64_t)fh->len || orch_attention_gen(fs->eng) != fh->att_gen;
	case PC_WAIT:
		/* once the run has finished (or gone) a read answers at once */
		return fh->buf || orch_run_by_rowid(fs->eng, fh->node.id, &a) || a.finished;
	case PC_NONE:
		break;
	}
	return true;
}

void fs_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct fuse_pollhandle *ph)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_fh *fh = (struct fs_fh *)(uintptr_t)fi->fh;
	enum poll_class c = fh_class(fh);
	/* what may be written through it is always writable */
	unsigned out = fh->lines || fh->kind == FH_CTL || fh->pw ? POLLOUT | POLLWRNORM : 0;
	if (c == PC_NONE) {
		if (ph)
			fuse_pollhandle_destroy(ph);
		fuse_reply_poll(req, POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM);
		return;
	}
	bool ready = fh_ready(fs, fh, c);
	/* kept even when readable: an edge-triggered epoll polls no more
	 * before it sleeps, and must be woken by what comes next */
	if (ph)
		arm(fs, fh, ph);
	fuse_reply_poll(req, (ready ? POLLIN | POLLRDNORM : 0) | out);
}

/* ---- runs/ID/wait ---- */

struct fs_waiter {
	struct orch_done done;	/* after the commit that finished its run */
	struct fs *fs;
	fuse_req_t req;
	struct fs_fh *fh;	/* a reference held */
	size_t size;
	off_t off;
	bool scheduled;		/* done is in the engine's list */
	bool registering;	/* in fuse_req_interrupt_func(): no reply from the callback */
	bool interrupted;
	struct fs_waiter *prev, *next;	/* fs->waiters */
};

/* Answer a read of FH from its rendered status. */
static void reply_slice(fuse_req_t req, struct fs_fh *fh, size_t size, off_t off)
{
	if (off < 0 || (size_t)off >= fh->len) {
		fh->pos = off < 0 ? fh->pos : off;
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	size_t n = size < fh->len - (size_t)off ? size : fh->len - (size_t)off;
	fh->pos = off + (int64_t)n;
	fuse_reply_buf(req, fh->buf + off, n);
}

/* The final status of FH's run, rendered once per handle: every read of
 * the handle gives the same bytes. */
static int render_final(struct fs *fs, struct fs_fh *fh)
{
	if (fh->buf)
		return 0;
	struct sbuf sb = SBUF_INIT;
	int rc = orch_run_render(fs->eng, fh->node.id, RUNF_STATUS, &sb);
	if (!rc && sbuf_failed(&sb))
		rc = -ENOMEM;
	if (!rc && !(fh->buf = sbuf_detach(&sb, &fh->len)))
		rc = -ENOMEM;
	sbuf_release(&sb);
	return rc;
}

/* Is FH's run finished? 1, 0, or -errno (-ENOENT: gone). */
static int run_finished(struct fs *fs, struct fs_fh *fh)
{
	struct orch_run_attr a;
	int rc = orch_run_by_rowid(fs->eng, fh->node.id, &a);
	return rc ? rc : a.finished;
}

/* W leaves: answered with RC (< 0: an error; 0: answered already). */
static void waiter_end(struct fs_waiter *w, int rc)
{
	struct fs *fs = w->fs;
	if (w->prev)
		w->prev->next = w->next;
	else
		fs->waiters = w->next;
	if (w->next)
		w->next->prev = w->prev;
	fs->nwaiters--;
	if (rc < 0)
		fuse_reply_err(w->req, -rc);
	fs_fh_put(w->fh);
	free(w);
	waiting_update(fs);
}

/* Answer W if its run has finished (after the commit that says so). */
static void waiter_try(struct fs_waiter *w)
{
	if (w->interrupted) {
		waiter_end(w, -EINTR);
		return;
	}
	int rc = run_finished(w->fs, w->fh);
	if (rc == 0)
		return;	/* a failed commit undid the end, or a retry came first: wait on */
	if (rc > 0 && !(rc = render_final(w->fs, w->fh)))
		reply_slice(w->req, w->fh, w->size, w->off);
	waiter_end(w, rc);
}

static void waiter_committed(struct orch_done *d, int commit_rc)
{
	struct fs_waiter *w = (struct fs_waiter *)((char *)d - offsetof(struct fs_waiter, done));
	(void)commit_rc;
	w->scheduled = false;
	waiter_try(w);
}

/* libfuse, when the kernel interrupts W's read: with the request's lock
 * held, so the reply comes after (fs_wait_reap, or fs_wait_read itself when
 * the interrupt came before the read was parked). */
static void wait_interrupted(fuse_req_t req, void *data)
{
	struct fs_waiter *w = data;
	(void)req;
	w->interrupted = true;
	if (!w->registering)
		w->fs->wait_reap = true;
}

void fs_wait_reap(struct fs *fs)
{
	fs->wait_reap = false;
	for (struct fs_waiter *w = fs->waiters, *next; w; w = next) {
		next = w->next;
		if (w->interrupted && !w->scheduled)
			waiter_end(w, -EINTR);	/* a scheduled one answers from waiter_committed */
	}
}

void fs_wait_read(struct fs *fs, fuse_req_t req, struct fs_fh *fh, size_t size, off_t off)
{
	int rc = fh->buf ? 1 : run_finished(fs, fh);
	if (rc > 0 && !(rc = render_final(fs, fh))) {
		reply_slice(req, fh, size, off);
		return;
	}
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	struct fs_waiter *w = calloc(1, sizeof(*w));
	if (!w) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	*w = (struct fs_waiter){ .fs = fs, .req = req, .fh = fh, .size = size, .off = off };
	w->done.fn = waiter_committed;
	atomic_fetch_add(&fh->refs, 1);
	w->next = fs->waiters;
	if (w->next)
		w->next->prev = w;
	fs->waiters = w;
	fs->nwaiters++;
	waiting_update(fs);
	w->registering = true;
	fuse_req_interrupt_func(req, wait_interrupted, w);
	w->registering = false;
	if (w->interrupted)
		waiter_end(w, -EINTR);	/* the interrupt came first */
}

void fs_attention_reread(struct fs *fs, fuse_req_t req, struct fs_fh *fh, size_t size)
{
	struct sbuf sb = SBUF_INIT;
	uint64_t gen = orch_attention_gen(fs->eng);
	int rc = orch_render_attention(fs->eng, &sb);
	char *buf = NULL;
	size_t len = 0;
	if (!rc && (sbuf_failed(&sb) || !(buf = sbuf_detach(&sb, &len))))
		rc = -ENOMEM;
	sbuf_release(&sb);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	orch_free(fh->buf);
	fh->buf = buf;
	fh->len = len;
	fh->st.st_size = (off_t)len;
	fh->att_gen = gen;
	reply_slice(req, fh, size, 0);
}

void fs_on_change(void *arg, enum orch_change what, int64_t a, int64_t b)
{
	struct fs *fs = arg;
	switch (what) {
	case OCH_EVENT:
		wake(fs, PC_EVENTS, 0);
		if (a)
			wake(fs, PC_RUN_EVENTS, a);
		if (b)
			wake(fs, PC_SB_EVENTS, b);
		break;
	case OCH_LOG:
		if (a)
			wake(fs, PC_STEP_LOG, a);
		if (b)
			wake(fs, PC_SB_LOGS, b);
		break;
	case OCH_MESSAGES:
		wake(fs, PC_MESSAGES, b);
		wake(fs, PC_INBOX, b);
		break;
	case OCH_ATTENTION:
		wake(fs, PC_ATTENTION, 0);
		break;
	case OCH_RUN_END:
		wake(fs, PC_WAIT, a);
		/* answered once the end is committed (reads see committed state) */
		for (struct fs_waiter *w = fs->waiters; w; w = w->next)
			if (w->fh->node.id == a && !w->scheduled) {
				w->scheduled = true;
				orch_after_commit_read(fs->eng, &w->done);
			}
		break;
	}
	waiting_update(fs);
}

void fs_waiters_end(struct fs *fs)
{
	while (fs->waiters)
		waiter_end(fs->waiters, -ENOTCONN);
	for (size_t i = 0; i < FS_POLL_BUCKETS; i++)
		while (fs->polled[i]) {
			struct fs_fh *fh = fs->polled[i];
			fuse_lowlevel_notify_poll(fh->ph);
			fs_poll_drop(fh);
		}
}
