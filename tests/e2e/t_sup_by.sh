#!/usr/bin/env bash
# Who did it (SPEC §8): every event a write to the tree causes carries `by`,
# the writer's user name: a submission (run.created and the run's own
# sandbox.created), mkdir and rmdir of a sandbox, run ctl (pause, resume,
# cancel, retry) and sandbox ctl (stop, restart, delete), a message
# (message.queued) and a worker's posted event. What a cancel causes later,
# when the step it stops has died (step.cancelled, run.cancelled), names the
# canceller, also after kill -9 of the daemon and a restart; so does the end
# of a step a sandbox's restart interrupts. What the engine
# does on its own (a step ending by itself, run.started) names no one, and a
# worker cannot name someone else. Checked for root and a real second user.
. "$(dirname "$0")/lib.sh"
need_root_users
new_user U1

# by_of FILE TYPE [JQ_FILTER]: the distinct `by` of the events of TYPE (and
# the filter) in FILE, comma-separated, "-" for an event without one;
# "NONE" when there is no such event
by_of() {
  jq -rs --arg t "$2" "map(select(.type == \$t) | select(${3:-true})) |
    if length == 0 then \"NONE\" else map(.by // \"-\") | unique | join(\",\") end" "$1"
}
# expect_by FILE TYPE JQ_FILTER WANT
expect_by() {
  local got; got=$(by_of "$1" "$2" "$3")
  [ "$got" = "$4" ] || fail "$2 ($3) in ${1#"$M"/}: by is '$got', wanted '$4': $(grep -F "\"$2\"" "$1" | tail -3)"
}
as_u1() { as "$U1" sh -c "$1"; }

start_fs -o allow_other

# ---- a run of U1: submission, an engine-only end, ctl, a message, a worker's
# event, and a cancel whose step ends later
R=$T/release
p=$(plan '{}' "$(step quick 'true')" \
  "$(step long "echo '{\"event_type\": \"worker.hi\", \"event_data\": {\"by\": \"mallory\"}}' >>\"\$ORCHFS_SANDBOX/events\"
     if echo '{\"event_type\": \"worker.forged\", \"by\": \"mallory\"}' >>\"\$ORCHFS_SANDBOX/events\"; then echo forged-ok; else echo forged-refused; fi
     touch up; exec sleep 300" '{"depends_on": ["quick"]}')" \
  "$(step after 'true' '{"depends_on": ["long"]}')")
printf '%s\n' "$p" >"$T/u.json"; chmod 0644 "$T/u.json"
as "$U1" cp "$T/u.json" "$M/plans/u.json" || fail "$U1 could not submit a plan"
E=$M/runs/u-1/events
expect_by "$E" run.created true "$U1"
expect_by "$M/events" sandbox.created '.sandbox == "u-1"' "$U1"
wait_for 20 test -e "$(ws u-1)/up" || fail "step long never began: $(step_states u-1)"
wait_for 20 has_events "$E" worker.hi 1 || fail "the worker's event never came"
# the engine's own doings name no one
expect_by "$E" run.started true -
expect_by "$E" step.started '.step_id == "quick"' -
expect_by "$E" step.succeeded '.step_id == "quick"' -
# a worker's event names the step's user (the writer of the append); its
# event_data may say anything, a top-level by is refused
expect_by "$E" worker.hi true "$U1"
has_events "$E" worker.hi 1 '.event_data.by == "mallory"' || fail "worker.hi lost its event_data: $(grep worker.hi "$E")"
grep -qx forged-refused "$M/runs/u-1/steps/long/log" || fail "a worker could post an event with a by of its own: $(cat "$M/runs/u-1/steps/long/log")"
expect_by "$E" worker.forged true NONE
# ctl: each names its writer
as_u1 "echo pause >'$M/runs/u-1/ctl'" || fail "$U1 could not pause its run"
expect_by "$E" run.paused true "$U1"
echo resume >"$M/runs/u-1/ctl" || fail "root could not resume the run"
expect_by "$E" run.resumed true root
# messages
as_u1 "echo 'from u1' >>'$M/sandboxes/u-1/messages'" || fail "$U1 could not message its sandbox"
echo '{"message_type": "interrupt", "content": "from root"}' >>"$M/sandboxes/u-1/messages" \
  || fail "root could not message the sandbox"
