# tests/e2e/lib.sh — helpers for the end-to-end tests of orchfs.
#
# Sourced by every tests/e2e/t_*.sh, which tests/e2e/run starts with these in
# the environment:
#   ORCHFS  absolute path of the daemon binary
#   T       the test's own temporary directory (the current directory)
#   M       the mountpoint ($T/mnt)       S  the state directory ($T/state)
# Tests drive orchfs only through the mount, as a user would.
#
# The daemon writes its output to $T/daemon.log; every daemon pid is appended
# to $T/dpids so that the runner can kill what a failed test left behind.

set -u

: "${ORCHFS:?ORCHFS must be set (run the tests through tests/e2e/run)}"
: "${T:?}" "${M:?}" "${S:?}"

DPID=""        # pid of the daemon of this test (a child of this shell when DCHILD=1)
DCHILD=0

# ---- reporting ---------------------------------------------------------------

fail() { echo "FAIL: $*" >&2; exit 1; }
note() { echo "  $*" >&2; }

# ---- time --------------------------------------------------------------------

now_ms() { local t=$EPOCHREALTIME; echo $(( ${t%.*} * 1000 + 10#${t#*.} / 1000 )); }
# iso_ms ISO8601: milliseconds since the epoch
iso_ms() { date -u -d "$1" +%s%3N; }
ISO_RE='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$'
is_iso() { [[ $1 =~ $ISO_RE ]]; }

# wait_for SECONDS COMMAND...: poll COMMAND (every 50 ms) until it succeeds
wait_for() {
  local limit=$1; shift
  local end=$(( $(now_ms) + $(awk -v s="$limit" 'BEGIN { printf "%d", s * 1000 }') ))
  while :; do
    "$@" >/dev/null 2>&1 && return 0
    [ "$(now_ms)" -lt "$end" ] || return 1
    sleep 0.05
  done
}

# ---- the daemon --------------------------------------------------------------

mounted() { grep -qsF " $1 fuse" /proc/mounts; }

# wait_mounted: until the mount answers (fails if the daemon dies first)
wait_mounted() {
  local i
  for i in $(seq 1 300); do
    if mountpoint -q "$M" 2>/dev/null && [ -d "$M/plans" ]; then return 0; fi
    if [ "$DCHILD" = 1 ] && ! kill -0 "$DPID" 2>/dev/null; then return 1; fi
    sleep 0.05
  done
  return 1
}

# start_fs [ARGS...]: run "$ORCHFS -f --state $S ARGS... $M" in the background
start_fs() {
  [ -z "$DPID" ] || fail "start_fs: a daemon ($DPID) is already running"
  echo "---- start: orchfs -f --state \$S $* \$M" >>"$T/daemon.log"
  "$ORCHFS" -f --state "$S" "$@" "$M" >>"$T/daemon.log" 2>&1 &
  DPID=$! DCHILD=1
  echo "$DPID" >>"$T/dpids"
  wait_mounted || { tail -5 "$T/daemon.log" >&2; fail "the mount did not come up"; }
}

# daemon_pid_of STATEDIR: the pid of a running orchfs serving STATEDIR (from /proc)
daemon_pid_of() {
  local p
  for p in $(pgrep -x "$(basename "$ORCHFS" | cut -c1-15)"); do
    tr '\0' '\n' <"/proc/$p/cmdline" 2>/dev/null | grep -qxF -- "$1" && { echo "$p"; return 0; }
  done
  return 1
}

# adopt_daemon PID: make a daemon started without -f the one of this test
adopt_daemon() { DPID=$1 DCHILD=0; echo "$DPID" >>"$T/dpids"; }

# _stop_daemon [SIGNAL] [SECONDS]: stop the daemon gracefully, wait for it;
# prints why and returns 1 if it did not exit 0 in time or left its mount
_stop_daemon() {
  local sig=${1:-TERM} limit=${2:-20} rc=0 i
  [ -n "$DPID" ] || return 0
  kill -"$sig" "$DPID" 2>/dev/null
  for i in $(seq 1 $((limit * 20))); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.05; done
  if kill -0 "$DPID" 2>/dev/null; then
    echo "the daemon ($DPID) did not exit within ${limit}s of SIG$sig" >&2
    kill -9 "$DPID" 2>/dev/null; rc=1
  fi
  if [ "$DCHILD" = 1 ]; then
    local st; wait "$DPID"; st=$?
    [ $rc -ne 0 ] || [ $st -eq 0 ] || { echo "the daemon exited with status $st after SIG$sig" >&2; rc=1; }
  fi
  if mounted "$M"; then
    echo "the daemon left $M mounted" >&2; rc=1
    fusermount3 -uz "$M" 2>/dev/null
  fi
  DPID="" DCHILD=0
  return $rc
}

# stop_fs: graceful stop (SIGTERM); fails unless the daemon exits 0 and unmounts
stop_fs() { _stop_daemon TERM 20 || fail "stop_fs: the daemon did not stop cleanly"; }

# crash_fs: kill -9 the daemon and clear its dead mount
crash_fs() {
  [ -n "$DPID" ] || return 0
  kill -9 "$DPID" 2>/dev/null
  if [ "$DCHILD" = 1 ]; then wait "$DPID" 2>/dev/null; else
    local i; for i in $(seq 1 100); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.05; done
  fi
  fusermount3 -uz "$M" 2>/dev/null || umount -l "$M" 2>/dev/null
  DPID="" DCHILD=0
}

# ---- users -------------------------------------------------------------------

E2E_USERS=()
# new_user VAR: create a user for this test (no home, /bin/sh) and put its name
# in VAR. Names hold this shell's pid, so tests running side by side (other
# checkouts) never share a user; the EXIT trap removes them. useradd is retried
# while another one holds the password files' lock.
new_user() {
  local name="ofs$$u${#E2E_USERS[@]}" i rc
  userdel -f "$name" >/dev/null 2>&1
  for i in $(seq 1 50); do
    useradd -M -s /bin/sh "$name" 2>"$T/useradd.err"; rc=$?
    [ $rc -eq 0 ] && break
    [ $rc -eq 10 ] || grep -qi lock "$T/useradd.err" || fail "useradd $name: $(cat "$T/useradd.err")"
    sleep 0.1
  done
  [ $rc -eq 0 ] || fail "useradd $name: $(cat "$T/useradd.err")"
  E2E_USERS+=("$name")
  printf -v "$1" '%s' "$name"
}
E2E_GROUPS=()
# new_group VAR USER...: create a group for this test with USERs as members
# (in /etc/group), name in VAR; the EXIT trap removes it
new_group() {
  local var=$1 name="ofs$$g${#E2E_GROUPS[@]}" i rc; shift
  groupdel "$name" >/dev/null 2>&1
  for i in $(seq 1 50); do
    groupadd "$name" 2>"$T/groupadd.err"; rc=$?
    [ $rc -eq 0 ] && break
    [ $rc -eq 10 ] || grep -qi lock "$T/groupadd.err" || fail "groupadd $name: $(cat "$T/groupadd.err")"
    sleep 0.1
  done
  [ $rc -eq 0 ] || fail "groupadd $name: $(cat "$T/groupadd.err")"
  E2E_GROUPS+=("$name")
  local u
  for u in "$@"; do
    for i in $(seq 1 50); do usermod -aG "$name" "$u" 2>/dev/null && break; sleep 0.1; done
  done
  printf -v "$var" '%s' "$name"
}
# as USER COMMAND...: run COMMAND as USER
as() { local u=$1; shift; runuser -u "$u" -- "$@"; }
# need_root_users: skip (77) unless this test can create users
need_root_users() {
  [ "$(id -u)" = 0 ] || { note "needs root to create users: skipped"; exit 77; }
  command -v useradd >/dev/null && command -v runuser >/dev/null || { note "no useradd/runuser: skipped"; exit 77; }
  chmod 0755 "$T"   # the users need to reach the mount
}
_e2e_del_users() {
  local u i
  for u in "${E2E_USERS[@]}"; do
    for i in $(seq 1 50); do userdel -f "$u" >/dev/null 2>&1; [ $? -eq 10 ] || break; sleep 0.1; done
  done
  for u in "${E2E_GROUPS[@]}"; do
    for i in $(seq 1 50); do groupdel "$u" >/dev/null 2>&1; [ $? -eq 10 ] || break; sleep 0.1; done
  done
}

# the EXIT trap: stop background jobs (so the mount is not busy), then the daemon
_e2e_exit() {
  local rc=$? j
  set +e
  for j in $(jobs -p); do [ "$j" = "$DPID" ] || kill "$j" 2>/dev/null; done
  for j in $(jobs -p); do [ "$j" = "$DPID" ] || wait "$j" 2>/dev/null; done
  if [ -n "$DPID" ]; then
    if [ $rc -eq 0 ]; then
      _stop_daemon TERM 20 || { echo "FAIL: the daemon did not stop cleanly at the end of the test" >&2; rc=1; }
    else
      _stop_daemon TERM 10 2>/dev/null
    fi
  fi
  _e2e_del_users
  exit $rc
}
trap _e2e_exit EXIT
trap 'exit 143' TERM INT

# ---- plans -------------------------------------------------------------------

# submit NAME JSON: write a plan the way cp does; returns cp's status (stderr in $T/cp.err)
submit() {
  printf '%s\n' "$2" >"$T/$1.json.src"
  cp "$T/$1.json.src" "$M/plans/$1.json" 2>"$T/cp.err"
}

# must_submit NAME JSON: submit, and fail the test unless the run exists when cp returns
must_submit() {
  submit "$1" "$2" || fail "cp of plan $1 failed: $(cat "$T/cp.err")"
}

# step ID 'shell text' [EXTRA_JSON]: a step running the text with sh -c (exec'd, no "shell")
step() {
  local x='{}'; [ $# -lt 3 ] || x=$3
  jq -cn --arg id "$1" --arg c "$2" --argjson x "$x" '{id: $id, command: "sh", args: ["-c", $c]} + $x'
}

# plan TOP_JSON STEP_JSON...: TOP_JSON plus "steps": [STEP_JSON...]
plan() {
  local top=$1; shift
  jq -cn --argjson top "$top" '$top + {steps: [$ARGS.positional[] | fromjson]}' --args "$@"
}

# ---- reading state -----------------------------------------------------------

jget() { jq -r "$2" "$1" 2>/dev/null; }
run_state() { jget "$M/runs/$1/status" .state; }
step_state() { jget "$M/runs/$1/steps/$2/status" .state; }
step_field() { jget "$M/runs/$1/steps/$2/status" ".$3"; }
is_run_state() { [ "$(run_state "$1")" = "$2" ]; }
is_step_state() { [ "$(step_state "$1" "$2")" = "$3" ]; }
run_finished() { case "$(run_state "$1")" in succeeded|failed|cancelled) return 0 ;; esac; return 1; }
# ws RUN: the workspace of the run's own sandbox
ws() { jget "$M/sandboxes/$1/status" .workspace; }

# expect_run RUN STATE [SECONDS]: wait until the run has finished, check its final state
expect_run() {
  local run=$1 want=$2 limit=${3:-20}
  wait_for "$limit" run_finished "$run" || fail "run $run did not finish in ${limit}s (state: $(run_state "$run"))"
  local got; got=$(run_state "$run")
  [ "$got" = "$want" ] || fail "run $run ended $got, wanted $want; steps: $(step_states "$run")"
}

# expect_step RUN STEP STATE
expect_step() {
  local got; got=$(step_state "$1" "$2")
  [ "$got" = "$3" ] || fail "step $2 of $1 is '$got', wanted $3: $(cat "$M/runs/$1/steps/$2/status" 2>&1 | tr -s ' \n' ' ')"
}

# expect_field RUN STEP JQ_EXPR: the step's status satisfies the jq expression
expect_field() {
  jq -e "$3" "$M/runs/$1/steps/$2/status" >/dev/null 2>&1 \
    || fail "step $2 of $1: expected $3 in $(cat "$M/runs/$1/steps/$2/status" 2>&1 | tr -s ' \n' ' ')"
}

step_states() {
  local d
  for d in "$M/runs/$1/steps"/*/; do
    [ -d "$d" ] || continue
    printf '%s=%s ' "$(basename "$d")" "$(jget "$d/status" .state)"
  done
}

# count_events FILE TYPE [JQ_FILTER]: how many events of TYPE (and matching the filter) FILE holds
count_events() {
  jq -c --arg t "$2" "select(.type == \$t) | select(${3:-true})" "$1" 2>/dev/null | wc -l
}

# seq_increasing FILE: every line is a JSON object and seq strictly increases
seq_increasing() {
  jq -se 'map(.seq) as $s | ($s | all(type == "number")) and all(range(1; $s | length); $s[.] > $s[. - 1])' "$1" >/dev/null
}

# write_fails FILE TEXT: a write of TEXT to FILE must fail (stderr in $T/write.err)
write_fails() { ! printf '%s\n' "$2" >"$1" 2>"$T/write.err"; }

# file_is FILE TEXT: FILE holds exactly TEXT (for wait_for)
file_is() { [ "$(cat "$1" 2>/dev/null)" = "$2" ]; }

# procs_of_run RUN [STEP]: pids of live processes started for RUN (and STEP)
# by this test's daemon (its state directory: other tests on the machine may
# have runs of the same name), found by their environment
procs_of_run() {
  local p
  for p in $(grep -lsaF -- "ORCHFS_RUN_ID=$1" /proc/[0-9]*/environ | cut -d/ -f3); do
    [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] || continue
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qxF "ORCHFS_RUN_ID=$1" || continue
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qxF "ORCHFS_STEP_OF=$(realpath -m "$S")" || continue
    [ $# -lt 2 ] || tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qxF "ORCHFS_STEP_ID=$2" || continue
    echo "$p"
  done
}
no_procs_of_run() { [ -z "$(procs_of_run "$@")" ]; }

# ---- sandboxes ---------------------------------------------------------------

# sb_field ID JQ_PATH: a field of sandboxes/ID/status (jq -r ".JQ_PATH")
sb_field() { jget "$M/sandboxes/$1/status" ".$2"; }
is_sb_field() { [ "$(sb_field "$1" "$2")" = "$3" ]; }

# has_events FILE TYPE N [JQ_FILTER]: FILE holds at least N events of TYPE (for wait_for)
has_events() { [ "$(count_events "$1" "$2" "${4:-true}")" -ge "$3" ]; }

# write_once FILE FORMAT [ARGS...]: append printf FORMAT ARGS... to FILE with a
# single write() (bash's printf builtin issues one write() per line), then
# close; fails if the write or the close fails, saying which in $T/write.err
# ("write: EINVAL", "close: EINVAL", "short write: N of M")
write_once() {
  local f=$1; shift
  # shellcheck disable=SC2059
  printf "$@" | python3 -c '
import errno, os, sys
data = sys.stdin.buffer.read()
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
def why(e): return errno.errorcode.get(e.errno, str(e.errno))
try:
    n = os.write(fd, data)
except OSError as e:
    print("write:", why(e), file=sys.stderr)
    try: os.close(fd)
    except OSError: pass
    sys.exit(1)
if n != len(data):
    print("short write: %d of %d" % (n, len(data)), file=sys.stderr)
    sys.exit(1)
try:
    os.close(fd)
except OSError as e:
    print("close:", why(e), file=sys.stderr)
    sys.exit(1)
' "$f" 2>"$T/write.err"
}
