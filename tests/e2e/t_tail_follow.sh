#!/usr/bin/env bash
# Files that grow while orchfs runs (SPEC 2): tail -f shows appended lines as
# they come, with no torn or repeated lines; status always parses.
#
# The step prints a line, then waits for the test to let it print the next
# (a file the test creates in the workspace), so the run lasts as long as the
# test needs to read it, however slow the machine: no read count per second.
. "$(dirname "$0")/lib.sh"
start_fs

N=10
must_submit tf "$(plan '{}' "$(step s "for i in \$(seq 1 $N); do echo \"line \$i\"; while [ ! -e go\$i ]; do sleep 0.05; done; done")")"
R=$M/runs/tf-1
wait_for 20 grep -qx 'line 1' "$R/steps/s/log" || fail "the step's first line never showed in its log"
W=$(ws tf-1)
tail -f "$R/steps/s/log" >"$T/log.tail" 2>"$T/log.tail.err" &
tail -f "$R/events" >"$T/events.tail" 2>"$T/events.tail.err" &
tail -n 0 -f "$M/events" >"$T/all.tail" 2>"$T/all.tail.err" &

for i in $(seq 1 $N); do
  wait_for 20 grep -qx "line $i" "$R/steps/s/log" || fail "line $i never showed in the log"
  # the files read whole and parse while the run goes on
  for k in 1 2 3; do
    cat "$R/status" >"$T/status.read" || fail "cat of status failed"
    jq -e '.state == "running" and .progress.total == 1 and .progress.running == 1' "$T/status.read" >/dev/null 2>&1 \
      || fail "status did not parse (or the run was not running) at line $i: $(cat "$T/status.read")"
    jq -e '.state == "running"' "$R/steps/s/status" >/dev/null 2>&1 || fail "the step's status did not parse at line $i"
  done
  touch "$W/go$i"
done
expect_run tf-1 succeeded

# tail polls: wait until it shows the last lines
wait_for 20 grep -qx "line $N" "$T/log.tail" || fail "tail -f of the log missed appended lines: $(cat "$T/log.tail" "$T/log.tail.err")"
wait_for 20 grep -q '"run.succeeded"' "$T/events.tail" || fail "tail -f of runs/ID/events missed appended lines: $(cat "$T/events.tail" "$T/events.tail.err")"
wait_for 20 grep -q '"run.succeeded".*"tf-1"\|"tf-1".*"run.succeeded"' "$T/all.tail" || fail "tail -f of MOUNT/events missed appended lines: $(cat "$T/all.tail")"
# what tail showed is the file, with no line torn, lost or repeated (tail may
# still be catching up with the last events: wait for the whole file)
wait_for 20 cmp -s "$T/log.tail" "$R/steps/s/log" || fail "tail -f of the log differs from the log:
$(diff "$T/log.tail" "$R/steps/s/log")"
wait_for 20 cmp -s "$T/events.tail" "$R/events" || fail "tail -f of events differs from events:
$(diff "$T/events.tail" "$R/events")"
jq -e . "$T/all.tail" >/dev/null || fail "tail -f of MOUNT/events shows a torn line: $(cat "$T/all.tail")"
seq_increasing "$T/all.tail" || fail "tail -f of MOUNT/events: seq not increasing"
[ "$(grep -c '^line' "$T/log.tail")" -eq $N ] || fail "want the $N lines once each: $(cat "$T/log.tail")"
