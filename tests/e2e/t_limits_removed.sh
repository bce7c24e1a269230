#!/usr/bin/env bash
# limits.plan_bytes holds for files removed from plans/ while open (README
# "Limits"). A removed file gives its bytes back at once, but its open
# handles may still write to it: before, such writes were counted for no
# one, so that a user could hold any number of bytes in the state
# directory's plans/ (a handle each, 16 MiB each) past a limit of 4 KiB.
# Now a write cannot make a file that left plans/ (unlinked, or replaced by
# a rename) grow: EDQUOT; writing within its size still works.
. "$(dirname "$0")/lib.sh"
need_root_users
new_user U1

echo '{"limits": {"plan_files": 4, "plan_bytes": 4096}}' >"$T/cfg.json"
start_fs -o allow_other,default_permissions --config "$T/cfg.json"

as $U1 python3 - "$M/plans" <<'PY' || fail "python failed"
import errno, os, sys
P = sys.argv[1]
def path(n): return os.path.join(P, n)
def quota(what, f):
    try:
        f()
    except OSError as e:
        if e.errno != errno.EDQUOT:
            sys.exit("%s: want EDQUOT, got %s" % (what, e))
        return
    sys.exit("%s was accepted" % what)

# unlinked while open
fd = os.open(path("a.txt"), os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, b"x" * 100)
os.unlink(path("a.txt"))
os.pwrite(fd, b"y" * 100, 0)                  # within its size: fine
quota("a write past the size of a removed file", lambda: os.write(fd, b"z" * 65536))
try:
    os.ftruncate(fd, 1 << 20)                   # (refused before it reaches the engine)
    sys.exit("a truncate that grows a removed file was accepted")
except OSError:
    pass
# replaced by a rename while open
fd2 = os.open(path("b.txt"), os.O_WRONLY | os.O_CREAT, 0o644)
with open(path("c.txt"), "w") as f: f.write("c")
os.rename(path("c.txt"), path("b.txt"))
quota("a write to a file replaced by a rename", lambda: os.write(fd2, b"z" * 65536))
# and what stays in plans/ is counted as before: 4 KiB, not more
fd3 = os.open(path("d.txt"), os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd3, b"d" * 4000)
quota("a write past limits.plan_bytes", lambda: os.write(fd3, b"d" * 200))
PY
stop_fs
