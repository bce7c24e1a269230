#!/usr/bin/env bash
# A state directory made by an older orchfs (issue 12, finding 3): users
# owned their sandbox's directory and left in it what they liked. Simulated
# with the daemon stopped: the directories chowned to U1, `logs` a symlink to
# a root-owned file outside (A), a FIFO (B), `workspace` a symlink to a
# root-owned directory full of files (C), and D the sandbox dir itself a
# symlink. At the next start the daemon makes them its own again and says so;
# then `reset`, runs in those sandboxes and reading their logs neither touch
# the root-owned targets nor hang (every command under `timeout`).
. "$(dirname "$0")/lib.sh"
need_root_users
new_user U1
uid1=$(id -u $U1)
start_fs -o allow_other,default_permissions
for x in A B C; do as $U1 mkdir "$M/sandboxes/$x" || fail "mkdir sandboxes/$x"; done
stop_fs

# what must stay as it is
echo secret >"$T/secret"; chmod 0644 "$T/secret"
mkdir "$T/rootdir"; for i in 1 2 3; do echo "$i" >"$T/rootdir/f$i"; done; mkdir "$T/rootdir/sub"; echo s >"$T/rootdir/sub/g"
sb=$S/sandboxes
chown $U1 "$sb/A" "$sb/B" "$sb/C"; chmod 0755 "$sb/A" "$sb/B" "$sb/C"
as $U1 ln -sfT "$T/secret" "$sb/A/logs" || fail "setup: A/logs"
as $U1 mkfifo "$sb/B/logs" || fail "setup: B/logs"
as $U1 mv "$sb/C/workspace" "$sb/C/old" && as $U1 ln -s "$T/rootdir" "$sb/C/workspace" || fail "setup: C/workspace"
ln -s "$T/rootdir" "$sb/D"

start_fs -o allow_other,default_permissions
# reset, a run, reading the logs: in time, and the targets untouched
targets_untouched() {
  [ "$(cat "$T/secret")" = secret ] || fail "$1: the root-owned file was changed: '$(cat "$T/secret")'"
  [ "$(stat -c %u "$T/secret")" = 0 ] || fail "$1: the root-owned file changed owner"
  for f in f1 f2 f3 sub/g; do [ -f "$T/rootdir/$f" ] || fail "$1: rootdir/$f was removed"; done
  [ "$(stat -c %u "$T/rootdir")" = 0 ] || fail "$1: rootdir changed owner"
}
for x in A B C; do
  timeout 10 runuser -u $U1 -- sh -c "echo reset >'$M/sandboxes/$x/ctl'" || fail "reset of $x failed or hung"
  targets_untouched "reset of $x"
  timeout 5 cat "$M/sandboxes/$x/logs" >/dev/null || fail "reading $x's logs failed or hung"
  p=$(plan "{\"sandbox\": {\"id\": \"$x\"}}" "$(step s 'echo hello-from-$ORCHFS_SANDBOX; pwd')")
  printf '%s\n' "$p" >"$T/$x.json"; chmod 0644 "$T/$x.json"
  timeout 10 runuser -u $U1 -- cp "$T/$x.json" "$M/plans/in$x.json" || fail "submitting a run in $x failed or hung"
  expect_run "in$x-1" succeeded 20
  timeout 5 grep -q "^\[s\] hello-from-" "$M/sandboxes/$x/logs" || fail "$x's logs: $(timeout 5 cat "$M/sandboxes/$x/logs")"
  timeout 5 grep -q "^hello-from-" "$M/runs/in$x-1/steps/s/log" || fail "in$x-1's log: $(timeout 5 cat "$M/runs/in$x-1/steps/s/log")"
  timeout 10 runuser -u $U1 -- sh -c "echo reset >'$M/sandboxes/$x/ctl'" || fail "second reset of $x failed"
done
timeout 5 cat "$M/README" >/dev/null || fail "the mount does not answer"
targets_untouched "runs"
for x in A B C; do
  [ "$(stat -c %u "$sb/$x")" = 0 ] || fail "sandboxes/$x is still uid $(stat -c %u "$sb/$x")'s"
  as $U1 test -w "$sb/$x" && fail "sandboxes/$x is writable by $U1"
  [ -d "$sb/$x/workspace" ] && [ ! -L "$sb/$x/workspace" ] || fail "sandboxes/$x has no workspace directory"
  [ "$(stat -c %u "$sb/$x/workspace")" = "$uid1" ] || fail "sandboxes/$x/workspace is not $U1's"
  [ ! -L "$sb/$x/logs" ] && [ ! -p "$sb/$x/logs" ] || fail "sandboxes/$x/logs is still $(stat -c %F "$sb/$x/logs")"
done
[ ! -e "$sb/D" ] && [ ! -L "$sb/D" ] || fail "the symlink sandboxes/D is still there"

log=$T/daemon.log
for want in "repair: sandboxes/A was uid $uid1's" "repair: sandboxes/A/logs was a symlink" \
            "repair: sandboxes/B/logs was a FIFO" "repair: sandboxes/C/workspace was a symlink" \
            "repair: sandboxes/D was a symlink"; do
  grep -qF "$want" "$log" || fail "the daemon's log does not say \"$want\": $(grep repair "$log")"
done
trash_empty() { [ -z "$(ls -A "$S/trash")" ]; }
wait_for 20 trash_empty || fail "the trash was not emptied: $(ls -A "$S/trash")"
for f in f1 f2 f3 sub/g; do [ -f "$T/rootdir/$f" ] || fail "rootdir/$f was removed by the trash"; done
stop_fs
# the next start has nothing to repair
mv "$T/daemon.log" "$T/daemon.log.1"
start_fs -o allow_other,default_permissions
grep -q repair "$T/daemon.log" && fail "a second start repaired again: $(grep repair "$T/daemon.log")"
stop_fs
