#!/usr/bin/env bash
# The example workers (examples/workers/worker.sh and worker.py, run by
# examples/agent-sh.json and agent-py.json) steered from the shell with
# echo >> messages (SPEC 5): each posts agent.started and heartbeats, answers
# a user message (agent.reply, notes.txt), acknowledges a guardian
# intervention (agent.ack) and stops on an interrupt, and its run succeeds.
. "$(dirname "$0")/lib.sh"
EX=$(cd "$(dirname "$0")/../../examples" && pwd) || fail "no examples directory"
start_fs
# the workers live in their sandboxes' workspaces (a sandbox sees neither
# /tmp nor, perhaps, wherever this checkout is)
for sb in sh-agent py-agent; do
  mkdir "$M/sandboxes/$sb" || fail "mkdir $sb failed"
  cp "$EX/workers/worker.sh" "$EX/workers/worker.py" "$M/sandboxes/$sb/workspace/" || fail "cp of the workers failed"
done

cp "$EX/agent-sh.json" "$M/plans/" 2>"$T/cp.err" || fail "cp of agent-sh.json failed: $(cat "$T/cp.err")"
cp "$EX/agent-py.json" "$M/plans/" 2>"$T/cp.err" || fail "cp of agent-py.json failed: $(cat "$T/cp.err")"
declare -A RUN=([sh-agent]=agent-sh-1 [py-agent]=agent-py-1)
SBS="sh-agent py-agent"

for sb in $SBS; do
  is_sb_field "$sb" run_id "${RUN[$sb]}" || fail "sandbox $sb: run_id is $(sb_field "$sb" run_id), want ${RUN[$sb]}"
  is_sb_field "$sb" isolation bwrap || fail "sandbox $sb: isolation is $(sb_field "$sb" isolation), want bwrap"
done
for sb in $SBS; do
  wait_for 20 has_events "$M/sandboxes/$sb/events" agent.started 1 \
    || fail "$sb: no agent.started event; log: $(cat "$M/runs/${RUN[$sb]}/steps/worker/log")"
done

# ---- a user message: the worker notes it and replies
for sb in $SBS; do echo "first task for $sb" >>"$M/sandboxes/$sb/messages" || fail "$sb: echo >> messages failed"; done
for sb in $SBS; do
  E=$M/sandboxes/$sb/events
  wait_for 20 has_events "$E" agent.reply 1 ".event_data.done == \"first task for $sb\"" \
    || fail "$sb: no agent.reply to the user message: $(grep agent "$E")"
  [ "$(cat "$(ws "$sb")/notes.txt")" = "first task for $sb" ] || fail "$sb: notes.txt holds: $(cat "$(ws "$sb")/notes.txt" 2>&1)"
  [ "$(count_events "$E" agent.reply ".run_id == \"${RUN[$sb]}\" and .step_id == \"worker\" and .sandbox == \"$sb\"")" -eq 1 ] \
    || fail "$sb: agent.reply is not attributed to step worker of ${RUN[$sb]}: $(grep agent.reply "$E")"
  has_events "$M/events" agent.reply 1 ".sandbox == \"$sb\"" || fail "$sb: agent.reply is not in MOUNT/events"
  has_events "$M/runs/${RUN[$sb]}/events" agent.reply 1 || fail "$sb: agent.reply is not in the run's events"
done

# ---- a guardian intervention: acknowledged, not noted
for sb in $SBS; do
  echo '{"content": "mind the tests", "message_type": "guardian_intervention"}' >>"$M/sandboxes/$sb/messages" \
    || fail "$sb: sending a guardian_intervention failed"
done
for sb in $SBS; do
  E=$M/sandboxes/$sb/events
  wait_for 20 has_events "$E" agent.ack 1 '.event_data.guardian == "mind the tests"' \
    || fail "$sb: no agent.ack of the guardian intervention: $(grep agent "$E")"
  [ "$(cat "$(ws "$sb")/notes.txt")" = "first task for $sb" ] || fail "$sb: notes.txt changed on a guardian intervention"
  wait_for 20 is_sb_field "$sb" messages.delivered 2 || fail "$sb: status: $(sb_field "$sb" messages | tr -d ' \n'), want 2 delivered"
  is_sb_field "$sb" messages.queued 0 || fail "$sb: messages still queued: $(sb_field "$sb" messages | tr -d ' \n')"
  jq -se 'length == 2 and all(.state == "delivered")' "$M/sandboxes/$sb/messages" >/dev/null || fail "$sb: messages: $(cat "$M/sandboxes/$sb/messages")"
  [ "$(count_events "$E" message.delivered)" -eq 2 ] || fail "$sb: want 2 message.delivered events"
  hb=$(sb_field "$sb" last_heartbeat)
  is_iso "$hb" || fail "$sb: last_heartbeat is '$hb'"
  d=$(( $(now_ms) - $(iso_ms "$hb") ))
  [ "$d" -lt 15000 ] || fail "$sb: last_heartbeat $hb is $d ms old, the worker posts one every 0.5 s"
  is_sb_field "$sb" health healthy || fail "$sb: health is $(sb_field "$sb" health)"
  has_events "$E" heartbeat 2 '.step_id == "worker"' || fail "$sb: want the worker's heartbeats in its events"
  is_step_state "${RUN[$sb]}" worker running || fail "$sb: the worker is $(step_state "${RUN[$sb]}" worker)"
done

# ---- an interrupt: the worker stops cleanly, the run succeeds
for sb in $SBS; do
  echo '{"content": "stop now", "message_type": "interrupt"}' >>"$M/sandboxes/$sb/messages" || fail "$sb: sending an interrupt failed"
done
for sb in $SBS; do
  R=${RUN[$sb]}
  expect_run "$R" succeeded 20
  expect_step "$R" worker succeeded
  expect_field "$R" worker '.attempt == 1'
  grep -qx 'interrupted: stop now' "$M/runs/$R/steps/worker/log" || fail "$sb: the worker's log lacks 'interrupted: stop now': $(cat "$M/runs/$R/steps/worker/log")"
  grep -qxF '[worker] interrupted: stop now' "$M/sandboxes/$sb/logs" || fail "$sb: the sandbox's logs lack '[worker] interrupted: stop now': $(cat "$M/sandboxes/$sb/logs")"
  grep -qxF '[worker] working on: first task for '"$sb" "$M/sandboxes/$sb/logs" || fail "$sb: the sandbox's logs lack the worker's work line"
  has_events "$M/sandboxes/$sb/events" agent.stopped 1 || fail "$sb: no agent.stopped event"
  [ "$(count_events "$M/runs/$R/events" step.retrying)" -eq 0 ] || fail "$sb: the worker was retried"
  [ "$(sb_field "$sb" restarts)" -eq 0 ] || fail "$sb: restarts is $(sb_field "$sb" restarts)"
  is_sb_field "$sb" messages.delivered 3 || fail "$sb: the interrupt was not delivered: $(sb_field "$sb" messages | tr -d ' \n')"
done
