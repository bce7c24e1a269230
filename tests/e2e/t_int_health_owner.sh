#!/usr/bin/env bash
# A sandbox's health check command runs as the sandbox's owner, whoever's run
# holds it (found in review): a user's check must not run as root when root
# submits a plan into that user's sandbox without a "health" of its own.
. "$(dirname "$0")/lib.sh"
need_root_users
new_user U1
uid1=$(id -u "$U1")
start_fs -o allow_other

as "$U1" mkdir "$M/sandboxes/box" || fail "$U1 cannot make a sandbox"
W=$(ws box)
p='{"sandbox": {"id": "box", "health": {"command": ["sh", "-c", "id -u >hc.uid"], "interval_sec": 0.2}},
  "steps": [{"id": "s", "command": "sh", "args": ["-c", "until [ -e stop1 ]; do sleep 0.05; done"]}]}'
printf '%s\n' "$p" >"$T/u.json"; chmod 0644 "$T/u.json"
as "$U1" cp "$T/u.json" "$M/plans/u.json" || fail "$U1's plan refused: $(cat "$M/plans/u.error" 2>/dev/null)"
wait_for 20 test -s "$W/hc.uid" || fail "the check never ran"
[ "$(cat "$W/hc.uid")" = "$uid1" ] || fail "the check ran as $(cat "$W/hc.uid"), not $uid1"
touch "$W/stop1"
expect_run u-1 succeeded

# root's run in the user's sandbox, without a health of its own: the check
# the user set still runs, as the user
rm -f "$W/hc.uid"
must_submit r '{"sandbox": {"id": "box"}, "steps": [{"id": "s", "command": "sh", "args": ["-c", "until [ -e stop2 ]; do sleep 0.05; done"]}]}'
wait_for 20 test -s "$W/hc.uid" || fail "the check never ran during root's run"
[ "$(cat "$W/hc.uid")" = "$uid1" ] || fail "during root's run the user's check ran as uid $(cat "$W/hc.uid")"
touch "$W/stop2"
expect_run r-1 succeeded
