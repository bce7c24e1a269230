#!/usr/bin/env bash
# Schedules (SPEC 9): a plan with "schedule" starts no run when submitted; it
# is submitted as NAME-N at each time it names (every_sec from registration,
# cron on UTC minutes); plans/NAME.schedule shows next_at, last_at, last_run;
# overlap "skip" skips a time while the last run is unfinished, "queue" runs
# it when that run ends (one waits at most); removing NAME.json ends it (not
# its runs); a bad cron is reported in NAME.error. (t_time_schedule_restart:
# the times missed while orchfs was down.)
. "$(dirname "$0")/lib.sh"
start_fs

runs_of() { ls "$M/runs" | grep -c "^$1-[0-9]*$"; }
sch() { jget "$M/plans/$1.schedule" "$2"; }
created() { iso_ms "$(jget "$M/runs/$1/status" .created_at)"; }
finished() { iso_ms "$(jget "$M/runs/$1/status" .finished_at)"; }
past() { [ "$(now_ms)" -gt "$1" ]; }	# past MS: the wall clock is after MS
next_moved() { [ "$(sch "$1" .next_at)" != "$2" ]; }

# ---- a schedule registers, and runs nothing when submitted --------------------
t0=$(now_ms)
must_submit hourly "$(plan '{"schedule": {"every_sec": 3600}}' "$(step s true)")"
[ -e "$M/plans/hourly.error" ] && fail "hourly.error: $(cat "$M/plans/hourly.error")"
[ -f "$M/plans/hourly.schedule" ] || fail "no plans/hourly.schedule"
ls "$M/plans" | grep -qx hourly.schedule || fail "hourly.schedule not listed: $(ls "$M/plans")"
jq -e '(.next_at | type) == "string" and .last_at == null and .last_run == null and (keys | length) == 3' \
  "$M/plans/hourly.schedule" >/dev/null || fail "hourly.schedule: $(cat "$M/plans/hourly.schedule")"
is_iso "$(sch hourly .next_at)" || fail "next_at: $(sch hourly .next_at)"
na=$(iso_ms "$(sch hourly .next_at)")
[ $((na - t0)) -ge 3599000 ] && [ $((na - t0)) -le $((3601000 + $(now_ms) - t0)) ] \
  || fail "next_at of every_sec 3600 is $((na - t0)) ms after the submission"
(echo x >"$M/plans/hourly.schedule") 2>/dev/null && fail "hourly.schedule is writable"
rm -f "$M/plans/hourly.schedule" 2>/dev/null; [ -f "$M/plans/hourly.schedule" ] || fail "hourly.schedule could be removed"
touch "$M/plans/x.schedule" 2>/dev/null && fail "x.schedule could be made"
sleep 0.5
[ "$(runs_of hourly)" -eq 0 ] || fail "a schedule plan ran when submitted"

# ---- a cron schedule: next_at on a minute boundary ----------------------------
t0=$(now_ms)
must_submit nightly "$(plan '{"schedule": {"cron": "* * * * *"}}' "$(step s true)")"
n=$(sch nightly .next_at)
[[ $n =~ :00\.000Z$ ]] || fail "nightly.schedule next_at is not on a minute: $(cat "$M/plans/nightly.schedule")"
na=$(iso_ms "$n")
[ "$na" -gt "$t0" ] && [ $((na - t0)) -le $((60000 + $(now_ms) - t0)) ] || fail "next_at of * * * * * is $((na - t0)) ms away"
must_submit nightly "$(plan '{"schedule": {"cron": "30 2 * * *"}}' "$(step s true)")"
[[ $(sch nightly .next_at) =~ T02:30:00\.000Z$ ]] || fail "re-submitted: $(cat "$M/plans/nightly.schedule")"
rm "$M/plans/nightly.json"

# ---- bad schedules go to NAME.error ------------------------------------------
submit badcron '{"schedule": {"cron": "61 * * * *"}, "steps": [{"id": "s", "command": "true"}]}' \
  && fail "minute 61 accepted"
grep -q 'schedule: cron "61 \* \* \* \*": minute 61 out of range 0-59' "$M/plans/badcron.error" \
  || fail "badcron.error: $(cat "$M/plans/badcron.error")"
[ -e "$M/plans/badcron.schedule" ] && fail "a refused plan has a schedule"
submit both '{"schedule": {"every_sec": 5}, "on": [{"event_type": "x"}], "steps": [{"id": "s", "command": "true"}]}' \
  && fail "a plan with on and schedule accepted"
grep -q 'not both' "$M/plans/both.error" || fail "both.error: $(cat "$M/plans/both.error")"
submit zero '{"schedule": {"every_sec": 0}, "steps": [{"id": "s", "command": "true"}]}' && fail "every_sec 0 accepted"
grep -q '"every_sec" must be between 1 and' "$M/plans/zero.error" || fail "zero.error: $(cat "$M/plans/zero.error")"

