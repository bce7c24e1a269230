/* core/loop.c — epoll + timer heap + posted work (the Redis ae/bio pattern:
 * other threads append under a mutex and poke an eventfd; the loop swaps the
 * list out and runs it without the lock). */
#include "core/loop.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/util.h"

static void wake_cb(struct loop_watch *w, uint32_t events)
{
	uint64_t v;
	(void)events;
	while (read(w->fd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
}

int loop_init(struct loop *l, void *ctx)
{
	memset(l, 0, sizeof(*l));
	l->ctx = ctx;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		return -errno;
	l->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->wakefd < 0) {
		int e = -errno;
		close(l->epfd);
		return e;
	}
	pthread_mutex_init(&l->lock, NULL);
	l->wake = (struct loop_watch){ .fd = l->wakefd, .cb = wake_cb, .data = l };
	int r = loop_watch_add(l, &l->wake, EPOLLIN);
	if (r) {
		close(l->wakefd);
		close(l->epfd);
		pthread_mutex_destroy(&l->lock);
	}
	return r;
}

void loop_release(struct loop *l)
{
	if (l->epfd >= 0)
		close(l->epfd);
	if (l->wakefd >= 0)
		close(l->wakefd);
	free(l->heap);
	pthread_mutex_destroy(&l->lock);
	l->epfd = l->wakefd = -1;
	l->heap = NULL;
}

int loop_watch_add(struct loop *l, struct loop_watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };
	return epoll_ctl(l->epfd, EPOLL_CTL_ADD, w->fd, &ev) < 0 ? -errno : 0;
}

int loop_watch_mod(struct loop *l, struct loop_watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };
	return epoll_ctl(l->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0 ? -errno : 0;
}

void loop_watch_del(struct loop *l, struct loop_watch *w)
{
	if (w->fd >= 0)
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
}

void loop_watch_close(struct loop *l, struct loop_watch *w)
{
	if (w->fd < 0)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	close(w->fd);
	w->fd = -1;
}

/* timer heap: a binary min-heap on deadline; slot is the 1-based index */

static void heap_place(struct loop *l, size_t i, struct loop_timer *t)
{
	l->heap[i] = t;
	t->slot = i + 1;
}

static void heap_up(struct loop *l, size_t i)
{
	struct loop_timer *t = l->heap[i];
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (l->heap[p]->deadline <= t->deadline)
			break;
		heap_place(l, i, l->heap[p]);
		i = p;
	}
	heap_place(l, i, t);
}

static void heap_down(struct loop *l, size_t i)
{
	struct loop_timer *t = l->heap[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= l->nheap)
			break;
		if (c + 1 < l->nheap && l->heap[c + 1]->deadline < l->heap[c]->deadline)
			c++;
		if (l->heap[c]->deadline >= t->deadline)
			break;
		heap_place(l, i, l->heap[c]);
		i = c;
	}
	heap_place(l, i, t);
}

void loop_timer_cancel(struct loop *l, struct loop_timer *t)
{
	if (!t->slot)
		return;
	size_t i = t->slot - 1;
	t->slot = 0;
	l->nheap--;
	if (i == l->nheap)
		return;
	struct loop_timer *moved = l->heap[l->nheap];
	heap_place(l, i, moved);
	heap_up(l, i);
	heap_down(l, moved->slot - 1);
}

int loop_timer_set(struct loop *l, struct loop_timer *t, int64_t deadline)
{
	loop_timer_cancel(l, t);
	if (l->nheap == l->capheap) {
		size_t cap = l->capheap ? l->capheap * 2 : 256;
		struct loop_timer **h = orch_reallocarray(l->heap, cap, sizeof(*h));
		if (!h)
			return -ENOMEM;
		l->heap = h;
		l->capheap = cap;
	}
	t->deadline = deadline;
	l->heap[l->nheap++] = t;
	t->slot = l->nheap;
	heap_up(l, l->nheap - 1);
	return 0;
}

void loop_post(struct loop *l, struct loop_work *w)
{
	w->next = NULL;
	pthread_mutex_lock(&l->lock);
	bool was_empty = !l->posted;
	if (l->posted_tail)
		l->posted_tail->next = w;
	else
		l->posted = w;
	l->posted_tail = w;
	pthread_mutex_unlock(&l->lock);
	if (was_empty) {
		uint64_t one = 1;
		while (write(l->wakefd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
	}
}

static void run_posted(struct loop *l)
{
	pthread_mutex_lock(&l->lock);
	struct loop_work *w = l->posted;
	l->posted = l->posted_tail = NULL;
	pthread_mutex_unlock(&l->lock);
	while (w) {
		struct loop_work *next = w->next;
		w->fn(w, l->ctx);
		w = next;
	}
}

static void run_timers(struct loop *l)
{
	int64_t now = clock_mono_ms();
	while (l->nheap && l->heap[0]->deadline <= now) {
		struct loop_timer *t = l->heap[0];
		loop_timer_cancel(l, t);
		t->cb(t);
	}
}

int loop_turn(struct loop *l, int max_wait_ms)
{
	int timeout = max_wait_ms;
	if (l->nheap) {
		int64_t d = l->heap[0]->deadline - clock_mono_ms();
		if (d < 0)
			d = 0;
		if (d > 60000)
			d = 60000;
		if (timeout < 0 || d < timeout)
			timeout = (int)d;
	}
	pthread_mutex_lock(&l->lock);
	if (l->posted)
		timeout = 0;
	pthread_mutex_unlock(&l->lock);

	struct epoll_event evs[64];
	int n = epoll_wait(l->epfd, evs, ARRAY_SIZE(evs), timeout);
	if (n < 0) {
		if (errno != EINTR)
			return -errno;
		n = 0;
	}
	for (int i = 0; i < n; i++) {
		struct loop_watch *w = evs[i].data.ptr;
		/* an earlier callback of this batch may have closed it; the
		 * owner frees watches only after the turn (see engine.c) */
		if (w->fd >= 0)
			w->cb(w, evs[i].events);
	}
	run_timers(l);
	run_posted(l);
	return 0;
}

bool loop_ready(struct loop *l)
{
	struct pollfd p = { .fd = l->epfd, .events = POLLIN };
	return poll(&p, 1, 0) > 0;
}
