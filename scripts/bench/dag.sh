#!/usr/bin/env bash
# scripts/bench/dag.sh — running a DAG of `true` steps: orchfs against GNU
# make -j2 and ninja -j2 on the same DAG, side by side (issue 6, `dag`).
#
# Shapes: flat (N independent steps), chain (each step depends on the one
# before) and fanout (1 -> N-2 -> 1); full sizes 10,000 / 2,000 / 10,000
# steps, QUICK=1 200 / 100 / 200. Each measure runs orchfs, make and ninja in
# turn (the order reversed every other run), RUNS times (at least 3; 1 with
# QUICK=1). orchfs runs each plan on a daemon mounted for it (--jobs 2) on a
# fresh state directory in the scratch directory; its time is from just
# before the `cp` of the plan into plans/ to the moment a reader following
# runs/ID/events (polling its end every 10 ms) sees run.succeeded: the end
# is seen up to 10 ms late, counted against orchfs; polling every 2 ms, as
# until 04169e3, the reads took 8% of the daemon's time on a flat DAG and
# 7% more wall time (`tail -f` would poll every second). make and
# ninja are timed from their start to their exit. Then the same with
# "isolation": "bwrap" against make and ninja running each step as
# `bwrap --ro-bind / / --dev /dev --proc /proc --unshare-pid --die-with-parent true`
# (QUICK=1: flat only).
# For the record, with "none", scripts/bench/dagfloor.c runs beside them:
# the least a scheduler keeping orchfs's durability rules does (each step's
# start committed to SQLite before its spawn, its end and two events
# recorded), without FUSE, output capture or anything else.
#   DAG_SHAPES="flat chain fanout" and DAG_ISOLATION="none bwrap" pick a subset.
# command: orchfs --jobs 2: `cp PLAN MOUNT/plans/` of a plan of `true` steps ({"globals": {"max_concurrency": 2}, "sandbox": {"isolation": "none"|"bwrap"}}) until runs/ID/events (read every 10 ms) shows run.succeeded; anchors `make -j2` (recipes `@true`, phony targets, same dependencies) and `ninja -j2` (`command = true`, outputs never created); with bwrap, each recipe is `bwrap --ro-bind / / --dev /dev --proc /proc --unshare-pid --die-with-parent true`; shapes flat 10,000, chain 2,000, fanout 1 -> 9,998 -> 1; for the record ("none" only), dagfloor SHAPE N 2 SCRATCH/floor.db (scripts/bench/dagfloor.c: posix_spawn + waitpid, each turn one SQLite transaction, WAL, synchronous=NORMAL, committed before the spawns: starts, ends, step.started/step.succeeded events with orchfs's two view indexes; no FUSE, output to /dev/null)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_tmp
# lib.sh's cleanup is not written for set -e: run it without
trap 'set +e; bench_cleanup' EXIT
trap 'exit 130' INT TERM

for t in make ninja cc; do
	command -v "$t" >/dev/null || { echo "dag: $t is missing (scripts/install-deps.sh --bench)" >&2; exit 2; }
done
cc -O2 -o "$BT/dag_time" "$BENCH_DIR/dag_time.c"
DT=$BT/dag_time
cc -O2 -o "$BT/dagfloor" "$BENCH_DIR/dagfloor.c" -lsqlite3
DF=$BT/dagfloor

if [ "$QUICK" = 1 ]; then
	runs=1 n_flat=200 n_chain=100 n_fan=198
else
	runs=$RUNS n_flat=10000 n_chain=2000 n_fan=9998
	[ "$runs" -ge 3 ] || runs=3
fi
shapes=${DAG_SHAPES:-flat chain fanout}
isolations=${DAG_ISOLATION:-none bwrap}
BWRAP="bwrap --ro-bind / / --dev /dev --proc /proc --unshare-pid --die-with-parent true"

size_of() { case $1 in flat) echo "$n_flat" ;; chain) echo "$n_chain" ;; fanout) echo "$n_fan" ;; esac; }
total_of() { case $1 in fanout) echo $(($(size_of "$1") + 2)) ;; *) size_of "$1" ;; esac; }

# gen_plan SHAPE N ISOLATION: the plan on stdout
gen_plan() {
	awk -v shape="$1" -v n="$2" -v iso="$3" 'BEGIN {
		printf "{\"globals\": {\"max_concurrency\": 2}, \"sandbox\": {\"isolation\": \"%s\"}, \"steps\": [\n", iso
		if (shape == "fanout") {
			print "{\"id\": \"root\", \"command\": \"true\"},"
			for (i = 0; i < n; i++)
				printf "{\"id\": \"m%d\", \"command\": \"true\", \"depends_on\": [\"root\"]},\n", i
			printf "{\"id\": \"sink\", \"command\": \"true\", \"depends_on\": ["
			for (i = 0; i < n; i++)
				printf "%s\"m%d\"", i ? ", " : "", i
			print "]}"
		} else {
			for (i = 0; i < n; i++) {
				printf "{\"id\": \"s%d\", \"command\": \"true\"", i
				if (shape == "chain" && i)
					printf ", \"depends_on\": [\"s%d\"]", i - 1
				printf "}%s\n", i < n - 1 ? "," : ""
			}
		}
		print "]}"
	}'
}

