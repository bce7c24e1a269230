/* core/loop.h — the engine's event loop: epoll over fds, absolute monotonic
 * timers in a heap, and a queue of work posted from other threads.
 * One thread runs the loop and owns everything but loop_post(), which any
 * thread may call. No callback ever sleeps: waiting is the loop's job. */
#ifndef ORCH_LOOP_H
#define ORCH_LOOP_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;

/* An fd the loop watches. cb runs on the loop thread with the epoll events. */
struct loop_watch {
	int fd;
	void (*cb)(struct loop_watch *w, uint32_t events);
	void *data;
};

/* A one-shot timer at an absolute CLOCK_MONOTONIC deadline in milliseconds. */
struct loop_timer {
	int64_t deadline;
	size_t slot;		/* position in the heap + 1; 0 when not armed */
	void (*cb)(struct loop_timer *t);
	void *data;
};
#define LOOP_TIMER_INIT(fn, d) { 0, 0, (fn), (d) }

/* Work handed to the loop thread by loop_post(); fn runs there, in post order. */
struct loop_work {
	struct loop_work *next;
	void (*fn)(struct loop_work *w, void *loop_ctx);
};

struct loop {
	int epfd;
	int wakefd;		/* eventfd: loop_post() wakes the loop with it */
	struct loop_watch wake;
	struct loop_timer **heap;
	size_t nheap, capheap;
	pthread_mutex_t lock;	/* guards posted/posted_tail only */
	struct loop_work *posted, *posted_tail;
	void *ctx;		/* passed to every loop_work fn */
	bool stop;
};

int loop_init(struct loop *l, void *ctx);	/* 0 or -errno */
void loop_release(struct loop *l);

int loop_watch_add(struct loop *l, struct loop_watch *w, uint32_t events);
int loop_watch_mod(struct loop *l, struct loop_watch *w, uint32_t events);
void loop_watch_del(struct loop *l, struct loop_watch *w);
/* Stop watching, close the fd and set w->fd to -1. A watch may be closed from
 * any callback; its memory must outlive the current turn (callbacks of this
 * turn's batch skip watches whose fd is -1). */
void loop_watch_close(struct loop *l, struct loop_watch *w);

/* Arm (or re-arm) T: 0, or -ENOMEM when the heap cannot grow (T is then not
 * armed). Re-arming an armed timer never fails. */
int loop_timer_set(struct loop *l, struct loop_timer *t, int64_t deadline_mono_ms);
void loop_timer_cancel(struct loop *l, struct loop_timer *t);
static inline bool loop_timer_armed(const struct loop_timer *t) { return t->slot != 0; }

/* Thread-safe: queue W and wake the loop. */
void loop_post(struct loop *l, struct loop_work *w);

/* One turn: wait for fds (no longer than the earliest timer, or not at all if
 * work is queued or MAX_WAIT_MS is 0), run fd callbacks, expired timers and
 * posted work. MAX_WAIT_MS < 0 waits without limit. 0 or -errno. */
int loop_turn(struct loop *l, int max_wait_ms);
/* Is anything waiting for the loop right now (a watched fd ready, work
 * posted)? Takes nothing: the next loop_turn() still sees it. */
bool loop_ready(struct loop *l);

#endif
