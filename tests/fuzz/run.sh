#!/bin/bash
# tests/fuzz/run.sh — replay the fuzz corpora, or fuzz for a while.
#
#   tests/fuzz/run.sh replay [NAME...]
#       Run each harness once over every input of tests/fuzz/corpus/NAME/
#       (libFuzzer -runs=0). Exit 1 when any input fails a check or
#       crashes, after listing every such input. Known bugs are not excused
#       (their inputs are regression tests) unless FUZZ_ALLOW_KNOWN=1.
#       Exit 77 (skip) when clang cannot link libFuzzer (Debian:
#       libclang-rt-14-dev), except with CI=true, where that fails.
#   tests/fuzz/run.sh fuzz SECONDS [NAME]
#       Fuzz each harness (or NAME) in turn for SECONDS of wall time on one
#       core, then merge the new inputs that add coverage into its corpus.
#       Prints per harness the executions (libFuzzer's final stats), the CPU
#       seconds and any crash. Tags in tests/fuzz/known-bugs are excused
#       while fuzzing, so one bug does not hide the next.
#   tests/fuzz/run.sh cmin NAME...
#       Shrink a corpus to the inputs that add coverage, keeping seed-* and
#       regress-* files as they are.
#
# NAME is one of: plan msgline eventline ctl cron. Scratch files go to build/fuzz/.
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
ALL="plan msgline eventline ctl cron"
OUT=$ROOT/build/fuzz

die() { echo "run.sh: $*" >&2; exit 2; }

max_len() {
	case $1 in
	plan) echo 65536 ;;
	msgline|eventline) echo 131072 ;;
	ctl) echo 4096 ;;
	cron) echo 512 ;;
	*) die "unknown harness \"$1\" (one of: $ALL)" ;;
	esac
}

# "N inputs, B bytes" of a corpus directory
corpus_size() {
	echo "$(find "$1" -maxdepth 1 -type f | wc -l) inputs, $(find "$1" -maxdepth 1 -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }') bytes"
}

# the tags of tests/fuzz/known-bugs, comma-separated
known_tags() {
	[ -f tests/fuzz/known-bugs ] || return 0
	sed -e 's/#.*//' tests/fuzz/known-bugs | awk 'NF { print $1 }' | paste -sd, -
}

dict_opt() {
	local d=tests/fuzz/$1.dict
	case $1 in msgline|eventline) d=tests/fuzz/lines.dict ;; esac
	[ -f "$ROOT/$d" ] && echo "-dict=$ROOT/$d"
}

# Can ${CC_FUZZ:-clang} link a libFuzzer harness?
have_libfuzzer() {
	local t
	t=$(mktemp -d) || return 1
	echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }' >"$t/t.c"
	"${CC_FUZZ:-clang}" -fsanitize=fuzzer "$t/t.c" -o "$t/t" >/dev/null 2>&1
	local rc=$?
	rm -rf "$t"
	return $rc
}

