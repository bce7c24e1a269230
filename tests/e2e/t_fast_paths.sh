#!/usr/bin/env bash
# What the performance work (issue 6) changed under the contract, checked
# from outside: step logs made lazily still read as SPEC 4 says, a sandbox
# deleted through its ctl leaves no name cached by the kernel, writers
# given different inodes of one messages file see one file, and a lone
# writer's appends cost no lookup while concurrent writers still spread.
. "$(dirname "$0")/lib.sh"
start_fs

# ---- lazy logs: separators for attempts that printed nothing
quiet=$(plan '{}' "$(step q 'n=$(cat n 2>/dev/null || echo 0); echo $((n + 1)) >n; [ "$n" -ge 2 ]' '{"retries": 2}')" \
  "$(step late 'n=$(cat m 2>/dev/null || echo 0); echo $((n + 1)) >m; [ "$n" -ge 1 ] && echo "spoke at $((n + 1))"; [ "$n" -ge 1 ]' '{"retries": 1}')" \
  "$(step silent true)")
must_submit quiet "$quiet"
expect_run quiet-1 succeeded 20
S=$M/runs/quiet-1/steps
[ "$(cat "$S/q/log")" = "$(printf '=== attempt %s ===\n' 1 2 3)" ] ||
  fail "a step silent over 3 attempts should log 3 separators: $(cat "$S/q/log")"
[ "$(cat "$S/late/log")" = "$(printf '=== attempt 1 ===\n=== attempt 2 ===\nspoke at 2')" ] ||
  fail "a step that spoke at its second attempt: $(cat "$S/late/log")"
[ "$(cat "$S/silent/log")" = "=== attempt 1 ===" ] || fail "a silent step: $(cat "$S/silent/log")"
# a step whose log is open (made) before its later attempts: each separator
# is there as its attempt starts, before it prints anything
follow=$(plan '{}' "$(step f 'n=$(cat k 2>/dev/null || echo 0); echo $((n + 1)) >k; sleep 0.4; [ "$n" -ge 2 ]' '{"retries": 2}')")
must_submit follow "$follow"
wait_for 20 is_step_state follow-1 f running || fail "step f never ran"
exec 6<"$M/runs/follow-1/steps/f/log"
wait_for 20 bash -c "grep -q '^=== attempt 2 ===' '$M/runs/follow-1/steps/f/log'" ||
  fail "attempt 2's separator did not appear as it started: $(cat "$M/runs/follow-1/steps/f/log")"
exec 6<&-
expect_run follow-1 succeeded 20
[ "$(cat "$M/runs/follow-1/steps/f/log")" = "$(printf '=== attempt %s ===\n' 1 2 3)" ] ||
  fail "follow-1's log: $(cat "$M/runs/follow-1/steps/f/log")"

# a reader looking at the log while attempts start (each recorded before its
# process is spawned, later still while durable appends keep the WAL's sync
# busy) makes no separator appear twice
mkdir "$M/sandboxes/flapbox" || fail "mkdir sandboxes/flapbox"
flap=$(plan '{"sandbox": {"id": "flapbox"}}' "$(step fl 'exit 1' '{"retries": 8, "retry_delay_sec": 0.05, "loop": {"same_failures": 0}}')")
( for i in $(seq 300); do echo "m$i" >>"$M/sandboxes/flapbox/messages" || exit 1; done ) &
writer=$!
( for _ in $(seq 600); do stat "$M/runs/flap-1/steps/fl/log" >/dev/null 2>&1; done ) &
looker=$!
must_submit flap "$flap"
expect_run flap-1 failed 30
wait "$looker"
wait "$writer" || fail "appends to flapbox failed"
[ "$(cat "$M/runs/flap-1/steps/fl/log")" = "$(printf '=== attempt %s ===\n' 1 2 3 4 5 6 7 8 9)" ] ||
  fail "separators of a step watched while it retried: $(cat "$M/runs/flap-1/steps/fl/log")"

# ---- a sandbox deleted through its ctl is gone from the kernel's cache too
mkdir "$M/sandboxes/gone" || fail "mkdir sandboxes/gone"
id1=$(jget "$M/sandboxes/gone/status" .id)
[ -n "$id1" ] || fail "no status for sandboxes/gone"
stat "$M/sandboxes/gone/ctl" >/dev/null || fail "stat sandboxes/gone/ctl"
echo delete >"$M/sandboxes/gone/ctl" || fail "ctl delete refused"
wait_for 20 bash -c "! stat '$M/sandboxes/gone'" || fail "sandboxes/gone still resolves after ctl delete"
[ ! -e "$M/sandboxes/gone/status" ] || fail "sandboxes/gone/status still resolves after ctl delete"
mkdir "$M/sandboxes/gone" || fail "mkdir sandboxes/gone again"
echo 'hello again' >>"$M/sandboxes/gone/messages" || fail "append to the new sandbox"
[ "$(jget "$M/sandboxes/gone/status" '.messages.queued')" = 1 ] ||
  fail "the new sandboxes/gone should hold one message: $(cat "$M/sandboxes/gone/status")"

