#!/usr/bin/env bash
# kill -9 while a reverse invalidation waits on a request in flight (issue
# 12, finding 4). A sandbox deleted through its ctl has the daemon's
# invalidation thread tell the kernel to forget its name; the kernel first
# takes sandboxes/'s lock, which a client's mkdir holds while it waits for
# the daemon. Killed then, the daemon could never die: its thread stayed in
# the kernel, keeping /dev/fuse and the state lock, and the mkdir waited
# forever. Now:
#  1. its watchdog aborts the connection: the daemon is gone, the mkdir
#     fails, and the next start (the test clears nothing) comes up and
#     clears the dead mount, saying so;
#  2. with the watchdog killed too, the daemon stays held until the next
#     start, which aborts its connection (fusectl), waits for it to go, takes
#     the state directory and mounts, saying what it did;
#  3. a stale dead mount alone (the daemon gone) is cleared by the next start.
# The threads are put in that order with the cgroup v1 freezer (one thread
# at a time); without it the test is skipped (tests/crash/churn gets there
# by chance instead).
. "$(dirname "$0")/lib.sh"
FZ=/sys/fs/cgroup/freezer
[ "$(id -u)" = 0 ] && [ -w "$FZ/tasks" ] || { note "needs root and the cgroup v1 freezer: skipped"; exit 77; }
CG="orchfs-e2e-$$"
STUCK=()       # pids of daemons seen held in the kernel

# ---- helpers ------------------------------------------------------------------

fz_cleanup() {
  local c t p
  for c in inval engine; do
    [ -d "$FZ/$CG-$c" ] || continue
    echo THAWED >"$FZ/$CG-$c/freezer.state" 2>/dev/null
    for t in $(cat "$FZ/$CG-$c/tasks" 2>/dev/null); do echo "$t" >"$FZ/tasks" 2>/dev/null; done
    rmdir "$FZ/$CG-$c" 2>/dev/null
  done
  # a daemon this test left held in the kernel (the bug): free it, so that
  # nothing stays stuck on this machine
  for p in "${STUCK[@]}"; do
    [ -d "/proc/$p" ] || continue
    local n; n=$(awk '$5 == "'"$M"'" { split($3, d, ":"); n = d[2] } END { print n }' /proc/self/mountinfo)
    [ -n "$n" ] || n=$(sed -n 's/^fuse //p' "$S/lock" 2>/dev/null)
    [ -n "$(ls /sys/fs/fuse/connections 2>/dev/null)" ] || mount -t fusectl fusectl /sys/fs/fuse/connections 2>/dev/null
    [ -n "$n" ] && echo 1 >"/sys/fs/fuse/connections/$n/abort" 2>/dev/null
  done
}
trap 'rc=$?; fz_cleanup; (exit $rc); _e2e_exit' EXIT

