#!/usr/bin/env bash
# A plan is submitted once per change (issue 12, finding 9): a close submits
# only what its handle wrote since the file's last submission, by any path.
# A file written, renamed onto NAME.json (which submits it) and then closed
# started two runs (NAME-1 and NAME-2). Also plans/NAME.run's times (finding
# 13): when its newest run was created, not the time of an old error.
. "$(dirname "$0")/lib.sh"
start_fs

p=$(plan '{}' "$(step a 'true')")
printf '%s\n' "$p" >"$T/p.json"
runs_of() { ls "$M/runs" | grep -E "^$1-[0-9]+\$" | sort -V | tr '\n' ' '; }
# expect_runs NAME "NAME-1 NAME-2 ...": exactly these runs of NAME exist
expect_runs() {
  local got; got=$(runs_of "$1")
  [ "$got" = "$2 " ] || fail "$1: want runs '$2', got '${got% }'"
}

# py SCRIPT: run a Python snippet with os, M (the mount) and P (the plan's bytes)
py() {
  python3 -c "
import os, sys
M = sys.argv[1]; P = open(sys.argv[2], 'rb').read()
def path(n): return os.path.join(M, 'plans', n)
def create(n): return os.open(path(n), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
$1" "$M" "$T/p.json" || fail "python: $1"
}

# ---- written, renamed onto NAME.json (submits), closed: once
py "
fd = create('ul3.json.tmp'); os.write(fd, P)
os.rename(path('ul3.json.tmp'), path('ul3.json')); os.close(fd)"
expect_runs ul3 "ul3-1"
# the same from a plan name to another
py "
fd = create('ul4x.json'); os.write(fd, P)
os.rename(path('ul4x.json'), path('ul4.json')); os.close(fd)"
expect_runs ul4 "ul4-1"
[ -z "$(runs_of ul4x)" ] || fail "ul4x.json was submitted though it was renamed before its close"
# dup'ed descriptors too
py "
fd = create('ul5.json.tmp'); os.write(fd, P); fd2 = os.dup(fd)
os.rename(path('ul5.json.tmp'), path('ul5.json')); os.close(fd); os.close(fd2)"
expect_runs ul5 "ul5-1"

# ---- written again after the rename: the close submits what is new
py "
fd = create('ul6.json.tmp'); os.write(fd, P)
os.rename(path('ul6.json.tmp'), path('ul6.json'))
os.pwrite(fd, P, 0); os.close(fd)"
expect_runs ul6 "ul6-1 ul6-2"

# ---- several handles on one file
# both wrote, then a rename: neither close submits again
py "
a = create('ul7.json.tmp'); os.write(a, P)
b = os.open(path('ul7.json.tmp'), os.O_WRONLY); os.pwrite(b, P, 0)
os.rename(path('ul7.json.tmp'), path('ul7.json')); os.close(a); os.close(b)"
expect_runs ul7 "ul7-1"
# both wrote, the first close submits what both wrote; the second nothing
py "
a = create('ul8.json'); os.write(a, P)
b = os.open(path('ul8.json'), os.O_WRONLY); os.pwrite(b, P, 0)
os.close(a); os.close(b)"
expect_runs ul8 "ul8-1"
# one wrote after the other's close submitted: its close submits again
py "
a = create('ul9.json'); os.write(a, P)
b = os.open(path('ul9.json'), os.O_WRONLY)
os.close(a); os.pwrite(b, P, 0); os.close(b)"
expect_runs ul9 "ul9-1 ul9-2"
# a handle that only read submits nothing
py "
a = create('ul10.json'); os.write(a, P)
b = os.open(path('ul10.json'), os.O_RDONLY); os.read(b, 10)
os.close(a); os.close(b)"
expect_runs ul10 "ul10-1"

# ---- the usual ways still submit once each
cp "$T/p.json" "$M/plans/cp1.json" || fail "cp failed"
expect_runs cp1 "cp1-1"
# an editor: write a temporary file, close it, rename it over the plan
cp "$T/p.json" "$M/plans/.ed1.json.swp" && mv "$M/plans/.ed1.json.swp" "$M/plans/ed1.json" || fail "editor save failed"
expect_runs ed1 "ed1-1"
cp "$T/p.json" "$M/plans/ed1.json.new" && mv "$M/plans/ed1.json.new" "$M/plans/ed1.json" || fail "second editor save failed"
expect_runs ed1 "ed1-1 ed1-2"
# > and cat
cat "$T/p.json" >"$M/plans/sh1.json" || fail "cat > failed"
expect_runs sh1 "sh1-1"

# ---- plans/NAME.run: mtime and ctime are its newest run's creation
# created_at_s RUN: the run's created_at, in whole seconds since the epoch
created_at_s() { echo $(( $(iso_ms "$(jget "$M/runs/$1/status" .created_at)") / 1000 )); }
expect_run_times() {
  local name=$1 run=$2 want
  [ "$(readlink "$M/plans/$name.run")" = "../runs/$run" ] || fail "$name.run points to $(readlink "$M/plans/$name.run"), not $run"
  want=$(created_at_s "$run")
  [ "$(stat -c %Y "$M/plans/$name.run")" = "$want" ] \
    || fail "$name.run: mtime $(stat -c %Y "$M/plans/$name.run"), want $want (created_at of $run: $(jget "$M/runs/$run/status" .created_at))"
  [ "$(stat -c %Z "$M/plans/$name.run")" = "$want" ] || fail "$name.run: ctime $(stat -c %Z "$M/plans/$name.run"), want $want"
}
expect_run_times cp1 cp1-1
expect_run_times ed1 ed1-2
# after a refused submission, the link keeps the run's time (the error has its own)
printf '{"steps": 1}\n' >"$T/bad.json"
cp "$T/bad.json" "$M/plans/cp1.json" 2>/dev/null && fail "an invalid plan was accepted"
[ -e "$M/plans/cp1.error" ] || fail "no cp1.error"
expect_run_times cp1 cp1-1
# a run made at a later second: the link's time follows it
t=$(created_at_s cp1-1)
while [ "$(date +%s)" -le "$t" ]; do sleep 0.1; done
cp "$T/p.json" "$M/plans/cp1.json" || fail "cp failed"
expect_runs cp1 "cp1-1 cp1-2"
expect_run_times cp1 cp1-2
# and the same after a restart (the time comes from the store)
stop_fs
start_fs
expect_run_times cp1 cp1-2
expect_run_times ed1 ed1-2
