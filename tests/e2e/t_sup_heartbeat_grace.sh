#!/usr/bin/env bash
# Heartbeats degrade before they kill (SPEC 8): with heartbeat_ttl_sec T and
# heartbeat_grace_sec G, no heartbeat for T makes the sandbox's health
# "degraded" (event sandbox.degraded with the run, step, attempt and silent_ms);
# a heartbeat within the grace makes it "healthy" again (sandbox.healthy) and
# the attempt goes on; none for T+G kills and retries it as section 5 says
# (reason missed_heartbeat, counted in restarts). A sandbox is degraded while
# any of its attempts is; an attempt that ends degraded does not leave it so.
# With G = 0 nothing changes: no degraded state, killed after T.
# The workers wait for files the test makes, so no step depends on the
# machine's speed: G is 60 s where the grace must not run out.
. "$(dirname "$0")/lib.sh"
start_fs

HB='echo "{\"event_type\": \"heartbeat\"}" >>"$ORCHFS_SANDBOX/events" || exit 3'
until_file() { echo "until [ -e $1 ]; do sleep 0.05; done"; }
GRACE='{"heartbeat_ttl_sec": 1, "heartbeat_grace_sec": 60}'
# types FILE: the sandbox.* health events of FILE as "type:step:attempt", in order
types() { jq -r 'select(.type == "sandbox.degraded" or .type == "sandbox.healthy") | "\(.type):\(.step_id):\(.attempt)"' "$1" | tr '\n' ' '; }

# ---- (1) silent for longer than T, within T+G: degraded, healthy again, not restarted
must_submit grace "$(plan '{}' "$(step w "$HB; $(until_file go); $HB; $(until_file done); $HB; exit 0" "$GRACE")")"
wait_for 20 is_sb_field grace-1 health degraded || fail "health of a silent worker is '$(sb_field grace-1 health)', want degraded"
SE=$M/sandboxes/grace-1/events
[ "$(count_events "$SE" sandbox.degraded '.run_id == "grace-1" and .step_id == "w" and .attempt == 1 and .sandbox == "grace-1" and .silent_ms >= 1000 and .heartbeat_ttl_sec == 1 and .heartbeat_grace_sec == 60')" -eq 1 ] \
  || fail "want one sandbox.degraded for step w attempt 1, silent >= 1000 ms: $(grep sandbox. "$SE")"
[ "$(count_events "$SE" sandbox.healthy)" -eq 0 ] || fail "sandbox.healthy before any new heartbeat"
[ "$(count_events "$M/events" sandbox.degraded '.run_id == "grace-1"')" -eq 1 ] || fail "sandbox.degraded is not in MOUNT/events"
is_step_state grace-1 w running || fail "the degraded step is $(step_state grace-1 w), want running"
W=$(ws grace-1)
touch "$W/go"
# the heartbeat ends the degraded state; a second silence degrades it again
wait_for 20 has_events "$SE" sandbox.healthy 1 || fail "no sandbox.healthy after the heartbeat: $(types "$SE")"
[ "$(count_events "$SE" sandbox.healthy '.run_id == "grace-1" and .step_id == "w" and .attempt == 1 and .silent_ms >= 1000')" -eq 1 ] \
  || fail "sandbox.healthy lacks its run, step, attempt or silent_ms: $(grep sandbox.healthy "$SE")"
wait_for 20 has_events "$SE" sandbox.degraded 2 || fail "a second silence did not degrade it again: $(types "$SE")"
is_sb_field grace-1 health degraded || fail "health after the second silence is '$(sb_field grace-1 health)', want degraded"
touch "$W/done"
expect_run grace-1 succeeded 30
expect_field grace-1 w '.attempt == 1'
[ "$(types "$SE")" = "sandbox.degraded:w:1 sandbox.healthy:w:1 sandbox.degraded:w:1 sandbox.healthy:w:1 " ] \
  || fail "health events of the sandbox: $(types "$SE")"
