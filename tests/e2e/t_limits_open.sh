#!/usr/bin/env bash
# limits.open_files (issue 12, finding 7): each file open in the mount holds
# a descriptor or a rendered copy of the daemon's, and the daemon's
# descriptors are shared by every user: one user holding thousands open made
# every other user's opens, and the steps' pipes, fail. Past the limit an
# open of that user fails with EDQUOT, said in the daemon's log; another user
# and root are not touched; a closed file gives its place back.
. "$(dirname "$0")/lib.sh"
need_root_users
new_user U1
new_user U2
echo '{"limits": {"open_files": 4}}' >"$T/cfg.json"
start_fs -o allow_other,default_permissions --config "$T/cfg.json"
as "$U1" mkdir "$M/sandboxes/o1" || fail "$U1 cannot make a sandbox"

# hold USER N: USER opens N files of sandboxes/o1 and keeps them open until
# $T/release.USER appears; prints "opened K" then, on a refusal, "refused ERRNO"
cat >"$T/hold.py" <<'PY'
import errno, os, sys, time
d, n, rel = sys.argv[1], int(sys.argv[2]), sys.argv[3]
names = ["status", "logs", "messages", "events", "status", "status"]
fds = []
for i in range(n):
    try:
        fds.append(os.open(os.path.join(d, names[i % len(names)]), os.O_RDONLY))
    except OSError as e:
        print("refused", errno.errorcode.get(e.errno, e.errno), flush=True)
        break
print("opened", len(fds), flush=True)
while not os.path.exists(rel):
    time.sleep(0.05)
PY
chmod 0644 "$T/hold.py"
as "$U1" python3 "$T/hold.py" "$M/sandboxes/o1" 5 "$T/release.u1" >"$T/u1.out" 2>&1 &
H=$!
wait_for 20 grep -q '^opened' "$T/u1.out" || fail "$U1's opener said nothing: $(cat "$T/u1.out")"
grep -qx 'refused EDQUOT' "$T/u1.out" || fail "$U1's fifth open: want EDQUOT, got: $(cat "$T/u1.out")"
grep -qx 'opened 4' "$T/u1.out" || fail "$U1 should hold 4: $(cat "$T/u1.out")"
grep -qF "refused: user \"$U1\" has 4 files open in the mount; 1 more would pass the limit of 4 (limits.open_files in --config)" \
  "$T/daemon.log" || fail "no log line for the refused open: $(tail -3 "$T/daemon.log")"
# another user, and root, are not touched
as "$U2" cat "$M/sandboxes/o1/status" >/dev/null || fail "$U2 cannot open a file while $U1 is at the limit"
cat "$M/sandboxes/o1/status" >/dev/null || fail "root cannot open a file while $U1 is at the limit"
as "$U1" cat "$M/README" >/dev/null 2>"$T/err" && fail "$U1 could open a fifth file"
grep -q 'Disk quota exceeded' "$T/err" || fail "$U1's cat: want EDQUOT, got: $(cat "$T/err")"
# closed files give their places back
touch "$T/release.u1"; wait "$H"
as "$U1" cat "$M/sandboxes/o1/status" >/dev/null || fail "$U1 cannot open a file once its others are closed"
as "$U1" python3 "$T/hold.py" "$M/sandboxes/o1" 4 "$T/release.u1" >"$T/u1b.out" 2>&1 || fail "$U1's second opener: $(cat "$T/u1b.out")"
grep -qx 'opened 4' "$T/u1b.out" || fail "$U1 should open 4 again: $(cat "$T/u1b.out")"
