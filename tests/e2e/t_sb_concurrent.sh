#!/usr/bin/env bash
# Concurrent appends (SPEC 5): 8 writers at once, each appending 200 numbered
# lines with an open/write/close of its own per line, to one sandbox's
# messages and then to its events: every line is recorded exactly once, whole,
# and each writer's lines keep their order.
. "$(dirname "$0")/lib.sh"
start_fs

mkdir "$M/sandboxes/cc" || fail "mkdir sandboxes/cc failed"
B=$M/sandboxes/cc
W=8 N=200

# ---- messages
pids=()
for k in $(seq 1 $W); do
  ( for i in $(seq 1 $N); do echo "w$k $i" >>"$B/messages" || echo "w$k $i" >>"$T/msg.failed"; done ) &
  pids+=($!)
done
wait "${pids[@]}"   # (a bare wait would wait for the daemon too)
[ ! -s "$T/msg.failed" ] || fail "appends to messages failed: $(head -3 "$T/msg.failed")"
jq -r .content "$B/messages" >"$T/msgs"
[ "$(wc -l <"$T/msgs")" -eq $((W * N)) ] || fail "messages holds $(wc -l <"$T/msgs") messages, want $((W * N))"
dups=$(sort "$T/msgs" | uniq -d | head -3)
[ -z "$dups" ] || fail "messages recorded twice: $dups"
for k in $(seq 1 $W); do
  seq 1 $N | sed "s/^/w$k /" >"$T/want.$k"
  grep "^w$k " "$T/msgs" | cmp -s - "$T/want.$k" || fail "writer $k: its messages are missing, torn or out of order:
$(grep "^w$k " "$T/msgs" | diff - "$T/want.$k" | head -5)"
done
jq -se 'map(.id) as $i | ($i | unique | length) == ($i | length) and all(range(1; $i | length); $i[.] > $i[. - 1])' "$B/messages" >/dev/null \
  || fail "message ids are not unique and increasing"
jq -e ".messages.queued == $((W * N))" "$B/status" >/dev/null || fail "status: $(sb_field cc messages | tr -d ' \n'), want $((W * N)) queued"
[ "$(count_events "$B/events" message.queued)" -eq $((W * N)) ] || fail "want $((W * N)) message.queued events, got $(count_events "$B/events" message.queued)"

# ---- events (a tail -f reader alongside sees whole lines only)
tail -n 0 -f "$B/events" >"$T/events.tail" 2>/dev/null &
TAILP=$!
# tail -n 0 shows only what comes after it opened the file: post until it
# shows one (however long tail takes to start)
tail_ready() { echo '{"event_type": "tail.ready"}' >>"$B/events" && sleep 0.2 && grep -q tail.ready "$T/events.tail"; }
wait_for 20 tail_ready || fail "tail -f of events did not show the posted events"
pids=()
for k in $(seq 1 $W); do
  ( for i in $(seq 1 $N); do
      echo "{\"event_type\": \"load\", \"event_data\": {\"w\": $k, \"i\": $i}, \"source\": \"writer $k\"}" >>"$B/events" \
        || echo "$k $i" >>"$T/ev.failed"
    done ) &
  pids+=($!)
done
wait "${pids[@]}"
[ ! -s "$T/ev.failed" ] || fail "appends to events failed: $(head -3 "$T/ev.failed")"
jq -r 'select(.type == "load") | "w\(.event_data.w) \(.event_data.i)"' "$B/events" >"$T/evs"
[ "$(wc -l <"$T/evs")" -eq $((W * N)) ] || fail "events holds $(wc -l <"$T/evs") posted events, want $((W * N))"
dups=$(sort "$T/evs" | uniq -d | head -3)
[ -z "$dups" ] || fail "events recorded twice: $dups"
for k in $(seq 1 $W); do
  grep "^w$k " "$T/evs" | cmp -s - "$T/want.$k" || fail "writer $k: its events are missing or out of order:
$(grep "^w$k " "$T/evs" | diff - "$T/want.$k" | head -5)"
done
seq_increasing "$B/events" || fail "the sandbox's events: seq not strictly increasing"
[ "$(count_events "$M/events" load '.sandbox == "cc"')" -eq $((W * N)) ] || fail "MOUNT/events lacks some of the posted events"
jq -se 'map(select(.type == "load")) | all(.source == "writer \(.event_data.w)")' "$B/events" >/dev/null \
  || fail "a posted event lost its source or got another's"
wait_for 20 has_events "$T/events.tail" load $((W * N))
kill "$TAILP"; wait "$TAILP" 2>/dev/null
jq -e . "$T/events.tail" >/dev/null || fail "tail -f of events during the appends showed a torn line"
[ "$(count_events "$T/events.tail" load)" -eq $((W * N)) ] || fail "tail -f of events showed $(count_events "$T/events.tail" load) of the $((W * N)) posted events"
