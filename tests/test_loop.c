/* tests/test_loop.c — the event loop: timer order and cancellation, fd
 * watches, work posted from other threads. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/loop.h"
#include "core/util.h"

static int order[32], norder;

static void timer_cb(struct loop_timer *t) { order[norder++] = (int)(intptr_t)t->data; }

static void test_loop__timers_fire_in_deadline_order(void **state)
{
	struct loop l;
	assert_int_equal(loop_init(&l, NULL), 0);
	struct loop_timer t[8];
	int64_t now = clock_mono_ms();
	static const int delay[8] = { 40, 10, 30, 0, 20, 70, 50, 60 };
	for (int i = 0; i < 8; i++) {
		t[i] = (struct loop_timer)LOOP_TIMER_INIT(timer_cb, (void *)(intptr_t)i);
		loop_timer_set(&l, &t[i], now + delay[i]);
	}
	loop_timer_cancel(&l, &t[6]);	/* 50 */
	loop_timer_set(&l, &t[5], now + 5);	/* re-arming moves it */
	norder = 0;
	while (norder < 7)
		assert_int_equal(loop_turn(&l, 200), 0);
	static const int want[7] = { 3, 5, 1, 4, 2, 0, 7 };
	assert_memory_equal(order, want, sizeof(want));
	assert_false(loop_timer_armed(&t[6]));
	assert_true(clock_mono_ms() - now >= 60);
	loop_release(&l);
}

static int fired;
static void watch_cb(struct loop_watch *w, uint32_t ev)
{
	char c;
	assert_int_equal(read(w->fd, &c, 1), 1);
	fired++;
}

static void test_loop__fd_watch_and_close(void **state)
{
	struct loop l;
	int p[2];
	assert_int_equal(loop_init(&l, NULL), 0);
	assert_int_equal(pipe(p), 0);
	struct loop_watch w = { .fd = p[0], .cb = watch_cb };
	assert_int_equal(loop_watch_add(&l, &w, EPOLLIN), 0);
	fired = 0;
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(loop_turn(&l, 1000), 0);
	assert_int_equal(fired, 1);
	loop_watch_close(&l, &w);
	assert_int_equal(w.fd, -1);
	loop_watch_close(&l, &w);	/* idempotent */
	close(p[1]);
	loop_release(&l);
}

struct counted {
	struct loop_work w;
	int n;
};
static int ran[4000], nran;

static void work_fn(struct loop_work *w, void *ctx)
{
	struct counted *c = (struct counted *)w;
	assert_ptr_equal(ctx, (void *)&nran);
	ran[nran++] = c->n;
}

static struct loop *shared;
static struct counted items[2][2000];

static void *poster(void *arg)
{
	int k = (int)(intptr_t)arg;
	for (int i = 0; i < 2000; i++) {
		items[k][i].w.fn = work_fn;
		items[k][i].n = k * 10000 + i;
		loop_post(shared, &items[k][i].w);
	}
	return NULL;
}

static void test_loop__posted_work_keeps_each_posters_order(void **state)
{
	struct loop l;
	assert_int_equal(loop_init(&l, &nran), 0);
	shared = &l;
	nran = 0;
	pthread_t th[2];
	for (int k = 0; k < 2; k++)
		pthread_create(&th[k], NULL, poster, (void *)(intptr_t)k);
	int64_t end = clock_mono_ms() + 30000;
	while (nran < 4000 && clock_mono_ms() < end)
		loop_turn(&l, 100);
	for (int k = 0; k < 2; k++)
		pthread_join(th[k], NULL);
	while (nran < 4000 && clock_mono_ms() < end)
		loop_turn(&l, 100);
	assert_int_equal(nran, 4000);
	int last[2] = { -1, -1 };
	for (int i = 0; i < nran; i++) {
		int k = ran[i] / 10000, n = ran[i] % 10000;
		assert_true(n > last[k]);
		last[k] = n;
	}
	loop_release(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loop__timers_fire_in_deadline_order),
		cmocka_unit_test(test_loop__fd_watch_and_close),
		cmocka_unit_test(test_loop__posted_work_keeps_each_posters_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
