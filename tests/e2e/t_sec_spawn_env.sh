#!/usr/bin/env bash
# How a step's process starts (issue 12, findings 1, 5, 6, 11), on a root
# daemon with real users:
#  - the dynamic loader's variables of a user's plan (LD_PRELOAD, LD_AUDIT,
#    LD_LIBRARY_PATH) reach no process running as root: not the trampoline
#    that switches to the user (isolation "none"), not bubblewrap ("bwrap");
#    the step itself still has them (its environment is the user's own);
#  - a root step under bwrap has no capabilities: `mount -o remount,bind,rw /`
#    fails and the host's / stays unwritten; no bwrap step (root's, a
#    user's) may make a user namespace;
#  - a descriptor the daemon inherited (a root-only file on fd 7) reaches no
#    step, and every descriptor the daemon holds is close-on-exec.
. "$(dirname "$0")/lib.sh"
need_root_users
command -v gcc >/dev/null || { note "no gcc: skipped"; exit 77; }
new_user U1
uid1=$(id -u "$U1")
TAG=$(basename "$T")
ROOTW=/orchfs-e2e-rw.$TAG          # what a root step must not manage to write on the host
trap 'rc=$?; rm -f "$ROOTW"; (exit $rc); _e2e_exit' EXIT

# ---- the evil libraries: each appends "euid=N uid=N via=VAR exe=PATH" to LOG
EV=$T/evil
mkdir -p "$EV/lib" && chmod 755 "$EV" "$EV/lib"
LOG=$EV/euid.log
: >"$LOG" && chmod 666 "$LOG"
cat >"$EV/evil.c" <<EOF
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
__attribute__((constructor)) static void init(void)
{
	char exe[256] = "?", line[512];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0)
		exe[n] = 0;
	int fd = open("$LOG", O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0)
		return;
	int k = snprintf(line, sizeof(line), "euid=%d uid=%d via=%s exe=%s\\n", (int)geteuid(), (int)getuid(), VIA, exe);
	if (write(fd, line, (size_t)k) < 0) {}
	close(fd);
}
unsigned la_version(unsigned v) { return v; }   /* for LD_AUDIT */
EOF
gcc -shared -fPIC -DVIA='"LD_PRELOAD"' -o "$EV/preload.so" "$EV/evil.c" || fail "cannot build preload.so"
gcc -shared -fPIC -DVIA='"LD_AUDIT"' -o "$EV/audit.so" "$EV/evil.c" || fail "cannot build audit.so"
# LD_LIBRARY_PATH: a libcap.so.2 (bubblewrap needs it) that records, then
# hands every symbol on to a renamed copy of the real one
REALCAP=$(ldconfig -p | awk '$1 == "libcap.so.2" { print $NF; exit }')
LLP=""
if [ -n "$REALCAP" ] && python3 -c '
import sys
d = open(sys.argv[1], "rb").read()
assert b"libcap.so.2\0" in d
open(sys.argv[2], "wb").write(d.replace(b"libcap.so.2\0", b"libcaX.so.2\0"))' "$REALCAP" "$EV/lib/libcaX.so.2" &&
   gcc -shared -fPIC -DVIA='"LD_LIBRARY_PATH"' -o "$EV/lib/libcap.so.2" "$EV/evil.c" -Wl,-soname,libcap.so.2 \
     -Wl,--no-as-needed -L"$EV/lib" -l:libcaX.so.2; then
  chmod 644 "$EV"/*.so "$EV"/lib/*
  LLP=$EV/lib
else
  note "no libcap.so.2 to stand in for: LD_LIBRARY_PATH is not tried"
fi
chmod 644 "$EV"/*.so
# the libraries work: a plain run records itself
LD_PRELOAD=$EV/preload.so /bin/true
grep -q "via=LD_PRELOAD exe=$(readlink -f /bin/true)" "$LOG" || fail "preload.so records nothing: $(cat "$LOG")"
: >"$LOG"

# ---- the daemon starts with a root-only file open on fd 7
mkdir -m 700 "$T/rootonly"
echo secret >"$T/rootonly/secret"
chmod 600 "$T/rootonly/secret"
exec 7<>"$T/rootonly/secret"
start_fs -o allow_other,default_permissions
exec 7>&-

# every problem found, reported together at the end
problems=()
bad() { problems+=("$*"); }

# every descriptor the daemon holds is close-on-exec (orchfs's own, libfuse's,
# SQLite's), at start and once steps ran
all_cloexec() {
  local fd n flags
  for fd in /proc/"$DPID"/fd/*; do
    n=${fd##*/}
    [ "$n" -gt 2 ] || continue
    flags=$(awk '/^flags:/ { print $2 }' "/proc/$DPID/fdinfo/$n" 2>/dev/null) || continue
    [ -n "$flags" ] || continue
    (( (8#$flags & 8#2000000) != 0 )) || bad "$1: the daemon's fd $n ($(readlink "$fd")) is not close-on-exec (flags $flags)"
  done
}
all_cloexec "at start"

# what every probe step reports, one NAME=VALUE a line, into its workspace
# (first the descriptors its shell holds above 2: `[ -e` opens none; no
# ${...} or $$ in a plan's text: orchfs would substitute them)
PROBE='
extra=none
for n in 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do [ -e /proc/self/fd/$n ] && extra="$extra,$n"; done
{
  echo "extra=$extra"
  echo "uid=$(id -u)"
  echo "preload=$LD_PRELOAD"
  echo "audit=$LD_AUDIT"
  echo "llp=$LD_LIBRARY_PATH"
  echo "gconv=$GCONV_PATH"
  if echo pwned >>/proc/self/fd/7; then echo fd7=writable; else echo fd7=no; fi
  echo "capeff=$(awk "/^CapEff:/ { print \$2 }" /proc/self/status)"
  if unshare -U true; then echo userns=yes; else echo userns=no; fi
  echo ws=ok >ws.txt && echo wsw=yes
  if echo "{\"event_type\": \"probe.posted\"}" >>"$ORCHFS_SANDBOX/events"; then echo post=yes; else echo post=no; fi
} >report 2>/dev/null'
# and in a sandbox, what must fail there (never run unconfined as root)
BOXED='
{
  if mount -o remount,bind,rw /; then echo remount=yes; else echo remount=no; fi
  if touch "$ROOTW"; then echo rootw=yes; else echo rootw=no; fi
} >>report 2>/dev/null'

# user_submit NAME JSON: submit as U1 (the run exists when cp returns)
user_submit() {
  printf '%s\n' "$2" >"$T/$1.json"
  chmod 644 "$T/$1.json"
  as "$U1" cp "$T/$1.json" "$M/plans/$1.json" 2>"$T/cp.err" || fail "$U1 could not submit $1: $(cat "$T/cp.err")"
}
# report RUN: the probe's report of RUN's sandbox, on one line
report() { tr '\n' ' ' <"$(ws "$1")/report" 2>/dev/null; }
has() { case " $(report "$1") " in *" $2 "*) return 0 ;; esac; return 1; }
want() { has "$1" "$2" || bad "$1: want $2 in the step's report: $(report "$1")"; }

UENV=$(jq -cn --arg p "$EV/preload.so" --arg a "$EV/audit.so" --arg l "$LLP" --arg r "$ROOTW" \
  '{LD_PRELOAD: $p, LD_AUDIT: $a, LD_LIBRARY_PATH: $l, GCONV_PATH: "/nonexistent/gconv", ROOTW: $r}')
user_submit unone "$(plan "$(jq -cn --argjson e "$UENV" '{env: $e, sandbox: {isolation: "none"}}')" "$(step probe "$PROBE")")"
user_submit ubwrap "$(plan "$(jq -cn --argjson e "$UENV" '{env: $e, sandbox: {isolation: "bwrap"}}')" \
  "$(step probe "$PROBE$BOXED")")"
must_submit rbwrap "$(plan "$(jq -cn --arg r "$ROOTW" '{env: {ROOTW: $r}, sandbox: {isolation: "bwrap"}}')" \
  "$(step probe "$PROBE$BOXED")")"
must_submit rnone "$(plan '{"sandbox": {"isolation": "none"}}' "$(step probe "$PROBE")")"
# a user's bwrap step still gets its SIGTERM at a timeout, and leaves nothing
user_submit utmo "$(plan '{"globals": {"kill_grace_sec": 1}}' \
  "$(step w 'trap "echo term >>term; exit 1" TERM; echo up >up; sleep 30 & wait' '{"timeout_sec": 1}')")"
for r in unone-1 ubwrap-1 rbwrap-1 rnone-1; do
  wait_for 30 run_finished "$r" || fail "run $r did not finish (state: $(run_state "$r"))"
  is_run_state "$r" succeeded || bad "run $r ended $(run_state "$r"): $(tail -n 3 "$M/runs/$r/steps/probe/log" 2>&1 | tr '\n' ' ')"
done
wait_for 20 run_finished utmo-1 || fail "run utmo-1 did not finish (state: $(run_state utmo-1))"
is_step_state utmo-1 w timed_out || bad "utmo-1: the user's bwrap step is $(step_state utmo-1 w), want timed_out"
grep -qx term "$(ws utmo-1)/term" 2>/dev/null || bad "utmo-1: the user's bwrap step did not get SIGTERM"
wait_for 5 no_procs_of_run utmo-1 || bad "utmo-1: processes of the step outlived it: $(procs_of_run utmo-1)"
is_sb_field ubwrap-1 isolation bwrap || bad "the user's sandbox is not under bwrap: $(sb_field ubwrap-1 isolation)"
[ -e "$ROOTW" ] && { rm -f "$ROOTW"; bad "a root step under bwrap wrote $ROOTW on the host"; }

all_cloexec "after the steps"

# ---- finding 1: the loader's variables reached no root process
if grep -q '^euid=0 ' "$LOG"; then
  bad "a process running as root loaded the user's library: $(grep '^euid=0 ' "$LOG" | tr '\n' ';')"
fi
# ... and they are the user's own: the step has them, and they worked in its processes
for r in unone-1 ubwrap-1; do
  want "$r" "uid=$uid1"
  want "$r" "preload=$EV/preload.so"
  want "$r" "audit=$EV/audit.so"
  want "$r" "gconv=/nonexistent/gconv"
  [ -z "$LLP" ] || want "$r" "llp=$LLP"
done
grep -q "^euid=$uid1 uid=$uid1 via=LD_PRELOAD exe=" "$LOG" || bad "the user's LD_PRELOAD took effect nowhere: $(cat "$LOG")"
grep -q "^euid=$uid1 uid=$uid1 via=LD_AUDIT exe=" "$LOG" || bad "the user's LD_AUDIT took effect nowhere: $(cat "$LOG")"
# bubblewrap runs as the user, with the user's environment
grep -q "^euid=$uid1 uid=$uid1 via=LD_PRELOAD exe=.*bwrap" "$LOG" || bad "bubblewrap did not run as $U1 with the step's environment: $(cat "$LOG")"
[ -z "$LLP" ] || grep -q "^euid=$uid1 uid=$uid1 via=LD_LIBRARY_PATH exe=.*bwrap" "$LOG" \
  || bad "the user's LD_LIBRARY_PATH did not reach bubblewrap as the user: $(cat "$LOG")"

# ---- finding 6: fd 7 reached no step, of any user, sandboxed or not
for r in unone-1 ubwrap-1 rbwrap-1 rnone-1; do
  want "$r" "post=yes"    # the sandbox's own directory of the mount is still there
  want "$r" "fd7=no"
  want "$r" "extra=none"
done
[ "$(cat "$T/rootonly/secret")" = secret ] || bad "a step wrote to the root-only file: $(cat "$T/rootonly/secret")"

# ---- findings 5 and 11: no capabilities, no user namespaces, / stays read-only
for r in ubwrap-1 rbwrap-1; do
  want "$r" "capeff=0000000000000000"
  want "$r" "userns=no"
  want "$r" "remount=no"
  want "$r" "rootw=no"
  want "$r" "wsw=yes"     # the workspace is still the step's to write
done
[ "$(cat "$(ws rbwrap-1)/ws.txt" 2>&1)" = ws=ok ] || bad "a root bwrap step's write to its workspace is not there"
[ "$(stat -c %u "$(ws ubwrap-1)/ws.txt" 2>&1)" = "$uid1" ] || bad "the user's bwrap step did not write its workspace as $U1"
stop_fs
if [ ${#problems[@]} -gt 0 ]; then
  printf '  %s\n' "${problems[@]}" >&2
  fail "${#problems[@]} problem(s), above"
fi
echo ok
