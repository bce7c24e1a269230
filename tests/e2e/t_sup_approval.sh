#!/usr/bin/env bash
# Approval steps (SPEC §8, issue 13) on a real mount shared by real users:
# the step awaits a decision, the run is needs_human and MOUNT/attention
# lists it; only the approvers (users and @groups) decide, anyone else gets
# EACCES and changes nothing; the decision is recorded (decided_by,
# decided_at, reason) and the run goes on; reject fails the step (its
# on_failure applies); the timeout decides by itself; a cancel ends the wait;
# invalid approval plans are refused with messages that say why.
. "$(dirname "$0")/lib.sh"
need_root_users
new_user OWNER
new_user ALICE
new_user BOB
new_user CAROL
new_group OPS "$CAROL"
start_fs -o allow_other

att_lines() { grep -c . "$M/attention" 2>/dev/null; }
att_has() { jq -c --arg k "$1" --arg r "$2" 'select(.kind == $k and .run_id == $r)' "$M/attention" 2>/dev/null | grep -q .; }
# as_write USER FILE TEXT: write TEXT to FILE as USER; stderr in $T/w.err
as_write() { as "$1" bash -c 'printf "%s\n" "$2" >"$1"' sh "$2" "$3" 2>"$T/w.err"; }
submit_as() {
  printf '%s\n' "$3" >"$T/$2.json"; chmod 0644 "$T/$2.json"
  as "$1" cp "$T/$2.json" "$M/plans/$2.json" 2>"$T/cp.err"
}

# ---- approvers: a user and a group; the owner is not among them
p=$(jq -cn --arg a "$ALICE" --arg g "@$OPS" '{steps: [
  {id: "build", command: "true"},
  {id: "ship", type: "approval", prompt: "Deploy ${RUN_ID} to prod?", approvers: [$a, $g], depends_on: ["build"]},
  {id: "deploy", command: "sh", args: ["-c", "echo deployed"], depends_on: ["ship"]}]}')
submit_as "$OWNER" gate "$p" || fail "submit: $(cat "$T/cp.err")"
wait_for 20 is_step_state gate-1 ship awaiting_approval || fail "never awaited: $(step_states gate-1)"
is_run_state gate-1 needs_human || fail "run is $(run_state gate-1), wanted needs_human"
expect_step gate-1 deploy pending
att_has approval gate-1 || fail "attention lacks the approval: $(cat "$M/attention")"
jq -e --arg d "Deploy gate-1 to prod?" 'select(.run_id == "gate-1") | .detail == $d and .step_id == "ship"
   and .sandbox == "gate-1" and (.since | test("Z$"))' "$M/attention" >/dev/null \
  || fail "attention entry: $(cat "$M/attention")"
expect_field gate-1 ship '.type == "approval" and .prompt == "Deploy gate-1 to prod?" and .decision == null'
has_events "$M/runs/gate-1/events" step.awaiting_approval 1 || fail "no step.awaiting_approval event"
has_events "$M/events" attention.added 1 '.kind == "approval" and .run_id == "gate-1"' || fail "no attention.added"
grep -q '^orchfs_attention_waits 1$' "$M/metrics" || fail "metrics: $(grep attention "$M/metrics")"

# neither a stranger nor the owner (not an approver) may decide
for u in "$BOB" "$OWNER"; do
  as_write "$u" "$M/runs/gate-1/steps/ship/ctl" "approve" && fail "$u could approve"
  grep -q 'Permission denied' "$T/w.err" || fail "$u: want EACCES, got: $(cat "$T/w.err")"
  as_write "$u" "$M/runs/gate-1/steps/ship/ctl" "reject no" && fail "$u could reject"
