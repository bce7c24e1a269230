#!/usr/bin/env bash
# Clock steps (SPEC 9, core/clockstep.h): the daemon notices each step of
# the wall clock of a second or more (settimeofday; here `date -s`, a few
# seconds forward and then back, so the machine ends where it was) and
# hands it to windows and schedules. Needs CAP_SYS_TIME: skipped where
# the clock cannot be set (a container without it), never in CI as root
# on a machine.
. "$(dirname "$0")/lib.sh"
steps() { awk '/^orchfs_clock_steps_total/ {print $2}' "$M/metrics"; }
# step the clock by $1 seconds (from where it stands, to the nanosecond)
step_clock() { date -s "@$(awk -v t="$(date +%s.%N)" -v d="$1" 'BEGIN { printf "%.6f", t + d }')" >/dev/null; }

start_fs
[ "$(steps)" = 0 ] || fail "clock steps at start: $(steps)"
step_clock 0 2>/dev/null || { note "the clock cannot be set here (no CAP_SYS_TIME): skipped"; exit 77; }
sleep 0.5
[ "$(steps)" = 0 ] || fail "a step under a second was acted upon: $(steps)"
trap 'step_clock -3 2>/dev/null' EXIT	# never leave the clock ahead
step_clock 3 || fail "date -s failed"
wait_for 20 test "$(steps)" = 1 || fail "a 3 s step forward went unnoticed: $(steps)"
grep -Eq 'wall clock was set forward by (2\.9|3\.0)' "$T/daemon.log" || fail "no log of the step: $(tail -3 "$T/daemon.log")"
step_clock -3 || fail "date -s failed"
trap - EXIT
wait_for 20 test "$(steps)" = 2 || fail "a 3 s step back went unnoticed: $(steps)"
grep -Eq 'wall clock was set back by (2\.9|3\.0)' "$T/daemon.log" || fail "no log of the step back: $(tail -3 "$T/daemon.log")"
stop_fs
