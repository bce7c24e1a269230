#!/usr/bin/env bash
# A hostile state directory (issue 12, finding 3): FIFOs planted by root
# where a step's log (STATE/logs/RUN/STEP.log) and its sandbox's logs are
# about to be written, and where a finished step's log is read. An open() of
# a FIFO without its other end blocks: the engine thread, which serves the
# whole mount, would hang for every user. It must never open them: the
# writer replaces them with a new log (and says so), a reader gets EIO; the
# mount keeps answering throughout (every command under `timeout`).
. "$(dirname "$0")/lib.sh"
start_fs
p=$(plan '{"sandbox": {"isolation": "none"}}' \
  "$(step first 'echo first-line')" \
  "$(step s "while [ ! -e '$T/go' ]; do sleep 0.05; done; echo out-line" '{"depends_on": ["first"]}')")
must_submit fifo "$p"
wait_for 20 is_step_state fifo-1 s running || fail "step s did not start"
# the run's log directory exists (first printed); plant the FIFOs
[ -d "$S/logs/fifo-1" ] || fail "no log directory for fifo-1"
mkfifo "$S/logs/fifo-1/s.log" || fail "cannot plant the step's FIFO"
rm -f "$S/sandboxes/fifo-1/logs"; mkfifo "$S/sandboxes/fifo-1/logs" || fail "cannot plant the sandbox's FIFO"
rm -f "$S/logs/fifo-1/first.log"; mkfifo "$S/logs/fifo-1/first.log"
touch "$T/go"
expect_run fifo-1 succeeded 20
timeout 5 cat "$M/README" >/dev/null || fail "the mount does not answer"
timeout 5 cat "$M/runs/fifo-1/steps/s/log" >"$T/s.log" || fail "reading the step's log failed or hung"
grep -qx out-line "$T/s.log" || fail "the step's log: $(cat "$T/s.log")"
timeout 5 grep -qx '\[s\] out-line' "$M/sandboxes/fifo-1/logs" || fail "the sandbox's logs: $(timeout 5 cat "$M/sandboxes/fifo-1/logs")"
[ -f "$S/logs/fifo-1/s.log" ] && [ ! -p "$S/logs/fifo-1/s.log" ] || fail "the step's FIFO is still there"
grep -q "logs/fifo-1/s.log was a FIFO, not a regular file" "$T/daemon.log" || fail "the daemon did not say it replaced the step's FIFO"
grep -q "sandboxes/fifo-1/logs was a FIFO, not a regular file" "$T/daemon.log" || fail "the daemon did not say it replaced the sandbox's FIFO"
# a reader of a finished step's log that is a FIFO: EIO, at once
timeout 5 cat "$M/runs/fifo-1/steps/first/log" >/dev/null 2>"$T/err"; rc=$?
[ $rc -ne 124 ] || fail "reading a FIFO log hung"
[ $rc -ne 0 ] && grep -q 'Input/output error' "$T/err" || fail "reading a FIFO log: rc $rc, $(cat "$T/err")"
grep -q "logs/fifo-1/first.log is a FIFO, not a regular file: not opened" "$T/daemon.log" || fail "the daemon did not say it refused the FIFO"
timeout 5 cat "$M/README" >/dev/null || fail "the mount does not answer at the end"
# a FIFO in place of the lock: the next start says so, and does not hang
stop_fs
rm -f "$S/lock"; mkfifo "$S/lock"
timeout 10 "$ORCHFS" -f --state "$S" "$M" >"$T/start.out" 2>&1; rc=$?
[ $rc -ne 124 ] || fail "a FIFO as the lock hung the start"
grep -q "lock is not a regular file" "$T/start.out" || fail "start with a FIFO lock: rc $rc, $(cat "$T/start.out")"
rm -f "$S/lock"