SE=$M/sandboxes/u-1/events
expect_by "$SE" message.queued '.message_type == "user_message"' "$U1"
expect_by "$SE" message.queued '.message_type == "interrupt"' root
# the cancel: the pending step is cancelled at once, the running one when it
# has died (another loop turn), then the run
as_u1 "echo cancel >'$M/runs/u-1/ctl'" || fail "$U1 could not cancel its run"
expect_run u-1 cancelled
expect_by "$E" step.cancelled '.step_id == "after"' "$U1"
expect_by "$E" step.cancelled '.step_id == "long"' "$U1"
expect_by "$E" run.cancelled true "$U1"
# a retry, then the run ends by itself: the retry names its writer, the end no one
echo retry >"$M/runs/u-1/ctl" || fail "root could not retry the run"
expect_by "$E" run.retried true root
wait_for 20 has_events "$E" step.started 2 '.step_id == "long"' || fail "long did not start again"
# a restart of its sandbox: the step it stops ends later, interrupted,
# naming who restarted; it runs again, by the engine's doing
as_u1 "echo restart >'$M/sandboxes/u-1/ctl'" || fail "$U1 could not restart its sandbox"
expect_by "$SE" sandbox.restarted true "$U1"
wait_for 20 has_events "$E" step.interrupted 1 '.step_id == "long"' || fail "long was not interrupted by the restart"
expect_by "$E" step.interrupted '.step_id == "long"' "$U1"
wait_for 20 has_events "$E" step.started 3 '.step_id == "long"' || fail "long did not start after the restart"
expect_by "$E" step.started '.step_id == "long"' -
# cancelled again, by another: the later events name the new canceller
echo cancel >"$M/runs/u-1/ctl" || fail "root could not cancel the run"
expect_run u-1 cancelled
expect_by "$E" run.cancelled true "$U1,root"
[ "$(jq -rs 'map(select(.type == "run.cancelled")) | last | .by' "$E")" = root ] || fail "the second run.cancelled does not name root"

# ---- sandboxes: mkdir, ctl, rmdir
as "$U1" mkdir "$M/sandboxes/s1" || fail "$U1 could not make a sandbox"
expect_by "$M/sandboxes/s1/events" sandbox.created true "$U1"
as_u1 "echo stop >'$M/sandboxes/s1/ctl'" || fail "$U1 could not stop its sandbox"
expect_by "$M/sandboxes/s1/events" sandbox.stopped true "$U1"
echo restart >"$M/sandboxes/s1/ctl" || fail "root could not restart the sandbox"
expect_by "$M/sandboxes/s1/events" sandbox.restarted true root
as "$U1" rmdir "$M/sandboxes/s1" || fail "$U1 could not remove its sandbox"
expect_by "$M/events" sandbox.deleted '.sandbox == "s1"' "$U1"
mkdir "$M/sandboxes/s2" || fail "root could not make a sandbox"
expect_by "$M/events" sandbox.created '.sandbox == "s2"' root
echo delete >"$M/sandboxes/s2/ctl" || fail "root could not delete its sandbox by ctl"
expect_by "$M/events" sandbox.deleted '.sandbox == "s2"' root

# ---- a cancel the daemon's kill -9 cuts short: its step ignores SIGTERM
# (and its grace is long), so the run is still cancelling when the daemon
# dies; the restarted daemon ends it, naming the canceller
p=$(plan '{}' "$(step k "trap '' TERM; touch up; while :; do sleep 0.05; done" '{"kill_grace_sec": 3600}')")
printf '%s\n' "$p" >"$T/k.json"; chmod 0644 "$T/k.json"
as "$U1" cp "$T/k.json" "$M/plans/k.json" || fail "$U1 could not submit plan k"
wait_for 20 test -e "$(ws k-1)/up" || fail "step k never began"
as_u1 "echo cancel >'$M/runs/k-1/ctl'" || fail "$U1 could not cancel run k-1"
# the cancel is durable once the write returns; the step lives on
is_run_state k-1 running || fail "k-1 is $(run_state k-1), not running, after the cancel: its step did not ignore SIGTERM"
[ -n "$(procs_of_run k-1 k)" ] || fail "the step of k-1 is gone already"
expect_by "$M/runs/k-1/events" run.cancelled true NONE
crash_fs
start_fs -o allow_other
expect_run k-1 cancelled
expect_by "$M/runs/k-1/events" run.cancelled true "$U1"
expect_by "$M/runs/k-1/events" step.cancelled true "$U1"
expect_by "$M/runs/k-1/events" run.created true "$U1"
stop_fs
