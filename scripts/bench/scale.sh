#!/usr/bin/env bash
# scale — issue 6: orchfs on a state directory filled, through the tree, with
# 1,000 sandboxes and 100,000 finished runs of 10 steps each, against the same
# measures on an empty state directory: time to a ready mount, `ls runs/`,
# a read loop on a run's status, the daemon's RSS, the state's size on disk.
#
# The filled state takes a while to make (every run really runs: 1,000,000
# step processes), so it is kept in $SCALE_STATE (default
# /tmp/orchfs-bench-scale-state, /tmp/orchfs-bench-scale-state-quick with
# QUICK=1) and reused while its stamp matches the sizes; SCALE_REBUILD=1
# fills it again. SCALE_SANDBOXES / SCALE_RUNS override the sizes.
#
# The sandboxes are made by the first plan naming each one, with
# "isolation": "none": a sandbox made with `mkdir` takes the default
# isolation (bwrap where it works), and a plan asking "none" of a bwrap
# sandbox is invalid; bwrap would make the fill many times longer.
# The "empty" state holds one sandbox and one finished run of the same plan
# (the read loop needs a run to read).
#
# command: fill STATE through the tree: 4 submitters write plans/pNNNN.json (10 `true` steps, "sandbox": {"id": "sbNNNN", "isolation": "none"}), one run per sandbox per wave, a wave while fewer than 2 × 1,000 runs are unfinished, until 1,000 sandboxes hold 100 finished runs each (filled once, kept in /tmp/orchfs-bench-scale-state); then, alternating the filled state and an empty one (1 run), each time on a fresh daemon: `orchfs --state STATE MNT` (daemon mode, returns when the mount answers; warm page cache, one unmeasured mount first), `ls MNT/runs`, 10,000 × open+read+close of `runs/ID/status` (a C loop), the daemon's VmRSS after these, and `du -sk STATE`
set -u
export LC_ALL=C
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ "$QUICK" = 1 ]; then
	NSB=${SCALE_SANDBOXES:-20} NRUNS=${SCALE_RUNS:-200} NREAD=2000
	STATE=${SCALE_STATE:-/tmp/orchfs-bench-scale-state-quick}
else
	NSB=${SCALE_SANDBOXES:-1000} NRUNS=${SCALE_RUNS:-100000} NREAD=10000
	STATE=${SCALE_STATE:-/tmp/orchfs-bench-scale-state}
fi
NSTEPS=10 NSUB=4
[ $((NRUNS % NSB)) = 0 ] || { echo "scale: runs ($NRUNS) must be a multiple of sandboxes ($NSB)" >&2; exit 2; }
PER=$((NRUNS / NSB))
STAMP="sandboxes=$NSB runs=$NRUNS steps=$NSTEPS"

