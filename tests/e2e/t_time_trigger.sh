#!/usr/bin/env bash
# Triggers (SPEC 9): a plan with "on" starts no run when submitted; each
# matching event recorded submits it once, as NAME-N, with TRIGGER_EVENT,
# TRIGGER_RUN_ID and TRIGGER_SANDBOX; never on its own events; NAME.trigger
# counts; removing NAME.json ends it; chains; event_data matches; and an
# event committed before kill -9 fires exactly once.
. "$(dirname "$0")/lib.sh"
start_fs

runs_of() { ls "$M/runs" | grep -c "^$1-[0-9]*$"; }
trig() { jget "$M/plans/$1.trigger" "$2"; }

# ---- a trigger on run.succeeded of build -------------------------------------
after=$(plan '{"on": [{"event_type": "run.succeeded", "match": {"plan_id": "build"}}]}' \
  "$(step s 'echo "by $TRIGGER_RUN_ID in $TRIGGER_SANDBOX"; echo "arg ${TRIGGER_RUN_ID}"; printf %s "$TRIGGER_EVENT" >ev.json')")
must_submit after "$after"
[ -e "$M/runs/after-1" ] && fail "a trigger plan must not run when submitted"
[ -e "$M/plans/after.error" ] && fail "after.error: $(cat "$M/plans/after.error")"
[ -f "$M/plans/after.trigger" ] || fail "no plans/after.trigger"
jq -e '.fired == 0 and .last_at == null and .last_run == null' "$M/plans/after.trigger" >/dev/null \
  || fail "after.trigger before any event: $(cat "$M/plans/after.trigger")"
ls "$M/plans" | grep -qx after.trigger || fail "after.trigger not listed: $(ls "$M/plans")"
echo x >"$M/plans/after.trigger" 2>/dev/null && fail "after.trigger is writable"
rm -f "$M/plans/after.trigger" 2>/dev/null; [ -f "$M/plans/after.trigger" ] || fail "after.trigger could be removed"

# another plan's success does not fire it
must_submit other "$(plan '{}' "$(step s true)")"
expect_run other-1 succeeded
must_submit build "$(plan '{}' "$(step s 'exit 0')")"
expect_run build-1 succeeded
wait_for 20 test -d "$M/runs/after-1" || fail "run.succeeded of build-1 did not trigger after"
expect_run after-1 succeeded
L=$M/runs/after-1/steps/s/log
grep -q 'by build-1 in build-1' "$L" || fail "TRIGGER_RUN_ID/TRIGGER_SANDBOX not in the environment: $(cat "$L")"
grep -q 'arg build-1' "$L" || fail '${TRIGGER_RUN_ID} not substituted: '"$(cat "$L")"
jq -e '.type == "run.succeeded" and .run_id == "build-1" and .plan_id == "build"' "$(ws after-1)/ev.json" >/dev/null \
  || fail "TRIGGER_EVENT: $(cat "$(ws after-1)/ev.json")"
jq -e '.fired == 1 and .last_run == "after-1"' "$M/plans/after.trigger" >/dev/null \
  || fail "after.trigger: $(cat "$M/plans/after.trigger")"
is_iso "$(trig after .last_at)" || fail "last_at: $(trig after .last_at)"
[ "$(runs_of other)" -eq 1 ] || fail "other ran $(runs_of other) times"

# a failed build does not fire it; a second success fires it once more
must_submit build "$(plan '{}' "$(step s 'exit 3')")"
expect_run build-2 failed
must_submit build "$(plan '{}' "$(step s true)")"
expect_run build-3 succeeded
wait_for 20 test -d "$M/runs/after-2" || fail "build-3 did not trigger after"
expect_run after-2 succeeded
grep -q 'by build-3' "$M/runs/after-2/steps/s/log" || fail "after-2 not triggered by build-3"
sleep 1	# a run that should not exist has had its chance
[ "$(runs_of after)" -eq 2 ] || fail "after ran $(runs_of after) times, want 2 (its own run.succeeded must not fire it)"
[ "$(trig after .fired)" = 2 ] || fail "after.trigger: $(cat "$M/plans/after.trigger")"

