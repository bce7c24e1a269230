#!/usr/bin/env bash
# Durability of sandbox appends (SPEC 5): once a write() to messages or events
# (or the close() completing a line) returns, what it recorded survives kill -9
# of the daemon: after each of several kill -9 right after an acknowledged
# append, every acknowledged message and event is there exactly once, in
# order. Messages an open inbox held when the daemon died are queued again.
. "$(dirname "$0")/lib.sh"
start_fs

mkdir "$M/sandboxes/k9" && kill -9 "$DPID"
crash_fs
start_fs
B=$M/sandboxes/k9
[ -d "$B" ] && is_sb_field k9 state ready || fail "a sandbox made by an acknowledged mkdir was lost by kill -9"
: >"$T/want.msgs"
: >"$T/want.evs"
check() {
  jq -r .content "$B/messages" >"$T/got.msgs" || fail "round $1: cannot read messages"
  cmp -s "$T/got.msgs" "$T/want.msgs" || fail "round $1: acknowledged messages lost, repeated or reordered by kill -9:
$(diff "$T/got.msgs" "$T/want.msgs")"
  jq -r 'select(.type == "k9.ev") | .event_data.r' "$B/events" >"$T/got.evs"
  cmp -s "$T/got.evs" "$T/want.evs" || fail "round $1: acknowledged events lost, repeated or reordered by kill -9:
$(diff "$T/got.evs" "$T/want.evs")"
  [ "$(sb_field k9 messages.queued)" -eq "$(wc -l <"$T/want.msgs")" ] || fail "round $1: status counts $(sb_field k9 messages.queued) queued, want $(wc -l <"$T/want.msgs")"
  seq_increasing "$B/events" || fail "round $1: seq not strictly increasing in the sandbox's events"
}

for r in 1 2 3 4 5 6; do
  case $((r % 3)) in
    1) echo "r$r single" >>"$B/messages" || fail "round $r: append failed"
       echo "r$r single" >>"$T/want.msgs" ;;
    2) write_once "$B/messages" 'r%s one\nr%s two\n\nr%s three\n' $r $r $r || fail "round $r: write failed: $(cat "$T/write.err")"
       printf 'r%s one\nr%s two\nr%s three\n' $r $r $r >>"$T/want.msgs" ;;
    0) write_once "$B/messages" 'r%s unterminated' $r || fail "round $r: write failed: $(cat "$T/write.err")"
       echo "r$r unterminated" >>"$T/want.msgs" ;;
  esac
  kill -9 "$DPID"
  crash_fs
  start_fs
  check "$r (messages)"
  if [ $((r % 2)) -eq 1 ]; then
    echo "{\"event_type\": \"k9.ev\", \"event_data\": {\"r\": $r}}" >>"$B/events" || fail "round $r: posting failed"
    echo "$r" >>"$T/want.evs"
  else
    write_once "$B/events" '{"event_type": "k9.ev", "event_data": {"r": %s}}\n{"event_type": "k9.ev", "event_data": {"r": %s.5}}' $r $r \
      || fail "round $r: posting failed: $(cat "$T/write.err")"
    printf '%s\n%s.5\n' $r $r >>"$T/want.evs"
  fi
  kill -9 "$DPID"
  crash_fs
  start_fs
  check "$r (events)"
done

# ---- messages leased to an open inbox when the daemon dies are queued again
cat "$B/inbox" >/dev/null
[ "$(sb_field k9 messages.queued)" -eq 0 ] || fail "cat inbox left $(sb_field k9 messages.queued) queued"
for i in 1 2 3; do echo "lease $i" >>"$B/messages"; done
python3 - "$B/inbox" "$T/leased" <<'EOF' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
out = b""
while True:
    b = os.read(fd, 65536)
    if not b: break
    out += b
open(sys.argv[2] + ".tmp", "wb").write(out)
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
time.sleep(60)       # read to the end, never closed
EOF
PY=$!
wait_for 20 test -e "$T/leased" || fail "the inbox reader did not finish reading"
[ "$(jq -r .content "$T/leased" | tr '\n' ,)" = "lease 1,lease 2,lease 3," ] || fail "the held inbox gave: $(cat "$T/leased")"
kill -9 "$DPID"
crash_fs
kill "$PY" 2>/dev/null; wait "$PY" 2>/dev/null
start_fs
[ "$(jq -r 'select(.content | startswith("lease")) | .state' "$B/messages" | tr '\n' ,)" = "queued,queued,queued," ] \
  || fail "messages held by an inbox open at the crash are not queued again: $(grep lease "$B/messages")"
[ "$(sb_field k9 messages.queued)" -eq 3 ] || fail "status: $(sb_field k9 messages.queued) queued after the crash, want 3"
[ "$(jq -r .content "$B/inbox" | tr '\n' ,)" = "lease 1,lease 2,lease 3," ] || fail "the inbox after the crash does not give the leased messages again, in order"
[ "$(sb_field k9 messages.queued)" -eq 0 ] || fail "the re-queued messages were not delivered by the next read"
