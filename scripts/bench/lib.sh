# scripts/bench/lib.sh — shared by the benchmarks of scripts/bench/: a scratch
# orchfs mount, timing, medians, and the result rows `run` collects.
#
# A benchmark is scripts/bench/NAME.sh; it is run with $QUICK (1 for the
# --quick form `make test` checks, 0 for the full one) and $RUNS (runs of
# each side, alternating, at least 3), mounts its own orchfs with
# bench_mount, and prints one result row per measure with bench_result.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/../.." && pwd)
ORCHFS=${ORCHFS:-$ROOT/orchfs}
QUICK=${QUICK:-0}
RUNS=${RUNS:-3}

# bench_tmp: a scratch directory removed at exit ($BT)
bench_tmp() {
	BT=$(mktemp -d /tmp/orchfs-bench.XXXXXX)
	trap 'bench_cleanup' EXIT
}

bench_cleanup() {
	[ -n "${BM:-}" ] && bench_umount
	[ -n "${BT:-}" ] && rm -rf "$BT"
}

# bench_mount [ORCHFS ARGS...]: mount a fresh orchfs at $BM on state $BS
bench_mount() {
	BM=$BT/mnt BS=${BS:-$BT/state}
	mkdir -p "$BM"
	"$ORCHFS" -f --state "$BS" "$@" "$BM" >>"$BT/daemon.log" 2>&1 &
	BPID=$!
	for _ in $(seq 200); do [ -d "$BM/plans" ] && mountpoint -q "$BM" && return 0; sleep 0.05; done
	echo "bench: orchfs did not mount: $(tail -3 "$BT/daemon.log")" >&2
	return 1
}

bench_umount() {
	fusermount3 -u "$BM" 2>/dev/null || fusermount3 -uz "$BM" 2>/dev/null
	for _ in $(seq 200); do kill -0 "$BPID" 2>/dev/null || break; sleep 0.05; done
	kill -9 "$BPID" 2>/dev/null
	wait "$BPID" 2>/dev/null
	BM=
}

# now_ns: CLOCK_REALTIME in nanoseconds
now_ns() { date +%s%N; }

# stats V...: "median min max" of the values
stats() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {m = NR % 2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; printf "%g %g %g\n", m, v[1], v[NR]}'; }

# bench_result NAME CASE UNIT "ORCHFS_VALUES" ANCHOR "ANCHOR_VALUES" TARGET
#   UNIT is "s" (lower is better: ratio = orchfs / anchor) or "ops/s"
#   (higher is better: ratio = orchfs / anchor, target a minimum).
#   TARGET is like "<= 1.0" or ">= 1.0".
bench_result() {
	local name=$1 case=$2 unit=$3 ov=$4 anchor=$5 av=$6 target=$7
	# shellcheck disable=SC2086
	local o a; o=$(stats $ov) a=$(stats $av)
	echo "RESULT|$name|$case|$unit|$o|$anchor|$a|$target"
}
