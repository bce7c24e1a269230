#!/usr/bin/env bash
# Sandbox windows (SPEC 9) across kill -9 and restarts: a deadline that
# passed while orchfs was down fires once at the next start, a window that
# ended stays ended, and an extend_when rule's count survives kill -9. And
# on_end pause: the runs paused and their steps stopped (SIGSTOP), the
# sandbox paused until ctl resume.
. "$(dirname "$0")/lib.sh"
start_fs

SLEEP=$(step s 'sleep 60')
span_ms() { echo $(( $(iso_ms "$(sb_field "$1" window.deadline)") - $(iso_ms "$(sb_field "$1" window.opened_at)") )); }

# ---- on_end pause ------------------------------------------------------------
must_submit wp "$(plan '{"sandbox": {"id": "wp", "window": {"duration_sec": 2, "on_end": "pause"}}}' \
  "$(step s 'while :; do echo x >>ticks; sleep 0.1; done')" "$(step t 'sleep 0.5' '{"depends_on": ["s"]}')")"
wait_for 20 has_events "$M/sandboxes/wp/events" window.ended 1 || fail "wp: the window did not end"
[ "$(count_events "$M/sandboxes/wp/events" window.ended '.reason == "deadline" and .on_end == "pause"')" = 1 ] \
  || fail "wp: window.ended: $(grep window.ended "$M/sandboxes/wp/events")"
wait_for 20 is_sb_field wp state paused || fail "wp: sandbox state $(sb_field wp state)"
wait_for 20 is_run_state wp-1 paused || fail "wp-1: run state $(run_state wp-1)"
expect_step wp-1 s running
stopped_sh() {
  local p
  for p in $(procs_of_run wp-1 s); do
    [ "$(cat /proc/$p/comm 2>/dev/null)" = sh ] || continue
    [ "$(awk '{print $3}' /proc/$p/stat)" = T ] && return 0
  done
  return 1
}
wait_for 20 stopped_sh || fail "wp: the step's shell is not stopped"
n=$(wc -l <"$(ws wp)/ticks")
sleep 0.5
[ "$(wc -l <"$(ws wp)/ticks")" = "$n" ] || fail "wp: the stopped step still writes"
write_fails "$M/sandboxes/wp/ctl" 'extend 10' || fail "extend of a paused (ended) window was taken"
echo resume >"$M/sandboxes/wp/ctl" || fail "ctl resume refused"
wait_for 20 is_run_state wp-1 running || fail "wp-1 not running after resume: $(run_state wp-1)"
[ "$(sb_field wp state)" != paused ] || fail "wp: still paused after resume"
wait_for 20 bash -c "[ \$(wc -l <'$(ws wp)/ticks') -gt $n ]" || fail "wp: the step did not go on after resume"
stopped_sh && fail "wp: a process is still stopped after resume"
write_fails "$M/sandboxes/wp/ctl" resume || fail "a second resume was taken"
echo cancel >"$M/runs/wp-1/ctl"
expect_run wp-1 cancelled
# a paused window's steps end at once when cancelled (not after the grace)
must_submit wq "$(plan '{"sandbox": {"id": "wq", "window": {"duration_sec": 1, "on_end": "pause"}}, "globals": {"kill_grace_sec": 60}}' "$SLEEP")"
wait_for 20 is_sb_field wq state paused || fail "wq: sandbox state $(sb_field wq state)"
wait_for 20 is_run_state wq-1 paused || fail "wq-1: run state $(run_state wq-1)"
echo cancel >"$M/runs/wq-1/ctl"
expect_run wq-1 cancelled 20
# no run starts in a paused sandbox until ctl resume
must_submit wq2 "$(plan '{"sandbox": {"id": "wq"}}' "$(step s true)")"
sleep 0.5
[ "$(run_state wq2-1)" = pending ] || fail "wq2-1 in a paused sandbox: $(run_state wq2-1)"
echo resume >"$M/sandboxes/wq/ctl" || fail "ctl resume refused"
expect_run wq2-1 succeeded
# a new window on a paused sandbox (the next phase's plan) keeps the paused
# one: the new run waits in the paused sandbox, ctl resume resumes both
must_submit wn "$(plan '{"sandbox": {"id": "wn", "window": {"duration_sec": 1, "on_end": "pause"}}}' \
  "$(step s 'sleep 3; echo one >>done')")"
