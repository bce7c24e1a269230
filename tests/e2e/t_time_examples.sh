#!/usr/bin/env bash
# The examples of SPEC 9 a user copies, run on a real mount as the README
# says, with their days made seconds: the bug-fix phase
# (examples/bugfix-phase.json with examples/workers/bugfix.sh: a window
# that reported bugs extend, up to its maximum) handing over to the next
# phase (examples/next-phase.json, a trigger on its window.ended), and the
# nightly monitor (examples/nightly-monitor.json, a cron schedule).
. "$(dirname "$0")/lib.sh"

ex=$(cd "$(dirname "$E2E_LIB")/../../examples" && pwd)
start_fs

# ---- the bug-fix phase and the next one ---------------------------------------
cp "$ex/next-phase.json" "$M/plans/" || fail "cp next-phase.json: $(cat "$M/plans/next-phase.error")"
[ -f "$M/plans/next-phase.trigger" ] || fail "next-phase is not a trigger"
mkdir "$M/sandboxes/bugfix" || fail "mkdir sandboxes/bugfix"
cp "$ex/workers/bugfix.sh" "$M/sandboxes/bugfix/workspace/" || fail "cp bugfix.sh"
# days as seconds: 7 days -> 4 s, 28 days -> 10 s
jq '.sandbox.window |= (.duration_sec = 4 | .max_duration_sec = 10 | .extend_sec = 4 | .extend_when[0].within_sec = 60)' \
  "$ex/bugfix-phase.json" >"$T/bugfix-phase.json"
jq -e '.sandbox.window.extend_when[0].event_type == "bug.reported"' "$T/bugfix-phase.json" >/dev/null \
  || fail "the example no longer extends on bug.reported"
cp "$T/bugfix-phase.json" "$M/plans/" || fail "cp bugfix-phase.json: $(cat "$M/plans/bugfix-phase.error")"
wait_for 20 is_run_state bugfix-phase-1 running || fail "bugfix-phase-1: $(run_state bugfix-phase-1)"
opened=$(iso_ms "$(sb_field bugfix window.opened_at)")
[ $(( $(iso_ms "$(sb_field bugfix window.deadline)") - opened )) = 4000 ] || fail "window: $(jq -c .window "$M/sandboxes/bugfix/status")"
echo '{"event_type": "bug.reported", "event_data": {"id": "BUG-7", "title": "crash on empty input"}}' \
  >>"$M/sandboxes/bugfix/events" || fail "post of a bug report refused"
wait_for 20 bash -c "[ \$(jq '.window.extensions | length' '$M/sandboxes/bugfix/status') = 1 ]" \
  || fail "the bug report did not extend the window: $(jq -c .window "$M/sandboxes/bugfix/status")"
[ $(( $(iso_ms "$(sb_field bugfix window.deadline)") - opened )) = 8000 ] || fail "window after one report: $(jq -c .window "$M/sandboxes/bugfix/status")"
wait_for 20 grep -qx BUG-7 "$M/sandboxes/bugfix/workspace/fixed.log" || fail "the worker did not fix BUG-7: $(cat "$M/sandboxes/bugfix/logs")"
# the worker writes fixed.log, then posts bug.fixed: wait for the event too
wait_for 20 has_events "$M/sandboxes/bugfix/events" bug.fixed 1 '.event_data.id == "BUG-7"' || fail "no bug.fixed event for BUG-7"
[ "$(count_events "$M/sandboxes/bugfix/events" bug.fixed '.event_data.id == "BUG-7"')" = 1 ] || fail "more than one bug.fixed event for BUG-7"
# a second report extends to the maximum (10 s), not past it
echo '{"event_type": "bug.reported", "event_data": {"id": "BUG-8"}}' >>"$M/sandboxes/bugfix/events" || fail "post refused"
wait_for 20 bash -c "[ \$(jq '.window.extensions | length' '$M/sandboxes/bugfix/status') = 2 ]" || fail "BUG-8 did not extend"
[ $(( $(iso_ms "$(sb_field bugfix window.deadline)") - opened )) = 10000 ] || fail "window past its maximum: $(jq -c .window "$M/sandboxes/bugfix/status")"
# the window ends: the worker is stopped, the next phase starts
expect_run bugfix-phase-1 cancelled 30
[ "$(count_events "$M/sandboxes/bugfix/events" window.ended '.reason == "deadline"')" = 1 ] || fail "no window.ended (deadline)"
wait_for 20 test -d "$M/runs/next-phase-1" || fail "window.ended did not start the next phase"
expect_run next-phase-1 succeeded
grep -q '^bug-fix phase in bugfix ended at .* (deadline)$' "$M/runs/next-phase-1/steps/handover/log" \
  || fail "handover log: $(cat "$M/runs/next-phase-1/steps/handover/log")"
grep -qx 'release phase: starting' "$M/runs/next-phase-1/steps/handover/log" || fail "handover did not go on"

# ---- the nightly monitor ----------------------------------------------------------
cp "$ex/nightly-monitor.json" "$M/plans/" || fail "cp nightly-monitor.json: $(cat "$M/plans/nightly-monitor.error")"
next=$(jget "$M/plans/nightly-monitor.schedule" .next_at)
[[ $next == *T03:00:00.000Z ]] || fail "next_at of a 03:00 cron: $next"
[ $(( $(iso_ms "$next") - $(now_ms) )) -le 86400000 ] || fail "next_at more than a day away: $next"
[ ! -e "$M/runs/nightly-monitor-1" ] || fail "a scheduled plan ran when submitted"
# the same monitor every second: its report names the sandbox and its window
jq '.schedule = {"every_sec": 1}' "$ex/nightly-monitor.json" >"$T/monitor.json"
cp "$T/monitor.json" "$M/plans/nightly-monitor.json" || fail "cp: $(cat "$M/plans/nightly-monitor.error")"
wait_for 20 test -d "$M/runs/nightly-monitor-1" || fail "the every-second monitor did not run"
expect_run nightly-monitor-1 succeeded
grep '^{' "$M/runs/nightly-monitor-1/steps/report/log" | jq -se 'map(select(.id == "bugfix")) | length == 1
  and .[0].window == "ended" and (.[0].deadline | type == "string") and .[0].extensions == 2' >/dev/null || fail "monitor report: $(cat "$M/runs/nightly-monitor-1/steps/report/log")"
rm "$M/plans/nightly-monitor.json" || fail "rm of the monitor"
[ ! -e "$M/plans/nightly-monitor.schedule" ] || fail "the schedule outlived its plan"
stop_fs
