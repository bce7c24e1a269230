#!/usr/bin/env bash
# A step's own kill_grace_sec overrides globals.kill_grace_sec (SPEC §3,
# issue 12 finding 14) wherever a step is stopped: cancel, timeout, the
# daemon's stop. Every step here ignores SIGTERM under a global grace of 60 s
# and a grace of its own of 0 or 1 s: each must be SIGKILLed well within 20 s
# (the global grace would take 60).
. "$(dirname "$0")/lib.sh"
start_fs

# stubborn NAME: a step that ignores SIGTERM (sleep inherits the ignored
# signal) and says so in NAME.ready once it does
stubborn() { echo "trap '' TERM; touch $1.ready; exec sleep 1000"; }
has_ready() { [ -e "$(ws "$1")/$2.ready" ]; }
G='{"globals": {"kill_grace_sec": 60}}'

# ---- cancel: grace 1 and grace 0
must_submit gc "$(plan "$G" \
  "$(step one "$(stubborn one)" '{"kill_grace_sec": 1}')" \
  "$(step zero "$(stubborn zero)" '{"kill_grace_sec": 0}')")"
wait_for 20 has_ready gc-1 one && wait_for 20 has_ready gc-1 zero || fail "the steps never started"
t0=$(now_ms)
echo cancel >"$M/runs/gc-1/ctl" || fail "cancel was refused"
wait_for 20 run_finished gc-1 || fail "cancel: the run did not end within 20 s (the global grace of 60 s was used?): $(step_states gc-1)"
note "cancel: the run ended $(( $(now_ms) - t0 )) ms after the cancel"
expect_run gc-1 cancelled
expect_step gc-1 one cancelled
expect_step gc-1 zero cancelled
wait_for 10 no_procs_of_run gc-1 || fail "processes of gc-1 survived the cancel"

# ---- timeout: the step's grace after its own timeout
must_submit gt "$(plan "$G" "$(step late "$(stubborn late)" '{"timeout_sec": 1, "kill_grace_sec": 1}')")"
wait_for 20 has_ready gt-1 late || fail "the step never started"
t0=$(now_ms)
wait_for 20 run_finished gt-1 || fail "timeout: the run did not end within 20 s: $(step_states gt-1)"
note "timeout: the run ended $(( $(now_ms) - t0 )) ms after the step started"
expect_run gt-1 failed
expect_step gt-1 late timed_out

# ---- the daemon's stop: stop_fs wants it gone within 20 s
must_submit gs "$(plan "$G" "$(step held "$(stubborn held)" '{"kill_grace_sec": 1}')")"
wait_for 20 has_ready gs-1 held || fail "the step never started"
stop_fs
