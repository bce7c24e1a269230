#!/usr/bin/env bash
# Supervision survives kill -9 (SPEC §8, issue 13): a step awaiting approval
# still awaits it (and its decision, once taken, sticks); an approval whose
# timeout passed while orchfs was down is decided once at the next start; a
# loop still needs a human; an open question is still open; a budget keeps
# what was spent (the attempt run again after the restart is stopped when
# its spending passes the limit together with what came before).
. "$(dirname "$0")/lib.sh"
start_fs

att_has() { jq -c --arg k "$1" --arg r "$2" 'select(.kind == $k and .run_id == $r)' "$M/attention" 2>/dev/null | grep -q .; }
shell_plan() { jq -cn --arg id "$1" --arg c "$2" --argjson x "${3:-{\}}" '{steps: [{id: $id, command: $c, shell: true} + $x]}'; }

must_submit ap '{"steps":[{"id":"gate","type":"approval","timeout_sec":3600},{"id":"after","command":"true","depends_on":["gate"]}]}'
must_submit dec '{"steps":[{"id":"gate","type":"approval"},{"id":"after","command":"sleep","args":["1"],"depends_on":["gate"]}]}'
t_to=$(now_ms)
must_submit to '{"steps":[{"id":"gate","type":"approval","timeout_sec":2,"on_timeout":"approve"},{"id":"after","command":"true","depends_on":["gate"]}]}'
must_submit lp '{"steps":[{"id":"fix","command":"sh","args":["-c","echo error: same; exit 3"],"retries":9}]}'
ask='echo "{\"event_type\":\"needs_human\",\"event_data\":{\"question\":\"go on?\"}}" >>"$ORCHFS_SANDBOX/events"
while :; do a=$(cat "$ORCHFS_SANDBOX/inbox"); [ -n "$a" ] && { echo "got: $a"; break; }; sleep 0.1; done'
must_submit qa "$(shell_plan ask "$ask")"
spend='[ "$ORCHFS_ATTEMPT" = 1 ] && echo "{\"event_type\":\"agent.usage\",\"event_data\":{\"cost_usd\":0.5}}" >>"$ORCHFS_SANDBOX/events"
echo "{\"event_type\":\"agent.turn\"}" >>"$ORCHFS_SANDBOX/events"
while [ ! -e go ]; do sleep 0.1; done
echo "{\"event_type\":\"agent.usage\",\"event_data\":{\"cost_usd\":0.6}}" >>"$ORCHFS_SANDBOX/events"; sleep 60'
must_submit bg "$(shell_plan agent "$spend" '{"budget":{"cost_usd":1.0},"max_turns":100}')"

wait_for 20 is_step_state ap-1 gate awaiting_approval || fail "ap never awaited"
wait_for 20 is_step_state dec-1 gate awaiting_approval || fail "dec never awaited"
wait_for 20 is_step_state lp-1 fix needs_human || fail "lp: no loop: $(step_states lp-1)"
wait_for 20 att_has question qa-1 || fail "qa never asked"
wait_for 20 bash -c "jq -e '.usage.cost_usd == 0.5 and .turns == 1' '$M/runs/bg-1/steps/agent/status'" || fail "bg never spent"
# a decision taken just before the kill sticks
echo 'approve before the crash' >"$M/runs/dec-1/steps/gate/ctl" || fail "approve refused"
wait_for 20 is_step_state dec-1 after running || fail "dec: after never started"
is_step_state to-1 gate awaiting_approval || fail "to-1 decided before its time: $(step_states to-1)"

crash_fs
# the 2 s timeout of to-1 passes while orchfs is down (a lower bound: waiting
# longer on a slow machine changes nothing)
while [ $(( $(now_ms) - t_to )) -lt 2500 ]; do sleep 0.1; done
start_fs

expect_run to-1 succeeded
expect_field to-1 gate '.decided_by == "timeout" and .decision == "approved"'
[ "$(count_events "$M/runs/to-1/events" step.approved)" = 1 ] || fail "the timeout decided more than once"

is_step_state ap-1 gate awaiting_approval || fail "ap-1 lost its wait: $(step_states ap-1)"
is_run_state ap-1 needs_human || fail "ap-1 is $(run_state ap-1)"
att_has approval ap-1 || fail "attention lost ap-1: $(cat "$M/attention")"
is_step_state lp-1 fix needs_human || fail "lp-1 lost its loop: $(step_states lp-1)"
expect_field lp-1 fix '.attempt == 3 and .loop.attempts == [1,2,3]'
att_has loop lp-1 || fail "attention lost the loop"
att_has question qa-1 || fail "attention lost the question"
is_run_state qa-1 needs_human || fail "qa-1 is $(run_state qa-1)"
expect_field dec-1 gate ".decision == \"approved\" and .reason == \"before the crash\" and .decided_by == \"$(id -un)\""
expect_run dec-1 succeeded
expect_field bg-1 agent '.usage.cost_usd == 0.5 and .turns >= 1'

# the waits go on where they were
echo approve >"$M/runs/ap-1/steps/gate/ctl" || fail "approve after restart refused"
expect_run ap-1 succeeded
echo '{"message_type":"human_answer","content":"yes"}' >>"$M/sandboxes/qa-1/messages" || fail "answer refused"
expect_run qa-1 succeeded
grep -q 'got:.*yes' "$M/runs/qa-1/steps/ask/log" || fail "the answer never reached the worker"
echo retry >"$M/runs/lp-1/steps/fix/ctl" || fail "retry after restart refused"
wait_for 20 bash -c "jq -e '.state == \"needs_human\" and .attempt == 6' '$M/runs/lp-1/steps/fix/status'" || fail "lp-1 retry"
echo fail >"$M/runs/lp-1/steps/fix/ctl" || fail "fail refused"
expect_run lp-1 failed
# the budget: 0.5 before the crash + 0.6 after passes 1.0
wait_for 20 is_step_state bg-1 agent running || fail "bg-1 not running again"
touch "$(ws bg-1)/go"
expect_run bg-1 failed
expect_field bg-1 agent '.reason == "budget" and .usage.cost_usd > 1.0'
[ "$(grep -c . "$M/attention")" = 0 ] || fail "attention not empty: $(cat "$M/attention")"
true
