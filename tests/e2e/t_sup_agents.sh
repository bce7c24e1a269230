#!/usr/bin/env bash
# Agents under supervision (SPEC §8, issue 13) on a real mount: a worker's
# question waits for a person's human_answer; identical failures stop the
# retries as a loop (needs_human), `retry` starts a fresh series and `fail`
# ends it; repeated identical agent.action events bring a
# guardian_intervention (not a kill); max_turns and budgets warn at 80 % and
# stop past the limit, without retry; `fail` stops a running step.
. "$(dirname "$0")/lib.sh"
start_fs

att_has() { jq -c --arg k "$1" --arg r "$2" 'select(.kind == $k and .run_id == $r)' "$M/attention" 2>/dev/null | grep -q .; }
shell_plan() { jq -cn --arg c "$2" --argjson x "${3:-{\}}" '{steps: [{id: $ARGS.named.id, command: $c, shell: true} + $x]}' --arg id "$1"; }

# ---- a question and its answer
ask='echo "{\"event_type\":\"needs_human\",\"event_data\":{\"question\":\"which db?\"}}" >>"$ORCHFS_SANDBOX/events"
while :; do a=$(cat "$ORCHFS_SANDBOX/inbox"); [ -n "$a" ] && { echo "got: $a"; break; }; sleep 0.1; done'
must_submit qa "$(shell_plan ask "$ask")"
wait_for 20 is_run_state qa-1 needs_human || fail "run never needs_human: $(run_state qa-1)"
expect_step qa-1 ask running
expect_field qa-1 ask '.question == "which db?"'
att_has question qa-1 || fail "attention lacks the question: $(cat "$M/attention")"
jq -e 'select(.run_id == "qa-1") | .detail == "which db?" and .step_id == "ask"' "$M/attention" >/dev/null \
  || fail "attention entry: $(cat "$M/attention")"
echo '{"message_type":"human_answer","content":"use staging"}' >>"$M/sandboxes/qa-1/messages" || fail "answer refused"
expect_run qa-1 succeeded
grep -q 'use staging' "$M/runs/qa-1/steps/ask/log" || fail "the worker never got the answer"
has_events "$M/runs/qa-1/events" step.answered 1 '.question == "which db?" and (.message_id | type) == "number"' \
  || fail "no step.answered: $(grep answered "$M/runs/qa-1/events")"
! att_has question qa-1 || fail "attention still lists an answered question"
# an answer with no question open is just a message
echo '{"message_type":"human_answer","content":"nobody asked"}' >>"$M/sandboxes/qa-1/messages" || fail "a stray answer refused"
[ "$(count_events "$M/runs/qa-1/events" step.answered)" = 1 ] || fail "a stray answer answered something"

# ---- a loop: three identical failures; retry starts a fresh series; fail ends it
must_submit lp '{"steps":[{"id":"fix","command":"sh","args":["-c","echo trying; echo error: same thing; exit 3"],"retries":9},
  {"id":"after","command":"true","depends_on":["fix"]}]}'
wait_for 20 is_step_state lp-1 fix needs_human || fail "loop not detected: $(cat "$M/runs/lp-1/steps/fix/status")"
expect_field lp-1 fix '.attempt == 3 and .loop.signature == "exit 3: error: same thing" and .loop.attempts == [1,2,3]'
is_run_state lp-1 needs_human || fail "run should be needs_human, is $(run_state lp-1)"
att_has loop lp-1 || fail "attention lacks the loop"
has_events "$M/runs/lp-1/events" step.loop_detected 1 '.signature == "exit 3: error: same thing" and .attempts == [1,2,3]' \
  || fail "step.loop_detected: $(grep loop_detected "$M/runs/lp-1/events")"
echo approve >"$M/runs/lp-1/steps/fix/ctl" 2>/dev/null && fail "approve of a loop accepted"
echo retry >"$M/runs/lp-1/steps/fix/ctl" || fail "retry refused"
wait_for 20 bash -c "jq -e '.state == \"needs_human\" and .attempt == 6' '$M/runs/lp-1/steps/fix/status'" \
  || fail "the fresh series did not run 3 more attempts into a loop: $(cat "$M/runs/lp-1/steps/fix/status")"
expect_field lp-1 fix '.loop.attempts == [4,5,6]'
echo 'fail not fixable by retrying' >"$M/runs/lp-1/steps/fix/ctl" || fail "fail refused"
expect_run lp-1 failed
expect_field lp-1 fix '.state == "failed" and .reason == "failed_by_user" and .reason_text == "not fixable by retrying"'
expect_step lp-1 after cancelled
! att_has loop lp-1 || fail "attention still lists the loop"
echo retry >"$M/runs/lp-1/steps/fix/ctl" 2>/dev/null && fail "retry of a failed step accepted"