wait_for 20 is_sb_field wn state paused || fail "wn: sandbox state $(sb_field wn state)"
wait_for 20 is_run_state wn-1 paused || fail "wn-1: run state $(run_state wn-1)"
must_submit wn2 "$(plan '{"sandbox": {"id": "wn", "window": {"duration_sec": 60}}}' "$(step s 'echo two >>done')")"
sleep 0.5
[ "$(run_state wn2-1)" = pending ] || fail "wn2-1 in a paused sandbox: $(run_state wn2-1)"
[ "$(sb_field wn state)" = paused ] || fail "wn: the new plan unpaused the sandbox: $(sb_field wn state)"
[ "$(sb_field wn window.state)" = ended ] || fail "wn: the paused window was replaced: $(sb_field wn window)"
echo resume >"$M/sandboxes/wn/ctl" || fail "wn: ctl resume refused after a new plan"
expect_run wn-1 succeeded 20
expect_run wn2-1 succeeded 20
[ "$(cat "$(ws wn)/done" | tr '\n' ' ')" = "one two " ] || fail "wn: $(cat "$(ws wn)/done")"
# the window's pause holds: a run's own ctl resume is refused (resume the
# sandbox), and the sandbox's resume resumes only the runs the window paused,
# not one a user had paused before
must_submit wu "$(plan '{"sandbox": {"id": "wu", "window": {"duration_sec": 1, "on_end": "pause"}}}' \
  "$(step s 'sleep 3')" "$(step t 'echo t >>done' '{"depends_on": ["s"]}')")"
must_submit wu2 "$(plan '{"sandbox": {"id": "wu"}}' "$(step s true)")"
echo pause >"$M/runs/wu2-1/ctl" || fail "wu2-1: pause refused"
wait_for 20 is_sb_field wu state paused || fail "wu: sandbox state $(sb_field wu state)"
wait_for 20 is_run_state wu-1 paused || fail "wu-1: run state $(run_state wu-1)"
write_fails "$M/runs/wu-1/ctl" resume || fail "wu-1: a run's resume in a paused sandbox was taken"
grep -q 'Invalid argument' "$T/write.err" || fail "wu-1 resume: $(cat "$T/write.err")"
sleep 2
[ "$(run_state wu-1)" = paused ] || fail "wu-1: $(run_state wu-1) in a paused sandbox"
[ "$(step_state wu-1 t)" = pending ] || fail "wu-1: step t started in a paused sandbox: $(step_state wu-1 t)"
[ ! -e "$(ws wu)/done" ] || fail "wu-1: step t ran in a paused sandbox"
echo resume >"$M/sandboxes/wu/ctl" || fail "wu: ctl resume refused"
expect_run wu-1 succeeded 20
sleep 0.5
[ "$(run_state wu2-1)" = paused ] || fail "wu2-1: the window's resume resumed a run a user paused: $(run_state wu2-1)"
echo resume >"$M/runs/wu2-1/ctl" || fail "wu2-1: resume refused"
expect_run wu2-1 succeeded 20

# a step stopped by the pause keeps its timeout and heartbeat clocks stopped
# too: 3 s paused (past its heartbeat_ttl_sec of 1 and the 2 s left of its
# timeout) neither kills it nor times it out; after resume it beats again
# and its timeout, what was left of it, ends it
must_submit wh "$(plan '{"sandbox": {"id": "wh", "window": {"duration_sec": 1, "on_end": "pause"}}}' \
  "$(step s 'while :; do echo "{\"event_type\": \"heartbeat\"}" >>"$ORCHFS_SANDBOX/events"; sleep 0.2; done' \
     '{"heartbeat_ttl_sec": 1, "timeout_sec": 3}')")"
wait_for 20 is_run_state wh-1 paused || fail "wh-1: run state $(run_state wh-1)"
sleep 3
expect_step wh-1 s running
[ "$(step_field wh-1 s attempt)" = 1 ] || fail "wh-1: the paused step was stopped and retried"
[ "$(count_events "$M/runs/wh-1/events" step.failed)" = 0 ] || fail "wh-1: $(grep step.failed "$M/runs/wh-1/events")"
echo resume >"$M/sandboxes/wh/ctl" || fail "ctl resume refused"
expect_run wh-1 failed 20
expect_step wh-1 s timed_out
[ "$(count_events "$M/runs/wh-1/events" step.failed '.reason == "missed_heartbeat"')" = 0 ] \
  || fail "wh-1: killed for a heartbeat missed while paused"