# ---- its own events never fire it --------------------------------------------
must_submit self "$(plan '{"on": [{"event_type": "run.*"}, {"event_type": "step.*"}, {"event_type": "sandbox.*"}]}' "$(step s true)")"
must_submit ping "$(plan '{}' "$(step s true)")"
expect_run ping-1 succeeded
wait_for 20 test -d "$M/runs/self-1" || fail "run.* of ping did not trigger self"
# ping-1's run.created, step.*, run.succeeded, its sandbox's sandbox.created...
# each fire self once; self's own runs' (and their sandboxes') never do
n_ping=$(jq -c 'select((.run_id // .sandbox) == "ping-1") | select(.type | test("^(run|step|sandbox)\\."))' "$M/events" | grep -c .)
[ "$n_ping" -ge 4 ] || fail "ping-1 has only $n_ping events"
wait_for 20 test "$(ls "$M/runs" | grep -c '^self-[0-9]*$')" -ge "$n_ping" || fail "self ran $(runs_of self) times, want $n_ping"
for r in $(ls "$M/runs" | grep '^self-'); do expect_run "$r" succeeded; done
sleep 1
[ "$(runs_of self)" -eq "$n_ping" ] || fail "self ran $(runs_of self) times for $n_ping events of ping: its own events fired it"
rm "$M/plans/self.json"

# ---- removing NAME.json ends the trigger ---------------------------------------
rm "$M/plans/after.json" || fail "rm after.json"
[ -e "$M/plans/after.trigger" ] && fail "after.trigger outlived after.json"
must_submit build "$(plan '{}' "$(step s true)")"
expect_run build-4 succeeded
sleep 1
[ "$(runs_of after)" -eq 2 ] || fail "after ran after its plan was removed"

# ---- a chain: build -> test -> report ------------------------------------------
must_submit test "$(plan '{"on": [{"event_type": "run.succeeded", "match": {"plan_id": "build"}}]}' \
  "$(step s 'echo "test of $TRIGGER_RUN_ID"')")"
must_submit report "$(plan '{"on": [{"event_type": "run.succeeded", "match": {"plan_id": "test"}}]}' \
  "$(step s 'echo "report of $TRIGGER_RUN_ID"')")"
must_submit build "$(plan '{}' "$(step s true)")"
expect_run build-5 succeeded
wait_for 20 test -d "$M/runs/test-1" || fail "build-5 did not trigger test"
expect_run test-1 succeeded
wait_for 20 test -d "$M/runs/report-1" || fail "test-1 did not trigger report"
expect_run report-1 succeeded
grep -q 'report of test-1' "$M/runs/report-1/steps/s/log" || fail "report-1: $(cat "$M/runs/report-1/steps/s/log")"
rm "$M/plans/test.json" "$M/plans/report.json"

# ---- a posted event, matched on its type glob and event_data -------------------
mkdir "$M/sandboxes/proj" || fail "mkdir sandboxes/proj"
must_submit triage "$(plan '{"on": [{"event_type": "bug.*", "match": {"event_data.severity": "high"}}]}' \
  "$(step s 'echo "triage in [$TRIGGER_SANDBOX] run [$TRIGGER_RUN_ID]"')")"
E=$M/sandboxes/proj/events
echo '{"event_type": "bug.reported", "event_data": {"severity": "low"}}' >>"$E" || fail "post"
echo '{"event_type": "feature.asked", "event_data": {"severity": "high"}}' >>"$E" || fail "post"
echo '{"event_type": "bug.reported", "event_data": {"severity": 1}}' >>"$E" || fail "post"
echo '{"event_type": "bug.reported", "event_data": {"severity": "high", "id": 7}}' >>"$E" || fail "post"
wait_for 20 test -d "$M/runs/triage-1" || fail "bug.reported with severity high did not trigger triage"
expect_run triage-1 succeeded
grep -q 'triage in \[proj\] run \[\]' "$M/runs/triage-1/steps/s/log" || fail "triage-1: $(cat "$M/runs/triage-1/steps/s/log")"
sleep 1
[ "$(runs_of triage)" -eq 1 ] || fail "triage ran $(runs_of triage) times, want 1"

# ---- validation errors go to NAME.error ----------------------------------------
submit bad '{"on": [{"event_typ": "x"}], "steps": [{"id": "s", "command": "true"}]}' && fail "a bad \"on\" was accepted"
grep -q 'did you mean "event_type"' "$M/plans/bad.error" || fail "bad.error: $(cat "$M/plans/bad.error")"

# ---- kill -9 after a matching event: exactly one run after the restart ---------
# the trigger survives a restart too (the first restart is graceful)
stop_fs
start_fs
[ -f "$M/plans/triage.trigger" ] || fail "triage.trigger lost across a restart"
echo '{"event_type": "bug.filed", "event_data": {"severity": "high"}}' >>"$E" || fail "post"
# the post is acknowledged once committed, with the run it fired
crash_fs
start_fs
wait_for 20 test -d "$M/runs/triage-2" || fail "the event posted before kill -9 did not fire triage"
expect_run triage-2 succeeded
sleep 1
[ "$(runs_of triage)" -eq 2 ] || fail "triage ran $(runs_of triage) times after kill -9, want 2"
[ "$(trig triage .fired)" = 2 ] || fail "triage.trigger: $(cat "$M/plans/triage.trigger")"
stop_fs
