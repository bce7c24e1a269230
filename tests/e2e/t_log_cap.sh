#!/usr/bin/env bash
# Step logs have a cap that keeps their tail (issue 12, finding 12: 1 GB of
# output cost 2.2 GB on disk). With "log_max_bytes": 1 MiB in --config, a step
# printing about 11 MB: the step's log and the sandbox's logs read as a line
# saying what was dropped, then the last MiB or so, ending with the step's
# last line; on disk (du) each takes about the cap; `tail -f` started before
# the flood shows the last line, without ever taking the log for truncated
# (no "file truncated", no line twice).
. "$(dirname "$0")/lib.sh"
cap=1048576
echo "{\"log_max_bytes\": $cap}" >"$T/config.json"
start_fs --config "$T/config.json"
p=$(plan '{"sandbox": {"isolation": "none"}}' \
  "$(step s "echo start; while [ ! -e '$T/go' ]; do sleep 0.05; done
             awk 'BEGIN { for (i = 0; i < 100000; i++) printf \"%08d %0100d\\n\", i, 0 }'
             echo LAST-LINE")")
must_submit cap "$p"
log=$M/runs/cap-1/steps/s/log sblog=$M/sandboxes/cap-1/logs
wait_for 20 grep -qx start "$log" || fail "the step did not start printing"
tail -f "$log" >"$T/tail.out" 2>"$T/tail.err" &
tpid=$!
tail -f "$sblog" >"$T/tailsb.out" 2>"$T/tailsb.err" &
tsbpid=$!
wait_for 20 grep -qx start "$T/tail.out" || fail "tail -f shows nothing"
touch "$T/go"
expect_run cap-1 succeeded 60
wait_for 20 grep -qx LAST-LINE "$T/tail.out" || fail "tail -f of the log did not show the last line: $(tail -c 300 "$T/tail.out")"
wait_for 20 grep -qx '\[s\] LAST-LINE' "$T/tailsb.out" || fail "tail -f of the sandbox's logs did not show the last line"
kill $tpid $tsbpid; wait $tpid $tsbpid 2>/dev/null
for f in tail tailsb; do
  [ ! -s "$T/$f.err" ] || fail "tail -f said: $(cat "$T/$f.err")"
  dup=$(grep -o '^\(\[s\] \)\?[0-9]\{8\} ' "$T/$f.out" | sort | uniq -d | head -3)
  [ -z "$dup" ] || fail "tail -f ($f) showed lines twice: $dup"
done

# what a reader gets
slack=$((cap / 4 + cap / 16 + 65536 + 4096))
for f in "$log" "$sblog"; do
  timeout 10 cat "$f" >"$T/read" || fail "cat $f failed"
  size=$(stat -c %s "$T/read")
  [ "$size" -ge "$cap" ] && [ "$size" -le $((cap + slack)) ] || fail "$f reads as $size bytes; cap $cap"
  head -1 "$T/read" | grep -Eq '^=== orchfs: [0-9]+ bytes dropped \(log cap 1 MiB\) ===$' || fail "$f starts with: $(head -1 "$T/read")"
  tail -1 "$T/read" | grep -Eq '^(\[s\] )?LAST-LINE$' || fail "$f ends with: $(tail -1 "$T/read")"
  # whole lines from there on
  sed -n 2p "$T/read" | grep -Eq '^(\[s\] )?[0-9]{8} 0{100}$' || fail "$f: the first kept line is cut: $(sed -n 2p "$T/read" | cut -c1-80)"
done
# what it costs on disk
for f in "$S/logs/cap-1/s.log" "$S/sandboxes/cap-1/logs"; do
  du=$(du -B1 "$f" | cut -f1)
  [ "$du" -le $((cap + slack)) ] || fail "$f takes $du bytes on disk; cap $cap"
  note "$(basename "$f"): $du bytes on disk for $(stat -c %s "$f") written"
done
# a restart changes nothing of it
stop_fs
start_fs --config "$T/config.json"
timeout 10 tail -1 "$log" | grep -qx LAST-LINE || fail "after a restart the log ends with: $(timeout 10 tail -1 "$log")"
timeout 10 head -1 "$log" | grep -q 'bytes dropped' || fail "after a restart the log starts with: $(timeout 10 head -1 "$log")"
# a bad cap is refused, with the reason
echo '{"log_max_bytes": 5}' >"$T/bad.json"
"$ORCHFS" -f --state "$T/state2" --config "$T/bad.json" "$M" 2>"$T/bad.err" && fail "a cap of 5 bytes was accepted"
grep -q 'log_max_bytes must be 0 (no cap) or from' "$T/bad.err" || fail "bad cap: $(cat "$T/bad.err")"
