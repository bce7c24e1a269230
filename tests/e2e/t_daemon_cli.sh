#!/usr/bin/env bash
# The command line (SPEC 1): bad arguments, daemon mode ready on return, one
# daemon per state directory, --jobs across runs, --var defaults.
. "$(dirname "$0")/lib.sh"

# ---- bad arguments: one line on stderr, non-zero exit, nothing mounted
no_daemon_of() { ! daemon_pid_of "$1" >/dev/null; }
# bad_args DESCRIPTION ARGS...
bad_args() {
  local what=$1 rc; shift
  timeout -k 2 10 "$ORCHFS" "$@" >"$T/bad.out" 2>"$T/bad.err"; rc=$?
  [ $rc -ne 124 ] && [ $rc -ne 137 ] || fail "$what: orchfs did not exit (it should refuse at once)"
  [ $rc -ne 0 ] || fail "$what: exit status 0"
  [ "$(grep -c . "$T/bad.err")" -eq 1 ] || fail "$what: want one line on stderr, got: $(cat "$T/bad.err")"
  [ ! -s "$T/bad.out" ] || fail "$what: wrote to stdout: $(cat "$T/bad.out")"
  [ -z "$(awk -v d="$T/" 'index($2, d) == 1' /proc/mounts)" ] || fail "$what: left a mount: $(grep "$T" /proc/mounts)"
  wait_for 20 no_daemon_of "$S" || fail "$what: left a daemon running"
}
bad_args "unknown option" -f --state "$S" --no-such-option "$M"
bad_args "unknown option (daemon mode)" --state "$S" --no-such-option "$M"
bad_args "missing mountpoint" -f --state "$S"
bad_args "missing mountpoint (daemon mode)" --state "$S"
bad_args "mountpoint that does not exist" -f --state "$S" "$T/no/such/dir"
bad_args "mountpoint that does not exist (daemon mode)" --state "$S" "$T/no/such/dir"
grep -q "$T/no/such/dir" "$T/bad.err" || fail "the error should name the mountpoint: $(cat "$T/bad.err")"
bad_args "--jobs x" -f --state "$S" --jobs x "$M"
bad_args "--jobs -1" -f --state "$S" --jobs -1 "$M"
bad_args "--var without =" -f --state "$S" --var NOEQUALS "$M"
bad_args "two mountpoints" -f --state "$S" "$M" "$T"

# ---- daemon mode returns once the mount is ready
"$ORCHFS" --state "$S" "$M" >"$T/dm.out" 2>"$T/dm.err" || fail "orchfs (daemon mode) failed: $(cat "$T/dm.err")"
ls "$M/plans" >/dev/null 2>&1 && [ -d "$M/plans" ] && [ -d "$M/runs" ] || fail "the mount was not ready when orchfs returned"
mountpoint -q "$M" || fail "not a mountpoint after orchfs returned"
pid=$(daemon_pid_of "$S") || fail "no orchfs process serves $S after daemon mode returned"
adopt_daemon "$pid"
must_submit dm "$(plan '{}' "$(step a 'echo daemon mode')")"
expect_run dm-1 succeeded

# ---- a second instance on the same state directory: exit 1, naming the first's pid
mkdir -p "$T/mnt2"
timeout -k 2 10 "$ORCHFS" -f --state "$S" "$T/mnt2" >"$T/second.out" 2>"$T/second.err"; rc=$?
if mounted "$T/mnt2"; then fusermount3 -uz "$T/mnt2"; fail "a second instance mounted on the same state directory"; fi
[ $rc -eq 1 ] || fail "second instance: want exit status 1, got $rc: $(cat "$T/second.err")"
grep -qw "$pid" "$T/second.err" || fail "second instance should name pid $pid: $(cat "$T/second.err")"
timeout -k 2 10 "$ORCHFS" --state "$S" "$T/mnt2" >"$T/second.out" 2>"$T/second.err"; rc=$?
if mounted "$T/mnt2"; then fusermount3 -uz "$T/mnt2"; fail "a second instance (daemon mode) mounted"; fi
[ $rc -eq 1 ] && grep -qw "$pid" "$T/second.err" || fail "second instance (daemon mode): want exit 1 naming $pid, got $rc: $(cat "$T/second.err")"
is_run_state dm-1 succeeded || fail "the first daemon stopped serving"