replay() {
	local names=${*:-$ALL} failed=0 name bin corpus log f
	for name in $names; do max_len "$name" >/dev/null; done
	if ! have_libfuzzer; then
		echo "fuzz replay: ${CC_FUZZ:-clang} cannot link libFuzzer (Debian: libclang-rt-14-dev)" >&2
		[ "${CI:-}" = true ] && { echo "fuzz replay: CI=true: that is a failure" >&2; exit 1; }
		exit 77
	fi
	tests/fuzz/build.sh $names || exit 2
	if [ "${FUZZ_ALLOW_KNOWN:-0}" = 1 ]; then
		export ORCHFS_FUZZ_IGNORE=$(known_tags)
	else
		unset ORCHFS_FUZZ_IGNORE
	fi
	for name in $names; do
		bin=$OUT/fuzz_$name
		corpus=tests/fuzz/corpus/$name
		log=$OUT/replay-$name.log
		mkdir -p "$OUT/artifacts/replay-$name"
		if "$bin" -runs=0 -artifact_prefix="$OUT/artifacts/replay-$name/" "$corpus" >"$log" 2>&1; then
			echo "fuzz replay $name: $(ls "$corpus" | wc -l) inputs ok"
			continue
		fi
		failed=1
		echo "fuzz replay $name: FAILED (log: ${log#"$ROOT"/})"
		# libFuzzer stops at the first failure: name them all
		for f in "$corpus"/*; do
			if ! "$bin" -artifact_prefix="$OUT/artifacts/replay-$name/" "$f" \
				>"$log.one" 2>&1; then
				echo "  $f: $(grep -m1 -E 'fuzz check|ERROR:|runtime error' "$log.one")"
			fi
		done
		rm -f "$log.one"
	done
	return $failed
}

fuzz() {
	local secs=$1 names=${2:-$ALL} name bin corpus new art logd len t0 execs cpu n0 n1 crashes
	[[ $secs =~ ^[0-9]+$ ]] || die "SECONDS must be a number"
	for name in $names; do max_len "$name" >/dev/null; done
	tests/fuzz/build.sh $names || exit 2
	export ORCHFS_FUZZ_IGNORE=$(known_tags)
	for name in $names; do
		bin=$OUT/fuzz_$name
		corpus=$ROOT/tests/fuzz/corpus/$name
		new=$OUT/new/$name
		art=$OUT/artifacts/$name
		logd=$OUT/log/$name
		len=$(max_len "$name")
		rm -rf "$new" "$logd"
		mkdir -p "$new" "$art" "$logd"
		touch "$logd/start"
		# -jobs=1: one fuzzing process, its output in $logd/fuzz-0.log.
		# New inputs go to $new (the first corpus directory).
		t0=$(date +%s)
		(
			cd "$logd" || exit 2
			TIMEFORMAT='%U %S'
			{ time "$bin" -jobs=1 -max_total_time="$secs" -max_len="$len" -timeout=10 \
				-print_final_stats=1 -artifact_prefix="$art/" $(dict_opt "$name") \
				"$new" "$corpus" >"$logd/fuzzer.out" 2>&1; } 2>"$logd/cpu"
		)
		execs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$logd/fuzz-0.log" | tail -1)
		[ -n "$execs" ] || execs=$(grep -oE '^#[0-9]+' "$logd/fuzz-0.log" | tail -1 | tr -d '#')
		cpu=$(awk '{ printf "%.1f", $1 + $2 }' "$logd/cpu")
		n0=$(ls "$corpus" | wc -l)
		"$bin" -merge=1 -max_len="$len" -artifact_prefix="$art/" "$corpus" "$new" \
			>"$logd/merge.log" 2>&1 || echo "run.sh: merge of $name failed, see $logd/merge.log" >&2
		n1=$(ls "$corpus" | wc -l)
		crashes=$(find "$art" -newer "$logd/start" -type f | sort)
		printf 'fuzz %s: %s executions in %ss wall, %s CPU seconds; corpus +%d: %s\n' \
			"$name" "${execs:-?}" "$(($(date +%s) - t0))" "$cpu" "$((n1 - n0))" \
			"$(corpus_size "$corpus")"
		if [ "$n1" -gt 300 ] || [ "$(cat "$corpus"/* | wc -c)" -gt 2097152 ]; then
			echo "  corpus over 300 inputs or 2 MB: run tests/fuzz/run.sh cmin $name"
		fi
		if [ -n "$crashes" ]; then
			echo "  CRASHES (log: ${logd#"$ROOT"/}/fuzz-0.log):"
			grep -m3 -E 'fuzz check|ERROR:|runtime error' "$logd/fuzz-0.log" | sed 's/^/    /'
			echo "$crashes" | sed 's/^/    /'
		fi
	done
}

cmin() {
	local name bin corpus tmp how
	[ $# -gt 0 ] || die "cmin needs a NAME"
	for name in "$@"; do max_len "$name" >/dev/null; done
	tests/fuzz/build.sh "$@" || exit 2
	export ORCHFS_FUZZ_IGNORE=$(known_tags)
	for name in "$@"; do
		bin=$OUT/fuzz_$name
		corpus=tests/fuzz/corpus/$name
		tmp=$OUT/cmin/$name
		rm -rf "$tmp" "$tmp.rest"
		mkdir -p "$tmp.rest"
		find "$corpus" -maxdepth 1 -type f ! -name 'seed-*' ! -name 'regress-*' -exec mv {} "$tmp.rest" \;
		# Keep what adds a feature to the seed-* and regress-* files (merged
		# first). Features count hit counts per edge, which keeps many
		# inputs; past 300 inputs or 2 MB, count edges only.
		for how in "" -use_counters=0; do
			rm -rf "$tmp"
			mkdir -p "$tmp"
			find "$corpus" -maxdepth 1 -type f -exec cp {} "$tmp" \;
			if ! "$bin" -merge=1 $how -max_len="$(max_len "$name")" "$tmp" "$tmp.rest" \
				>"$tmp.log" 2>&1; then
				find "$tmp.rest" -type f -exec mv {} "$corpus" \;
				die "merge failed, corpus restored; see $tmp.log"
			fi
			[ "$(find "$tmp" -type f | wc -l)" -le 300 ] &&
				[ "$(cat "$tmp"/* | wc -c)" -le 2097152 ] && break
		done
		find "$tmp" -maxdepth 1 -type f ! -name 'seed-*' ! -name 'regress-*' -exec mv {} "$corpus" \;
		echo "cmin $name: $(corpus_size "$corpus")${how:+ (edges only)}"
	done
}

case ${1:-} in
replay) shift; replay "$@" ;;
fuzz) [ $# -ge 2 ] || die "usage: run.sh fuzz SECONDS [NAME]"; shift; fuzz "$@" ;;
cmin) shift; cmin "$@" ;;
*) die "usage: run.sh replay [NAME...] | run.sh fuzz SECONDS [NAME] | run.sh cmin NAME..." ;;
esac
