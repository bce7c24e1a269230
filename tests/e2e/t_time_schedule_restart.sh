#!/usr/bin/env bash
# Schedules (SPEC 9) across kill -9: the times missed while orchfs was down
# make exactly one run at the next start, and the next time is the first
# after it.
. "$(dirname "$0")/lib.sh"
start_fs

runs_of() { ls "$M/runs" | grep -c "^$1-[0-9]*$"; }
sch() { jget "$M/plans/$1.schedule" "$2"; }
created() { iso_ms "$(jget "$M/runs/$1/status" .created_at)"; }
past() { [ "$(now_ms)" -gt "$1" ]; }	# past MS: the wall clock is after MS

# ---- kill -9, then a start past several times: one catch-up run -----------------
# (overlap queue: the missed times are not hidden by the catch-up run
# being unfinished when the next one would come)
must_submit five "$(plan '{"schedule": {"every_sec": 6, "overlap": "queue"}}' "$(step s true)")"
wait_for 20 test -d "$M/runs/five-1" || fail "five made no run"
expect_run five-1 succeeded
[ "$(sch five .last_run)" = five-1 ] || fail "five.schedule: $(cat "$M/plans/five.schedule")"
crash_fs
sleep 19	# three times (at least) pass while orchfs is down
start_fs
wait_for 20 test -d "$M/runs/five-2" || fail "no catch-up run after the restart"
# (read at once: the next time is up to a period away)
s=$(cat "$M/plans/five.schedule")
[ "$(jq -r .last_run <<<"$s")" = five-2 ] || fail "five.schedule right after the catch-up run: $s (a second run for the missed times?)"
na=$(iso_ms "$(jq -r .next_at <<<"$s")")
c2=$(created five-2)
# the next time is the first after the catch-up, not one of the missed ones
[ "$na" -gt "$c2" ] && [ $((na - c2)) -le 6000 ] || fail "after the catch-up ($c2) next_at is $na"
expect_run five-2 succeeded
# every run made since the restart before next_at: the catch-up alone
wait_for 20 past "$na" || fail "the clock did not move"
k=0
for r in $(ls "$M/runs" | grep '^five-'); do
  [ "$(created "$r")" -lt "$na" ] && k=$((k + 1))
done
[ "$k" -eq 2 ] || fail "$((k - 1)) runs for the times missed while down, want 1 ($(ls "$M/runs" | grep '^five-' | tr '\n' ' '))"
# and it goes on
wait_for 20 test -d "$M/runs/five-3" || fail "five stopped after the catch-up"
rm "$M/plans/five.json"
stop_fs
