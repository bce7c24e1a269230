#!/usr/bin/env bash
# idle — issue 6: what a mounted orchfs costs while nothing happens. 100
# sandboxes, 10 runs in each (runs sharing a sandbox run one at a time: one
# is running, its single step blocked in `sleep`, nine wait behind it), and
# 20 `tail -f` readers on MOUNT/events; the daemon's CPU time (utime + stime
# of every thread, /proc/PID/stat) over 60 s, taken once all of that is in
# place. The anchor is zero: the target is at most 0.2 s in 60 s (scaled to
# the window in the --quick form: 10 s, 10 sandboxes × 2 runs, 5 readers).
# Steps use "isolation": "none" to keep the set-up cheap; what they cost
# while they sleep is the same either way (nothing).
#
# command: mount orchfs (-f); 100 × 10 plans {"sandbox": {"id": "idleK", "isolation": "none"}, "steps": [{"command": "sleep", "args": ["100000"]}]} written to plans/iK.json; once 100 steps run and 900 runs are pending, 20 × `tail -f MOUNT/events >/dev/null`; 2 s later, the daemon's utime+stime (/proc/PID/stat) over 60 s, RUNS windows one after another
set -u
export LC_ALL=C
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ "$QUICK" = 1 ]; then
	SECS=10 NSB=10 PER=2 NREADERS=5 NWIN=1
else
	SECS=60 NSB=100 PER=10 NREADERS=20 NWIN=$RUNS
fi
LIMIT=$(awk -v s="$SECS" 'BEGIN { printf "%.4g", 0.2 * s / 60 }')
HZ=$(getconf CLK_TCK)

note() { echo "  $*" >&2; }

READERS=()
# the steps of this daemon carry ORCHFS_STEP_OF=<its state directory>: any
# left after the stop (there should be none) are ours to end
kill_steps() {
	local f p
	[ -n "${BS_ABS:-}" ] || return 0
	for f in $(grep -lzxF "ORCHFS_STEP_OF=$BS_ABS" /proc/[0-9]*/environ 2>/dev/null); do
		p=${f#/proc/}
		p=${p%/environ}
		[ "$p" != $$ ] && kill -9 "$p" 2>/dev/null
	done
}
cleanup() {
	local p
	for p in "${READERS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${READERS[@]}"; do wait "$p" 2>/dev/null; done
	READERS=()
	[ -n "${BM:-}" ] && bench_umount
	kill_steps
	bench_cleanup
}
bench_tmp
trap cleanup EXIT
trap 'exit 130' INT TERM

BS=$BT/state
bench_mount || exit 1
BS_ABS=$(realpath "$BS")

metric() { awk -v k="$1" 'index($0, k) == 1 { print $NF; f = 1 } END { if (!f) print 0 }' "$BM/metrics"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$BPID/stat"; }
# per thread: "TID COMM TICKS" (the engine loop and the FUSE workers apart)
thread_ticks() {
	local t
	for t in /proc/"$BPID"/task/*; do
		awk -v tid="${t##*/}" '{ c = $0; sub(/^[^(]*\(/, "", c); sub(/\).*/, "", c);
			s = $0; sub(/^.*\) /, "", s); split(s, f, " ");
			print tid, c, f[12] + f[13] }' "$t/stat" 2>/dev/null
	done
}

for ((k = 1; k <= NSB; k++)); do
	for ((r = 1; r <= PER; r++)); do
		printf '{"sandbox":{"id":"idle%d","isolation":"none"},"steps":[{"id":"block","command":"sleep","args":["100000"]}]}' \
			"$k" >"$BM/plans/i$k.json" || { echo "idle: submitting i$k failed" >&2; exit 1; }
	done
done
ok=0
for _ in $(seq 1200); do
	if [ "$(metric orchfs_running_steps)" = "$NSB" ] &&
		[ "$(metric 'orchfs_runs{state="pending"}')" = $((NSB * (PER - 1))) ]; then
		ok=1
		break
	fi
	sleep 0.05
done
[ $ok = 1 ] || {
	echo "idle: $(metric orchfs_running_steps) steps running, $(metric 'orchfs_runs{state="pending"}') runs pending; wanted $NSB and $((NSB * (PER - 1)))" >&2
	exit 1
}
for ((i = 0; i < NREADERS; i++)); do
	tail -f "$BM/events" >/dev/null 2>&1 &
	READERS+=($!)
done
sleep 2
for p in "${READERS[@]}"; do
	kill -0 "$p" 2>/dev/null || { echo "idle: a tail -f reader ended" >&2; exit 1; }
done
note "$NSB sandboxes, $((NSB * PER)) runs ($NSB steps asleep, $((NSB * (PER - 1))) runs pending), $NREADERS tail -f readers on events ($(stat -c %s "$BM/events") bytes)"

vals=()
for ((w = 0; w < NWIN; w++)); do
	thread_ticks >"$BT/threads0"
	c0=$(cpu_ticks)
	sleep "$SECS"
	c1=$(cpu_ticks)
	thread_ticks >"$BT/threads1"
	v=$(awk -v d=$((c1 - c0)) -v h="$HZ" 'BEGIN { printf "%.2f", d / h }')
	vals+=("$v")
	# the threads that took CPU in the window
	busy=$(awk -v h="$HZ" 'NR == FNR { t[$1] = $3; next }
		{ d = $3 - ($1 in t ? t[$1] : 0); if (d > 0) printf "%s%s(%s) %.2f s", n++ ? ", " : "", $2, $1, d / h }' \
		"$BT/threads0" "$BT/threads1")
	note "window $((w + 1)): daemon CPU $v s in $SECS s (limit $LIMIT s)${busy:+; by thread: $busy}"
	[ "$(metric orchfs_running_steps)" = "$NSB" ] || { echo "idle: the steps stopped sleeping" >&2; exit 1; }
done

bench_result idle "daemon CPU over $SECS s: $NSB sandboxes x $PER runs, $NREADERS tail -f" s "${vals[*]}" limit "$LIMIT" "<= 1.0"