# ---- kill -9, then start past a deadline -------------------------------------
must_submit wk "$(plan '{"sandbox": {"id": "wk", "window": {"duration_sec": 3, "on_end": "stop"}}}' "$SLEEP")"
must_submit wr "$(plan '{"sandbox": {"id": "wr", "window": {"duration_sec": 60, "max_duration_sec": 600, "extend_sec": 10,
  "extend_when": [{"event_type": "bug.reported", "count": 2, "within_sec": 600}]}}}' "$SLEEP")"
echo '{"event_type": "bug.reported"}' >>"$M/sandboxes/wr/events" || fail "post refused"
[ "$(span_ms wr)" = 60000 ] || fail "wr: one report extended it"
dl=$(iso_ms "$(sb_field wk window.deadline)")
crash_fs
while [ "$(now_ms)" -le $((dl + 300)) ]; do sleep 0.2; done
start_fs
expect_run wk-1 cancelled 20
[ "$(count_events "$M/sandboxes/wk/events" window.ended '.reason == "deadline"')" = 1 ] \
  || fail "wk: window.ended after the restart: $(grep window "$M/sandboxes/wk/events")"
[ "$(sb_field wk window.state)" = ended ] || fail "wk: $(sb_field wk window)"
# its step was not started again first
[ "$(count_events "$M/runs/wk-1/events" step.started)" = 1 ] || fail "wk-1 started again: $(grep step.started "$M/runs/wk-1/events")"
# the report counted before kill -9 still counts
echo '{"event_type": "bug.reported"}' >>"$M/sandboxes/wr/events" || fail "post refused"
[ "$(span_ms wr)" = 70000 ] || fail "wr: the count did not survive kill -9: $(span_ms wr) ms"
[ "$(jget "$M/sandboxes/wr/status" '.window.extensions | length')" = 1 ] || fail "wr: $(sb_field wr window)"
expect_step wr-1 s running

# a window's pause across a restart: its resume still resumes only the runs
# it paused
must_submit wv "$(plan '{"sandbox": {"id": "wv", "window": {"duration_sec": 1, "on_end": "pause"}}}' "$SLEEP")"
must_submit wv2 "$(plan '{"sandbox": {"id": "wv"}}' "$(step s true)")"
echo pause >"$M/runs/wv2-1/ctl" || fail "wv2-1: pause refused"
wait_for 20 is_run_state wv-1 paused || fail "wv-1: run state $(run_state wv-1)"

# ---- a window that ended stays ended; extensions stay ------------------------
stop_fs
start_fs
[ "$(sb_field wv state)" = paused ] && [ "$(run_state wv-1)" = paused ] && [ "$(run_state wv2-1)" = paused ] \
  || fail "wv after a restart: $(sb_field wv state) $(run_state wv-1) $(run_state wv2-1)"
echo resume >"$M/sandboxes/wv/ctl" || fail "wv: ctl resume refused after a restart"
wait_for 20 is_run_state wv-1 running || fail "wv-1 after resume: $(run_state wv-1)"
sleep 0.5
[ "$(run_state wv2-1)" = paused ] || fail "wv2-1: resumed by the window: $(run_state wv2-1)"
echo cancel >"$M/runs/wv-1/ctl"
echo cancel >"$M/runs/wv2-1/ctl"
expect_run wv-1 cancelled
expect_run wv2-1 cancelled
[ "$(count_events "$M/sandboxes/wk/events" window.ended)" = 1 ] || fail "wk: ended again at a restart"
[ "$(sb_field wk window.state)" = ended ] || fail "wk: $(sb_field wk window)"
[ "$(span_ms wr)" = 70000 ] && [ "$(sb_field wr window.state)" = open ] || fail "wr after a restart: $(sb_field wr window)"
echo cancel >"$M/runs/wr-1/ctl"
expect_run wr-1 cancelled
exit 0
