#!/usr/bin/env bash
# scripts/bench/append.sh — issue 6, `append`: durable appends to one
# sandbox's messages and events, one line per open+write+close (what
# `printf '%s\n' JSON >> messages` does), by 1 writer and by 8 at once,
# against Redis with an fsync'd append-only file (started and stopped here,
# by PID) and redis-benchmark's RPUSH, -c 1 and -c 8. The writer is
# scripts/bench/appendloop.c, compiled into the scratch directory.
# command: appendloop N P messages|events MOUNT/sandboxes/ab/{messages,events}; for the record, APPENDLOOP_FSYNC=1 appendloop N P messages SCRATCH/floor.jsonl (an fdatasync after each write, no FUSE), and appendloop N P messages MINFS/log (scripts/bench/minfs.c with MINFS_LOG=SCRATCH/minfs.log, -f -s: each write copied into a zero-filled file and fdatasync'ed before its reply; OPEN, WRITE, FLUSH round trips, name cached 1 s); (N = 20000 appends shared by P = 1 or 8 writers, each open(O_APPEND)+write(one JSON line)+close; QUICK: N = 500) vs redis-server --bind 127.0.0.1 --port FREE --dir SCRATCH --appendonly yes --appendfsync always --save '' and redis-benchmark -h 127.0.0.1 -p FREE -t rpush -n N -P 1 -c P --csv; acknowledged appends per second, median of RUNS alternating runs, orchfs state and Redis dir on the same file system
set -u
[ -n "${RUNS+x}" ] || { [ "${QUICK:-0}" = 1 ] && RUNS=1; }
. "$(dirname "$0")/lib.sh"

die() { echo "append: $*" >&2; exit 1; }

RPID= LPID= MINPID= MINMNT=
append_cleanup() {
	[ -n "$LPID" ] && kill -9 "$LPID" 2>/dev/null
	if [ -n "$MINMNT" ]; then
		fusermount3 -u "$MINMNT" 2>/dev/null || fusermount3 -uz "$MINMNT" 2>/dev/null
	fi
	[ -n "$MINPID" ] && { kill "$MINPID" 2>/dev/null; wait "$MINPID" 2>/dev/null; }
	if [ -n "$RPID" ]; then
		kill "$RPID" 2>/dev/null
		for _ in $(seq 100); do kill -0 "$RPID" 2>/dev/null || break; sleep 0.05; done
		kill -9 "$RPID" 2>/dev/null
		wait "$RPID" 2>/dev/null
	fi
	bench_cleanup
}

bench_tmp
trap append_cleanup EXIT
trap 'exit 130' INT TERM

if [ "$QUICK" = 1 ]; then N=500; else N=20000; fi
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null ||
	die "redis-server and redis-benchmark are needed: scripts/install-deps.sh --bench"

cc -O2 -Wall -o "$BT/appendloop" "$BENCH_DIR/appendloop.c" || die "cannot build appendloop"
cc -O2 -Wall -o "$BT/minfs" "$BENCH_DIR/minfs.c" $(pkg-config --cflags --libs fuse3) || die "cannot build minfs"

# the floor of a durable append through FUSE: minfs's /log, on the same file system
MINMNT=$BT/minmnt
mkdir -p "$MINMNT"
MINFS_LOG=$BT/minfs.log.data "$BT/minfs" -f -s "$MINMNT" 2>>"$BT/minfs.log" &
MINPID=$!
for _ in $(seq 200); do [ -f "$MINMNT/log" ] && break; sleep 0.05; done
[ -f "$MINMNT/log" ] || die "minfs did not mount: $(tail -3 "$BT/minfs.log")"

# Redis on a free port, its append-only file in the scratch directory
mkdir -p "$BT/redis"
free_port() {
	local p
	for _ in $(seq 50); do
		p=$(( 20000 + RANDOM % 40000 ))
		ss -Hltn "( sport = :$p )" 2>/dev/null | grep -q . || { echo "$p"; return 0; }
	done
	return 1
}
for _ in 1 2 3; do
	RPORT=$(free_port) || die "no free port"
	redis-server --bind 127.0.0.1 --port "$RPORT" --dir "$BT/redis" --appendonly yes \
		--appendfsync always --save '' --daemonize no --logfile "$BT/redis.log" &
	RPID=$!
	for _ in $(seq 100); do
		redis-cli -h 127.0.0.1 -p "$RPORT" ping 2>/dev/null | grep -q PONG && break
		kill -0 "$RPID" 2>/dev/null || break
		sleep 0.05
	done
	redis-cli -h 127.0.0.1 -p "$RPORT" ping 2>/dev/null | grep -q PONG && break
	kill "$RPID" 2>/dev/null; wait "$RPID" 2>/dev/null; RPID=
done
[ -n "$RPID" ] || die "redis-server did not start: $(tail -3 "$BT/redis.log" 2>/dev/null)"
[ "$(redis-cli -h 127.0.0.1 -p "$RPORT" config get appendfsync | tail -1)" = always ] ||
	die "redis is not in appendfsync always"

# orchfs, its state directory beside Redis's
bench_mount || exit 1
SB=$BM/sandboxes/ab
mkdir "$SB" || die "cannot create sandbox ab"

echo "note: orchfs state $BS and redis dir $BT/redis on $(df --output=source,fstype "$BT" | tail -1 | tr -s ' ') ($(df --output=target "$BT" | tail -1)); $(nproc) CPUs; $N appends per measure, $RUNS runs per side" >&2

# the writer's own cost: the same loop on a plain file of the scratch directory (no fsync)
: >"$BT/plain.jsonl"
wf=$("$BT/appendloop" "$N" 1 messages "$BT/plain.jsonl") || die "appendloop failed on a plain file"
wf=$(awk '{printf "%d", $2}' <<<"$wf")
echo "note: the writer alone (1 writer, plain file, no fsync): $wf appends/s" >&2

