#!/usr/bin/env bash
# Clock steps (SPEC 9, core/clockstep.h): the daemon notices each step of
# the wall clock of a second or more (settimeofday; here `date -s`, a few
# seconds forward and then back, so the machine ends where it was) and
# hands it to windows and schedules: a window keeps its remaining real
# time (its deadline moves with the clock), an every_sec schedule too (its
# next time moves), a cron schedule names wall-clock minutes (its next time
# stays). Needs CAP_SYS_TIME: skipped where
# the clock cannot be set (a container without it), never in CI as root
# on a machine.
. "$(dirname "$0")/lib.sh"
steps() { awk '/^orchfs_clock_steps_total/ {print $2}' "$M/metrics"; }
# step the clock by $1 seconds (from where it stands, to the nanosecond)
step_clock() { date -s "@$(awk -v t="$(date +%s.%N)" -v d="$1" 'BEGIN { printf "%.6f", t + d }')" >/dev/null; }

ms() { iso_ms "$(jget "$1" "$2")"; }
near() { [ "$1" -ge $(( $2 - 500 )) ] && [ "$1" -le $(( $2 + 500 )) ]; }	# within 0.5 s

start_fs
must_submit w "$(plan '{"sandbox": {"id": "win", "window": {"duration_sec": 600, "on_end": "stop"}}}' "$(step s 'sleep 600')")"
must_submit every "$(plan '{"schedule": {"every_sec": 3600}}' "$(step s true)")"
must_submit cron "$(plan '{"schedule": {"cron": "0 0 1 1 *"}}' "$(step s true)")"
D=$(ms "$M/sandboxes/win/status" .window.deadline); X=$(ms "$M/sandboxes/win/status" .window.max_deadline)
O=$(ms "$M/sandboxes/win/status" .window.opened_at)
E=$(ms "$M/plans/every.schedule" .next_at); C=$(ms "$M/plans/cron.schedule" .next_at)
[ "$(steps)" = 0 ] || fail "clock steps at start: $(steps)"
step_clock 0 2>/dev/null || { note "the clock cannot be set here (no CAP_SYS_TIME): skipped"; exit 77; }
sleep 0.5
[ "$(steps)" = 0 ] || fail "a step under a second was acted upon: $(steps)"
trap 'step_clock -3 2>/dev/null' EXIT	# never leave the clock ahead
step_clock 3 || fail "date -s failed"
wait_for 20 test "$(steps)" = 1 || fail "a 3 s step forward went unnoticed: $(steps)"
grep -Eq 'wall clock was set forward by (2\.[5-9]|3\.[0-4])' "$T/daemon.log" || fail "no log of the step: $(tail -3 "$T/daemon.log")"
near "$(ms "$M/sandboxes/win/status" .window.deadline)" $((D + 3000)) || fail "the window's deadline did not move 3 s: $D -> $(jget "$M/sandboxes/win/status" .window.deadline)"
near "$(ms "$M/sandboxes/win/status" .window.max_deadline)" $((X + 3000)) || fail "the window's maximum did not move 3 s"
[ "$(ms "$M/sandboxes/win/status" .window.opened_at)" = "$O" ] || fail "opened_at moved"
near "$(ms "$M/plans/every.schedule" .next_at)" $((E + 3000)) || fail "every_sec's next time did not move 3 s: $(cat "$M/plans/every.schedule")"
[ "$(ms "$M/plans/cron.schedule" .next_at)" = "$C" ] || fail "cron's next time moved: $(cat "$M/plans/cron.schedule")"
step_clock -3 || fail "date -s failed"
trap - EXIT
wait_for 20 test "$(steps)" = 2 || fail "a 3 s step back went unnoticed: $(steps)"
grep -Eq 'wall clock was set back by (2\.[5-9]|3\.[0-4])' "$T/daemon.log" || fail "no log of the step back: $(tail -3 "$T/daemon.log")"
near "$(ms "$M/sandboxes/win/status" .window.deadline)" "$D" || fail "the window's deadline did not come back"
near "$(ms "$M/plans/every.schedule" .next_at)" "$E" || fail "every_sec's next time did not come back"
[ "$(ms "$M/plans/cron.schedule" .next_at)" = "$C" ] || fail "cron's next time moved"
[ "$(jget "$M/runs/w-1/status" .state)" = running ] || fail "the window ended at a step of the clock: $(jget "$M/runs/w-1/status" .state)"
[ ! -e "$M/runs/every-1" ] && [ ! -e "$M/runs/cron-1" ] || fail "a step of the clock fired a schedule"
stop_fs
