#!/usr/bin/env bash
# Timeouts (SPEC 3, Semantics): the whole process group gets SIGTERM at the
# timeout, then SIGKILL after kill_grace_sec; the attempt is timed_out.
. "$(dirname "$0")/lib.sh"
start_fs

# Without isolation the pids the steps write are host pids. Timeouts of 3 s:
# the steps have time to set their traps however slow the machine.
p=$(plan '{"globals": {"kill_grace_sec": 1, "max_concurrency": 2}, "sandbox": {"isolation": "none"}}' \
  "$(step gc 'sleep 300 & echo $! > gc.pid; wait' '{"timeout_sec": 3, "on_failure": "continue"}')" \
  "$(step stubborn "trap '' TERM; echo \$\$\$\$ > st.pid; sleep 300; echo survived" '{"timeout_sec": 3, "on_failure": "continue"}')")
must_submit to "$p"
expect_run to-1 failed 60
W=$(ws to-1)

expect_step to-1 gc timed_out
expect_step to-1 stubborn timed_out
E=$M/runs/to-1/events
[ "$(count_events "$E" step.timed_out '.step_id == "gc"')" -eq 1 ] || fail "no step.timed_out event for gc: $(cat "$E")"
[ "$(count_events "$E" step.timed_out '.step_id == "stubborn"')" -eq 1 ] || fail "no step.timed_out event for stubborn"
[ "$(count_events "$E" step.succeeded)" -eq 0 ] || fail "a timed-out step was reported succeeded"
[ "$(count_events "$E" run.failed)" -eq 1 ] || fail "no run.failed event"

gc=$(cat "$W/gc.pid" 2>/dev/null); [ -n "$gc" ] || fail "the step did not write gc.pid"
wait_for 20 sh -c "! kill -0 $gc" || fail "grandchild $gc ($(tr '\0' ' ' </proc/$gc/cmdline 2>/dev/null), state $(awk '{print $3}' /proc/$gc/stat 2>/dev/null)) survived the timeout of its step"
st=$(cat "$W/st.pid" 2>/dev/null); [ -n "$st" ] || fail "the stubborn step did not write st.pid"
wait_for 20 sh -c "! kill -0 $st" || fail "the step that ignores SIGTERM ($st) is still alive"
! grep -q survived "$M/runs/to-1/steps/stubborn/log" || fail "stubborn step went on after its timeout"
wait_for 20 no_procs_of_run to-1 || fail "processes of the timed-out steps survived: $(procs_of_run to-1 | xargs -r ps -o pid,stat,args -p)"

# gc died of SIGTERM at 3 s; stubborn ignored it and got SIGKILL after the 1 s
# grace (the upper bounds only tell them from the end of their sleep 300)
gd=$(step_field to-1 gc duration_ms) sd=$(step_field to-1 stubborn duration_ms)
[ "$gd" -ge 2950 ] && [ "$gd" -lt 60000 ] || fail "gc should end by SIGTERM 3 s after start, took $gd ms"
[ "$sd" -ge 3900 ] && [ "$sd" -lt 60000 ] || fail "stubborn should be SIGKILLed 4 s (timeout + grace) after start, took $sd ms"
expect_field to-1 stubborn '.signal == 9 or (.signal | tostring | test("KILL"))'
expect_field to-1 gc '.signal == 15 or (.signal | tostring | test("TERM"))'

# the same with the default isolation: nothing of the step survives
p=$(plan '{"globals": {"kill_grace_sec": 1}}' \
  "$(step gc2 'sleep 299 & wait' '{"timeout_sec": 3}')")
must_submit to2 "$p"
wait_for 20 sh -c "grep -qsF ORCHFS_RUN_ID=to2-1 /proc/[0-9]*/environ" || fail "cannot see the processes of to2-1 (the check below would prove nothing)"
expect_run to2-1 failed 60
expect_step to2-1 gc2 timed_out
wait_for 20 no_procs_of_run to2-1 || fail "processes of a timed-out step survived: $(procs_of_run to2-1 | xargs -r ps -o pid,stat,args -p)"