# each measure runs in the background, so that a signal stops the benchmark at once
run_bg() { "$@" >"$BT/loop.out" 2>"$BT/loop.err" & LPID=$!; wait "$LPID"; local rc=$?; LPID=; return $rc; }

redis_rps() { # CLIENTS -> $v
	run_bg redis-benchmark -h 127.0.0.1 -p "$RPORT" -t rpush -n "$N" -P 1 -c "$1" --csv ||
		die "redis-benchmark failed: $(cat "$BT/loop.err")"
	v=$(awk -F, '$1 == "\"RPUSH\"" {gsub(/"/, "", $2); printf "%.1f\n", $2; f = 1} END {exit !f}' "$BT/loop.out") ||
		die "cannot parse redis-benchmark output: $(cat "$BT/loop.out")"
}

orch_ops() { # P KIND -> $v
	run_bg "$BT/appendloop" "$N" "$1" "$2" "$SB/$2" || die "appendloop $N $1 $2 failed: $(cat "$BT/loop.err")"
	v=$(awk '{printf "%.1f\n", $2}' "$BT/loop.out")
}

# the disk's floor, for the record: the same loop on a plain file of the
# same file system with an fdatasync after each write (no FUSE, no database)
floor_ops() { # P -> $v
	: >"$BT/floor.jsonl"
	APPENDLOOP_FSYNC=1 run_bg "$BT/appendloop" "$N" "$1" messages "$BT/floor.jsonl" ||
		die "appendloop on a plain file failed: $(cat "$BT/loop.err")"
	v=$(awk '{printf "%.1f\n", $2}' "$BT/loop.out")
}

# the same loop through minfs's /log, by 1 and by 8 writers: one inode,
# whose O_APPEND writes the kernel runs one at a time
fuse_floor_ops() { # P -> $v
	run_bg "$BT/appendloop" "$N" "$1" messages "$MINMNT/log" ||
		die "appendloop on minfs failed: $(cat "$BT/loop.err")"
	v=$(awk '{printf "%.1f\n", $2}' "$BT/loop.out")
}

kreq() { awk -v op="$1" '$1 == "orchfs_fuse_requests_total{op=\"" op "\"}" {print $2}' "$BM/metrics"; }

declare -A O R F K
MF= MF8=
total_m=0 total_e=0
for r in $(seq "$RUNS"); do
	fl=
	for p in 1 8; do
		floor_ops "$p"
		F[$p]+="$v "
		fl+="${fl:+/}$v"
	done
	fuse_floor_ops 1
	MF+="$v "
	fl+=", minfs $v"
	fuse_floor_ops 8
	MF8+="$v "
	fl+="/$v"
	line="   run $r, appends/s (orchfs / redis), the disk's floor (1/8 writers) $fl:"
	for kind in messages events; do
		for p in 1 8; do
			redis_rps "$p"
			R[$kind.$p]+="$v "
			rv=$v
			for op in lookup open write flush; do K[$op.0]=$(kreq $op); done
			orch_ops "$p" "$kind"
			O[$kind.$p]+="$v "
			if [ "$r" = 1 ]; then
				per=
				for op in lookup open write flush; do
					per+=" $op $(awk -v a="${K[$op.0]}" -v b="$(kreq $op)" -v n="$N" 'BEGIN {printf "%.2f", (b - a) / n}')"
				done
				echo "note: the kernel's requests per append, $kind, $p writer(s):$per" >&2
			fi
			line+=" $kind $p: $v / $rv;"
			if [ "$kind" = messages ]; then total_m=$((total_m + N)); else total_e=$((total_e + N)); fi
		done
	done
	echo "$line"
done

# every acknowledged append is there, once
mountpoint -q "$BM" && kill -0 "$BPID" 2>/dev/null || die "orchfs died"
got_m=$(grep -c '"bench ' "$SB/messages")
got_e=$(grep -c '"type": *"bench"' "$SB/events")
[ "$got_m" = "$total_m" ] || die "messages: $got_m recorded, $total_m acknowledged"
[ "$got_e" = "$total_e" ] || die "events: $got_e recorded, $total_e acknowledged"
echo "note: checked: $got_m messages and $got_e events recorded, as acknowledged" >&2

for kind in messages events; do
	bench_result append "$kind 1 writer" ops/s "${O[$kind.1]}" "redis rpush -c 1" "${R[$kind.1]}" ">= 1.0"
	bench_result append "$kind 8 writers" ops/s "${O[$kind.8]}" "redis rpush -c 8" "${R[$kind.8]}" ">= 1.0"
done
for p in 1 8; do
	bench_result append "messages $p writer(s) vs the disk (record)" ops/s "${O[messages.$p]}" \
		"open+write+fdatasync+close of a plain file" "${F[$p]}" info
done
bench_result append "messages 1 writer vs a minimal FUSE durable append (record)" ops/s "${O[messages.1]}" \
	"minfs /log: OPEN+WRITE(fdatasync)+FLUSH" "$MF" info
bench_result append "redis rpush -c 1 vs a minimal FUSE durable append (record)" ops/s "${R[messages.1]}" \
	"minfs /log: OPEN+WRITE(fdatasync)+FLUSH" "$MF" info
bench_result append "messages 8 writers vs a minimal FUSE durable append, one inode (record)" ops/s \
	"${O[messages.8]}" "minfs /log, 8 writers" "$MF8" info
bench_result append "redis rpush -c 8 vs a minimal FUSE durable append, one inode (record)" ops/s \
	"${R[messages.8]}" "minfs /log, 8 writers" "$MF8" info