done
expect_step gate-1 ship awaiting_approval
# a command that does not apply: EINVAL, nothing changes (an approver writes it)
as_write "$ALICE" "$M/runs/gate-1/steps/ship/ctl" "retry" && fail "retry of an approval step accepted"
grep -q 'Invalid argument' "$T/w.err" || fail "retry: want EINVAL, got: $(cat "$T/w.err")"
as_write "$ALICE" "$M/runs/gate-1/steps/ship/ctl" "approve-ish" && fail "an unknown command was accepted"
as_write "$ALICE" "$M/runs/gate-1/steps/build/ctl" "approve" && fail "approving a command step was accepted"
grep -q 'Permission denied' "$T/w.err" || fail "build ctl by a non-owner: want EACCES, got: $(cat "$T/w.err")"
expect_step gate-1 ship awaiting_approval

# an approver decides, with a reason
as_write "$ALICE" "$M/runs/gate-1/steps/ship/ctl" "approve  ship it, carefully " || fail "alice's approve: $(cat "$T/w.err")"
expect_run gate-1 succeeded
expect_field gate-1 ship ".state == \"succeeded\" and .decision == \"approved\" and .decided_by == \"$ALICE\"
  and .reason == \"ship it, carefully\" and (.decided_at | test(\"Z\$\"))"
grep -q deployed "$M/runs/gate-1/steps/deploy/log" || fail "deploy never ran"
has_events "$M/runs/gate-1/events" step.approved 1 ".decided_by == \"$ALICE\" and .reason == \"ship it, carefully\"" \
  || fail "step.approved: $(grep approved "$M/runs/gate-1/events")"
has_events "$M/events" attention.removed 1 '.run_id == "gate-1" and .resolution == "approved"' || fail "no attention.removed"
! att_has approval gate-1 || fail "attention still lists the decided approval: $(cat "$M/attention")"
as_write "$ALICE" "$M/runs/gate-1/steps/ship/ctl" "approve" && fail "approving twice was accepted"
grep -q 'Invalid argument' "$T/w.err" || fail "second approve: want EINVAL, got: $(cat "$T/w.err")"

# ---- @group: a member decides (CAROL, by the group file and by her groups)
p=$(jq -cn --arg g "@$OPS" '{steps: [{id: "g", type: "approval", approvers: [$g]}]}')
submit_as "$OWNER" grp "$p" || fail "submit: $(cat "$T/cp.err")"
wait_for 20 is_step_state grp-1 g awaiting_approval || fail "never awaited"
as_write "$ALICE" "$M/runs/grp-1/steps/g/ctl" "approve" && fail "alice is not in $OPS"
as_write "$CAROL" "$M/runs/grp-1/steps/g/ctl" "reject not in this sprint" || fail "carol: $(cat "$T/w.err")"
expect_run grp-1 failed
expect_field grp-1 g ".state == \"failed\" and .decision == \"rejected\" and .decided_by == \"$CAROL\" and .reason == \"not in this sprint\""
has_events "$M/runs/grp-1/events" step.failed 1 '.reason == "rejected"' || fail "step.failed lacks reason rejected"

# ---- no approvers: the run's owner decides (and root); reject with skip_dependents
p='{"steps": [{"id": "a", "type": "approval", "on_failure": "skip_dependents", "critical": false},
  {"id": "b", "command": "true", "depends_on": ["a"]}, {"id": "c", "command": "true"}]}'
submit_as "$OWNER" own "$p" || fail "submit: $(cat "$T/cp.err")"
wait_for 20 is_step_state own-1 a awaiting_approval || fail "never awaited"
as_write "$ALICE" "$M/runs/own-1/steps/a/ctl" "approve" && fail "a stranger decided without approvers"
as_write "$OWNER" "$M/runs/own-1/steps/a/ctl" "reject" || fail "owner's reject: $(cat "$T/w.err")"
expect_run own-1 succeeded
expect_step own-1 a failed
expect_step own-1 b skipped
expect_step own-1 c succeeded
expect_field own-1 a ".decided_by == \"$OWNER\" and .reason == \"rejected\""

