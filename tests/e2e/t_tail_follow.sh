#!/usr/bin/env bash
# Files that grow while orchfs runs (SPEC 2): tail -f shows appended lines as
# they come, with no torn or repeated lines; status always parses.
. "$(dirname "$0")/lib.sh"
start_fs

must_submit tf "$(plan '{}' "$(step s 'for i in 1 2 3 4 5 6 7 8 9 10; do echo "line $i"; sleep 0.3; done')")"
R=$M/runs/tf-1
wait_for 10 grep -qx 'line 1' "$R/steps/s/log" || fail "the step's first line never showed in its log"
tail -f "$R/steps/s/log" >"$T/log.tail" 2>"$T/log.tail.err" &
tail -f "$R/events" >"$T/events.tail" 2>"$T/events.tail.err" &
tail -n 0 -f "$M/events" >"$T/all.tail" 2>"$T/all.tail.err" &
at_start=$(grep -c '^line' "$R/steps/s/log")

reads=0
while ! run_finished tf-1; do
  cat "$R/status" >"$T/status.read" || fail "cat of status failed"
  jq -e '.state and .progress.total == 1' "$T/status.read" >/dev/null 2>&1 \
    || fail "status did not parse during the run (read $reads): $(cat "$T/status.read")"
  jq -e '.state' "$R/steps/s/status" >/dev/null 2>&1 || fail "the step's status did not parse during the run"
  reads=$((reads + 1))
  sleep 0.05
done
[ "$reads" -ge 20 ] || fail "status was read only $reads times during the run"
expect_run tf-1 succeeded
[ "$at_start" -lt 10 ] || fail "the step was already done when tail started (test too slow)"

# tail polls: give it time to show the last lines
wait_for 5 grep -qx 'line 10' "$T/log.tail" || fail "tail -f of the log missed appended lines: $(cat "$T/log.tail" "$T/log.tail.err")"
wait_for 5 grep -q '"run.succeeded"' "$T/events.tail" || fail "tail -f of runs/ID/events missed appended lines: $(cat "$T/events.tail" "$T/events.tail.err")"
wait_for 5 grep -q '"run.succeeded".*"tf-1"\|"tf-1".*"run.succeeded"' "$T/all.tail" || fail "tail -f of MOUNT/events missed appended lines: $(cat "$T/all.tail")"
sleep 0.3
# what tail showed is the file, with no line torn, lost or repeated
cmp -s "$T/log.tail" "$R/steps/s/log" || fail "tail -f of the log differs from the log:
$(diff "$T/log.tail" "$R/steps/s/log")"
cmp -s "$T/events.tail" "$R/events" || fail "tail -f of events differs from events:
$(diff "$T/events.tail" "$R/events")"
jq -e . "$T/all.tail" >/dev/null || fail "tail -f of MOUNT/events shows a torn line: $(cat "$T/all.tail")"
seq_increasing "$T/all.tail" || fail "tail -f of MOUNT/events: seq not increasing"
[ "$(grep -c '^line' "$T/log.tail")" -eq 10 ] || fail "want the 10 lines once each"