# ---- every_sec 1 makes runs; rm of the plan ends it ----------------------------
must_submit tick "$(plan '{"schedule": {"every_sec": 1}}' "$(step s true)")"
wait_for 20 test -d "$M/runs/tick-2" || fail "an every_sec 1 schedule made no second run"
expect_run tick-1 succeeded
expect_run tick-2 succeeded
wait_for 20 jq -e '.last_run | test("^tick-[0-9]+$")' "$M/plans/tick.schedule" || fail "tick.schedule: $(cat "$M/plans/tick.schedule")"
is_iso "$(sch tick .last_at)" || fail "last_at: $(cat "$M/plans/tick.schedule")"
[ "$(iso_ms "$(sch tick .next_at)")" -gt "$(iso_ms "$(sch tick .last_at)")" ] || fail "tick.schedule: $(cat "$M/plans/tick.schedule")"
rm "$M/plans/tick.json" || fail "rm tick.json"
[ -e "$M/plans/tick.schedule" ] && fail "tick.schedule outlived tick.json"
n=$(runs_of tick)
sleep 2.5
[ "$(runs_of tick)" -eq "$n" ] || fail "the schedule went on after its plan was removed ($n, then $(runs_of tick))"
[ -d "$M/runs/tick-1" ] || fail "removing the plan removed its runs"

# re-submitting without "schedule" ends the schedule and starts a run
must_submit hourly "$(plan '{}' "$(step s true)")"
expect_run hourly-1 succeeded
[ -e "$M/plans/hourly.schedule" ] && fail "hourly.schedule outlived a plan without a schedule"

# a rename onto NAME.json registers NAME's schedule; away from it, ends it
printf '%s\n' "$(plan '{"schedule": {"every_sec": 3600}}' "$(step s true)")" >"$M/plans/draft"
mv "$M/plans/draft" "$M/plans/moved.json" || fail "rename onto moved.json"
[ -f "$M/plans/moved.schedule" ] || fail "no moved.schedule after a rename"
mv "$M/plans/moved.json" "$M/plans/moved.txt" || fail "rename away"
[ -e "$M/plans/moved.schedule" ] && fail "moved.schedule outlived moved.json's rename"
rm -f "$M/plans/moved.txt"

# ---- overlap: skip and queue, with a step longer than the period ----------------
# the step waits for a file "gate" in its (shared) workspace; the times that
# find the run unfinished are skipped (skip) or make one run at its end (queue)
for mode in skip queue; do
  must_submit "$mode" "$(plan "{\"sandbox\": {\"id\": \"g-$mode\"}, \"schedule\": {\"every_sec\": 3, \"overlap\": \"$mode\"}}" \
    "$(step s 'while [ ! -e gate ]; do sleep 0.05; done')")"
  wait_for 20 is_run_state "$mode-1" running || fail "$mode-1 did not start"
  # two more times pass while it runs; it is released right after the
  # second, a period before the next
  for k in 1 2; do
    prev=$(sch "$mode" .next_at)
    wait_for 20 next_moved "$mode" "$prev" || fail "$mode.schedule next_at did not move: $(cat "$M/plans/$mode.schedule")"
  done
  [ "$(runs_of "$mode")" -eq 1 ] || fail "$mode: a run started while $mode-1 was running"
  grid=$(iso_ms "$(sch "$mode" .next_at)")
  touch "$(ws "g-$mode")/gate"
  expect_run "$mode-1" succeeded
  wait_for 20 test -d "$M/runs/$mode-2" || fail "$mode made no run after $mode-1"
  expect_run "$mode-2" succeeded
  c2=$(created "$mode-2")
  if [ "$mode" = skip ]; then
    # skipped: the next run waited for the next time
    [ "$c2" -ge "$grid" ] || fail "skip: $mode-2 made $((grid - c2)) ms before the next time (a skipped time ran)"
  else
    # queued: at the end of queue-1, before the next time ...
    [ "$c2" -lt "$grid" ] || fail "queue: $mode-2 waited for the next time instead of queue-1's end"
    [ "$c2" -ge "$(finished "$mode-1")" ] || fail "queue: $mode-2 made before queue-1 ended"
    # ... and one only: the two times that waited made one run
    wait_for 20 test -d "$M/runs/$mode-3" || fail "queue made no third run"
    c3=$(created "$mode-3")
    [ "$c3" -ge "$grid" ] || fail "queue: a second queued time ran $((grid - c3)) ms before the next time"
  fi
  rm "$M/plans/$mode.json"
done
stop_fs
