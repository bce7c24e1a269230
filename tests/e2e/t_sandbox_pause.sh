#!/usr/bin/env bash
# A sandbox's pause (SPEC 10 "Pause freezes"): ctl pause freezes every
# process of the sandbox (the cgroup freezer for steps in cgroups, which
# catches a process that left the step's process group; SIGSTOP to the
# step's tree for the others), the state is "paused", timeouts and
# heartbeat clocks stop; ctl resume thaws. A cancel while frozen ends the
# steps at once. The pause survives kill -9 of the daemon.
. "$(dirname "$0")/lib.sh"
start_fs

lines() { wc -l <"$1" 2>/dev/null || echo 0; }
# grows FILE N: FILE has more than N lines (for wait_for)
grows() { [ "$(lines "$1")" -gt "$2" ]; }
# still FILE: FILE does not grow over a second (frozen)
still() { local n; n=$(lines "$1"); sleep 1; [ "$(lines "$1")" = "$n" ]; }

# ---- SIGSTOP (no cgroup): a counter stops, clocks stop, resume -----------------
TICK='while :; do echo x >>ticks; sleep 0.1; done'
must_submit p "$(plan '{}' "$(step w "$TICK")")"
wait_for 20 grows "$(ws p-1)/ticks" 2 || fail "p: the worker never ticked"
echo pause >"$M/sandboxes/p-1/ctl" || fail "p: ctl pause refused"
wait_for 20 is_sb_field p-1 state paused || fail "p: sandbox state $(sb_field p-1 state)"
wait_for 20 is_run_state p-1 paused || fail "p-1: run state $(run_state p-1)"
[ "$(count_events "$M/sandboxes/p-1/events" sandbox.paused)" = 1 ] || fail "p: no sandbox.paused event"
sleep 0.3	# a SIGSTOP reaches each process of the tree in turn
still "$(ws p-1)/ticks" || fail "p: the worker kept running while paused"
n=$(lines "$(ws p-1)/ticks")
write_fails "$M/sandboxes/p-1/ctl" pause || fail "p: a second pause was taken"
write_fails "$M/runs/p-1/ctl" resume || fail "p-1: a run's resume in a paused sandbox was taken"
echo resume >"$M/sandboxes/p-1/ctl" || fail "p: ctl resume refused"
wait_for 20 grows "$(ws p-1)/ticks" "$n" || fail "p: the worker did not go on after resume"
wait_for 20 is_run_state p-1 running || fail "p-1: run state after resume $(run_state p-1)"
[ "$(sb_field p-1 state)" = running ] || fail "p: sandbox state after resume $(sb_field p-1 state)"
[ "$(count_events "$M/sandboxes/p-1/events" sandbox.resumed)" = 1 ] || fail "p: no sandbox.resumed event"
write_fails "$M/sandboxes/p-1/ctl" resume || fail "p: resume of a sandbox not paused was taken"
write_fails "$M/sandboxes/p-1/ctl" 'pause now' || fail "p: pause with words was taken"
echo cancel >"$M/runs/p-1/ctl"
expect_run p-1 cancelled

# the step's timeout and heartbeat clocks stop while it is frozen: 2 s of
# work with a 4 s timeout and a 1 s heartbeat TTL, paused for 5 s, succeeds
HB='for i in $(seq 1 10); do echo "{\"event_type\":\"heartbeat\"}" >>"$ORCHFS_SANDBOX/events"; echo x >>ticks; sleep 0.2; done'
must_submit c "$(plan '{}' "$(step w "$HB" '{"timeout_sec": 4, "heartbeat_ttl_sec": 1}')")"
wait_for 20 grows "$(ws c-1)/ticks" 1 || fail "c: the worker never ticked"
echo pause >"$M/sandboxes/c-1/ctl" || fail "c: ctl pause refused"
wait_for 20 is_sb_field c-1 state paused || fail "c: sandbox state $(sb_field c-1 state)"
sleep 5
expect_step c-1 w running
echo resume >"$M/sandboxes/c-1/ctl" || fail "c: ctl resume refused"
expect_run c-1 succeeded 30

# a run submitted to a paused sandbox waits for its resume
must_submit q "$(plan '{"sandbox": {"id": "q"}}' "$(step s 'sleep 60')")"
wait_for 20 is_step_state q-1 s running || fail "q-1: step $(step_state q-1 s)"
echo pause >"$M/sandboxes/q/ctl" || fail "q: ctl pause refused"
must_submit q2 "$(plan '{"sandbox": {"id": "q"}}' "$(step s 'echo two >two')")"
echo cancel >"$M/runs/q-1/ctl"
expect_run q-1 cancelled 20	# at once, frozen or not (a 5 s grace would do too)
sleep 0.5
[ "$(run_state q2-1)" = pending ] || fail "q2-1 in a paused sandbox: $(run_state q2-1)"
echo resume >"$M/sandboxes/q/ctl" || fail "q: ctl resume refused"
expect_run q2-1 succeeded

