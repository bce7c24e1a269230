#!/usr/bin/env bash
# scripts/bench/read.sh — issue 6, `read`: open+read+close of a finished run's
# status and of a sandbox's status, by one reader and by two at once, against
# a minimal low-level libfuse3 filesystem (scripts/bench/minfs.c: one 200-byte
# file, direct_io, -s -f) mounted in the same run, and against the same loop
# on tmpfs for the record. The loop is scripts/bench/readloop.c (C: open, read
# until EOF, close), compiled into the scratch directory.
# command: readloop N P FILE (N = 100000 open+read-to-EOF+close per reader, P = 1 or 2 readers at once; QUICK: N = 2000) on MOUNT/runs/rd-1/status (a finished run), MOUNT/sandboxes/rd-1/status, minfs's /file (bench-built libfuse3 low-level fs, 200 bytes, direct_io, -s -f, 1 s entry/attr timeouts) and a tmpfs file of the same bytes as runs/rd-1/status; figure = wall time / (N*P) in us, median of RUNS alternating runs
set -u
[ -n "${RUNS+x}" ] || { [ "${QUICK:-0}" = 1 ] && RUNS=1; }
. "$(dirname "$0")/lib.sh"

die() { echo "read: $*" >&2; exit 1; }

MINPID= MINMNT= TMPMNT= LPID=
read_cleanup() {
	[ -n "$LPID" ] && kill -9 "$LPID" 2>/dev/null
	if [ -n "$MINMNT" ]; then
		fusermount3 -u "$MINMNT" 2>/dev/null || fusermount3 -uz "$MINMNT" 2>/dev/null
	fi
	if [ -n "$MINPID" ]; then
		for _ in $(seq 100); do kill -0 "$MINPID" 2>/dev/null || break; sleep 0.05; done
		kill -9 "$MINPID" 2>/dev/null
		wait "$MINPID" 2>/dev/null
	fi
	[ -n "$TMPMNT" ] && { umount "$TMPMNT" 2>/dev/null || umount -l "$TMPMNT" 2>/dev/null; }
	bench_cleanup
}

bench_tmp
trap read_cleanup EXIT
trap 'exit 130' INT TERM

if [ "$QUICK" = 1 ]; then N=2000; else N=100000; fi

# the helpers, built at run time into the scratch directory
cc -O2 -Wall -o "$BT/readloop" "$BENCH_DIR/readloop.c" || die "cannot build readloop"
# shellcheck disable=SC2046
cc -O2 -Wall -o "$BT/minfs" "$BENCH_DIR/minfs.c" $(pkg-config --cflags --libs fuse3) ||
	die "cannot build minfs"

echo "note: scratch $BT on $(df --output=source,fstype "$BT" | tail -1 | tr -s ' '); $(nproc) CPUs; $N ops per reader, $RUNS runs per side" >&2

# orchfs with a finished run (and its sandbox)
bench_mount || exit 1
printf '%s\n' '{"sandbox": {"isolation": "none"}, "steps": [{"id": "a", "command": "true"}]}' >"$BT/rd.json"
cp "$BT/rd.json" "$BM/plans/rd.json" || die "plan not accepted"
RS=$BM/runs/rd-1/status SS=$BM/sandboxes/rd-1/status
for _ in $(seq 400); do grep -q '"state": *"succeeded"' "$RS" 2>/dev/null && break; sleep 0.05; done
grep -q '"state": *"succeeded"' "$RS" || die "run rd-1 did not succeed: $(cat "$RS")"
[ -s "$SS" ] || die "no $SS"

# the anchor: minfs, mounted beside it
MINMNT=$BT/minmnt
mkdir -p "$MINMNT"
"$BT/minfs" -f -s "$MINMNT" 2>>"$BT/minfs.log" &
MINPID=$!
for _ in $(seq 200); do [ -f "$MINMNT/file" ] && break; sleep 0.05; done
[ -f "$MINMNT/file" ] || die "minfs did not mount: $(tail -3 "$BT/minfs.log")"
MF=$MINMNT/file

# tmpfs, for the record: a file with the bytes of the run's status
TMPMNT=$BT/tmpfs
mkdir -p "$TMPMNT"
if mount -t tmpfs -o size=1m tmpfs "$TMPMNT" 2>/dev/null; then :; else
	TMPMNT= TF=/dev/shm/orchfs-bench-read.$$
	rm -f "$TF"
	trap 'rm -f "$TF"; read_cleanup' EXIT
fi
[ -n "$TMPMNT" ] && TF=$TMPMNT/status
cat "$RS" >"$TF"

echo "note: file sizes: runs status $(wc -c <"$RS") B, sandbox status $(wc -c <"$SS") B, minfs 200 B, tmpfs $(wc -c <"$TF") B" >&2

# one measure: prints ns/op as us/op
# (in the background, so that a signal stops the benchmark at once)
measure() { # N P FILE
	"$BT/readloop" "$1" "$2" "$3" >"$BT/loop.out" &
	LPID=$!
	wait "$LPID" || die "readloop $* failed"
	LPID=
	awk '{printf "%.3f\n", $2 / 1000}' "$BT/loop.out"
}

# warm up each file (dentries, the daemon's caches)
for f in "$MF" "$RS" "$SS" "$TF"; do "$BT/readloop" 200 1 "$f" >/dev/null || die "warm-up of $f failed"; done

declare -A V
for p in 1 2; do
	for r in $(seq "$RUNS"); do
		for side in minfs runs sandbox tmpfs; do
			case $side in
			minfs) f=$MF ;; runs) f=$RS ;; sandbox) f=$SS ;; tmpfs) f=$TF ;;
			esac
			measure "$N" "$p" "$f" >"$BT/v" || exit 1
			V[$side.$p]+="$(cat "$BT/v") "
		done
	done
	echo "   $p reader(s), us/op: minfs ${V[minfs.$p]}| runs ${V[runs.$p]}| sandbox ${V[sandbox.$p]}| tmpfs ${V[tmpfs.$p]}"
done

# the daemon must still be there
mountpoint -q "$BM" && kill -0 "$BPID" 2>/dev/null || die "orchfs died"

for p in 1 2; do
	if [ "$p" = 1 ]; then who="1 reader"; else who="2 readers (wall/op)"; fi
	bench_result read "runs-status $who" us/op "${V[runs.$p]}" minfs "${V[minfs.$p]}" "<= 1.5"
	bench_result read "sandbox-status $who" us/op "${V[sandbox.$p]}" minfs "${V[minfs.$p]}" "<= 1.5"
done
# for the record: the same loop on tmpfs (no target: the kernel floor without FUSE)
bench_result read "runs-status 1 reader vs tmpfs (record)" us/op "${V[runs.1]}" tmpfs "${V[tmpfs.1]}" info
bench_result read "runs-status 2 readers vs tmpfs (record)" us/op "${V[runs.2]}" tmpfs "${V[tmpfs.2]}" info
