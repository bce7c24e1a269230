/* core/clockstep.h — noticing that the wall clock was set (SPEC §9).
 *
 * Windows and schedules keep their deadlines as wall-clock times (they
 * must outlive a restart) and arm them on the loop's monotonic timers
 * (clock_wall_to_mono_ms()). While the daemon runs, a step of the wall
 * clock (settimeofday, an NTP step; not a slew) would leave the two apart:
 * this module learns of each step from a CLOCK_REALTIME timerfd armed with
 * TFD_TIMER_CANCEL_ON_SET, measures it (the change of wall - monotonic
 * since the last one acted upon) and, when it is a second or more, hands
 * it to the modules that keep wall deadlines: windows keep their remaining
 * real time, schedules recompute their next time (core/schedules.c,
 * core/windows.c say how). Steps under a second add up until they reach
 * one.
 *
 * Owns one timerfd watched on the engine's loop. Engine thread only. */
#ifndef ORCH_CLOCKSTEP_H
#define ORCH_CLOCKSTEP_H

#include <stdint.h>

struct orch_engine;

/* Start watching (never fails: a kernel without the timerfd flag is
 * logged, and clock steps then go unnoticed until a restart). */
void clockstep_open(struct orch_engine *e);
void clockstep_close(struct orch_engine *e);
/* Has the clock been set since the last look? Then act on it now. The
 * callbacks of timers that compare wall-clock deadlines call this first:
 * a step in the same loop turn, its watch not yet read, must not make
 * them fire early. One read(2) when nothing happened. */
void clockstep_check(struct orch_engine *e);
/* The wall clock moved DELTA_MS (> 0: forward) against the monotonic one:
 * tell every module that keeps wall deadlines. Called by the watch; tests
 * call it directly. */
void clockstep_apply(struct orch_engine *e, int64_t delta_ms);

#endif