# ---- durable: paused before kill -9, paused after ------------------------------
must_submit d "$(plan '{"sandbox": {"id": "d"}}' "$(step s 'echo start >>log; sleep 3; echo end >>log')")"
wait_for 20 grows "$(ws d)/log" 0 || fail "d: the step never started"
echo pause >"$M/sandboxes/d/ctl" || fail "d: ctl pause refused"
wait_for 20 is_sb_field d state paused || fail "d: sandbox state $(sb_field d state)"
crash_fs
start_fs
[ "$(sb_field d state)" = paused ] || fail "d: sandbox state after kill -9: $(sb_field d state)"
[ "$(run_state d-1)" = paused ] || fail "d-1: run state after kill -9: $(run_state d-1)"
sleep 1
no_procs_of_run d-1 || fail "d-1: a step runs in a paused sandbox after the restart"
echo resume >"$M/sandboxes/d/ctl" || fail "d: ctl resume refused after the restart"
expect_run d-1 succeeded 30
grep -qx end "$(ws d)/log" || fail "d: the step did not run to its end: $(cat "$(ws d)/log")"

# ---- the cgroup freezer: a step with limits ----------------------------------
if [ ! -w /sys/fs/cgroup/freezer ] && ! grep -qs freeze /proc/self/mounts; then
  note "no cgroup freezer here: the freezer half skipped"
  stop_fs
  exit 0
fi
# a process that left the step's process group (setsid) is frozen too:
# only the freezer can do that; isolation none, so no PID namespace holds it
ESC='setsid sh -c "while :; do echo x >>esc; sleep 0.1; done" </dev/null >/dev/null 2>&1 & while :; do echo x >>ticks; sleep 0.1; done'
must_submit f "$(plan '{"sandbox": {"isolation": "none", "limits": {"memory_mb": 256}}, "globals": {"kill_grace_sec": 60}}' \
  "$(step w "$ESC")")"
wait_for 20 grows "$(ws f-1)/esc" 2 || fail "f: the escaped worker never ticked"
echo pause >"$M/sandboxes/f-1/ctl" || fail "f: ctl pause refused"
wait_for 20 is_sb_field f-1 state paused || fail "f: sandbox state $(sb_field f-1 state)"
# its leaf in the freezer hierarchy says FROZEN
pid=$(procs_of_run f-1 w | head -1)
[ -n "$pid" ] || fail "f: no process of the step"
leaf=$(awk -F: '$2 == "freezer" { print $3 }' "/proc/$pid/cgroup")
if [ -w /sys/fs/cgroup/freezer ]; then
  [ -n "$leaf" ] && [ "$leaf" != / ] || fail "f: the step is in no freezer group: $(cat "/proc/$pid/cgroup")"
  wait_for 20 file_is "/sys/fs/cgroup/freezer$leaf/freezer.state" FROZEN \
    || fail "f: freezer.state $(cat "/sys/fs/cgroup/freezer$leaf/freezer.state")"
fi
sleep 0.2
still "$(ws f-1)/esc" || fail "f: a process that left the step's group kept running while paused"
still "$(ws f-1)/ticks" || fail "f: the worker kept running while paused"
n=$(lines "$(ws f-1)/esc")
echo resume >"$M/sandboxes/f-1/ctl" || fail "f: ctl resume refused"
wait_for 20 grows "$(ws f-1)/esc" "$n" || fail "f: the escaped process did not go on after resume"
# paused again, then cancelled: the frozen steps end at once (thawed for
# their kill, not after the 60 s grace) and nothing of them is left
echo pause >"$M/sandboxes/f-1/ctl" || fail "f: the second ctl pause refused"
wait_for 20 is_sb_field f-1 state paused || fail "f: sandbox state $(sb_field f-1 state)"
echo cancel >"$M/runs/f-1/ctl"
expect_run f-1 cancelled 20
wait_for 20 no_procs_of_run f-1 || fail "f-1: processes left after the cancel: $(procs_of_run f-1)"
n=$(lines "$(ws f-1)/esc")
sleep 0.5
[ "$(lines "$(ws f-1)/esc")" = "$n" ] || fail "f: the escaped process outlived the cancel"
stop_fs
