#!/usr/bin/env bash
# A daemon started without stdin, stdout or stderr (closed, not /dev/null)
# keeps its state directory's lock: a second orchfs on the same state
# directory is refused as "in use by another orchfs", and the lock file
# still names the first. (The lock used to take the free number 0, 1 or 2,
# and the daemon's /dev/null or log put there later closed it.)
. "$(dirname "$0")/lib.sh"
M2=$T/mnt2
mkdir -p "$M2"
for fd in 0 1 2; do
  case $fd in
    0) "$ORCHFS" --state "$S" "$M" 0<&- ;;
    1) "$ORCHFS" --state "$S" "$M" 1>&- ;;
    2) "$ORCHFS" --state "$S" "$M" 2>&- ;;
  esac || fail "fd $fd closed: the daemon did not start: $(tail -n 3 "$S/orchfs.log" 2>&1)"
  pid=$(daemon_pid_of "$S") || fail "fd $fd closed: no daemon serves $S"
  adopt_daemon "$pid"
  wait_mounted || fail "fd $fd closed: the mount did not come up"
  if "$ORCHFS" --state "$S" "$M2" 2>"$T/second.err"; then
    fusermount3 -u "$M2"
    fail "fd $fd closed: a second orchfs started on the same state directory"
  fi
  grep -q "state directory .* is in use by another orchfs" "$T/second.err" \
    || fail "fd $fd closed: the second start was not refused for the lock: $(cat "$T/second.err")"
  [ "$(head -n 1 "$S/lock")" = "$pid" ] || fail "fd $fd closed: the lock file names $(head -n 1 "$S/lock"), not $pid"
  # it still works
  must_submit "fd$fd" "$(plan '{}' "$(step s 'echo hi')")"
  expect_run "fd$fd-1" succeeded 20
  stop_fs
done
echo ok
