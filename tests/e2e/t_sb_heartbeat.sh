#!/usr/bin/env bash
# Heartbeats (SPEC 5): an event_type "heartbeat" refreshes last_heartbeat and
# makes health "healthy" ("unknown" before any, "unhealthy" after a missed one
# until the next); a step with heartbeat_ttl_sec that posts none for that long
# is killed and retried as a failed attempt (step.retrying / step.failed with
# reason missed_heartbeat), counted in the sandbox's restarts; a step that
# keeps posting heartbeats is left alone.
. "$(dirname "$0")/lib.sh"
start_fs

# ---- a silent step: killed after 1 s without heartbeat, twice
must_submit silent "$(plan '{"globals": {"kill_grace_sec": 1}}' \
  "$(step w 'echo ran >>count; sleep 30; echo survived >>count' '{"heartbeat_ttl_sec": 1, "retries": 1}')")"
# ---- a worker posting a heartbeat every 0.3 s for 3 s (a ttl of 5 s: a slow
# machine's appends must not pass for silence)
must_submit alive "$(plan '{}' \
  "$(step w 'for i in 1 2 3 4 5 6 7 8 9 10; do echo "{\"event_type\": \"heartbeat\", \"event_data\": {\"i\": $i}}" >>"$ORCHFS_SANDBOX/events" || exit 3; sleep 0.3; done' '{"heartbeat_ttl_sec": 5}')")"
is_sb_field silent-1 health unknown || fail "health before any heartbeat is '$(sb_field silent-1 health)', want unknown"
is_sb_field silent-1 last_heartbeat null || fail "last_heartbeat before any heartbeat is $(sb_field silent-1 last_heartbeat), want null"
wait_for 20 is_sb_field alive-1 health healthy || fail "health of a sandbox receiving heartbeats is '$(sb_field alive-1 health)', want healthy"

# killed twice, well before the end of its sleep 30
t0=$(now_ms)
expect_run silent-1 failed 30
el=$(( $(now_ms) - t0 ))
[ "$el" -lt 25000 ] || fail "two attempts with heartbeat_ttl_sec 1 took $el ms"
expect_step silent-1 w failed
expect_field silent-1 w '.attempt == 2'
W=$(ws silent-1)
[ "$(cat "$W/count")" = "ran
ran" ] || fail "the silent step should have run twice and been killed each time: $(cat "$W/count")"
RE=$M/runs/silent-1/events
[ "$(count_events "$RE" step.retrying '.step_id == "w" and .reason == "missed_heartbeat"')" -eq 1 ] \
  || fail "want one step.retrying with reason missed_heartbeat: $(grep step.retrying "$RE")"
[ "$(count_events "$RE" step.failed '.step_id == "w" and .reason == "missed_heartbeat"')" -eq 1 ] \
  || fail "want one step.failed with reason missed_heartbeat: $(grep step.failed "$RE")"
[ "$(sb_field silent-1 restarts)" -ge 1 ] || fail "missed heartbeats are not counted in the sandbox's restarts: $(sb_field silent-1 restarts)"
is_sb_field silent-1 health unhealthy || fail "health after missed heartbeats is '$(sb_field silent-1 health)', want unhealthy"
# each attempt was killed about 1 s after it started (not at the end of its sleep)
started=($(jq -r 'select(.type == "step.started") | .ts' "$RE"))
[ ${#started[@]} -eq 2 ] || fail "want two step.started events, got ${#started[@]}"
gap=$(( $(iso_ms "${started[1]}") - $(iso_ms "${started[0]}") ))
[ "$gap" -ge 900 ] && [ "$gap" -lt 20000 ] || fail "attempt 2 started $gap ms after attempt 1: the ttl is 1 s"
wait_for 20 no_procs_of_run silent-1 || fail "processes of the killed step live on: $(procs_of_run silent-1)"

# a heartbeat posted from outside makes it healthy again
echo '{"event_type": "heartbeat", "source": "test"}' >>"$M/sandboxes/silent-1/events" || fail "posting a heartbeat failed"
is_sb_field silent-1 health healthy || fail "health after a new heartbeat is '$(sb_field silent-1 health)', want healthy"
hb=$(sb_field silent-1 last_heartbeat)
is_iso "$hb" || fail "last_heartbeat is '$hb', not an ISO time"
d=$(( $(now_ms) - $(iso_ms "$hb") ))
[ "$d" -ge 0 ] && [ "$d" -lt 15000 ] || fail "last_heartbeat $hb is $d ms old"

# ---- the worker that keeps posting heartbeats is not killed
expect_run alive-1 succeeded 30
expect_step alive-1 w succeeded
expect_field alive-1 w '.attempt == 1'
[ "$(count_events "$M/runs/alive-1/events" step.retrying)" -eq 0 ] || fail "the live worker was retried"
[ "$(sb_field alive-1 restarts)" -eq 0 ] || fail "the live worker's sandbox counts $(sb_field alive-1 restarts) restarts"
[ "$(count_events "$M/sandboxes/alive-1/events" heartbeat '.step_id == "w" and .run_id == "alive-1"')" -eq 10 ] \
  || fail "want the 10 heartbeats, attributed to step w, in the sandbox's events"
hb=$(sb_field alive-1 last_heartbeat)
is_iso "$hb" || fail "last_heartbeat is '$hb', not an ISO time"
last=$(jq -r 'select(.type == "heartbeat") | .ts' "$M/sandboxes/alive-1/events" | tail -1)
d=$(( $(iso_ms "$hb") - $(iso_ms "$last") ))
[ "$d" -ge -100 ] && [ "$d" -le 100 ] || fail "last_heartbeat $hb is not the time of the last heartbeat event ($last)"
