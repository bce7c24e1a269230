#!/usr/bin/env bash
# The log cap holds however the output is spread (README "Running it",
# log_max_bytes): over the attempts of one step, and over the steps of one
# sandbox. Each writer looks at a log's size after every cap/16 bytes it
# wrote; the count was each attempt's own, so that steps (or attempts) that
# each printed a little less than cap/16 were never looked at, and a
# sandbox's logs (a step's log over its retries) grew without bound. With a
# cap of 256 KiB: 40 steps of 15 KiB each into one sandbox's logs, and one
# step failing 40 times with 15 KiB each attempt; each file must keep about
# the cap (the disk it takes, and what a reader gets).
. "$(dirname "$0")/lib.sh"
cap=262144
echo "{\"log_max_bytes\": $cap}" >"$T/config.json"
start_fs --config "$T/config.json"
# 150 lines of 100 bytes: 15,000 bytes, under cap/16 (16,384)
out="awk 'BEGIN { for (i = 0; i < 150; i++) printf \"%08d %090d\\n\", i, 0 }'"
steps=()
for i in $(seq 1 40); do steps+=("$(step "s$i" "$out")"); done
p=$(plan '{"sandbox": {"isolation": "none"}, "globals": {"max_concurrency": 4}}' "${steps[@]}")
must_submit many "$p"
expect_run many-1 succeeded 120
p=$(plan '{"sandbox": {"isolation": "none"}}' "$(step s "$out; exit 1")")
p=$(jq -c '.steps[0].retries = 39 | .steps[0].loop.same_failures = 0' <<<"$p")
must_submit retried "$p"
expect_run retried-1 failed 120
[ "$(step_field retried-1 s attempt)" = 40 ] || fail "the step ran $(step_field retried-1 s attempt) attempts, not 40"

slack=$((cap / 4 + cap / 16 + 65536 + 4096))
for f in "$S/sandboxes/many-1/logs" "$S/logs/retried-1/s.log"; do
  du=$(du -B1 "$f" | cut -f1)
  note "$(basename "$(dirname "$f")")/$(basename "$f"): $du bytes on disk for $(stat -c %s "$f") written"
  [ "$du" -le $((cap + slack)) ] || fail "$f takes $du bytes on disk; cap $cap"
done
for f in "$M/sandboxes/many-1/logs" "$M/runs/retried-1/steps/s/log"; do
  timeout 10 cat "$f" >"$T/read" || fail "cat $f failed"
  size=$(stat -c %s "$T/read")
  [ "$size" -le $((cap + slack)) ] || fail "$f reads as $size bytes; cap $cap"
  head -1 "$T/read" | grep -q 'bytes dropped (log cap 256 KiB)' || fail "$f starts with: $(head -1 "$T/read")"
done
stop_fs
