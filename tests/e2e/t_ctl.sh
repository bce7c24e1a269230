#!/usr/bin/env bash
# runs/ID/ctl (cancel, pause, resume, retry) and rmdir of runs (SPEC 4).
. "$(dirname "$0")/lib.sh"
start_fs

# ---- cancel a running run
must_submit can "$(plan '{}' \
  "$(step long 'echo started >long.mark; sleep 30; echo finished >>long.mark')" \
  "$(step next 'echo ran >next.mark' '{"depends_on": ["long"]}')")"
wait_for 20 is_step_state can-1 long running || fail "step long never ran"
# unknown commands fail and change nothing
write_fails "$M/runs/can-1/ctl" bogus-command || fail "an unknown ctl command was accepted"
grep -q 'Invalid argument' "$T/write.err" || fail "unknown ctl command: want EINVAL, got: $(cat "$T/write.err")"
write_fails "$M/runs/can-1/ctl" resume || fail "resume of a running (not paused) run was accepted"
is_run_state can-1 running || fail "a refused ctl write changed the run: $(run_state can-1)"
printf cancel >"$M/runs/can-1/ctl" || fail "cancel (without a newline) was refused"
expect_run can-1 cancelled 20
expect_step can-1 long cancelled
expect_step can-1 next cancelled
W=$(ws can-1)
! grep -q finished "$W/long.mark" && [ ! -e "$W/next.mark" ] || fail "cancel: steps went on"
[ "$(count_events "$M/runs/can-1/events" run.cancelled)" -eq 1 ] || fail "no run.cancelled event"
# commands that do not apply to a finished run
for c in pause resume cancel; do
  write_fails "$M/runs/can-1/ctl" $c || fail "'$c' on a cancelled run was accepted"
  grep -q 'Invalid argument' "$T/write.err" || fail "'$c' on a cancelled run: want EINVAL, got: $(cat "$T/write.err")"
done
is_run_state can-1 cancelled || fail "a refused ctl write changed a finished run"

# ---- pause: no new step starts; resume: the run goes on
must_submit pz "$(plan '{}' \
  "$(step a 'echo a >>order; sleep 1')" \
  "$(step b 'echo b >>order' '{"depends_on": ["a"]}')")"
wait_for 20 is_step_state pz-1 a running || fail "pz: a never ran"
echo pause >"$M/runs/pz-1/ctl" || fail "pause was refused"
wait_for 20 is_run_state pz-1 paused || fail "run state is $(run_state pz-1) after pause, want paused"
wait_for 20 is_step_state pz-1 a succeeded || fail "a running step should go on while paused"
sleep 0.5
expect_step pz-1 b pending
is_run_state pz-1 paused || fail "run should stay paused, is $(run_state pz-1)"
write_fails "$M/runs/pz-1/ctl" pause || fail "pause of a paused run was accepted"
[ "$(count_events "$M/runs/pz-1/events" run.paused)" -eq 1 ] || fail "want one run.paused event"
[ "$(count_events "$M/runs/pz-1/events" step.started '.step_id == "b"')" -eq 0 ] || fail "b started while paused"
echo resume >"$M/runs/pz-1/ctl" || fail "resume was refused"
expect_run pz-1 succeeded 20
expect_step pz-1 b succeeded
[ "$(tr -d '\n' <"$(ws pz-1)/order")" = ab ] || fail "pz: wrong order"
[ "$(count_events "$M/runs/pz-1/events" run.resumed)" -eq 1 ] || fail "want one run.resumed event"
a_fi=$(iso_ms "$(step_field pz-1 a finished_at)") b_st=$(iso_ms "$(step_field pz-1 b started_at)")
[ $((b_st - a_fi)) -ge 400 ] || fail "b started $((b_st - a_fi)) ms after a finished, while the run was paused"

# ---- retry a failed run: only the failed / cancelled steps run again
must_submit rt "$(plan '{}' \
  "$(step s 'echo ran >>s.count')" \
  "$(step f 'echo ran >>f.count; if [ -e marker ]; then exit 0; fi; touch marker; exit 1' '{"depends_on": ["s"]}')" \
  "$(step g 'echo ran >>g.count' '{"depends_on": ["f"]}')")"
expect_run rt-1 failed 20
expect_step rt-1 f failed
expect_step rt-1 g cancelled
echo retry >"$M/runs/rt-1/ctl" || fail "retry of a failed run was refused"
expect_run rt-1 succeeded 20
for s in s f g; do expect_step rt-1 $s succeeded; done
W=$(ws rt-1)
[ "$(wc -l <"$W/s.count")" -eq 1 ] || fail "retry ran the succeeded step s again"
[ "$(wc -l <"$W/f.count")" -eq 2 ] || fail "retry: f should have run twice, ran $(wc -l <"$W/f.count")"
[ "$(wc -l <"$W/g.count")" -eq 1 ] || fail "retry: g should have run once"
write_fails "$M/runs/rt-1/ctl" retry || fail "retry of a succeeded run was accepted"
grep -q 'Invalid argument' "$T/write.err" || fail "retry of a succeeded run: want EINVAL, got: $(cat "$T/write.err")"
is_run_state rt-1 succeeded || fail "a refused retry changed the run"

# ---- rmdir: EBUSY while running, removes a finished run
must_submit rm "$(plan '{}' "$(step w 'sleep 30')")"
wait_for 20 is_step_state rm-1 w running || fail "rm: never ran"
if rmdir "$M/runs/rm-1" 2>"$T/rmdir.err"; then fail "rmdir of a running run succeeded"; fi
grep -q 'Device or resource busy' "$T/rmdir.err" || fail "rmdir of a running run: want EBUSY, got: $(cat "$T/rmdir.err")"
[ -d "$M/runs/rm-1" ] && is_step_state rm-1 w running || fail "a refused rmdir changed the run"
echo cancel >"$M/runs/rm-1/ctl"
expect_run rm-1 cancelled 20
rmdir "$M/runs/rm-1" 2>"$T/rmdir.err" || fail "rmdir of a finished run failed: $(cat "$T/rmdir.err")"
[ ! -e "$M/runs/rm-1" ] || fail "runs/rm-1 still exists after rmdir"
! ls "$M/runs" | grep -qx rm-1 || fail "runs/ still lists rm-1"
rmdir "$M/runs/pz-1" || fail "rmdir of a succeeded run failed"
[ "$(ls "$M/runs" | tr '\n' ' ')" = "can-1 rt-1 " ] || fail "runs/ holds: $(ls "$M/runs")"
# the removal is durable
stop_fs
start_fs
[ ! -e "$M/runs/rm-1" ] && [ ! -e "$M/runs/pz-1" ] || fail "a removed run came back after a restart"
[ -d "$M/runs/rt-1" ] || fail "rt-1 lost over a restart"
