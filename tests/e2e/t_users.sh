#!/usr/bin/env bash
# Users and permissions (SPEC §7, issue 5): mounted by root with allow_other,
# a plan dropped by an ordinary user runs as that user; another user may read
# the run and the sandbox but not steer them: writes to ctl and messages,
# reading the inbox, removing the run or the plan fail with EACCES. Checked
# with the kernel's checks (default_permissions) and with orchfs's own.
. "$(dirname "$0")/lib.sh"
need_root_users
new_user U1
new_user U2
uid1=$(id -u $U1)

for opts in allow_other,default_permissions allow_other; do
  note "--- -o $opts"
  start_fs -o "$opts"
  # the step runs until the test has tried what it tries (the file "release")
  p=$(plan '{}' "$(step who 'id -u >uid.txt; id -u; touch /tmp/private; while [ ! -e release ]; do sleep 0.05; done')")
  printf '%s\n' "$p" >"$T/who.json"; chmod 0644 "$T/who.json"
  as $U1 cp "$T/who.json" "$M/plans/who.json" || fail "$opts: $U1 could not submit a plan"
  r=$(readlink "$M/plans/who.run"); r=${r##*/}
  [ "$(stat -c %u "$M/runs/$r")" = "$uid1" ] || fail "$opts: runs/$r is not owned by $U1"
  [ "$(stat -c %u "$M/plans/who.json")" = "$uid1" ] || fail "$opts: the plan file is not owned by $U1"
  sb=$(jget "$M/runs/$r/status" .sandbox)
  wait_for 20 is_step_state "$r" who running || fail "$opts: the step never ran"

  # another user reads, but cannot steer
  as $U2 cat "$M/runs/$r/status" >/dev/null || fail "$opts: $U2 cannot read the status"
  as $U2 sh -c "echo cancel >'$M/runs/$r/ctl'" 2>"$T/err" && fail "$opts: $U2 could cancel $U1's run"
  grep -q 'Permission denied' "$T/err" || fail "$opts: want EACCES, got: $(cat "$T/err")"
  as $U2 sh -c "echo hi >>'$M/sandboxes/$sb/messages'" 2>"$T/err" && fail "$opts: $U2 could message $U1's sandbox"
  grep -q 'Permission denied' "$T/err" || fail "$opts: messages: want EACCES, got: $(cat "$T/err")"
  as $U2 cat "$M/sandboxes/$sb/inbox" >/dev/null 2>"$T/err" && fail "$opts: $U2 could take $U1's inbox"
  as $U2 sh -c "echo '{\"event_type\":\"x\"}' >>'$M/sandboxes/$sb/events'" 2>/dev/null && fail "$opts: $U2 could post to $U1's sandbox"
  as $U2 rm -f "$M/plans/who.json" 2>/dev/null; [ -e "$M/plans/who.json" ] || fail "$opts: $U2 removed $U1's plan"
  # the owner may
  as $U1 sh -c "echo hi >>'$M/sandboxes/$sb/messages'" || fail "$opts: $U1 cannot message its own sandbox"
  touch "$(ws "$r")/release"
  expect_run "$r" succeeded 20
  as $U2 rmdir "$M/runs/$r" 2>/dev/null && fail "$opts: $U2 removed $U1's run"
  # the step ran as the submitter, never as root
  [ "$(cat "$(ws "$r")/uid.txt")" = "$uid1" ] || fail "$opts: the step ran as uid $(cat "$(ws "$r")/uid.txt"), not $uid1"
  grep -qx "$uid1" "$M/runs/$r/steps/who/log" || fail "$opts: log: $(cat "$M/runs/$r/steps/who/log")"
  as $U1 rmdir "$M/runs/$r" || fail "$opts: $U1 cannot remove its own run"
  stop_fs
done