# tid_of NAME: the thread of the daemon named NAME
tid_of() {
  local t
  for t in /proc/"$DPID"/task/*; do
    [ "$(cat "$t/comm" 2>/dev/null)" = "$1" ] && { basename "$t"; return 0; }
  done
  return 1
}
# freeze NAME TID / thaw NAME
freeze() {
  mkdir -p "$FZ/$CG-$1" || fail "cannot make freezer cgroup $CG-$1"
  echo "$2" >"$FZ/$CG-$1/tasks" || fail "cannot move thread $2 into $CG-$1"
  echo FROZEN >"$FZ/$CG-$1/freezer.state"
  wait_for 20 grep -qx FROZEN "$FZ/$CG-$1/freezer.state" || fail "thread $2 ($1) did not freeze"
}
thaw() { echo THAWED >"$FZ/$CG-$1/freezer.state"; }
wchan_is() { [ "$(cat "/proc/$1/task/$2/wchan" 2>/dev/null)" = "$3" ]; }
task_state() { awk '{ print $3 }' "/proc/$1/task/$2/stat" 2>/dev/null; }
# all_dead PID: no thread of PID is alive (a zombie waiting for wait counts as dead)
all_dead() {
  local t s
  for t in /proc/"$1"/task/*; do
    [ -e "$t/stat" ] || continue
    s=$(awk '{ print $3 }' "$t/stat" 2>/dev/null)
    [ -z "$s" ] || [ "$s" = Z ] || [ "$s" = X ] || return 1
  done
  return 0
}
# held PID: its main thread is dead and a thread of it waits in fuse_reverse_inval_entry
held() {
  local t
  [ "$(task_state "$1" "$1")" = Z ] || return 1
  for t in /proc/"$1"/task/*; do
    [ "$(cat "$t/wchan" 2>/dev/null)" = fuse_reverse_inval_entry ] && return 0
  done
  return 1
}
describe() {
  local t
  for t in /proc/"$1"/task/*; do
    printf '%s:%s:%s ' "$(basename "$t")" "$(awk '{ print $3 }' "$t/stat" 2>/dev/null)" "$(cat "$t/wchan" 2>/dev/null)"
  done
}
watchdog_of() {
  local p
  for p in $(pgrep -P "$1"); do
    tr '\0' '\n' <"/proc/$p/cmdline" 2>/dev/null | grep -qx -- --watchdog && echo "$p"
  done
}

# hold_inval NAME: delete sandbox NAME through its ctl while a mkdir in
# sandboxes/ waits for the engine, so that the invalidation of NAME waits in
# the kernel for sandboxes/'s lock. Sets MK (the mkdir's pid).
hold_inval() {
  local it et
  mkdir "$M/sandboxes/$1" || fail "mkdir sandboxes/$1 failed"
  [ -d "$M/sandboxes/$1" ] || fail "sandboxes/$1 is not there"
  it=$(tid_of orchfs-inval) || fail "no orchfs-inval thread in $DPID"
  et=$(tid_of orchfs-engine) || fail "no orchfs-engine thread in $DPID"
  freeze inval "$it"
  echo delete >"$M/sandboxes/$1/ctl" || fail "delete through sandboxes/$1/ctl failed"
  freeze engine "$et"
  mkdir "$M/sandboxes/$1-next" 2>"$T/mkdir.err" &
  MK=$!
  wait_for 20 wchan_is "$MK" "$MK" request_wait_answer || fail "the mkdir does not wait for the daemon: $(describe "$MK")"
  thaw inval
  wait_for 20 wchan_is "$DPID" "$it" fuse_reverse_inval_entry \
    || fail "the invalidation does not wait for sandboxes/'s lock: $(describe "$DPID")"
  ET=$et
}

# kill9_held: kill -9 the daemon while its engine thread is frozen, then
# thaw it (it dies at once, answering nothing)
kill9_held() {
  kill -9 "$DPID"
  thaw engine
}

log_has() { grep -q -- "$1" "$T/daemon.log"; }

# ---- 1. the watchdog ends the connection of a daemon killed meanwhile -----------
start_fs
hold_inval a
OLD=$DPID
kill9_held
wait_for 20 all_dead "$OLD" || { STUCK+=("$OLD"); fail "the daemon is held in the kernel 20 s after kill -9: $(describe "$OLD")"; }
wait "$OLD" 2>/dev/null
DPID="" DCHILD=0
wait_for 20 all_dead "$MK" || fail "the mkdir still waits: $(describe "$MK")"
wait "$MK" && fail "the mkdir waiting at the kill succeeded"
log_has "watchdog: orchfs (pid $OLD) died without stopping: aborted its FUSE connection" \
  || fail "the watchdog did not say what it did: $(tail -3 "$T/daemon.log")"
mounted "$M" || fail "the dead mount is gone already (the next start should clear it)"
start_fs
log_has "cleared the dead mount of orchfs on $M" || fail "the start did not say it cleared the dead mount: $(tail -3 "$T/daemon.log")"
[ ! -e "$M/sandboxes/a" ] || fail "the deleted sandbox is back"
[ -d "$M/sandboxes/a-next" ] && fail "the mkdir that failed at the kill made its sandbox"
mkdir "$M/sandboxes/after1" || fail "mkdir after the restart failed"

# ---- 2. the watchdog killed too: the next start aborts the connection ----------
hold_inval b
OLD=$DPID
WD=$(watchdog_of "$DPID")
[ -z "$WD" ] || kill -9 $WD
kill9_held
STUCK+=("$OLD")
wait_for 20 held "$OLD" || fail "expected the killed daemon held in the kernel (no watchdog): $(describe "$OLD")"
DPID="" DCHILD=0
start_fs
wait_for 20 all_dead "$OLD" || fail "the daemon held in the kernel is still there after the next start: $(describe "$OLD")"
wait "$OLD" 2>/dev/null
wait "$MK" && fail "the mkdir waiting at the kill succeeded"
log_has "the state directory's lock is held by orchfs pid $OLD, whose main thread is dead" \
  || fail "the start did not say who held the lock: $(tail -5 "$T/daemon.log")"
log_has "aborted FUSE connection [0-9]* ($M) of the dead orchfs pid $OLD" \
  || fail "the start did not say it aborted the connection: $(tail -5 "$T/daemon.log")"
log_has "orchfs pid $OLD is gone" || fail "the start did not say the holder went: $(tail -5 "$T/daemon.log")"
[ -d "$M/sandboxes/after1" ] || fail "sandbox after1 was lost"
[ ! -e "$M/sandboxes/b" ] || fail "the deleted sandbox is back"

# ---- 3. a dead mount alone ------------------------------------------------------
OLD=$DPID
kill -9 "$DPID"
wait "$OLD" 2>/dev/null
DPID="" DCHILD=0
wait_for 20 mounted "$M" || fail "no dead mount left to clear"
start_fs
[ -d "$M/sandboxes/after1" ] || fail "sandbox after1 was lost"
n=$(grep -c "cleared the dead mount of orchfs on $M" "$T/daemon.log")
[ "$n" -ge 3 ] || fail "the third start did not say it cleared the dead mount ($n times in all)"
STUCK=()
