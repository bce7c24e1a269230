#!/usr/bin/env bash
# A diamond a -> {b, c} -> d: order, parallelism, final states, the fields of
# every status file, graph.dot, summary, plan.json with variables substituted,
# plans/NAME.run and run numbering across resubmissions (SPEC 3, 4).
. "$(dirname "$0")/lib.sh"
start_fs

# a, b and c each run at least 0.8 s, and until the test lets them end (a
# file go.ID), so that the test sees each stage however slow the machine
p=$(plan '{"variables": {"WHO": "world"}, "globals": {"max_concurrency": 2}}' \
  "$(step a 'echo "a ${WHO}" >>order; sleep 0.8; while [ ! -e go.a ]; do sleep 0.05; done')" \
  "$(step b 'echo b >>order; sleep 0.8; while [ ! -e go.b ]; do sleep 0.05; done' '{"depends_on": ["a"], "name": "Build B"}')" \
  "$(step c 'echo c >>order; sleep 0.8; while [ ! -e go.c ]; do sleep 0.05; done' '{"depends_on": ["a"]}')" \
  "$(step d 'echo d >>order; echo "run=${RUN_ID} step=${STEP_ID} plan=${PLAN_ID}"' '{"depends_on": ["b", "c"]}')")

must_submit dia "$p"
[ -d "$M/runs/dia-1" ] || fail "runs/dia-1 does not exist when cp returns"
[ "$(readlink "$M/plans/dia.run")" = "../runs/dia-1" ] || fail "plans/dia.run -> '$(readlink "$M/plans/dia.run")', wanted ../runs/dia-1"
cmp -s "$T/dia.json.src" "$M/plans/dia.json" || fail "plans/dia.json does not read back the text written"

# progress while a runs, then while b and c run together
R=$M/runs/dia-1
wait_for 20 jq -e '.state == "running" and .progress.running == 1 and .progress.pending == 3 and .progress.total == 4 and .progress.percent == 0' "$R/status" \
  || fail "never saw a running alone with 3 pending: $(cat "$R/status")"
jq -e '(.started_at | test("Z$")) and (.finished_at == null)' "$R/status" >/dev/null \
  || fail "a running run should have started_at and no finished_at: $(cat "$R/status")"
touch "$(ws dia-1)/go.a"
wait_for 20 jq -e '.progress.succeeded == 1 and .progress.running == 2 and .progress.pending == 1 and .progress.percent == 25' "$R/status" \
  || fail "never saw b and c running together at 25%: $(cat "$R/status")"
expect_step dia-1 d pending
touch "$(ws dia-1)/go.b" "$(ws dia-1)/go.c"
expect_run dia-1 succeeded 20

for s in a b c d; do expect_step dia-1 $s succeeded; done
jq -e '.run_id == "dia-1" and .plan_id == "dia" and .state == "succeeded" and .sandbox == "dia-1"
       and .progress == {"total":4,"pending":0,"running":0,"succeeded":4,"failed":0,"skipped":0,"cancelled":0,"percent":100,"awaiting_approval":0,"needs_human":0}' \
  "$R/status" >/dev/null || fail "final run status wrong: $(cat "$R/status")"
for f in created_at started_at finished_at; do
  is_iso "$(jget "$R/status" ".$f")" || fail "run $f is not ISO 8601 UTC with ms: $(jget "$R/status" ".$f")"
done

# the order, from the workspace
W=$(ws dia-1)
[ -n "$W" ] && [ -d "$W" ] || fail "sandboxes/dia-1/status has no workspace directory: $(cat "$M/sandboxes/dia-1/status")"
order=$(tr -d '\n' <"$W/order")
case $order in "a worldbcd"|"a worldcbd") ;; *) fail "wrong order in the workspace: $order" ;; esac
grep -qx 'run=dia-1 step=d plan=dia' "$R/steps/d/log" || fail "built-in variables wrong: $(cat "$R/steps/d/log")"

# step status fields
for s in a b c d; do
  expect_field dia-1 $s '.id == "'$s'" and .attempt == 1 and .max_attempts == 1 and .exit_code == 0 and .signal == null'
  st=$(step_field dia-1 $s started_at) fi=$(step_field dia-1 $s finished_at) du=$(step_field dia-1 $s duration_ms)
  is_iso "$st" && is_iso "$fi" || fail "step $s: started_at/finished_at not ISO: $st $fi"
  eval "${s}_st=$(iso_ms "$st") ${s}_fi=$(iso_ms "$fi")"
  d2=$(( $(iso_ms "$fi") - $(iso_ms "$st") ))
  [ "$du" -ge $((d2 - 50)) ] && [ "$du" -le $((d2 + 50)) ] || fail "step $s: duration_ms $du, but finished_at - started_at = $d2"
