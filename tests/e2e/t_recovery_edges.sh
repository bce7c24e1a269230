#!/usr/bin/env bash
# Recovery and cancellation corners: the run holding a shared sandbox still
# holds it after kill -9; a cancel survives a sandbox restart during its grace
# period; a cancelled run waiting for a sandbox ends at once; what a step left
# in its process group after the daemon died is killed at the next start.
. "$(dirname "$0")/lib.sh"
start_fs

# ---- two runs in one sandbox, kill -9 while the first runs
mkdir "$M/sandboxes/shared" || fail "mkdir failed"
# first holds the sandbox until the test lets it go (a file "release")
must_submit first "$(plan '{"sandbox": {"id": "shared"}}' "$(step s 'echo first >>order; while [ ! -e release ]; do sleep 0.05; done; echo first-done >>order')")"
must_submit second "$(plan '{"sandbox": {"id": "shared"}}' "$(step s 'echo second >>order')")"
wait_for 20 is_step_state first-1 s running || fail "first never ran"
W=$(sb_field shared workspace)
wait_for 20 test -s "$W/order" || fail "first never began"
crash_fs
start_fs
wait_for 20 is_step_state first-1 s running || fail "first did not resume"
is_run_state second-1 pending || fail "second should wait for first after the restart, is $(run_state second-1)"
[ "$(sb_field shared run_id)" = first-1 ] || fail "sandbox status should name first-1, not $(sb_field shared run_id)"
touch "$W/release"
expect_run first-1 succeeded 20
expect_run second-1 succeeded 20
[ "$(tail -1 "$W/order")" = second ] || fail "second ran before first finished: $(tr '\n' ' ' <"$W/order")"

# ---- cancel, then restart the sandbox within the grace period
mkdir "$M/sandboxes/cb" || fail "mkdir failed"
must_submit c "$(plan '{"sandbox": {"id": "cb"}, "globals": {"kill_grace_sec": 2}}' \
  "$(step long 'trap "sleep 1; exit 1" TERM; echo go >go; sleep 30 & wait')" \
  "$(step next 'true' '{"depends_on": ["long"]}')")"
wait_for 20 test -s "$(sb_field cb workspace)/go" || fail "long never began"
echo cancel >"$M/runs/c-1/ctl" || fail "cancel refused"
echo restart >"$M/sandboxes/cb/ctl" || fail "restart refused"
expect_run c-1 cancelled 20
expect_step c-1 long cancelled
expect_step c-1 next cancelled
rmdir "$M/sandboxes/cb" || fail "the sandbox should be free after the cancel"

# ---- a cancelled run that waits for its sandbox ends at once
mkdir "$M/sandboxes/q" || fail "mkdir failed"
must_submit hold "$(plan '{"sandbox": {"id": "q"}}' "$(step s 'sleep 30')")"
must_submit waiter "$(plan '{"sandbox": {"id": "q"}}' "$(step s 'true')")"
wait_for 20 is_step_state hold-1 s running || fail "hold never ran"
is_run_state waiter-1 pending || fail "waiter should be pending"
echo cancel >"$M/runs/waiter-1/ctl" || fail "cancel of a pending run refused"
expect_run waiter-1 cancelled 20
[ "$(count_events "$M/runs/waiter-1/events" run.started)" -eq 0 ] || fail "a cancelled waiting run started"
rmdir "$M/runs/waiter-1" || fail "a cancelled run should be removable"
echo cancel >"$M/runs/hold-1/ctl"
expect_run hold-1 cancelled 20

# ---- what a plain step left in its group dies at the next start
must_submit gc "$(plan '{"sandbox": {"isolation": "none"}}' "$(step s 'sleep 300 & echo $! >gc.pid; wait')")"
wait_for 20 is_step_state gc-1 s running || fail "gc never ran"
G=$(ws gc-1)
wait_for 20 test -s "$G/gc.pid" || fail "no grandchild pid"
gc=$(cat "$G/gc.pid")
crash_fs
sleep 0.3
kill -0 "$gc" 2>/dev/null || note "grandchild already gone with the daemon"
start_fs
wait_for 20 sh -c "! kill -0 $gc 2>/dev/null" || fail "the grandchild $gc of a dead daemon's step still runs"
echo cancel >"$M/runs/gc-1/ctl"
expect_run gc-1 cancelled 20
stop_fs