# varying failures are no loop; same_failures 0 turns it off
must_submit nl '{"steps":[{"id":"fix","command":"sh","args":["-c","echo attempt $ORCHFS_ATTEMPT; exit 3"],"retries":4}]}'
must_submit off '{"globals":{"loop":{"same_failures":0}},"steps":[{"id":"fix","command":"sh","args":["-c","echo same; exit 3"],"retries":4}]}'
expect_run nl-1 failed
expect_field nl-1 fix '.attempt == 5'
expect_run off-1 failed
expect_field off-1 fix '.attempt == 5'
[ "$(count_events "$M/events" step.loop_detected)" = 2 ] || fail "loops detected where there were none"

# ---- repeated actions: a guardian_intervention, not a kill
act='for i in 1 2 3 4; do echo "{\"event_type\":\"agent.action\",\"event_data\":{\"tool\":\"ls\",\"args\":[\"-l\"]}}" >>"$ORCHFS_SANDBOX/events"; done
while ! grep -q guardian_intervention "$ORCHFS_SANDBOX/messages"; do sleep 0.1; done; cat "$ORCHFS_SANDBOX/inbox"; exit 0'
must_submit ra "$(shell_plan ag "$act" '{"loop":{"repeated_actions":3}}')"
expect_run ra-1 succeeded
has_events "$M/runs/ra-1/events" agent.loop_detected 1 '.count == 3' || fail "no agent.loop_detected"
[ "$(count_events "$M/runs/ra-1/events" agent.loop_detected)" = 1 ] || fail "the 4th identical action reported again"
grep -q 'repeated 3 times' "$M/runs/ra-1/steps/ag/log" || fail "the worker did not get the intervention: $(cat "$M/runs/ra-1/steps/ag/log")"
echo '{"event_type":"agent.loop_detected"}' >>"$M/sandboxes/ra-1/events" 2>/dev/null && fail "a worker could post agent.loop_detected"

# ---- max_turns: a warning at 80 %, a stop past the limit, no retry
turns='for i in $(seq 1 8); do echo "{\"event_type\":\"agent.turn\"}" >>"$ORCHFS_SANDBOX/events"; done; exec sleep 60'
must_submit mt "$(shell_plan agent "$turns" '{"max_turns":5,"retries":2}')"
expect_run mt-1 failed
expect_field mt-1 agent '.attempt == 1 and .turns >= 6 and .reason == "max_turns" and .max_turns == 5'
has_events "$M/runs/mt-1/events" step.budget_warning 1 '.limit == "max_turns" and .used == 4 and .max == 5' \
  || fail "no warning at 4 of 5 turns: $(grep budget_warning "$M/runs/mt-1/events")"
has_events "$M/runs/mt-1/events" step.failed 1 '.reason == "max_turns"' || fail "no step.failed with max_turns"
jq -e 'select(.message_type == "guardian_intervention") | .content | test("max_turns")' "$M/sandboxes/mt-1/messages" >/dev/null \
  || fail "no guardian message: $(cat "$M/sandboxes/mt-1/messages")"

# ---- a budget in tokens and dollars
spend='for i in 1 2 3 4 5 6; do echo "{\"event_type\":\"agent.usage\",\"event_data\":{\"cost_usd\":0.25,\"tokens\":100}}" >>"$ORCHFS_SANDBOX/events"; done; exec sleep 60'
must_submit bg "$(shell_plan agent "$spend" '{"budget":{"cost_usd":1.0,"tokens":100000}}')"
expect_run bg-1 failed
expect_field bg-1 agent '.reason == "budget" and .usage.cost_usd > 1.0 and .usage.tokens >= 500 and .budget.cost_usd == 1.0'
has_events "$M/runs/bg-1/events" step.budget_warning 1 '.limit == "cost_usd"' || fail "no cost warning"
must_submit tk "$(shell_plan agent "$spend" '{"budget":{"tokens":250}}')"
expect_run tk-1 failed
expect_field tk-1 agent '.reason == "budget" and .usage.tokens >= 300'
has_events "$M/runs/tk-1/events" step.budget_warning 1 '.limit == "tokens" and .used == 200' || fail "no token warning at 200 of 250"
# usage without limits is counted and shown; nonsense amounts are not counted
use='echo "{\"event_type\":\"agent.usage\",\"event_data\":{\"cost_usd\":0.5,\"tokens\":7}}" >>"$ORCHFS_SANDBOX/events"
echo "{\"event_type\":\"agent.usage\",\"event_data\":{\"cost_usd\":\"lots\"}}" >>"$ORCHFS_SANDBOX/events"
echo "{\"event_type\":\"agent.turn\"}" >>"$ORCHFS_SANDBOX/events"'
must_submit us "$(shell_plan agent "$use")"
expect_run us-1 succeeded
expect_field us-1 agent '.turns == 1 and .usage.cost_usd == 0.5 and .usage.tokens == 7'

# ---- fail on a running step: stopped, failed, no retry
must_submit fr '{"steps":[{"id":"s","command":"sleep","args":["60"],"retries":3}]}'
wait_for 20 is_step_state fr-1 s running || fail "never ran"
echo 'fail stuck' >"$M/runs/fr-1/steps/s/ctl" || fail "fail of a running step refused"
expect_run fr-1 failed
expect_field fr-1 s '.attempt == 1 and .reason == "failed_by_user" and .reason_text == "stuck"'
true
