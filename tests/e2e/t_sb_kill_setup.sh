#!/usr/bin/env bash
# A sandboxed step stopped while bubblewrap is still setting it up (a daemon
# stopped right after it resumed runs, a run cancelled right after its
# submission) leaves nothing behind: the daemon that says "stopped: every
# step is stopped and recorded" has stopped every process of every step, and
# a cancelled run's processes are gone.
#
# bubblewrap's sandbox init (PID 1 of the step's PID namespace) only ties its
# life to bubblewrap's (its parent-death signal) once the sandbox is set up.
# Killed before that, bubblewrap took none of it along: the init lived on,
# went on to start the step, and the step ran unwatched (found once after
# t_limits: "left processes behind: bwrap, sh -c sleep 600, sleep 600").
# Where the stop falls in the setup is luck: the test stops many times, each
# time with many sandboxes starting, and then waits generously for the
# processes to go (a leftover's `sleep 600` never goes by itself).
. "$(dirname "$0")/lib.sh"
need_root_users
new_user U1
ROUNDS=${ROUNDS:-25}

# marked: live processes that carry this state directory's mark
marked() {
  local p
  for p in $(grep -lsaF -- "ORCHFS_STEP_OF=$S" /proc/[0-9]*/environ | cut -d/ -f3); do
    [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] || continue
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qxF "ORCHFS_STEP_OF=$S" && echo "$p"
  done
}
no_marked() { [ -z "$(marked)" ]; }
# describe PID...: what each is (parent, pid in its own PID namespace, command)
describe() {
  local p
  for p in "$@"; do
    echo "  $p $(grep -E '^(PPid|NSpid)' "/proc/$p/status" 2>/dev/null | tr '\n\t' '  ')$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-50)"
  done
}
user_submit() {
  printf '%s\n' "$2" >"$T/$1.json"
  chmod 644 "$T/$1.json"
  as "$U1" cp "$T/$1.json" "$M/plans/$1.json" 2>"$T/cp.err"
}

# many sandboxed steps that would run for 10 minutes
steps=()
for i in 1 2 3 4 5 6; do steps+=("$(step "s$i" 'sleep 600')"); done
sleepers() { plan "{\"globals\": {\"kill_grace_sec\": 5, \"max_concurrency\": 6}$1}" "${steps[@]}"; }

start_fs -o allow_other,default_permissions
must_submit r "$(sleepers '')"
must_submit r "$(sleepers '')"
is_sb_field r-1 isolation bwrap || { note "bubblewrap does not run here (isolation $(sb_field r-1 isolation)): skipped"; exit 77; }
# a user's steps too (bubblewrap as the user, through the trampoline), where it runs for users
as "$U1" mkdir "$M/sandboxes/u" || fail "$U1 cannot make a sandbox"
if is_sb_field u isolation bwrap; then
  user_submit u "$(sleepers ', "sandbox": {"id": "u"}')" || fail "$U1 could not submit: $(cat "$T/cp.err")"
else
  note "bubblewrap does not run as a user here: root's steps only"
fi
wait_for 20 is_step_state r-1 s1 running || fail "the steps never ran"

# ---- a daemon stopped while it starts the steps of the runs it resumes
stop_fs
for i in $(seq 1 "$ROUNDS"); do
  start_fs -o allow_other,default_permissions
  # somewhere in the first milliseconds (where exactly varies by round)
  sleep "0.00$(( RANDOM % 10 ))"
  stop_fs
  grep -q 'stopped: every step is stopped and recorded' <(tail -1 "$T/daemon.log") \
    || fail "round $i: the daemon did not say it stopped every step: $(tail -3 "$T/daemon.log")"
  if ! wait_for 20 no_marked; then
    left=$(marked)
    fail "round $i: processes of steps outlived the daemon that stopped them:
$(describe $left)"
  fi
done

# ---- runs cancelled while their steps start
start_fs -o allow_other,default_permissions
for i in $(seq 1 "$ROUNDS"); do
  echo cancel >"$M/runs/r-1/ctl" 2>/dev/null   # the resumed ones too, at first
  echo cancel >"$M/runs/r-2/ctl" 2>/dev/null
  must_submit c "$(sleepers '')"
  run=$(basename "$(readlink "$M/plans/c.run")")
  echo cancel >"$M/runs/$run/ctl" || fail "cancel of $run refused"
  expect_run "$run" cancelled 20
  if ! wait_for 20 no_procs_of_run "$run"; then
    left=$(procs_of_run "$run")
    fail "$run: processes of its steps outlived the cancel:
$(describe $left)"
  fi
done
stop_fs
no_marked || fail "processes of steps outlived the daemon: $(describe $(marked))"
exit 0
