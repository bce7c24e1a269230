#!/usr/bin/env bash
# sandboxes/ID/events (SPEC 5, 6): appended lines must be JSON objects with a
# string event_type, an optional object event_data and an optional string
# source, nothing else; run., step., sandbox. and message. types are orchfs's
# own; a write with any bad line records none. Reading gives engine events
# about the sandbox and its runs and the posted ones (seq, ts, type, sandbox,
# run_id/step_id of the step that posted it); posted events also show in
# MOUNT/events and the run's events.
. "$(dirname "$0")/lib.sh"
start_fs

mkdir "$M/sandboxes/ev" || fail "mkdir sandboxes/ev failed"
E=$M/sandboxes/ev/events
[ "$(count_events "$E" sandbox.created '.sandbox == "ev"')" -eq 1 ] || fail "no sandbox.created event in the sandbox's events: $(cat "$E")"
nev() { wc -l <"$E"; }
refused() {
  local what=$1 n; shift
  n=$(nmsg_all)
  if write_once "$E" "$@"; then fail "events: a write with $what was accepted"; fi
  grep -qx 'write: EINVAL' "$T/write.err" || fail "events: a write with $what: want EINVAL, got: $(cat "$T/write.err")"
  [ "$(nmsg_all)" = "$n" ] || fail "events: a refused write with $what recorded something: $(tail -2 "$E")"
}
nmsg_all() { echo "$(nev) $(wc -l <"$M/events")"; }

# ---- a valid post, read back
echo '{"event_type": "custom.one", "event_data": {"k": [1, "two"]}, "source": "shell"}' >>"$E" || fail "posting an event failed"
write_once "$E" '%s\n' '{"event_type": "custom.two"}' '' '{"event_type": "runner.up", "source": "s"}' \
  '{"event_type": "steps", "event_data": {}}' || fail "one write of three valid events failed: $(cat "$T/write.err")"
printf '{"event_type": "custom.unterminated"}' >>"$E" || fail "an unterminated valid event was refused at close"
jq -se 'map(select(.type == "custom.one")) | length == 1 and (.[0] | .seq > 0 and .sandbox == "ev" and .event_data == {"k": [1, "two"]}
       and .source == "shell" and (.ts | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{3}Z$")))' "$E" >/dev/null \
  || fail "the posted event reads back wrong: $(cat "$E")"
for t in custom.two runner.up steps custom.unterminated; do
  [ "$(count_events "$E" "$t" '.sandbox == "ev"')" -eq 1 ] || fail "posted event $t: want it once in the sandbox's events"
  [ "$(count_events "$M/events" "$t" '.sandbox == "ev"')" -eq 1 ] || fail "posted event $t: want it once in MOUNT/events"
done
seq_increasing "$E" || fail "the sandbox's events: seq not increasing"

# ---- invalid lines: the whole write() fails with EINVAL, recording none
G='{"event_type": "fine"}\n'
refused "no event_type"              "$G"'{"event_data": {}}\n'
refused "a numeric event_type"       "$G"'{"event_type": 7}\n'
refused "event_data not an object"   "$G"'{"event_type": "x", "event_data": [1]}\n'
refused "a numeric source"           "$G"'{"event_type": "x", "source": 1}\n'
refused "an unknown key"             "$G"'{"event_type": "x", "seq": 5}\n'
refused "not JSON"                   "$G"'plain text\n'
refused "a JSON array"               "$G"'["event_type", "x"]\n'
refused "invalid UTF-8"              "$G"'{"event_type": "x\xff"}\n'
refused "a NUL byte"                 "$G"'{"event_type": "x"}\x00\n'
for r in run.started step.failed sandbox.deleted message.delivered run.custom; do
  refused "the reserved type $r"     "$G"'{"event_type": "%s"}\n' "$r"
done
if write_once "$E" '{"event_type": "step.x"}'; then fail "an unterminated reserved event was accepted"; fi
grep -qx 'close: EINVAL' "$T/write.err" || fail "an invalid unterminated event: want EINVAL from close(), got: $(cat "$T/write.err")"
[ "$(count_events "$E" fine)" -eq 0 ] || fail "a line of a refused write was recorded"

# ---- events posted from a step are attributed to the step whose process wrote
# it (two steps posting at once); engine events of the run show too
POST='for i in 1 2 3 4 5; do echo "{\"event_type\": \"from.step\", \"event_data\": {\"who\": \"$ORCHFS_STEP_ID\"}}" >>"$ORCHFS_SANDBOX/events"; sleep 0.1; done'
must_submit poster "$(plan '{"sandbox": {"id": "ev"}}' \
  "$(step first 'true')" \
  "$(step talk1 "$POST" '{"depends_on": ["first"]}')" \
  "$(step talk2 "$POST; sleep 1" '{"depends_on": ["first"]}')")"
wait_for 20 has_events "$E" from.step 10 || fail "the steps' events did not arrive"
echo '{"event_type": "from.shell"}' >>"$E" || fail "posting from the shell during a run failed"
expect_run poster-1 succeeded 20
for f in "$E" "$M/events" "$M/runs/poster-1/events"; do
  [ "$(count_events "$f" from.step '.run_id == "poster-1" and .step_id == .event_data.who and .sandbox == "ev"')" -eq 10 ] \
    || fail "$f: the posted events are missing or not attributed to the step that wrote them: $(grep from.step "$f" | head -4)"
done
[ "$(count_events "$E" from.step '.step_id == "talk1"')" -eq 5 ] || fail "want 5 events of talk1"
[ "$(count_events "$E" from.shell '.step_id == null')" -eq 1 ] \
  || fail "an event posted from the shell (no step's process) was attributed to a step: $(grep from.shell "$E")"
for t in run.created run.started step.started step.succeeded run.succeeded; do
  has_events "$E" "$t" 1 '.run_id == "poster-1"' || fail "the sandbox's events lack $t of its run poster-1"
done
[ "$(count_events "$E" step.started '.run_id == "poster-1"')" -eq 3 ] || fail "want the 3 step.started of poster-1 in the sandbox's events"
seq_increasing "$E" || fail "the sandbox's events: seq not increasing"
# another sandbox's events are not mixed in
mkdir "$M/sandboxes/ev2" || fail "mkdir sandboxes/ev2 failed"
echo '{"event_type": "for.ev2"}' >>"$M/sandboxes/ev2/events"
[ "$(count_events "$E" for.ev2)" -eq 0 ] || fail "an event posted to ev2 shows in ev's events"
[ "$(count_events "$M/sandboxes/ev2/events" custom.one)" -eq 0 ] || fail "an event posted to ev shows in ev2's events"
[ "$(count_events "$M/sandboxes/ev2/events" for.ev2 '.sandbox == "ev2"')" -eq 1 ] || fail "ev2's own event is missing"
