#!/usr/bin/env bash
# Supervision at its edges (SPEC §8, issue 13; found in review): a question
# open when its run is cancelled and the daemon killed leaves no wait behind
# (and removing the run afterwards is safe); an acknowledged `fail` stands
# though a timeout is already stopping the step, and across a kill -9; a
# question ends with the attempt that asked it; supervision state in the
# store that lies (an endless loop series, a wait its step's state denies)
# neither hangs a reader nor keeps a run needs_human.
. "$(dirname "$0")/lib.sh"
start_fs

att_count() { grep -c . "$M/attention" 2>/dev/null; }

# ---- a question, a cancel whose step ignores SIGTERM, kill -9
q='echo "{\"event_type\":\"needs_human\",\"event_data\":{\"question\":\"q?\"}}" >>"$ORCHFS_SANDBOX/events"; trap "" TERM; sleep 60'
must_submit cq "$(jq -cn --arg c "$q" '{steps: [{id: "s", command: $c, shell: true, kill_grace_sec: 60}]}')"
wait_for 20 is_run_state cq-1 needs_human || fail "never asked: $(run_state cq-1)"
echo cancel >"$M/runs/cq-1/ctl" || fail "cancel refused"
crash_fs
start_fs
expect_run cq-1 cancelled
[ "$(att_count)" = 0 ] || fail "attention after the restart: $(cat "$M/attention")"
grep -q '^orchfs_attention_waits 0$' "$M/metrics" || fail "metrics: $(grep attention_waits "$M/metrics")"
rmdir "$M/runs/cq-1" || fail "rmdir of the cancelled run"
cat "$M/attention" >/dev/null || fail "attention unreadable after the rmdir"

# ---- fail while a timeout is stopping the step: failed, not retried
must_submit ft '{"steps":[{"id":"s","command":"sh","args":["-c","trap \"\" TERM; touch ready; sleep 60"],"timeout_sec":0.5,"kill_grace_sec":30,"retries":1}]}'
wait_for 20 test -e "$S/sandboxes/ft-1/workspace/ready" || fail "never ready"
sleep 1	# past timeout_sec: the timeout's SIGTERM was sent and ignored (a lower bound)
echo 'fail stop it' >"$M/runs/ft-1/steps/s/ctl" || fail "fail refused"
crash_fs	# before the process dies: the fail must survive
start_fs
expect_run ft-1 failed
expect_field ft-1 s '.attempt == 1 and .reason == "failed_by_user"'

# ---- a question ends with the attempt that asked it
q2='if [ "$ORCHFS_ATTEMPT" = 1 ]; then echo "{\"event_type\":\"needs_human\",\"event_data\":{\"question\":\"q?\"}}" >>"$ORCHFS_SANDBOX/events"; exit 1; fi; exit 0'
must_submit qe "$(jq -cn --arg c "$q2" '{steps: [{id: "s", command: $c, shell: true, retries: 1}]}')"
expect_run qe-1 succeeded
[ "$(count_events "$M/runs/qe-1/events" attention.removed '.resolution == "attempt ended"')" = 1 ] \
  || fail "the question did not end with its attempt: $(grep attention "$M/runs/qe-1/events")"
[ "$(att_count)" = 0 ] || fail "attention: $(cat "$M/attention")"

# ---- the store lies
must_submit lp '{"steps":[{"id":"fix","command":"sh","args":["-c","echo same; exit 3"],"retries":5}]}'
wait_for 20 is_step_state lp-1 fix needs_human || fail "no loop"
must_submit ap '{"steps":[{"id":"g","type":"approval"}]}'
wait_for 20 is_step_state ap-1 g awaiting_approval || fail "never awaited"
stop_fs
db=$(ls "$S"/*.db | head -1)
sqlite3 "$db" "UPDATE steps SET sup = '{\"wait\":\"loop\",\"since\":1,\"sig\":\"x\",\"same\":4000000000,\"first\":0}' WHERE name = 'fix';
  UPDATE steps SET sup = 'not json at all' WHERE name = 'g';" || fail "sqlite3"
start_fs
timeout 10 cat "$M/runs/lp-1/steps/fix/status" >"$T/st" || fail "reading a step whose stored series is endless hung"
[ "$(jq '.loop.attempts | length' "$T/st")" -le 1000 ] || fail "loop attempts: $(jq -c .loop "$T/st")"
# the approval whose stored state does not parse still waits, and its decision ends the wait
is_run_state ap-1 needs_human || fail "ap-1 is $(run_state ap-1)"
[ "$(jq -c 'select(.run_id == "ap-1")' "$M/attention" | grep -c .)" = 1 ] || fail "ap-1 not listed: $(cat "$M/attention")"
echo approve >"$M/runs/ap-1/steps/g/ctl" || fail "approve refused"
expect_run ap-1 succeeded
echo fail >"$M/runs/lp-1/steps/fix/ctl" || fail "fail refused"
expect_run lp-1 failed
[ "$(att_count)" = 0 ] || fail "attention: $(cat "$M/attention")"
true
