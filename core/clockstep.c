/* core/clockstep.c — see core/clockstep.h. */
#include "core/clockstep.h"
#include "core/engine_i.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

/* a step smaller than this is left to add up with the next one */
#define CLOCKSTEP_MIN_MS 1000

static int64_t wall_minus_mono(void)
{
	return clock_wall_ms() - clock_mono_ms();
}

/* Arm the timer at the end of time (the year 2242, well within the
 * kernel's 64-bit nanoseconds): it never expires, and a read fails with
 * ECANCELED once the clock is set. */
static int arm(int fd)
{
	struct itimerspec its = { .it_value = { .tv_sec = (time_t)1 << 33 } };
	return timerfd_settime(fd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its, NULL) ? -errno : 0;
}

void clockstep_apply(struct orch_engine *e, int64_t delta_ms)
{
	eng_log(e, "the wall clock was set %s by %lld.%03lld s: windows and every_sec schedules keep their"
		" real time, cron schedules go by the new clock", delta_ms >= 0 ? "forward" : "back",
		(long long)(delta_ms >= 0 ? delta_ms : -delta_ms) / 1000,
		(long long)(delta_ms >= 0 ? delta_ms : -delta_ms) % 1000);
	e->clock_steps++;
	sched_clock_stepped(e, delta_ms);
	win_clock_stepped(e, delta_ms);
}

void clockstep_check(struct orch_engine *e)
{
	struct loop_watch *w = &e->clockw;
	uint64_t n;
	if (w->fd < 0)
		return;
	ssize_t got = read(w->fd, &n, sizeof(n));
	if (got < 0 && errno != ECANCELED)
		return;	/* EAGAIN: the clock was not set */
	/* cancelled: the clock was set (or, the clock set past 2242, the
	 * timer expired); arm again before measuring, so that a step right
	 * after this one is not missed */
	if (arm(w->fd)) {
		eng_log(e, "cannot re-arm the clock watch: %s: clock steps go unnoticed", strerror(errno));
		loop_watch_close(&e->loop, w);
	}
	int64_t off = wall_minus_mono(), delta = off - e->clock_off;
	if (delta > -CLOCKSTEP_MIN_MS && delta < CLOCKSTEP_MIN_MS)
		return;
	e->clock_off = off;
	clockstep_apply(e, delta);
}

static void clock_cb(struct loop_watch *w, uint32_t events)
{
	(void)events;
	clockstep_check(w->data);
}

void clockstep_open(struct orch_engine *e)
{
	e->clock_off = wall_minus_mono();
	int fd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
	int rc = fd < 0 ? -errno : arm(fd);
	if (!rc) {
		e->clockw = (struct loop_watch){ .fd = fd, .cb = clock_cb, .data = e };
		rc = loop_watch_add(&e->loop, &e->clockw, EPOLLIN);
	}
	if (rc) {
		eng_log(e, "cannot watch the wall clock: %s: clock steps go unnoticed until a restart",
			strerror(-rc));
		if (fd >= 0)
			close(fd);
		e->clockw.fd = -1;
	}
}

void clockstep_close(struct orch_engine *e)
{
	loop_watch_close(&e->loop, &e->clockw);
}
