#!/usr/bin/env bash
# on_failure policies and critical (SPEC 3, Semantics): abort, skip_dependents,
# continue with critical false / true, and a timed-out step counting as failed.
. "$(dirname "$0")/lib.sh"
start_fs

# abort (the default): the pending and the running steps end cancelled (bad
# fails once long has started)
must_submit ab "$(plan '{"globals": {"max_concurrency": 4}}' \
  "$(step bad 'while [ ! -e long.mark ]; do sleep 0.05; done; exit 3')" \
  "$(step long 'echo started >long.mark; sleep 30; echo finished >>long.mark')" \
  "$(step after 'echo ran >after.mark' '{"depends_on": ["bad"]}')" \
  "$(step later 'echo ran >later.mark' '{"depends_on": ["long"]}')")"

# skip_dependents: transitive dependents skipped, the rest goes on
must_submit sk "$(plan '{"globals": {"max_concurrency": 4}}' \
  "$(step a 'exit 1' '{"on_failure": "skip_dependents"}')" \
  "$(step b 'echo ran >b.mark' '{"depends_on": ["a"]}')" \
  "$(step c 'echo ran >c.mark' '{"depends_on": ["b"]}')" \
  "$(step y 'sleep 0.6')" \
  "$(step x 'echo ran >x.mark' '{"depends_on": ["y"]}')" \
  "$(step d 'echo ran >d.mark' '{"depends_on": ["c", "x"]}')")"

# continue, critical false: the dependent runs, the run succeeds
must_submit cn "$(plan '{}' \
  "$(step lint 'exit 2' '{"on_failure": "continue", "critical": false}')" \
  "$(step build 'echo built' '{"depends_on": ["lint"]}')")"

# continue, critical true (the default): the dependent runs, the run fails
must_submit cc "$(plan '{}' \
  "$(step lint 'exit 2' '{"on_failure": "continue"}')" \
  "$(step build 'echo built' '{"depends_on": ["lint"]}')")"

# timed out counts as failed: skip_dependents, continue + critical false, abort
must_submit ts "$(plan '{"globals": {"kill_grace_sec": 1, "max_concurrency": 4}}' \
  "$(step t 'sleep 30' '{"timeout_sec": 1, "on_failure": "skip_dependents"}')" \
  "$(step u 'true' '{"depends_on": ["t"]}')" \
  "$(step v 'sleep 1.5')")"
must_submit tc "$(plan '{"globals": {"kill_grace_sec": 1}}' \
  "$(step t 'sleep 30' '{"timeout_sec": 1, "on_failure": "continue", "critical": false}')" \
  "$(step u 'true' '{"depends_on": ["t"]}')")"
must_submit ta "$(plan '{"globals": {"kill_grace_sec": 1, "max_concurrency": 4}}' \
  "$(step t 'sleep 30' '{"timeout_sec": 1}')" \
  "$(step long 'sleep 30')" \
  "$(step u 'true' '{"depends_on": ["t"]}')")"

# --- abort
expect_run ab-1 failed 30
expect_step ab-1 bad failed
expect_step ab-1 long cancelled
expect_step ab-1 after cancelled
expect_step ab-1 later cancelled
expect_field ab-1 bad '.exit_code == 3'
W=$(ws ab-1)
[ -f "$W/long.mark" ] || fail "abort: step long never started"
! grep -q finished "$W/long.mark" || fail "abort: the running step was not stopped"
[ ! -e "$W/after.mark" ] && [ ! -e "$W/later.mark" ] || fail "abort: a pending step ran"
[ "$(step_field ab-1 long duration_ms)" -lt 25000 ] || fail "abort: long ran on for $(step_field ab-1 long duration_ms) ms"
[ "$(count_events "$M/runs/ab-1/events" step.cancelled)" -eq 3 ] || fail "abort: want three step.cancelled events: $(cat "$M/runs/ab-1/events")"
jq -e '.progress.failed == 1 and .progress.cancelled == 3 and .progress.pending == 0 and .progress.running == 0' "$M/runs/ab-1/status" >/dev/null \
  || fail "abort: progress wrong: $(cat "$M/runs/ab-1/status")"

# --- skip_dependents
expect_run sk-1 failed 30
expect_step sk-1 a failed
for s in b c d; do expect_step sk-1 $s skipped; done
expect_step sk-1 y succeeded
expect_step sk-1 x succeeded
W=$(ws sk-1)
[ ! -e "$W/b.mark" ] && [ ! -e "$W/c.mark" ] && [ ! -e "$W/d.mark" ] || fail "skip_dependents: a skipped step ran"
[ -e "$W/x.mark" ] || fail "skip_dependents: the independent branch did not run"
[ "$(count_events "$M/runs/sk-1/events" step.skipped)" -eq 3 ] || fail "skip_dependents: want three step.skipped events"
jq -e '.progress.skipped == 3 and .progress.succeeded == 2 and .progress.failed == 1' "$M/runs/sk-1/status" >/dev/null \
  || fail "skip_dependents: progress wrong: $(cat "$M/runs/sk-1/status")"

# --- continue
expect_run cn-1 succeeded 30
expect_step cn-1 lint failed
expect_step cn-1 build succeeded
expect_field cn-1 lint '.exit_code == 2'
grep -q built "$M/runs/cn-1/steps/build/log" || fail "continue: build did not run"
expect_run cc-1 failed 30
expect_step cc-1 lint failed
expect_step cc-1 build succeeded
grep -q built "$M/runs/cc-1/steps/build/log" || fail "continue (critical): build did not run"

# --- timed out = failed
expect_run ts-1 failed 30
expect_step ts-1 t timed_out
expect_step ts-1 u skipped
expect_step ts-1 v succeeded
expect_run tc-1 succeeded 30
expect_step tc-1 t timed_out
expect_step tc-1 u succeeded
expect_run ta-1 failed 30
expect_step ta-1 t timed_out
expect_step ta-1 long cancelled
expect_step ta-1 u cancelled
[ "$(step_field ta-1 long duration_ms)" -lt 25000 ] || fail "abort after a timeout: long ran on"