[ "$(count_events "$M/runs/grace-1/events" step.retrying)" -eq 0 ] || fail "the step was retried within the grace"
[ "$(sb_field grace-1 restarts)" -eq 0 ] || fail "the sandbox counts $(sb_field grace-1 restarts) restarts"
is_sb_field grace-1 health healthy || fail "health at the end is '$(sb_field grace-1 health)', want healthy"

# ---- two steps in one sandbox: degraded while either is
must_submit two "$(plan '{}' \
  "$(step a "$HB; $(until_file go-a); $HB; exit 0" "$GRACE")" \
  "$(step b "$HB; $(until_file go-b); $HB; exit 0" "$GRACE")")"
SE=$M/sandboxes/two-1/events
wait_for 20 has_events "$SE" sandbox.degraded 2 || fail "both silent steps should degrade the sandbox: $(types "$SE")"
is_sb_field two-1 health degraded || fail "health of two silent steps is '$(sb_field two-1 health)'"
W=$(ws two-1)
touch "$W/go-a"
wait_for 20 is_step_state two-1 a succeeded || fail "step a did not end: $(step_states two-1)"
is_sb_field two-1 health degraded || fail "health while step b is still degraded is '$(sb_field two-1 health)', want degraded"
[ "$(count_events "$SE" sandbox.healthy)" -eq 0 ] || fail "sandbox.healthy while step b is degraded: $(types "$SE")"
touch "$W/go-b"
expect_run two-1 succeeded 30
[ "$(count_events "$SE" sandbox.healthy '.step_id == "b"')" -eq 1 ] && [ "$(count_events "$SE" sandbox.healthy)" -eq 1 ] \
  || fail "want one sandbox.healthy, at step b's heartbeat: $(types "$SE")"
is_sb_field two-1 health healthy || fail "health at the end is '$(sb_field two-1 health)', want healthy"

# ---- an attempt that ends degraded (by its exit, by a cancel) leaves the sandbox
must_submit quits "$(plan '{}' "$(step w "$HB; $(until_file go); exit 0" "$GRACE")")"
wait_for 20 is_sb_field quits-1 health degraded || fail "health of quits-1 is '$(sb_field quits-1 health)', want degraded"
touch "$(ws quits-1)/go"
expect_run quits-1 succeeded 30
is_sb_field quits-1 health healthy || fail "health after a degraded attempt exited is '$(sb_field quits-1 health)', want healthy"
must_submit cancelled "$(plan '{}' "$(step w "$HB; sleep 60" "$GRACE")")"
wait_for 20 is_sb_field cancelled-1 health degraded || fail "health of cancelled-1 is '$(sb_field cancelled-1 health)', want degraded"
echo cancel >"$M/runs/cancelled-1/ctl" || fail "cancel refused"
expect_run cancelled-1 cancelled 30
is_sb_field cancelled-1 health healthy || fail "health after a degraded attempt was cancelled is '$(sb_field cancelled-1 health)', want healthy"

# ---- kill -9 while degraded: the attempt runs again, its clock afresh
must_submit k9 "$(plan '{}' "$(step w "echo ran >>count; $HB; $(until_file go); $HB; exit 0" "$GRACE")")"
wait_for 20 is_sb_field k9-1 health degraded || fail "health of k9-1 is '$(sb_field k9-1 health)', want degraded"
crash_fs
start_fs
W=$(ws k9-1) SE=$M/sandboxes/k9-1/events
wait_for 20 file_is "$W/count" "ran
ran" || fail "the attempt did not run again after kill -9: $(cat "$W/count")"
wait_for 20 has_events "$SE" sandbox.degraded 1 '.attempt > 1' || fail "the new attempt did not degrade: $(types "$SE")"
is_sb_field k9-1 health degraded || fail "health of k9-1 after the restart is '$(sb_field k9-1 health)', want degraded"
touch "$W/go"
expect_run k9-1 succeeded 30
[ "$(count_events "$SE" sandbox.healthy '.attempt > 1')" -eq 1 ] || fail "no sandbox.healthy for the new attempt: $(types "$SE")"
is_sb_field k9-1 health healthy || fail "health of k9-1 at the end is '$(sb_field k9-1 health)', want healthy"

