#!/usr/bin/env bash
# A start right after kill -9 of the daemon (issue 12, finding 4): the killed
# daemon may still be on its way out, SIGKILL pending in threads that have
# not run yet; it still holds the state lock. The start must wait for it
# (it is gone in a moment), not refuse the state directory as in use. Found
# by tests/crash/churn with one CPU kept busy; here the killed daemon is
# held on its way out with the cgroup v1 freezer (frozen, then killed:
# SIGKILL stays pending until it is thawed).
. "$(dirname "$0")/lib.sh"
FZ=/sys/fs/cgroup/freezer
[ "$(id -u)" = 0 ] && [ -w "$FZ/tasks" ] || { note "needs root and the cgroup v1 freezer: skipped"; exit 77; }
CG="orchfs-e2e-$$"
fz_cleanup() {
  [ -d "$FZ/$CG" ] || return 0
  echo THAWED >"$FZ/$CG/freezer.state" 2>/dev/null
  local t; for t in $(cat "$FZ/$CG/tasks" 2>/dev/null); do echo "$t" >"$FZ/tasks" 2>/dev/null; done
  rmdir "$FZ/$CG" 2>/dev/null
}
trap 'rc=$?; fz_cleanup; (exit $rc); _e2e_exit' EXIT

start_fs
must_submit a "$(plan '{}' "$(step s true)")"
expect_run a-1 succeeded 20
old=$DPID
mkdir -p "$FZ/$CG" || fail "cannot make freezer cgroup $CG"
for t in /proc/"$old"/task/*; do echo "$(basename "$t")" >"$FZ/$CG/tasks" || fail "cannot freeze thread $t"; done
echo FROZEN >"$FZ/$CG/freezer.state"
wait_for 20 grep -qx FROZEN "$FZ/$CG/freezer.state" || fail "the daemon did not freeze"
kill -9 "$old"
grep -q '^ShdPnd:.*[1-9a-f]' "/proc/$old/status" || note "no SIGKILL seen pending (kernel?): $(grep Pnd "/proc/$old/status" | tr '\n' ' ')"

# the next start while the old daemon is killed but not yet gone
"$ORCHFS" -f --state "$S" "$M" >>"$T/daemon.log" 2>&1 &
new=$!
echo "$new" >>"$T/dpids"
# it waits (the killed daemon still holds the lock) rather than refuse
for _ in $(seq 1 20); do kill -0 "$new" 2>/dev/null || break; sleep 0.05; done
kill -0 "$new" 2>/dev/null || fail "the start after kill -9 gave up at once: $(tail -2 "$T/daemon.log")"
echo THAWED >"$FZ/$CG/freezer.state"
wait "$old" 2>/dev/null
DPID=$new DCHILD=1
wait_mounted || fail "the start after kill -9 did not come up: $(tail -3 "$T/daemon.log")"
grep -q "orchfs pid $old.* is gone" "$T/daemon.log" || fail "the start did not say what it waited for: $(tail -3 "$T/daemon.log")"
expect_run a-1 succeeded 20
