#!/usr/bin/env bash
# Two starts recover from the same dead holder of the state lock (issue 12,
# finding 4). A holder whose main thread is dead while a thread of it keeps
# the lock is waited for (fs/conn.c: conn_recover_lock). When two starts
# wait for it and it goes, one of them takes the lock: the other must see
# that a live orchfs holds it now and refuse at once, naming that one, as
# for any state directory in use. It used to wait out its 30 s and then
# blame the holder that was gone ("pid H, whose main thread is dead, still
# holds it 30 s later").
# The holder here is a small process whose main thread exits (SYS_exit)
# while another thread keeps the lock until told to let go: what a daemon
# held in the kernel looks like, without /dev/fuse.
. "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || { note "needs python3: skipped"; exit 77; }

# the state directory as a start makes it, then nobody holds it
start_fs
stop_fs

cat >"$T/holder.py" <<'EOF'
import ctypes, fcntl, os, sys, threading, time
lock, ready, release = sys.argv[1:4]
fd = os.open(lock, os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
os.pwrite(fd, b"%d\n" % os.getpid(), 0)
def keep():
    open(ready, "w").close()
    while not os.path.exists(release):
        time.sleep(0.05)
    os._exit(0)    # the lock goes with the process
threading.Thread(target=keep).start()
nr = {"x86_64": 60, "aarch64": 93}.get(os.uname().machine)
if nr is None:
    os._exit(77)
ctypes.CDLL(None).syscall(nr, 0)    # this thread alone exits
EOF
python3 "$T/holder.py" "$S/lock" "$T/ready" "$T/release" &
H=$!
echo "$H" >>"$T/dpids"
wait_for 20 test -e "$T/ready" || fail "the holder did not take the lock"
lead_dead() { [ "$(awk '{ print $3 }' "/proc/$H/task/$H/stat" 2>/dev/null)" = Z ]; }
wait_for 20 lead_dead || { kill -0 "$H" 2>/dev/null || { wait "$H"; [ $? -ne 77 ] || exit 77; }; fail "the holder's main thread did not exit"; }

# two starts: each finds the lock held by a process whose main thread is dead
"$ORCHFS" -f --state "$S" "$M" >"$T/a.log" 2>&1 &
A=$!
echo "$A" >>"$T/dpids"
wait_for 20 grep -q "lock is held by orchfs pid $H, whose main thread is dead" "$T/a.log" \
  || fail "the first start did not find the dead holder: $(cat "$T/a.log")"
"$ORCHFS" -f --state "$S" "$M" >"$T/b.log" 2>&1 &
B=$!
echo "$B" >>"$T/dpids"
wait_for 20 grep -q "lock is held by orchfs pid $H, whose main thread is dead" "$T/b.log" \
  || fail "the second start did not find the dead holder: $(cat "$T/b.log")"

# the holder goes: one start takes the state directory, the other refuses
touch "$T/release"
wait "$H" 2>/dev/null
gone() { ! kill -0 "$1" 2>/dev/null; }
one_gone() { gone "$A" || gone "$B"; }
wait_for 45 one_gone || fail "both starts are still there: $(cat "$T/a.log" "$T/b.log")"
if gone "$A"; then L=$A W=$B LL=$T/a.log; else L=$B W=$A LL=$T/b.log; fi
wait "$L"; rc=$?
DPID=$W DCHILD=1
wait_mounted || fail "the start that took the lock did not mount: $(cat "$T/a.log" "$T/b.log")"
[ $rc -eq 1 ] || fail "the start that lost exited $rc, not 1: $(cat "$LL")"
grep -q "state directory $S is in use by another orchfs (pid $W)" "$LL" \
  || fail "the start that lost should name the live orchfs that took the lock (pid $W): $(cat "$LL")"
grep -q "still holds it" "$LL" && fail "the start that lost blamed the holder that was gone: $(cat "$LL")"
must_submit after "$(plan '{}' "$(step a 'echo ok')")"
expect_run after-1 succeeded
stop_fs