# gen_make SHAPE N RECIPE: the Makefile on stdout (every target phony)
gen_make() {
	awk -v shape="$1" -v n="$2" -v recipe="$3" 'BEGIN {
		if (shape == "fanout") {
			printf ".PHONY: sink root"
			for (i = 0; i < n; i++) printf " m%d", i
			printf "\nsink:"
			for (i = 0; i < n; i++) printf " m%d", i
			printf "\n\t@%s\nroot:\n\t@%s\n", recipe, recipe
			for (i = 0; i < n; i++) printf "m%d: root\n\t@%s\n", i, recipe
		} else {
			printf ".PHONY: all"
			for (i = 0; i < n; i++) printf " s%d", i
			printf "\nall:"
			if (shape == "chain") printf " s%d", n - 1
			else for (i = 0; i < n; i++) printf " s%d", i
			printf "\n"
			for (i = 0; i < n; i++) {
				printf "s%d:", i
				if (shape == "chain" && i) printf " s%d", i - 1
				printf "\n\t@%s\n", recipe
			}
		}
	}'
}

# gen_ninja SHAPE N COMMAND: the build.ninja on stdout (outputs never exist)
gen_ninja() {
	awk -v shape="$1" -v n="$2" -v cmd="$3" 'BEGIN {
		printf "rule t\n  command = %s\n\n", cmd
		if (shape == "fanout") {
			print "build root: t"
			for (i = 0; i < n; i++) printf "build m%d: t root\n", i
			printf "build sink: t"
			for (i = 0; i < n; i++) printf " m%d", i
			print "\ndefault sink"
		} else {
			for (i = 0; i < n; i++) {
				printf "build s%d: t", i
				if (shape == "chain" && i) printf " s%d", i - 1
				printf "\n"
			}
			if (shape == "chain") printf "default s%d\n", n - 1
			else {
				printf "build all: phony"
				for (i = 0; i < n; i++) printf " s%d", i
				print "\ndefault all"
			}
		}
	}'
}

seq_no=0
# time_orchfs PLAN TOTAL: mount a fresh orchfs, submit PLAN, its time in T
# (not in a subshell: the EXIT trap must see $BM to unmount on a failure)
time_orchfs() {
	local plan=$1 total=$2 name st
	seq_no=$((seq_no + 1))
	name=dag$seq_no
	BS=$BT/state$seq_no
	bench_mount --jobs 2 || exit 1
	T=$("$DT" plan "$plan" "$BM/plans/$name.json" "$BM/runs/$name-1/events")
	st=$(cat "$BM/runs/$name-1/status")
	bench_umount || true
	rm -rf "$BS"
	BS=
	# every step ran and succeeded
	[ "$(jq -r '"\(.state) \(.progress.succeeded)"' <<<"$st")" = "succeeded $total" ] || {
		echo "dag: run $name did not succeed with $total steps: $st" >&2
		exit 1
	}
}

time_make() { T=$("$DT" cmd make -s -j2 -C "$1" -f Makefile); }
time_floor() { T=$("$DF" "$1" "$2" 2 "$BT/floor.db"); rm -f "$BT/floor.db" "$BT/floor.db-wal"; }
time_ninja() { rm -f "$1/.ninja_log" "$1/.ninja_deps"; T=$("$DT" cmd ninja -j2 -C "$1"); }

for iso in $isolations; do
	if [ "$iso" = bwrap ]; then
		command -v bwrap >/dev/null && bwrap --ro-bind / / --dev /dev --proc /proc true 2>/dev/null || {
			echo "dag: bubblewrap does not work here: no bwrap rows" >&2
			continue
		}
		recipe=$BWRAP
	else
		recipe=true
	fi
	for shape in $shapes; do
		[ "$QUICK" = 1 ] && [ "$iso" = bwrap ] && [ "$shape" != flat ] && continue
		n=$(size_of "$shape") total=$(total_of "$shape")
		d=$BT/$shape-$iso
		mkdir -p "$d"
		gen_plan "$shape" "$n" "$iso" >"$d/plan.json"
		gen_make "$shape" "$n" "$recipe" >"$d/Makefile"
		gen_ninja "$shape" "$n" "$recipe" >"$d/build.ninja"
		ov=() mv=() nv=() fv=()
		for r in $(seq "$runs"); do
			if [ $((r % 2)) = 1 ]; then order="orchfs make ninja floor"; else order="floor ninja make orchfs"; fi
			for side in $order; do
				case $side in
				orchfs) time_orchfs "$d/plan.json" "$total"; ov+=("$T") ;;
				make) time_make "$d"; mv+=("$T") ;;
				ninja) time_ninja "$d"; nv+=("$T") ;;
				floor) [ "$iso" = none ] || continue; time_floor "$shape" "$n"; fv+=("$T") ;;
				esac
				echo "  $shape $iso ($total steps) run $r: $side $T s"
			done
		done
		bench_result dag "$shape $total $iso" s "${ov[*]}" make "${mv[*]}" "<= 1.0"
		bench_result dag "$shape $total $iso" s "${ov[*]}" ninja "${nv[*]}" "<= 0.8"
		if [ "$iso" = none ]; then
			bench_result dag "$shape $total $iso vs a minimal recording scheduler (record)" s "${ov[*]}" \
				"dagfloor" "${fv[*]}" info
		fi
	done
done
