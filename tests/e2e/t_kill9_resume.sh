#!/usr/bin/env bash
# kill -9 of the daemon while a step runs (SPEC 1): the next daemon on the
# same state directory resumes the run; succeeded steps do not run again, the
# interrupted one runs again as a new attempt that does not use up retries;
# event seq values are never reused.
. "$(dirname "$0")/lib.sh"
start_fs

p=$(plan '{}' \
  "$(step a 'echo ran >>a.count')" \
  "$(step b 'echo ran >>b.count; [ "$(wc -l <b.count)" -ge 2 ] || sleep 60; echo done >>b.done' '{"depends_on": ["a"], "retries": 0}')" \
  "$(step c 'echo ran >>c.count' '{"depends_on": ["b"]}')")
must_submit res "$p"
wait_for 20 is_step_state res-1 b running || fail "b never ran"
W=$(ws res-1)
wait_for 20 test -s "$W/b.count" || fail "b never began"
# the attempt's step.started is committed a loop turn after its spawn
wait_for 20 has_events "$M/runs/res-1/events" step.started 1 '.step_id == "b"' || fail "no step.started for b"
cp "$M/events" "$T/events.before" || fail "cannot read MOUNT/events"
before_max=$(jq -s 'map(.seq) | max' "$T/events.before")
crash_fs
mounted "$M" && fail "the dead mount is still there"

start_fs
expect_run res-1 succeeded 30
[ "$(wc -l <"$W/a.count")" -eq 1 ] || fail "succeeded step a ran again after the restart"
[ "$(wc -l <"$W/b.count")" -eq 2 ] || fail "b should have run twice (interrupted, then again), ran $(wc -l <"$W/b.count")"
[ "$(wc -l <"$W/b.done")" -eq 1 ] || fail "b's first attempt should not have finished"
[ "$(wc -l <"$W/c.count")" -eq 1 ] || fail "c should have run once"
for s in a b c; do expect_step res-1 $s succeeded; done
expect_field res-1 a '.attempt == 1'
expect_field res-1 b '.attempt == 2'
expect_field res-1 c '.attempt == 1'
L=$M/runs/res-1/steps/b/log
grep -qx '=== attempt 1 ===' "$L" && grep -qx '=== attempt 2 ===' "$L" || fail "b's log should hold both attempts: $(cat "$L")"

# seq strictly increasing across the crash, with nothing lost or reused
seq_increasing "$M/events" || fail "MOUNT/events: seq not strictly increasing across the crash: $(jq -c '[.seq, .type]' "$M/events" | tr '\n' ' ')"
seq_increasing "$M/runs/res-1/events" || fail "runs/res-1/events: seq not strictly increasing"
[ "$(jq -s 'map(.seq) | max' "$M/events")" -gt "$before_max" ] || fail "no new events after the restart"
head -n "$(wc -l <"$T/events.before")" "$M/events" | cmp -s - "$T/events.before" \
  || fail "events recorded before the crash changed or were lost"
[ "$(count_events "$M/runs/res-1/events" step.started '.step_id == "b"')" -eq 2 ] || fail "want two step.started events for b"
[ "$(count_events "$M/runs/res-1/events" step.succeeded '.step_id == "a"')" -eq 1 ] || fail "a should have succeeded once"
[ "$(count_events "$M/runs/res-1/events" run.succeeded)" -eq 1 ] || fail "want one run.succeeded event"
jq -e '.progress.succeeded == 3 and .progress.total == 3' "$M/runs/res-1/status" >/dev/null || fail "progress wrong after resume"

# and a step that got retries is not charged for the interruption either
p=$(plan '{}' "$(step r 'n=$(cat n 2>/dev/null || echo 0); n=$((n + 1)); echo $n >n; [ $n -ne 1 ] || sleep 30; [ $n -ne 2 ] || exit 1; exit 0' '{"retries": 1}')")
must_submit rr "$p"
W=$(ws rr-1)

wait_for 20 file_is "$W/n" 1 || fail "r never began"
crash_fs
start_fs
expect_run rr-1 succeeded 30
expect_field rr-1 r '.attempt == 3'
[ "$(cat "$W/n")" -eq 3 ] || fail "r should have run 3 times: interrupted, failed, succeeded"