# ---- writers holding messages open at once: one file, every line once
mkdir "$M/sandboxes/many" || fail "mkdir sandboxes/many"
F=$M/sandboxes/many/messages
ino=$(stat -c %i "$F")
exec 7>>"$F" 8>>"$F" 9>>"$F"
[ "$(stat -c %i "$F")" = "$ino" ] || fail "stat shows another inode number while writers hold the file"
[ "$(stat -L -c %i /proc/$$/fd/8)" = "$ino" ] || fail "an open handle shows another inode number"
echo one >&7; echo two >&8; echo three >&9
exec 7>&- 8>&- 9>&-
pids=()
for w in 1 2 3 4; do
  ( for i in $(seq 50); do echo "w$w $i" >>"$F" || exit 1; done ) &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a writer's append failed"; done
[ "$(jq -r .content "$F" | grep -c '^w[1-4] ')" = 200 ] || fail "concurrent appends: want 200 lines"
for w in 1 2 3 4; do
  [ "$(jq -r .content "$F" | grep "^w$w " | cut -d' ' -f2 | tr '\n' ,)" = "$(seq -s, 50)," ] ||
    fail "writer $w's lines out of order"
done
[ "$(jq -r .content "$F" | head -3 | tr '\n' ,)" = "one,two,three," ] || fail "the first three lines: $(head -3 "$F")"

# ---- a lone writer keeps the name cached; a second writer ends that
lookups() { awk '/^orchfs_fuse_requests_total\{op="lookup"\}/ {print $2}' "$M/metrics"; }
mkdir "$M/sandboxes/lone" || fail "mkdir sandboxes/lone"
L=$M/sandboxes/lone/messages
echo first >>"$L" || fail "append to sandboxes/lone/messages"
forgets() { awk '/^orchfs_fuse_append_forgets_total / {print $2}' "$M/metrics"; }
l0=$(lookups) t0=$(now_ms)
[ -n "$l0" ] || fail "metrics count no lookups: $(grep fuse_requests "$M/metrics")"
for i in $(seq 40); do echo "lone $i" >>"$L" || fail "append $i to sandboxes/lone/messages"; done
l1=$(lookups) t1=$(now_ms)
# the name is kept for 1 s at a time: a slow (sanitized) loop looks up
# again about once a second
[ $((l1 - l0)) -le $(( (t1 - t0) / 1000 + 2 )) ] ||
  fail "40 appends by a lone writer in $((t1 - t0)) ms made $((l1 - l0)) lookups"
[ "$(jq -r .content "$L" | grep -c '^lone ')" = 40 ] || fail "the lone writer's lines: $(cat "$L")"
# the second writer on the cached inode has the kernel forget the name
# (asynchronously): later opens look it up, and are handed another inode
echo refresh >>"$L" || fail "append to sandboxes/lone/messages"
f0=$(forgets)
exec 7>>"$L" 8>>"$L"
[ "$(forgets)" = $((f0 + 1)) ] || fail "a second writer on the cached name: forgets $f0 -> $(forgets), want one more"
# the kernel forgets the name asynchronously: wait until a stat looks it up
forgotten() { local l; l=$(lookups); stat "$L" >/dev/null; [ "$(lookups)" -gt "$l" ]; }
wait_for 20 forgotten || fail "the kernel never forgot the name of a file two writers hold"
l2=$(lookups)
for i in $(seq 5); do echo "while held $i" >>"$L" || fail "append while two writers hold the file"; done
l3=$(lookups)
[ $((l3 - l2)) -ge 5 ] || fail "5 appends while two writers hold the file made only $((l3 - l2)) lookups"
echo held7 >&7; echo held8 >&8
exec 7>&- 8>&-
[ "$(jq -r .content "$L" | tail -7 | tr '\n' ,)" = "$(printf 'while held %s,' 1 2 3 4 5)held7,held8," ] ||
  fail "the lines written while two writers held the file: $(tail -7 "$L")"
stop_fs