# ---- (2) silent past T+G: killed and retried as today, after the grace
must_submit gone "$(plan '{"globals": {"kill_grace_sec": 1}}' \
  "$(step w "echo ran >>count; $HB; sleep 60" '{"heartbeat_ttl_sec": 1, "heartbeat_grace_sec": 1, "retries": 1}')")"
expect_run gone-1 failed 60
expect_step gone-1 w failed
expect_field gone-1 w '.attempt == 2'
[ "$(cat "$(ws gone-1)/count")" = "ran
ran" ] || fail "the silent step should have run twice: $(cat "$(ws gone-1)/count")"
RE=$M/runs/gone-1/events SE=$M/sandboxes/gone-1/events
[ "$(count_events "$RE" step.retrying '.step_id == "w" and .reason == "missed_heartbeat"')" -eq 1 ] \
  || fail "want one step.retrying with reason missed_heartbeat: $(grep step.retrying "$RE")"
[ "$(count_events "$RE" step.failed '.step_id == "w" and .reason == "missed_heartbeat"')" -eq 1 ] \
  || fail "want one step.failed with reason missed_heartbeat: $(grep step.failed "$RE")"
[ "$(types "$SE")" = "sandbox.degraded:w:1 sandbox.degraded:w:2 " ] || fail "health events of a step killed twice: $(types "$SE")"
# each attempt degraded before it was killed, and was killed no earlier than T+G
[ "$(jq -r 'select(.type == "sandbox.degraded" or .type == "step.retrying" or .type == "step.failed") | .type' "$SE" | tr '\n' ' ')" \
  = "sandbox.degraded step.retrying sandbox.degraded step.failed " ] || fail "order of events: $(types "$SE")"
started=($(jq -r 'select(.type == "step.started") | .ts' "$RE"))
[ ${#started[@]} -eq 2 ] || fail "want two step.started events, got ${#started[@]}"
gap=$(( $(iso_ms "${started[1]}") - $(iso_ms "${started[0]}") ))
[ "$gap" -ge 1900 ] || fail "attempt 2 started $gap ms after attempt 1: T+G is 2 s"
[ "$(sb_field gone-1 restarts)" -eq 2 ] || fail "want the two kills in the sandbox's restarts: $(sb_field gone-1 restarts)"
is_sb_field gone-1 health unhealthy || fail "health after the kills is '$(sb_field gone-1 health)', want unhealthy"
wait_for 20 no_procs_of_run gone-1 || fail "processes of the killed step live on: $(procs_of_run gone-1)"

# ---- (3) G = 0 (given or not): no degraded state, killed after T as today
must_submit nograce "$(plan '{"globals": {"kill_grace_sec": 1}}' \
  "$(step g0 "$HB; sleep 60" '{"heartbeat_ttl_sec": 1, "heartbeat_grace_sec": 0, "on_failure": "continue"}')" \
  "$(step none "$HB; sleep 60" '{"heartbeat_ttl_sec": 1, "on_failure": "continue"}')")"
expect_run nograce-1 failed 30
RE=$M/runs/nograce-1/events SE=$M/sandboxes/nograce-1/events
for s in g0 none; do
  expect_step nograce-1 $s failed
  [ "$(count_events "$RE" step.failed ".step_id == \"$s\" and .reason == \"missed_heartbeat\"")" -eq 1 ] \
    || fail "step $s: want step.failed with reason missed_heartbeat: $(grep step.failed "$RE")"
done
[ -z "$(types "$SE")" ] || fail "sandbox health events without a grace: $(types "$SE")"
[ "$(sb_field nograce-1 restarts)" -eq 2 ] || fail "restarts without a grace: $(sb_field nograce-1 restarts)"
is_sb_field nograce-1 health unhealthy || fail "health without a grace is '$(sb_field nograce-1 health)', want unhealthy"