# ---- a decision through a handle root opened is its writer's (and `by` says so)
p=$(jq -cn --arg a "$ALICE" '{steps: [{id: "g", type: "approval", approvers: [$a]}]}')
submit_as "$OWNER" hd "$p" || fail "submit: $(cat "$T/cp.err")"
wait_for 20 is_step_state hd-1 g awaiting_approval || fail "never awaited"
exec 3>"$M/runs/hd-1/steps/g/ctl" || fail "root cannot open the ctl"
exec 4>"$M/runs/hd-1/steps/g/ctl" || fail "root cannot open the ctl"
as "$BOB" bash -c 'echo approve >&4' 2>/dev/null && fail "bob decided through root's handle"
exec 4>&-
as "$ALICE" bash -c 'echo approve through a passed handle >&3' || fail "alice's approve through root's handle refused"
exec 3>&-
expect_run hd-1 succeeded
expect_field hd-1 g ".decided_by == \"$ALICE\" and .reason == \"through a passed handle\""
has_events "$M/runs/hd-1/events" step.approved 1 ".by == \"$ALICE\" and .decided_by == \"$ALICE\"" \
  || fail "step.approved: $(grep approved "$M/runs/hd-1/events")"

# ---- timeouts: reject by default, approve when asked; decided_by "timeout"
must_submit tor '{"steps": [{"id": "a", "type": "approval", "timeout_sec": 0.5}, {"id": "b", "command": "true", "depends_on": ["a"]}]}'
must_submit toa '{"steps": [{"id": "a", "type": "approval", "timeout_sec": 0.5, "on_timeout": "approve"}, {"id": "b", "command": "true", "depends_on": ["a"]}]}'
expect_run tor-1 failed
expect_field tor-1 a '.decision == "rejected" and .decided_by == "timeout"'
expect_step tor-1 b cancelled
expect_run toa-1 succeeded
expect_field toa-1 a '.decision == "approved" and .decided_by == "timeout"'
has_events "$M/runs/toa-1/events" step.approved 1 '.decided_by == "timeout"' || fail "no step.approved by timeout"

# ---- a cancel ends the wait; a pause keeps it (needs_human shows first)
must_submit cx '{"steps": [{"id": "a", "type": "approval"}, {"id": "b", "command": "sleep", "args": ["30"]}]}'
wait_for 20 is_step_state cx-1 a awaiting_approval || fail "never awaited"
wait_for 20 is_step_state cx-1 b running || fail "b never ran beside the wait"
echo pause >"$M/runs/cx-1/ctl" || fail "pause refused"
is_run_state cx-1 needs_human || fail "a paused run with a wait should show needs_human, is $(run_state cx-1)"
echo cancel >"$M/runs/cx-1/ctl" || fail "cancel refused"
expect_run cx-1 cancelled
expect_step cx-1 a cancelled
! att_has approval cx-1 || fail "attention lists a cancelled run's approval"
[ "$(att_lines)" = 0 ] || fail "attention should be empty: $(cat "$M/attention")"
grep -q '^orchfs_attention_waits 0$' "$M/metrics" || fail "metrics: $(grep attention "$M/metrics")"

# ---- invalid approval plans: refused, with a message naming the field
submit bad1 '{"steps":[{"id":"g","type":"approval","command":"true"}]}' && fail "approval with a command accepted"
grep -q 'step "g": an approval step takes no "command"' "$M/plans/bad1.error" || fail "bad1.error: $(cat "$M/plans/bad1.error")"
submit bad2 '{"steps":[{"id":"g","type":"approval","on_timeout":"maybe"}]}' && fail "on_timeout maybe accepted"
grep -q 'unknown on_timeout "maybe" (use approve or reject)' "$M/plans/bad2.error" || fail "bad2.error: $(cat "$M/plans/bad2.error")"
submit bad3 '{"steps":[{"id":"g","type":"approval","approvers":["a b"]}]}' && fail "a bad approver accepted"
grep -q 'step "g": invalid approver "a b" in approvers\[0\] (use a user name or @group' "$M/plans/bad3.error" || fail "bad3.error: $(cat "$M/plans/bad3.error")"
submit bad4 '{"steps":[{"id":"g","command":"true","prompt":"x"}]}' && fail "prompt on a command step accepted"
grep -q '"prompt" applies only to "type": "approval"' "$M/plans/bad4.error" || fail "bad4.error: $(cat "$M/plans/bad4.error")"
true
