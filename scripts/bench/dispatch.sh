#!/usr/bin/env bash
# scripts/bench/dispatch.sh — the latency from submitting a plan to its step's
# first instruction: orchfs against one posix_spawn + waitpid of the same
# program (issue 6, `dispatch`).
#
# The step is dispatch_stamp.c (built here, statically when the C library
# allows it): the first thing it does is read CLOCK_REALTIME, which it writes
# to a file. orchfs side (dispatch_driver submit): N one-step plans
# ({"sandbox": {"isolation": "none"}}, each run in a sandbox of its own, as
# plans without a sandbox do), each a new NAME.json written with open, write,
# close into plans/; latency = the stamp - the clock read as soon as close()
# returns. Submissions are one after another and wait for the previous run
# to have finished (the stamp is awaited with inotify, then the run's status
# polled every 1 ms), so each meets an otherwise idle daemon. Anchor
# (dispatch_driver spawn): the clock read just before posix_spawn of the same
# program, then waitpid, N times. N = 1,000 (QUICK=1: 50); RUNS runs of each
# side (at least 3; 1 with QUICK=1), alternating, orchfs on a fresh mount and
# state directory each time. Rows: the p50 and the p99 (nearest rank) of each
# run.
# command: N=1000 one-step plans, each `open/write/close` of MOUNT/plans/NAME.json (isolation "none") after the previous run finished; latency from close() returning to the step's first clock_gettime(CLOCK_REALTIME) (a static C program); anchor: clock_gettime, posix_spawn + waitpid of the same program, 1,000 times; per-run p50 and p99
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_tmp
# lib.sh's cleanup is not written for set -e: run it without
trap 'set +e; bench_cleanup' EXIT
trap 'exit 130' INT TERM

command -v cc >/dev/null || { echo "dispatch: cc is missing" >&2; exit 2; }
cc -O2 -static -o "$BT/stamp" "$BENCH_DIR/dispatch_stamp.c" 2>/dev/null ||
	cc -O2 -o "$BT/stamp" "$BENCH_DIR/dispatch_stamp.c"
cc -O2 -o "$BT/driver" "$BENCH_DIR/dispatch_driver.c"

if [ "$QUICK" = 1 ]; then
	runs=1 n=50
else
	runs=$RUNS n=${DISPATCH_N:-1000}
	[ "$runs" -ge 3 ] || runs=3
fi

# pct P FILE: the P-th percentile (nearest rank) of the ns values, in ms
pct() { sort -g "$2" | awk -v p="$1" '{v[NR]=$1} END {r = int(p / 100 * NR); if (r < p / 100 * NR) r++; if (r < 1) r = 1; printf "%.4f\n", v[r] / 1e6}'; }

o50=() o99=() a50=() a99=()
for r in $(seq "$runs"); do
	if [ $((r % 2)) = 1 ]; then order="orchfs spawn"; else order="spawn orchfs"; fi
	for side in $order; do
		d=$BT/stamps-$side-$r
		mkdir -p "$d"
		if [ "$side" = orchfs ]; then
			BS=$BT/state$r
			bench_mount || exit 1
			"$BT/driver" submit "$n" "$BT/stamp" "$BM" "$d" d >"$BT/lat-$side-$r"
			bench_umount || true
			rm -rf "$BS"
			BS=
		else
			"$BT/driver" spawn "$n" "$BT/stamp" "$d" >"$BT/lat-$side-$r"
		fi
		[ "$(wc -l <"$BT/lat-$side-$r")" = "$n" ] || { echo "dispatch: $side gave no $n latencies" >&2; exit 1; }
		p50=$(pct 50 "$BT/lat-$side-$r") p99=$(pct 99 "$BT/lat-$side-$r")
		if [ "$side" = orchfs ]; then o50+=("$p50") o99+=("$p99"); else a50+=("$p50") a99+=("$p99"); fi
		echo "  run $r: $side p50 $p50 ms, p99 $p99 ms, min $(pct 0 "$BT/lat-$side-$r") ms, max $(pct 100 "$BT/lat-$side-$r") ms ($n)"
	done
done
bench_result dispatch "p50 ($n plans)" ms "${o50[*]}" "posix_spawn" "${a50[*]}" "<= 2"
bench_result dispatch "p99 ($n plans)" ms "${o99[*]}" "posix_spawn" "${a99[*]}" "<= 5"
