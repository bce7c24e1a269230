#!/usr/bin/env bash
# runs/ID/wait (SPEC 11): a read blocks until the run has finished, then
# gives its final status; several readers wait on one run; a finished run
# answers at once; a read interrupted by a signal returns EINTR (or its
# reader dies) and leaves nothing behind: the reader's open-files count comes
# back, the daemon stays healthy (ASan: no leak at its stop); readers still
# waiting when the daemon stops get ENOTCONN, and the next daemon resumes the
# run, whose wait then answers.
#
# Root is held to 4 open files here (limits.open_files, apply_to_root): a
# handle that a wait left behind would show as EDQUOT.
. "$(dirname "$0")/lib.sh"
echo '{"limits": {"open_files": 4, "apply_to_root": true}}' >"$T/config.json"
start_fs --config "$T/config.json"

gated() { plan '{}' "$(step s 'until [ -e go ]; do sleep 0.05; done')"; }

# ---- a read waits for the run's end, then gives its final status
must_submit w "$(gated)"
wait_for 20 is_step_state w-1 s running || fail "the step never ran"
cat "$M/runs/w-1/wait" >"$T/w.out" 2>"$T/w.err" & C1=$!
cat "$M/runs/w-1/wait" >"$T/w2.out" 2>"$T/w2.err" & C2=$!
# both are reading (their handles are open) and have not returned
wait_for 20 bash -c "ls -l /proc/$C1/fd /proc/$C2/fd 2>/dev/null | grep -c 'runs/w-1/wait' | grep -qx 2" \
  || fail "the readers never opened wait"
sleep 1
kill -0 $C1 2>/dev/null && kill -0 $C2 2>/dev/null || fail "a read of wait returned before the run ended: $(cat "$T/w.out" "$T/w.err")"
[ ! -s "$T/w.out" ] || fail "a read of wait gave bytes before the run ended: $(cat "$T/w.out")"
touch "$(ws w-1)/go"
wait $C1 || fail "cat of wait failed: $(cat "$T/w.err")"
wait $C2 || fail "the second cat of wait failed: $(cat "$T/w2.err")"
jq -e '.state == "succeeded" and .run_id == "w-1" and (.finished_at | type) == "string" and .progress.succeeded == 1' \
  "$T/w.out" >/dev/null || fail "wait gave: $(cat "$T/w.out")"
cmp -s "$T/w.out" "$T/w2.out" || fail "two readers of one wait got different bytes"
cmp -s "$T/w.out" "$M/runs/w-1/status" || fail "wait differs from the final status: $(diff "$T/w.out" "$M/runs/w-1/status")"

# ---- a finished run answers at once
timeout 10 cat "$M/runs/w-1/wait" >"$T/again.out" || fail "wait of a finished run did not answer"
cmp -s "$T/again.out" "$T/w.out" || fail "wait of a finished run: $(cat "$T/again.out")"
must_submit f "$(plan '{}' "$(step s 'exit 3')")"
expect_run f-1 failed
timeout 10 jq -e '.state == "failed"' "$M/runs/f-1/wait" >/dev/null || fail "wait of a failed run: $(cat "$M/runs/f-1/wait")"

# ---- interrupted reads: a signal handler (EINTR from read), SIGINT that
# kills the reader, and SIGKILL; the run goes on meanwhile
must_submit i "$(gated)"
wait_for 20 is_step_state i-1 s running || fail "the step never ran"
for k in 1 2 3; do
  python3 - "$M/runs/i-1/wait" >"$T/intr.out" 2>&1 <<'EOF' || fail "interrupted read $k: $(cat "$T/intr.out")"
import ctypes, errno, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
signal.signal(signal.SIGALRM, lambda *a: None)	# a handler: read returns EINTR
fd = os.open(sys.argv[1], os.O_RDONLY)
buf = ctypes.create_string_buffer(65536)
signal.alarm(1)
n = libc.read(fd, buf, 65536)
err = ctypes.get_errno()
if n != -1 or err != errno.EINTR:
    sys.exit("read returned %d (errno %d), want -1 EINTR" % (n, err))
os.close(fd)
EOF
done
timeout -s INT 1 cat "$M/runs/i-1/wait" >"$T/int.out" 2>&1; rc=$?
[ $rc -eq 124 ] || fail "cat of wait under timeout -s INT: status $rc (want 124): $(cat "$T/int.out")"
cat "$M/runs/i-1/wait" >/dev/null 2>&1 & K=$!
wait_for 20 bash -c "ls -l /proc/$K/fd 2>/dev/null | grep -q 'runs/i-1/wait'" || fail "the reader never opened wait"
kill -9 $K
wait_for 20 bash -c "! kill -0 $K 2>/dev/null" || fail "a reader of wait killed with SIGKILL did not die"
is_run_state i-1 running || fail "the run did not go on: $(run_state i-1)"
# nothing left behind: root may hold its 4 open files again (and no 5th)
python3 - "$M" >"$T/open.out" 2>&1 <<'EOF' || fail "open files after the interrupted reads: $(cat "$T/open.out")"
import errno, os, sys
m = sys.argv[1]
fds = [os.open(m + "/runs/i-1/" + f, os.O_RDONLY) for f in ("status", "summary", "events", "wait")]
try:
    os.open(m + "/README", os.O_RDONLY)
    sys.exit("a 5th open file was allowed: the limit is not in force")
except OSError as e:
    if e.errno != errno.EDQUOT:
        raise
EOF
jq -e '.ok == true and .db_ok == true' "$M/health" >/dev/null || fail "health after the interrupts: $(cat "$M/health")"
touch "$(ws i-1)/go"
timeout 20 jq -e '.state == "succeeded"' "$M/runs/i-1/wait" >/dev/null || fail "wait after the interrupts: $(cat "$M/runs/i-1/wait")"

# ---- the daemon stops while a reader waits: ENOTCONN; the next daemon
# resumes the run, and its wait answers
must_submit s "$(gated)"
wait_for 20 is_step_state s-1 s running || fail "the step never ran"
cat "$M/runs/s-1/wait" >"$T/s.out" 2>"$T/s.err" & C=$!
wait_for 20 bash -c "ls -l /proc/$C/fd 2>/dev/null | grep -q 'runs/s-1/wait'" || fail "the reader never opened wait"
stop_fs
wait $C && fail "cat of wait succeeded though the daemon stopped before the run ended: $(cat "$T/s.out")"
grep -q 'Transport endpoint is not connected' "$T/s.err" || fail "cat of wait when the daemon stopped: $(cat "$T/s.err")"
start_fs --config "$T/config.json"
wait_for 20 is_step_state s-1 s running || fail "the run did not resume: $(step_states s-1)"
touch "$(ws s-1)/go"
timeout 20 jq -e '.state == "succeeded"' "$M/runs/s-1/wait" >/dev/null || fail "wait after the restart: $(cat "$M/runs/s-1/wait")"
