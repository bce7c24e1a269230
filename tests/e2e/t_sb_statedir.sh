#!/usr/bin/env bash
# The state directory is the daemon's (issue 12, finding 3). A user who makes
# sandboxes/X owns only its workspace: STATE/sandboxes/X is root's and not
# theirs to write, so they cannot swap `workspace` or `logs` for symlinks
# (before, `reset` emptied a root-owned directory and truncated a root-owned
# file through them, and a race on creation made chown give a root file to
# the user). A user-side loop keeps trying to swap the names of sandboxes
# being created and reset: every try fails, and a root-owned canary keeps its
# owner. The state directory is 0711, plans/ 0700, the lock and the database
# 0600. reset and rmdir still do what they say.
. "$(dirname "$0")/lib.sh"
need_root_users
new_user U1
uid1=$(id -u $U1)
echo canary >"$T/canary"; chmod 0644 "$T/canary"
start_fs -o allow_other,default_permissions

as $U1 mkdir "$M/sandboxes/X" || fail "$U1 cannot make a sandbox"
d=$S/sandboxes/X
[ "$(stat -c %u "$d")" = 0 ] || fail "STATE/sandboxes/X is owned by uid $(stat -c %u "$d"), not root"
as $U1 test -w "$d" && fail "STATE/sandboxes/X is writable by $U1 (mode $(stat -c %a "$d"))"
[ "$(stat -c %u "$d/workspace")" = "$uid1" ] || fail "the workspace is not $U1's"
as $U1 ln -s "$T/canary" "$d/logs2" 2>/dev/null && fail "$U1 could make a name in STATE/sandboxes/X"
as $U1 mv "$d/workspace" "$d/w2" 2>/dev/null && fail "$U1 could rename its workspace away"
# the owner reaches its workspace, through the mount and the state directory
as $U1 sh -c "echo hi >'$M/sandboxes/X/workspace/f'" || fail "$U1 cannot write its workspace"
as $U1 ls "$S" >/dev/null 2>&1 && fail "$U1 can list the state directory"
[ "$(stat -c %a "$S")" = 711 ] || fail "the state directory is mode $(stat -c %a "$S"), not 711"
grep -q "state directory $S was mode 0755: now 0711" "$T/daemon.log" || fail "the daemon did not say it tightened $S"
[ "$(stat -c %a "$S/plans")" = 700 ] || fail "STATE/plans is mode $(stat -c %a "$S/plans")"
for f in lock orchfs.db; do
  [ "$(stat -c %a "$S/$f")" = 600 ] || fail "STATE/$f is mode $(stat -c %a "$S/$f"), not 600"
done
for f in logs sandboxes plans trash; do
  as $U1 test -w "$S/$f" && fail "STATE/$f is writable by $U1"
done

# the race: while sandboxes are made and reset, the user keeps trying to put
# symlinks to a root-owned file in their place; none may land
chmod 0777 "$T"   # the racer writes its result there
as $U1 sh -c '
  n=0 won=0
  while [ ! -e "$1/stop" ]; do
    for i in 1 2 3 4 5 6 7 8; do
      for name in workspace logs; do
        ln -sfT "$1/canary" "$2/r$i/$name" 2>/dev/null && won=$((won + 1))
        mv -fT "$2/r$i/$name" "$2/r$i/x" 2>/dev/null && won=$((won + 1))
        n=$((n + 1))
      done
    done
  done
  echo "$n $won" >"$3"
' sh "$T" "$S/sandboxes" "$T/race.$U1" 2>/dev/null &
racer=$!
for round in 1 2; do
  for i in 1 2 3 4 5 6 7 8; do
    as $U1 mkdir "$M/sandboxes/r$i" || fail "mkdir sandboxes/r$i failed"
    as $U1 sh -c "echo reset >'$M/sandboxes/r$i/ctl'" || fail "reset of r$i failed"
  done
  [ $round = 2 ] || for i in 1 2 3 4 5 6 7 8; do as $U1 rmdir "$M/sandboxes/r$i" || fail "rmdir r$i failed"; done
done
touch "$T/stop"
wait $racer
read -r tries won <"$T/race.$U1" || fail "the racer said nothing"
note "the racer tried $tries swaps"
[ "$won" = 0 ] || fail "$won swaps in STATE/sandboxes succeeded"
[ "$(stat -c %u "$T/canary")" = 0 ] || fail "the canary was given to uid $(stat -c %u "$T/canary")"
[ "$(cat "$T/canary")" = canary ] || fail "the canary was changed"
for i in 1 2 3 4 5 6 7 8; do
  [ -d "$S/sandboxes/r$i/workspace" ] && [ ! -L "$S/sandboxes/r$i/workspace" ] || fail "r$i has no workspace directory"
  [ "$(stat -c %u "$S/sandboxes/r$i/workspace")" = "$uid1" ] || fail "r$i's workspace is not $U1's"
done

# reset keeps persist/ (and its mode), empties the rest; the old one goes
as $U1 sh -c "cd '$M/sandboxes/X/workspace' && mkdir -p persist deep/er && echo p >persist/keep && echo x >deep/er/f && ln -s '$T/canary' link && chmod 0750 ." || fail "cannot fill the workspace"
as $U1 sh -c "echo reset >'$M/sandboxes/X/ctl'" || fail "reset failed"
[ "$(ls -A "$d/workspace")" = persist ] || fail "after reset the workspace holds: $(ls -A "$d/workspace")"
[ "$(cat "$d/workspace/persist/keep")" = p ] || fail "persist/ lost its file"
[ "$(stat -c %a "$d/workspace")" = 750 ] || fail "reset changed the workspace's mode to $(stat -c %a "$d/workspace")"
[ "$(stat -c %u "$d/workspace")" = "$uid1" ] || fail "after reset the workspace is not $U1's"
trash_empty() { [ -z "$(ls -A "$S/trash")" ]; }
wait_for 20 trash_empty || fail "the trash was not emptied: $(ls -A "$S/trash")"
[ "$(cat "$T/canary")" = canary ] || fail "reset touched the canary"

# rmdir removes it all
as $U1 rmdir "$M/sandboxes/X" || fail "rmdir sandboxes/X failed"
[ ! -e "$d" ] || fail "STATE/sandboxes/X is still there"
wait_for 20 trash_empty || fail "the trash was not emptied after rmdir: $(ls -A "$S/trash")"
as $U1 mkdir "$M/sandboxes/X" || fail "the name X cannot be used again"
[ -z "$(ls -A "$d/workspace")" ] || fail "a new sandbox X got the old one's files"
stop_fs