# stop the daemon-mode instance by its pid
kill -TERM "$pid"
wait_for 20 sh -c "! kill -0 $pid" || fail "the daemon did not exit on SIGTERM"
! mounted "$M" || fail "the daemon left its mount"
DPID="" DCHILD=0

# ---- --jobs 1 across two runs of parallel steps; --var defaults
start_fs --jobs 1 --var WHO=cli --var OTHER=dflt
trace=$T/trace
# par [BODY]: a run of 3 parallel steps tracing their start and end around
# BODY (default: sleep 0.3)
par() {
  local steps=() i body=${1:-sleep 0.3}
  for i in 1 2 3; do
    steps+=("$(step "s$i" 'echo "start ${RUN_ID}/${STEP_ID}" >>${TRACE}; '"$body"'; echo "end ${RUN_ID}/${STEP_ID}" >>${TRACE}')")
  done
  plan "$(jq -cn --arg t "$trace" '{globals: {max_concurrency: 3}, variables: {TRACE: $t}, sandbox: {isolation: "none"}}')" "${steps[@]}"
}
must_submit j1 "$(par)"
must_submit j2 "$(par)"
must_submit v1 "$(plan '{}' "$(step a 'echo "who=${WHO} other=${OTHER}"')")"
must_submit v2 "$(plan '{"variables": {"WHO": "plan"}}' "$(step a 'echo "who=${WHO} other=${OTHER}"')")"
expect_run j1-1 succeeded 20
expect_run j2-1 succeeded 20
expect_run v1-1 succeeded 20
expect_run v2-1 succeeded 20
[ "$(grep -c '^start' "$trace")" -eq 6 ] && [ "$(grep -c '^end' "$trace")" -eq 6 ] || fail "want 6 steps traced: $(cat "$trace")"
peak=$(awk '/^start/ { n++; if (n > max) max = n } /^end/ { n-- } END { print max }' "$trace")
[ "$peak" -eq 1 ] || fail "--jobs 1: $peak steps ran at once:
$(cat "$trace")"
grep -qx 'who=cli other=dflt' "$M/runs/v1-1/steps/a/log" || fail "--var default not used: $(cat "$M/runs/v1-1/steps/a/log")"
grep -qx 'who=plan other=dflt' "$M/runs/v2-1/steps/a/log" || fail "the plan's variables should override --var: $(cat "$M/runs/v2-1/steps/a/log")"
jq -e '.steps[0].args[1] | contains("who=plan other=dflt")' "$M/runs/v2-1/plan.json" >/dev/null || fail "plan.json does not show the substituted --var"
submit v3 "$(plan '{}' "$(step a 'echo ${NOT_GIVEN}')")" && fail "a variable given neither by the plan nor by --var was accepted"
stop_fs

# without --jobs the same two runs do overlap (so the check above means
# something): each step waits until another has started (at most 20 s, so
# a machine of any speed sees the overlap, and serial steps still end)
start_fs
: >"$trace"
barrier='i=0; while [ "$(grep -c ^start ${TRACE})" -lt 2 ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done'
must_submit j1 "$(par "$barrier")"
must_submit j2 "$(par "$barrier")"
expect_run j1-2 succeeded 60
expect_run j2-2 succeeded 60
peak=$(awk '/^start/ { n++; if (n > max) max = n } /^end/ { n-- } END { print max }' "$trace")
[ "$peak" -ge 2 ] || fail "without --jobs, steps never overlapped (peak $peak)"
