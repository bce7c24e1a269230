#!/usr/bin/env bash
# activity — what workspace activity (SPEC §11) costs the daemon: a build
# that touches 100,000 files in a watched workspace. Not a timed test and
# not part of `run`: it prints figures for the README.
#
#   1. set-up: a workspace holding D directories of F files each (100,000
#      files) is watched when a step starts there: the daemon logs how long
#      reading and watching its directories took ("workspace activity: N
#      directories read and watched in T ms"); its CPU time over that step;
#      the longest open+read of a status file (which the engine renders)
#      meanwhile, beside the same while nothing happens.
#   2. build: one step writes F new files in each of D new directories
#      (100,000 files, python3, in the workspace), then rewrites each;
#      the daemon's CPU time (utime + stime, /proc/PID/stat) over the run,
#      the workspace.changed events, the changes they count, whether the
#      kernel's queue overflowed.
#   3. the same build outside the workspace (nothing watched there): the
#      daemon's CPU time for running the step alone, to subtract.
#
# usage: scripts/bench/activity.sh [DIRS [FILES_PER_DIR]]   (1000 100)
set -u
export LC_ALL=C
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
D=${1:-1000} F=${2:-100}
HZ=$(getconf CLK_TCK)
bench_tmp
bench_mount || exit 1

cpu() { awk '{ print $14 + $15 }' "/proc/$BPID/stat"; }
secs() { awk -v t="$1" -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }'; }
wait_run() { # RUN: until finished
	for _ in $(seq 6000); do
		case $(jq -r .state "$BM/runs/$1/status" 2>/dev/null) in succeeded) return 0 ;; failed|cancelled) return 1 ;; esac
		sleep 0.1
	done
	return 1
}
unwatched() { for _ in $(seq 600); do [ "$(jq -r .activity.watching "$BM/sandboxes/${1:-ab}/status")" = false ] && return 0; sleep 0.1; done; return 1; }
submit() { printf '%s\n' "$2" >"$BT/$1.json"; cp "$BT/$1.json" "$BM/plans/$1.json"; }
# plan 'python' [SANDBOX [ARG]]: a step running the python text in SANDBOX (ab)
plan() {
	jq -cn --arg c "$1" --arg sb "${2:-ab}" --arg a "${3:-out}" \
		'{sandbox: {id: $sb, isolation: "none"}, steps: [{id: "s", command: "python3", args: ["-c", $c, $a]}]}'
}

# the tree to watch, made by a step (the workspace is the step's user's)
fill='import os
for i in range('"$D"'):
    d = "tree/d%d" % i
    os.makedirs(d)
    for j in range('"$F"'):
        open("%s/f%d" % (d, j), "w").write("x")'
submit fill "$(plan "$fill")"
wait_run fill-1 || { echo "activity: the tree was not made" >&2; exit 1; }
unwatched || { echo "activity: still watching after the fill" >&2; exit 1; }
W=$(jq -r .workspace "$BM/sandboxes/ab/status")
echo "workspace: $(find "$W" -type d | wc -l) directories, $(find "$W" -type f | wc -l) files"

# the longest open+read of a status file (the engine renders it) over SECS
latency() {
	python3 - "$BM/sandboxes/ab/status" "$1" <<'PY'
import sys, time
end = time.monotonic() + float(sys.argv[2]); worst = 0; n = 0
while time.monotonic() < end:
    t = time.monotonic()
    with open(sys.argv[1]) as f: f.read()
    worst = max(worst, time.monotonic() - t); n += 1
print("%.1f ms (%d reads)" % (worst * 1000, n))
PY
}

# 1. set-up: its time and CPU; then again, reading a status file meanwhile
echo "---- set-up" >>"$BT/daemon.log"
c0=$(cpu)
submit idle "$(plan 'import time; time.sleep(3)')"
wait_run idle-1 || exit 1
c1=$(cpu)
echo "set-up: $(sed -n '/^---- set-up/,$p' "$BT/daemon.log" | grep -o 'workspace activity: [0-9]* directories read and watched in [0-9]* ms' | tail -1)"
echo "set-up: daemon CPU over a 3 s step (the set-up and the step): $(secs $((c1 - c0))) s"
unwatched || exit 1
c0=$(cpu)
submit idle2 "$(plan 'import time; time.sleep(3)' empty)"
wait_run idle2-1 || exit 1
c1=$(cpu)
echo "set-up: the same step in an empty workspace: daemon CPU $(secs $((c1 - c0))) s"
echo "idle: the longest read of a sandbox's status over 2 s: $(latency 2)"
submit idle3 "$(plan 'import time; time.sleep(3)')"
echo "set-up: the longest read of a sandbox's status while its workspace is walked: $(latency 2)"
wait_run idle3-1 || exit 1
unwatched || exit 1

# 2. the build, watched (in a sandbox of its own, whose workspace is empty:
# no set-up to speak of); 3. the same outside the workspace
build='import os, sys
base = sys.argv[1]
for i in range('"$D"'):
    d = "%s/d%d" % (base, i)
    os.makedirs(d)
    for j in range('"$F"'):
        open("%s/f%d" % (d, j), "w").write("x")
for i in range('"$D"'):
    for j in range('"$F"'):
        open("%s/d%d/f%d" % (base, i, j), "a").write("y")'
c0=$(cpu) t0=$(now_ns)
submit build "$(plan "$build" bld)"
wait_run build-1 || exit 1
t1=$(now_ns)
unwatched bld || exit 1
c1=$(cpu)
mkdir -p "$BT/outside"
chmod 777 "$BT/outside"
c2=$(cpu) t2=$(now_ns)
submit outside "$(plan "$build" outside "$BT/outside/o")"
wait_run outside-1 || exit 1
t3=$(now_ns)
unwatched outside || exit 1
c3=$(cpu)
jq -s '[.[] | select(.type == "workspace.changed")] |
	"build: \(length) workspace.changed events, \(map(.event_data.count) | add) changes counted, \(map(.event_data.paths | length) | add) paths named, overflow: \(map(.event_data.overflow // false) | any)"' \
	-r "$BM/sandboxes/bld/events"
echo "build: $((D * F)) files written then appended to, in the workspace: $(awk -v n=$((t1 - t0)) 'BEGIN { printf "%.2f", n / 1e9 }') s, daemon CPU $(secs $((c1 - c0))) s"
echo "build: the same outside the workspace: $(awk -v n=$((t3 - t2)) 'BEGIN { printf "%.2f", n / 1e9 }') s, daemon CPU $(secs $((c3 - c2))) s"
echo "daemon RSS now: $(awk '/VmRSS/ { print $2, $3 }' "/proc/$BPID/status"), peak $(awk '/VmHWM/ { print $2, $3 }' "/proc/$BPID/status")"
