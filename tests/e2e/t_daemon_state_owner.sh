#!/usr/bin/env bash
# A root daemon refuses a state directory that belongs to another user
# (README "The state directory"), and touches nothing in it first (issue
# 12, finding 3). The refusal came from the engine, after the start had
# already opened the log (daemon mode: appending to it) and the lock
# (making it 0600, emptying it and writing its pid there): through links the
# owner put in their place, root changed a file of the owner's choosing.
. "$(dirname "$0")/lib.sh"
need_root_users
new_user U1
uid1=$(id -u "$U1")

chown "$U1" "$S" && chmod 0755 "$S"
as "$U1" sh -c "printf 'precious\n' >'$S/keep' && chmod 0644 '$S/keep' && ln '$S/keep' '$S/lock' && ln '$S/keep' '$S/orchfs.log'" \
  || fail "$U1 could not prepare its state directory"

for mode in -f ""; do
  timeout -k 2 60 "$ORCHFS" $mode --state "$S" "$M" >"$T/start.out" 2>"$T/start.err"; rc=$?
  [ $rc -eq 1 ] || fail "start ${mode:-(daemon mode)}: want exit 1 (refused), got $rc: $(cat "$T/start.err")"
  grep -q "state directory $S belongs to uid $uid1: it must be the daemon's (uid 0)" "$T/start.err" \
    || fail "start ${mode:-(daemon mode)}: the refusal should say whose the directory is: $(cat "$T/start.err")"
  ! mounted "$M" || fail "start ${mode:-(daemon mode)}: mounted on a state directory it refused"
  [ "$(cat "$S/keep")" = precious ] || fail "start ${mode:-(daemon mode)}: the file the owner linked as lock or orchfs.log was written: $(cat "$S/keep")"
  [ "$(stat -c %a "$S/keep")" = 644 ] || fail "start ${mode:-(daemon mode)}: the file the owner linked was made mode $(stat -c %a "$S/keep")"
  [ "$(ls "$S" | sort | tr '\n' ' ')" = "keep lock orchfs.log " ] || fail "start ${mode:-(daemon mode)}: made files in the refused directory: $(ls "$S")"
done

# A state directory of root's that others may write (which the engine makes
# 0711 once it runs): a lock or log linked to another file is not used. The
# start changed the mode and the bytes of whatever the lock was a link to.
rm -rf "$S" && mkdir "$S" && chmod 0777 "$S"
printf 'precious\n' >"$T/victim" && chmod 0666 "$T/victim"
as "$U1" sh -c "ln '$T/victim' '$S/lock'" || fail "$U1 could not link a file as lock"
timeout -k 2 60 "$ORCHFS" -f --state "$S" "$M" >"$T/start.out" 2>"$T/start.err"; rc=$?
[ $rc -eq 1 ] || fail "start with lock a link: want exit 1 (refused), got $rc: $(cat "$T/start.err")"
grep -q "$S/lock is not a regular file of its own" "$T/start.err" || fail "the refusal should name the lock: $(cat "$T/start.err")"
[ "$(cat "$T/victim")" = precious ] && [ "$(stat -c %a "$T/victim")" = 666 ] \
  || fail "the file the lock was a link to was changed: mode $(stat -c %a "$T/victim"): $(cat "$T/victim")"
rm -f "$S/lock"
as "$U1" sh -c "ln '$T/victim' '$S/orchfs.log'" || fail "$U1 could not link a file as orchfs.log"
"$ORCHFS" --state "$S" "$M" >"$T/start.out" 2>"$T/start.err" || fail "start in daemon mode failed: $(cat "$T/start.err")"
adopt_daemon "$(daemon_pid_of "$S")"
[ "$(cat "$T/victim")" = precious ] || fail "the daemon logged into the file orchfs.log was a link to: $(cat "$T/victim")"
stop_fs