note() { echo "  $*" >&2; }
now_us() { echo "${EPOCHREALTIME/./}"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f\n", (b - a) / 1e6 }'; }

# ---- daemons and cleanup -------------------------------------------------
# Every daemon this script starts is recorded here (mountpoint and PID) and
# stopped at exit, as are the submitters of the fill.
DMNT=() DPID=() SUBS=()
cleanup() {
	local p i
	for p in "${SUBS[@]}"; do kill "$p" 2>/dev/null; done
	for i in "${!DMNT[@]}"; do
		[ -n "${DMNT[$i]}" ] || continue
		fusermount3 -u "${DMNT[$i]}" 2>/dev/null || fusermount3 -uz "${DMNT[$i]}" 2>/dev/null
		for _ in $(seq 200); do alive "${DPID[$i]}" || break; sleep 0.05; done
		alive "${DPID[$i]}" && kill -9 "${DPID[$i]}" 2>/dev/null
	done
	bench_cleanup
}
bench_tmp
trap cleanup EXIT
trap 'exit 130' INT TERM

# dmount STATE MNT: start orchfs in daemon mode (it returns once the mount
# answers); sets D_READY (seconds) and D_PID
dmount() {
	local st=$1 m=$2 t0 t1
	mkdir -p "$m"
	t0=$(now_us)
	"$ORCHFS" --state "$st" "$m" 2>>"$BT/daemon.log" || {
		echo "scale: orchfs did not mount $st: $(tail -3 "$BT/daemon.log")" >&2
		return 1
	}
	t1=$(now_us)
	D_READY=$(secs "$t0" "$t1")
	D_PID=$(head -n 1 "$st/lock")	# the pid; a second line names the FUSE connection
	DMNT+=("$m") DPID+=("$D_PID")
	[ -d "$m/plans" ] || { echo "scale: $m answers but has no plans/" >&2; return 1; }
}

# dumount: stop the newest daemon and wait until it is gone (its lock free)
dumount() {
	local i=$((${#DMNT[@]} - 1))
	local m=${DMNT[$i]} p=${DPID[$i]}
	fusermount3 -u "$m" 2>/dev/null || { sleep 0.5; fusermount3 -u "$m" 2>/dev/null; } ||
		fusermount3 -uz "$m" 2>/dev/null
	for _ in $(seq 6000); do alive "$p" || break; sleep 0.01; done
	if alive "$p"; then
		echo "scale: orchfs $p did not stop within 60 s: killed" >&2
		kill -9 "$p" 2>/dev/null
		sleep 0.2
	fi
	unset 'DMNT[i]' 'DPID[i]'
	DMNT=("${DMNT[@]}") DPID=("${DPID[@]}")
}

# alive PID: running and not a zombie (a daemonized orchfs is nobody's child
# here: it stays a zombie until init reaps it)
alive() { [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //; s/ .*//' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

metric() { awk -v k="$1" 'index($0, k) == 1 { print $NF; f = 1 } END { if (!f) print 0 }' "$2/metrics"; }
unfinished() {
	awk '/^orchfs_runs\{state="(pending|running|paused)"\}/ { n += $NF } END { print n + 0 }' "$1/metrics"
}

STEPS_JSON=$(for i in $(seq $NSTEPS); do
	[ "$i" = 1 ] || printf ,
	printf '{"id":"s%d","command":"true"}' "$i"
done)
# plan K: plan name pK, sandbox sbK (made by the first plan naming it)
plan_text() { printf '{"sandbox":{"id":"sb%04d","isolation":"none"},"steps":[%s]}' "$1" "$STEPS_JSON"; }

# submitter P M: the sandboxes P, P+NSUB, ...: one run in each per wave, the
# next wave once fewer than 2 × NSB runs are unfinished (bash builtins only:
# each submission is an open, one write and the close that submits)
submitter() {
	local p=$1 m=$2 w k
	for ((w = 1; w <= PER; w++)); do
		for ((k = p; k <= NSB; k += NSUB)); do
			plan_text "$k" >"$m/plans/p$(printf %04d "$k").json" || return 1
		done
		while [ "$(unfinished "$m")" -ge $((2 * NSB)) ]; do sleep 0.1; done
	done
}

# fill STATE: NSB sandboxes, NRUNS finished runs, through the tree
fill() {
	local st=$1 m=$BT/mnt-fill p t0 t1 last=0 done_=0 c0 c1
	rm -rf "$st"
	mkdir -p "$st"
	local free_kb; free_kb=$(df -Pk "$st" | awk 'NR == 2 { print $4 }')
	# about 60 KB per run (a log directory, 10 logs of 4 KB blocks, the db)
	if [ "$free_kb" -lt $((NRUNS * 80)) ]; then
		echo "scale: $((free_kb / 1024)) MB free under $st: the fill needs about $((NRUNS * 80 / 1024)) MB" >&2
		return 1
	fi
	note "filling $st: $NSB sandboxes, $NRUNS runs of $NSTEPS steps (through the tree; this takes a while)"
	dmount "$st" "$m" || return 1
	c0=$(awk '{ print $14 + $15 }' "/proc/$D_PID/stat")
	t0=$(now_us)
	for ((p = 1; p <= NSUB; p++)); do
		submitter "$p" "$m" &
		SUBS+=($!)
	done
	while :; do
		sleep $([ "$QUICK" = 1 ] && echo 0.2 || echo 2)
		done_=$(metric 'orchfs_runs{state="succeeded"}' "$m")
		local created; created=$(metric orchfs_runs_created_total "$m")
		if [ "$created" -ge "$NRUNS" ] && [ "$(unfinished "$m")" = 0 ]; then break; fi
		local bad; bad=$(($(metric 'orchfs_runs{state="failed"}' "$m") + $(metric 'orchfs_runs{state="cancelled"}' "$m")))
		[ "$bad" = 0 ] || { echo "scale: $bad runs failed or were cancelled during the fill" >&2; return 1; }
		local up=0
		for p in "${SUBS[@]}"; do kill -0 "$p" 2>/dev/null && up=1; done
		if [ $up = 0 ] && [ "$created" -lt "$NRUNS" ]; then
			echo "scale: the submitters stopped after $created runs" >&2
			return 1
		fi
		t1=$(now_us)
		if [ $((t1 - last)) -ge 60000000 ]; then
			last=$t1
			[ "$QUICK" = 1 ] || note "fill: $done_ / $NRUNS runs after $(( (t1 - t0) / 1000000 )) s ($(awk -v n="$done_" -v t=$((t1 - t0)) 'BEGIN { printf "%.0f", n / (t / 1e6) }') runs/s)"
		fi
	done
	t1=$(now_us)
	for p in "${SUBS[@]}"; do wait "$p" 2>/dev/null; done
	SUBS=()
	c1=$(awk '{ print $14 + $15 }' "/proc/$D_PID/stat")
	FILL_S=$(secs "$t0" "$t1")
	local rss; rss=$(awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$D_PID/status")
	done_=$(metric 'orchfs_runs{state="succeeded"}' "$m")
	if [ "$done_" != "$NRUNS" ] || [ "$(metric orchfs_sandboxes "$m")" != "$NSB" ]; then
		echo "scale: the fill ended with $done_ succeeded runs and $(metric orchfs_sandboxes "$m") sandboxes" >&2
		return 1
	fi
	dumount
	note "filled in $FILL_S s ($(awk -v n="$NRUNS" -v t="$FILL_S" 'BEGIN { printf "%.0f runs/s, %.0f steps/s", n / t, n * 10 / t }')); daemon CPU $(awk -v c=$((c1 - c0)) -v h="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", c / h }') s, its RSS at the end $rss MB"
	printf '%s\nfill_seconds=%s\ndate=%s\ncommit=%s\n' "$STAMP" "$FILL_S" "$(date -u +%FT%TZ)" \
		"$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)" >"$st/.bench-scale"
}

# reusable STATE: the stamp matches and the store agrees
reusable() {
	local st=$1
	[ -f "$st/.bench-scale" ] && [ -f "$st/orchfs.db" ] || return 1
	[ "$(head -1 "$st/.bench-scale")" = "$STAMP" ] || return 1
	if command -v sqlite3 >/dev/null; then
		local n
		n=$(sqlite3 -readonly "$st/orchfs.db" \
			"SELECT (SELECT count(*) FROM runs WHERE state = 'succeeded') || ' ' || (SELECT count(*) FROM sandboxes)" 2>/dev/null) || return 1
		[ "$n" = "$NRUNS $NSB" ] || return 1
	fi
}

# ---- the read loop, built for the run ------------------------------------
cat >"$BT/readloop.c" <<'EOF'
/* readloop PATH N: N × open+read+close of PATH; prints the seconds taken */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	long n = atol(argv[2]);
	static char buf[65536];
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++) {
		int fd = open(argv[1], O_RDONLY);
		if (fd < 0) { perror(argv[1]); return 1; }
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r <= 0) { fprintf(stderr, "%s: read %zd\n", argv[1], r); return 1; }
		close(fd);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.6f\n", (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9);
	return 0;
}
EOF
${CC:-cc} -O2 -o "$BT/readloop" "$BT/readloop.c" || exit 1

# ---- the filled state and the empty one ----------------------------------
if [ "${SCALE_REBUILD:-0}" != 1 ] && reusable "$STATE"; then
	note "reusing $STATE ($STAMP; $(sed -n 's/^fill_seconds=//p' "$STATE/.bench-scale") s to fill on $(sed -n 's/^date=//p' "$STATE/.bench-scale"); SCALE_REBUILD=1 fills it again)"
else
	fill "$STATE" || exit 1
fi

EMPTY=$BT/empty
mkdir -p "$EMPTY"
dmount "$EMPTY" "$BT/mnt-e0" || exit 1
plan_text 1 >"$BT/mnt-e0/plans/p0001.json" || exit 1
for _ in $(seq 600); do
	[ "$(metric 'orchfs_runs{state="succeeded"}' "$BT/mnt-e0")" = 1 ] && break
	sleep 0.05
done
[ "$(metric 'orchfs_runs{state="succeeded"}' "$BT/mnt-e0")" = 1 ] || { echo "scale: the empty state's run did not finish" >&2; exit 1; }
dumount

FILLED_ID=p$(printf %04d $(((NSB + 1) / 2)))-$(((PER + 1) / 2))
EMPTY_ID=p0001-1

# measure STATE MNT RUN_ID: one fresh daemon; sets M_READY M_LS M_NLS M_READ M_RSS
measure() {
	local st=$1 m=$2 id=$3 t0 t1
	dmount "$st" "$m" || return 1
	M_READY=$D_READY
	t0=$(now_us)
	ls "$m/runs" >"$BT/ls.out" || return 1
	t1=$(now_us)
	M_LS=$(secs "$t0" "$t1")
	M_NLS=$(wc -l <"$BT/ls.out")
	M_READ=$("$BT/readloop" "$m/runs/$id/status" "$NREAD") || return 1
	M_RSS=$(awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$D_PID/status")
	M_HWM=$(awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$D_PID/status")
	t0=$(now_us)
	dumount
	t1=$(now_us)
	M_STOP=$(secs "$t0" "$t1")
}

# one unmeasured mount of each first: a new orchfs may have one-off work on
# an older state (a migration, an index), and the page cache warms up
measure "$STATE" "$BT/mnt-f" "$FILLED_ID" || exit 1
note "first mount of the filled state: ready in $M_READY s (later ones below), ls runs/ $M_LS s ($M_NLS entries)"
[ "$M_NLS" = "$NRUNS" ] || { echo "scale: ls runs/ listed $M_NLS runs, not $NRUNS" >&2; exit 1; }
measure "$EMPTY" "$BT/mnt-e" "$EMPTY_ID" || exit 1

fr=() fl=() fd=() fm=() er=() el=() ed=() em=() fs=() es=()
for ((i = 0; i < RUNS; i++)); do
	measure "$STATE" "$BT/mnt-f" "$FILLED_ID" || exit 1
	fr+=("$M_READY") fl+=("$M_LS") fd+=("$M_READ") fm+=("$M_RSS") fs+=("$M_STOP")
	note "filled: ready $M_READY s, ls runs/ $M_LS s, $NREAD reads $M_READ s, RSS $M_RSS MB (peak $M_HWM), stop $M_STOP s"
	measure "$EMPTY" "$BT/mnt-e" "$EMPTY_ID" || exit 1
	er+=("$M_READY") el+=("$M_LS") ed+=("$M_READ") em+=("$M_RSS") es+=("$M_STOP")
	note "empty:  ready $M_READY s, ls runs/ $M_LS s, $NREAD reads $M_READ s, RSS $M_RSS MB (peak $M_HWM), stop $M_STOP s"
done

du_f=$(du -sk "$STATE" | cut -f1) du_e=$(du -sk "$EMPTY" | cut -f1)
# shellcheck disable=SC2046
set -- $(stats "${fr[@]}") && note "mount ready: filled $1 s [$2–$3] (target <= 2 s), empty $(stats "${er[@]}" | cut -d' ' -f1) s"
set -- $(stats "${fl[@]}") && note "ls runs/ ($NRUNS entries): filled $1 s [$2–$3] (target <= 0.5 s), empty $(stats "${el[@]}" | cut -d' ' -f1) s"
set -- $(stats "${fd[@]}") && note "read loop: filled $(awk -v s="$1" -v n="$NREAD" 'BEGIN { printf "%.1f", s / n * 1e6 }') µs per open+read+close, empty $(stats "${ed[@]}" | awk -v n="$NREAD" '{ printf "%.1f", $1 / n * 1e6 }') µs"
set -- $(stats "${fm[@]}") && note "daemon RSS after the measures: filled $1 MB (target <= 200 MB), empty $(stats "${em[@]}" | cut -d' ' -f1) MB"
note "stop (fusermount3 -u until the daemon is gone): filled $(stats "${fs[@]}" | cut -d' ' -f1) s, empty $(stats "${es[@]}" | cut -d' ' -f1) s"
note "state on disk: filled $((du_f / 1024)) MB (orchfs.db* $(du -ck "$STATE"/orchfs.db* | tail -1 | awk '{ printf "%.0f", $1 / 1024 }') MB, logs/ $(du -sk "$STATE/logs" | awk '{ printf "%.0f", $1 / 1024 }') MB), empty $du_e KB"

bench_result scale "mount ready, $NRUNS runs" s "${fr[*]}" limit 2 "<= 1.0"
bench_result scale "mount ready, filled vs empty" s "${fr[*]}" "empty state" "${er[*]}" info
bench_result scale "ls runs/, $NRUNS runs" s "${fl[*]}" limit 0.5 "<= 1.0"
bench_result scale "ls runs/, filled vs empty" s "${fl[*]}" "empty state" "${el[*]}" info
bench_result scale "read runs/ID/status x$NREAD, filled vs empty" s "${fd[*]}" "empty state" "${ed[*]}" "<= 1.2"
bench_result scale "daemon RSS, $NRUNS runs" MB "${fm[*]}" limit 200 "<= 1.0"
bench_result scale "state on disk, filled vs empty" MB "$(awk -v k="$du_f" 'BEGIN { printf "%.1f", k / 1024 }')" "empty state" "$(awk -v k="$du_e" 'BEGIN { printf "%.2f", k / 1024 }')" info
