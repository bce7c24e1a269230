#!/usr/bin/env bash
# Graceful stop (SPEC 1): SIGTERM, SIGINT or fusermount3 -u while steps run: the
# steps get SIGTERM (then SIGKILL after their grace period), the daemon
# unmounts and exits 0 within the grace period, and the next daemon resumes
# the run, running the interrupted steps again.
. "$(dirname "$0")/lib.sh"

# the step records SIGTERM and exits; on its second attempt it just succeeds
# (each says "up" once its trap is set: the test waits for that, not a time)
TERMSTEP='echo go >>go; [ "$(wc -l <go)" -ge 2 ] && exit 0; trap "echo TERM >>term; exit 1" TERM; echo up >w.up; sleep 20 & wait'
# this one ignores SIGTERM: it needs the SIGKILL after the grace period
STUBBORN='echo go >>stub; [ "$(wc -l <stub)" -ge 2 ] && exit 0; trap "" TERM; echo up >stub.up; sleep 20; echo survived >>stub'

# stop_running HOW RUN: start RUN, stop the daemon by HOW (term|unmount) while its steps run
stop_running() {
  local how=$1 run=$2 W t0 el st
  wait_for 20 is_step_state "$run" w running || fail "$how: w never ran"
  W=$(ws "$run")
  wait_for 20 test -s "$W/w.up" || fail "$how: w never set its trap"
  wait_for 20 test -s "$W/stub.up" || fail "$how: stubborn never set its trap"
  t0=$(now_ms)
  case $how in
    term) kill -TERM "$DPID" ;;
    int) kill -INT "$DPID" ;;
    unmount) fusermount3 -u "$M" 2>"$T/fusermount.err" || fail "fusermount3 -u failed: $(cat "$T/fusermount.err")" ;;
  esac
  # the stubborn step sleeps 20 s: stopping well before that means it was killed
  wait_for 20 sh -c "! kill -0 $DPID" || fail "$how: the daemon still runs 15 s later (kill_grace_sec is 1)"
  el=$(( $(now_ms) - t0 ))
  wait "$DPID"; st=$?
  DPID="" DCHILD=0
  [ "$st" -eq 0 ] || fail "$how: the daemon exited with status $st, want 0"
  [ "$el" -lt 15000 ] || fail "$how: the daemon took $el ms to stop, with kill_grace_sec 1"
  [ "$el" -ge 900 ] || fail "$how: the daemon stopped after $el ms, before the grace period of the step that ignores SIGTERM"
  ! mounted "$M" || fail "$how: $M is still mounted after the daemon exited"
  grep -q TERM "$W/term" 2>/dev/null || fail "$how: the running step did not get SIGTERM"
  ! grep -q survived "$W/stub" || fail "$how: the step that ignores SIGTERM was not killed"
  wait_for 20 no_procs_of_run "$run" || fail "$how: processes of the steps outlived the daemon: $(procs_of_run "$run")"
}

# resumed RUN: a new daemon finishes RUN, running the interrupted steps again
resumed() {
  local run=$1 W
  start_fs
  expect_run "$run" succeeded 20
  W=$(ws "$run")
  [ "$(wc -l <"$W/go")" -eq 2 ] || fail "$run: the interrupted step w was not run again once"
  [ "$(wc -l <"$W/stub")" -eq 2 ] || fail "$run: the interrupted step stubborn was not run again once"
  expect_field "$run" w '.attempt == 2'
  expect_field "$run" done '.attempt == 1'
  [ "$(count_events "$M/runs/$run/events" step.started '.step_id == "done"')" -eq 1 ] || fail "$run: a succeeded step ran again"
}

p=$(plan '{"globals": {"kill_grace_sec": 1, "max_concurrency": 3}}' \
  "$(step done 'echo ran >>done.count')" \
  "$(step w "$TERMSTEP" '{"depends_on": ["done"]}')" \
  "$(step stubborn "$STUBBORN" '{"depends_on": ["done"]}')")

start_fs
must_submit gt "$p"
stop_running term gt-1
resumed gt-1

must_submit gu "$p"
stop_running unmount gu-1
resumed gu-1

must_submit gi "$p"
stop_running int gi-1
resumed gi-1
[ "$(wc -l <"$(ws gt-1)/done.count")" -eq 1 ] || fail "a succeeded step ran again"
