#!/usr/bin/env bash
# Retries (SPEC 3, Semantics; 4): retries + 1 attempts, waiting
# retry_delay_sec * retry_backoff^(k-1) before attempt k+1; the log holds every
# attempt after "=== attempt K ===".
. "$(dirname "$0")/lib.sh"
start_fs

flaky=$(plan '{}' \
  "$(step flaky 'date +%s.%N >>times; n=$(wc -l <times); echo "try $n attempt=$ORCHFS_ATTEMPT"; [ "$n" -ge 3 ] || { echo "failing $n" >&2; exit 1; }' \
     '{"retries": 2, "retry_delay_sec": 0.3, "retry_backoff": 2}')")
bad=$(plan '{}' "$(step bad 'echo nope; exit 4' '{"retries": 1}')")
must_submit flaky "$flaky"
must_submit bad "$bad"
expect_run flaky-1 succeeded 20
expect_run bad-1 failed 20

# the step that succeeds at its third attempt
expect_step flaky-1 flaky succeeded
expect_field flaky-1 flaky '.attempt == 3 and .max_attempts == 3 and .exit_code == 0'
L=$M/runs/flaky-1/steps/flaky/log
[ "$(grep -c '^=== attempt [0-9]* ===$' "$L")" -eq 3 ] || fail "log should hold three attempt headers: $(cat "$L")"
[ "$(grep -o '^=== attempt [0-9]* ===$' "$L" | tr -dc '0-9')" = 123 ] || fail "attempt headers not in order: $(cat "$L")"
# each attempt's output follows its own header (stdout and stderr both)
got=$(grep -E '^(=== attempt|try|failing)' "$L" | tr '\n' '|')
want='=== attempt 1 ===|try 1 attempt=1|failing 1|=== attempt 2 ===|try 2 attempt=2|failing 2|=== attempt 3 ===|try 3 attempt=3|'
[ "$got" = "$want" ] || fail "log does not hold each attempt after its header:
$(cat "$L")"
E=$M/runs/flaky-1/events
[ "$(count_events "$E" step.retrying)" -eq 2 ] || fail "want two step.retrying events: $(cat "$E")"
[ "$(count_events "$E" step.started)" -eq 3 ] || fail "want three step.started events"
[ "$(count_events "$E" step.succeeded)" -eq 1 ] || fail "want one step.succeeded event"

# the delays: the engine waits 0.3 s before attempt 2 and 0.6 s (0.3 * 2^1)
# before attempt 3, as step.retrying says; the attempts are at least that far
# apart (a slower machine only adds to the gaps)
jq -s -e '[.[] | select(.type == "step.retrying") | .delay_ms] == [300, 600]' "$M/runs/flaky-1/events" >/dev/null \
  || fail "step.retrying delays: $(jq -c 'select(.type == "step.retrying") | .delay_ms' "$M/runs/flaky-1/events" | tr '\n' ' '), want 300 600"
W=$(ws flaky-1)
mapfile -t t <"$W/times"
[ ${#t[@]} -eq 3 ] || fail "the step should have run 3 times, ran ${#t[@]}"
g1=$(awk -v a="${t[0]}" -v b="${t[1]}" 'BEGIN { printf "%d", (b - a) * 1000 }')
g2=$(awk -v a="${t[1]}" -v b="${t[2]}" 'BEGIN { printf "%d", (b - a) * 1000 }')
[ "$g1" -ge 300 ] || fail "attempt 2 came ${g1} ms after attempt 1, want >= 300 ms"
[ "$g2" -ge 600 ] || fail "attempt 3 came ${g2} ms after attempt 2, want >= 600 ms (0.3 * 2^1)"
# the same gaps in the step.started events
mapfile -t s < <(jq -r 'select(.type == "step.started") | .ts' "$E")
e1=$(( $(iso_ms "${s[1]}") - $(iso_ms "${s[0]}") )) e2=$(( $(iso_ms "${s[2]}") - $(iso_ms "${s[1]}") ))
[ "$e1" -ge 300 ] && [ "$e2" -ge 600 ] || fail "step.started events are $e1 ms and $e2 ms apart, want >= 300 and >= 600"

# the step that always fails, with retries 1
expect_step bad-1 bad failed
expect_field bad-1 bad '.attempt == 2 and .max_attempts == 2 and .exit_code == 4'
[ "$(grep -c '^=== attempt [0-9]* ===$' "$M/runs/bad-1/steps/bad/log")" -eq 2 ] || fail "bad: want two attempt headers"
[ "$(grep -c '^nope$' "$M/runs/bad-1/steps/bad/log")" -eq 2 ] || fail "bad: want the output of both attempts"
[ "$(count_events "$M/runs/bad-1/events" step.retrying)" -eq 1 ] || fail "bad: want one step.retrying event"
[ "$(count_events "$M/runs/bad-1/events" step.started)" -eq 2 ] || fail "bad: want two step.started events"
[ "$(count_events "$M/runs/bad-1/events" step.failed)" -ge 1 ] || fail "bad: no step.failed event"
jq -e 'select(.type == "step.failed") | .attempt' "$M/runs/bad-1/events" | tail -1 | grep -qx 2 \
  || fail "bad: the last step.failed event should be of attempt 2: $(cat "$M/runs/bad-1/events")"