done
[ "$(step_field dia-1 a duration_ms)" -ge 800 ] || fail "a slept 0.8 s but duration_ms is $(step_field dia-1 a duration_ms)"
expect_field dia-1 a '.depends_on == []'
expect_field dia-1 b '.depends_on == ["a"] and .name == "Build B"'
expect_field dia-1 c '.depends_on == ["a"]'
expect_field dia-1 d '(.depends_on | sort) == ["b","c"]'
[ "$b_st" -ge "$a_fi" ] && [ "$c_st" -ge "$a_fi" ] || fail "b or c started before a finished"
[ "$d_st" -ge "$b_fi" ] && [ "$d_st" -ge "$c_fi" ] || fail "d started before b and c finished"
[ "$b_st" -lt "$c_fi" ] && [ "$c_st" -lt "$b_fi" ] || fail "b and c did not run in parallel with max_concurrency 2"

# events
E=$R/events
seq_increasing "$E" || fail "runs/dia-1/events: not JSONL with increasing seq"
for t in run.created run.started run.succeeded; do
  [ "$(count_events "$E" $t)" -eq 1 ] || fail "want one $t event: $(cat "$E")"
done
[ "$(count_events "$E" step.started)" -eq 4 ] && [ "$(count_events "$E" step.succeeded)" -eq 4 ] \
  || fail "want 4 step.started and 4 step.succeeded events: $(cat "$E")"
[ "$(count_events "$E" step.succeeded '.step_id == "d" and .run_id == "dia-1"')" -eq 1 ] || fail "step events lack run_id/step_id"
jq -e 'select(.run_id == "dia-1") | .ts' "$E" | tr -d '"' | while read -r ts; do is_iso "$ts" || exit 1; done \
  || fail "event ts not ISO 8601 UTC with ms"
[ "$(jq -c 'select(.run_id == "dia-1")' "$M/events" | wc -l)" -eq "$(grep -c . "$E")" ] \
  || fail "MOUNT/events does not hold every event of the run"

# graph.dot: exactly the four edges
G=$R/graph.dot
grep -q '^ *digraph' "$G" || fail "graph.dot is not a digraph: $(cat "$G")"
edges=$(grep -E -o '"?[a-d]"? *-> *"?[a-d]"?' "$G" | tr -d '" ' | sort | tr '\n' ' ')
[ "$edges" = "a->b a->c b->d c->d " ] || fail "graph.dot edges: '$edges', wanted a->b a->c b->d c->d"
grep -Eqi 'color' "$G" || fail "graph.dot nodes are not coloured: $(cat "$G")"

# summary: state, a progress bar, one line per step
SU=$R/summary
grep -q succeeded "$SU" || fail "summary lacks the run state"
grep -q '100%' "$SU" || fail "summary lacks a progress bar at 100%: $(cat "$SU")"
for s in a b c d; do
  [ "$(grep -Ec "(^|[[:space:]])$s([[:space:]]|$).*succeeded|succeeded.*(^|[[:space:]])$s([[:space:]]|$)" "$SU")" -ge 1 ] \
    || fail "summary has no line for step $s: $(cat "$SU")"
done
grep -q 'Build B' "$SU" || fail "summary does not show the step name: $(cat "$SU")"

# plan.json: the plan as run, variables substituted
PJ=$R/plan.json
jq -e . "$PJ" >/dev/null || fail "plan.json is not JSON"
jq -e '.steps | length == 4' "$PJ" >/dev/null || fail "plan.json lacks the steps: $(cat "$PJ")"
jq -e '.steps[] | select(.id == "a") | .args[1] | contains("a world")' "$PJ" >/dev/null || fail "plan.json: \${WHO} not substituted: $(cat "$PJ")"
jq -e '.steps[] | select(.id == "d") | .args[1] | contains("run=dia-1 step=d plan=dia")' "$PJ" >/dev/null || fail "plan.json: built-ins not substituted"
! grep -q '\${' "$PJ" || fail "plan.json still holds \${...}: $(cat "$PJ")"

# resubmission: NAME-2, the link follows, the first run stays
p2=$(plan '{}' "$(step only 'echo second')")
must_submit dia "$p2"
[ -d "$M/runs/dia-2" ] || fail "resubmission did not create runs/dia-2"
[ "$(readlink "$M/plans/dia.run")" = "../runs/dia-2" ] || fail "plans/dia.run should now point to ../runs/dia-2"
expect_run dia-2 succeeded
[ -f "$M/runs/dia-2/steps/only/status" ] && [ ! -e "$M/runs/dia-2/steps/a" ] || fail "dia-2 does not run the new plan"
cmp -s "$T/dia.json.src" "$M/plans/dia.json" || fail "plans/dia.json does not return the text last written"
is_run_state dia-1 succeeded || fail "the first run changed"
[ "$(ls "$M/runs" | tr '\n' ' ')" = "dia-1 dia-2 " ] || fail "runs/ holds: $(ls "$M/runs")"
[ "$(ws dia-2)" != "$W" ] || fail "dia-2 should have a sandbox (workspace) of its own"
[ "$(cat "$(ws dia-2)/order" 2>/dev/null)" = "" ] || fail "dia-2's workspace shares dia-1's files"

stop_fs
# numbering survives a restart and never repeats
start_fs
must_submit dia "$p2"
[ -d "$M/runs/dia-3" ] || fail "after a restart the next submission should be dia-3: $(ls "$M/runs")"
expect_run dia-3 succeeded
