#!/usr/bin/env bash
# Signals to sandboxed (bwrap) steps (SPEC 3, 5): a timeout, a cancel and a
# graceful daemon stop send SIGTERM to the step's own processes inside the
# sandbox (the main one and its children), then SIGKILL after kill_grace_sec;
# nothing of the step outlives it.
. "$(dirname "$0")/lib.sh"
start_fs

# records which of its processes got SIGTERM; a second attempt just succeeds.
# Its main process waits for its children when terminated: under bubblewrap,
# once the main process exits the PID namespace ends and takes the rest along
# at once (a child's TERM handler might not have run yet)
# "up" says both traps are set: the test waits for it, not for a time
TERMSTEP='echo go >>go; [ "$(wc -l <go)" -ge 2 ] && exit 0
( trap "echo child >>term; exit 1" TERM; echo up >child.up; sleep 30 & wait ) &
trap "echo main >>term; wait; exit 1" TERM
while [ ! -e child.up ]; do sleep 0.05; done; echo up >up; sleep 30 & wait'
# ignores SIGTERM: only the SIGKILL after the grace period ends it
STUBBORN='trap "" TERM; echo up >up; sleep 30; echo survived >>survived'

# timeout 3 s: time enough for the step to set its traps on a slow machine
p=$(plan '{"globals": {"kill_grace_sec": 1}}' \
  "$(step w "$TERMSTEP" '{"timeout_sec": 3}')")
must_submit tmo "$p"
must_submit stub "$(plan '{"globals": {"kill_grace_sec": 1}}' "$(step w "$STUBBORN" '{"timeout_sec": 1}')")"
must_submit can "$(plan '{"globals": {"kill_grace_sec": 1}}' "$(step w "$TERMSTEP")")"
is_sb_field tmo-1 isolation bwrap || fail "the steps should run under bwrap (isolation is '$(sb_field tmo-1 isolation)')"

# ---- cancel
wait_for 20 test -s "$(ws can-1)/up" || fail "can: the step never began"
echo cancel >"$M/runs/can-1/ctl" || fail "cancel was refused"
expect_run can-1 cancelled 30
wait_for 20 grep -qx main "$(ws can-1)/term" || fail "cancel: the sandboxed step did not get SIGTERM (term: $(cat "$(ws can-1)/term" 2>&1))"
wait_for 20 grep -qx child "$(ws can-1)/term" || fail "cancel: the sandboxed step's child did not get SIGTERM"
wait_for 20 no_procs_of_run can-1 || fail "cancel: processes of the step outlived it: $(procs_of_run can-1)"

# ---- timeout: SIGTERM to the step's processes
expect_run tmo-1 failed 30
expect_step tmo-1 w timed_out
grep -qx main "$(ws tmo-1)/term" || fail "timeout: the sandboxed step did not get SIGTERM (term: $(cat "$(ws tmo-1)/term" 2>&1))"
grep -qx child "$(ws tmo-1)/term" || fail "timeout: the sandboxed step's child did not get SIGTERM"
wait_for 20 no_procs_of_run tmo-1 || fail "timeout: processes of the step outlived it: $(procs_of_run tmo-1)"

# ---- timeout of a step that ignores SIGTERM: SIGKILL after the grace period
expect_run stub-1 failed 30
expect_step stub-1 w timed_out
[ ! -e "$(ws stub-1)/survived" ] || fail "the step that ignores SIGTERM was not killed"
d=$(step_field stub-1 w duration_ms)
# at least timeout + grace; well before the end of its sleep 30
[ "$d" -ge 1800 ] && [ "$d" -lt 20000 ] || fail "stubborn step lasted $d ms: want timeout 1 s + grace 1 s"
wait_for 20 no_procs_of_run stub-1 || fail "stubborn: processes of the step outlived it: $(procs_of_run stub-1)"

# ---- graceful daemon stop: the step gets SIGTERM, runs again at the next start
must_submit dstop "$(plan '{"globals": {"kill_grace_sec": 1}}' "$(step w "$TERMSTEP")")"
W=$(ws dstop-1)
wait_for 20 test -s "$W/up" || fail "dstop: the step never began"
stop_fs
grep -qx main "$W/term" || fail "daemon stop: the sandboxed step did not get SIGTERM (term: $(cat "$W/term" 2>&1))"
wait_for 20 no_procs_of_run dstop-1 || fail "daemon stop: processes of the step outlived the daemon: $(procs_of_run dstop-1)"
start_fs
expect_run dstop-1 succeeded 20
expect_field dstop-1 w '.attempt == 2'
