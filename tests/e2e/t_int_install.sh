#!/usr/bin/env bash
# Installing like a Unix tool (issue 14): make install DESTDIR=... PREFIX=/usr,
# then the installed binary (--version, --help, a real mount that runs a plan
# and stops cleanly, systemd's readiness protocol), the installed man pages
# read by man --warnings, the installed systemd units checked by
# systemd-analyze verify, make uninstall leaving no file; and make -n demo on
# a machine where pkg-config finds none of the packages prints no pkg-config
# error (the packages are installed by the demo, after make has read the
# Makefile).
. "$(dirname "$0")/lib.sh"

src=$(cd "$(dirname "$E2E_LIB")/../.." && pwd)
[ -f "$src/Makefile" ] && [ -f "$src/man/orchfs.1" ] || fail "no source tree at $src"
inst=$T/inst
mk() { make --no-print-directory -C "$src" "$@"; }

# ---- make install
mk install DESTDIR="$inst" PREFIX=/usr >"$T/install.out" 2>&1 || fail "make install: $(tail -5 "$T/install.out")"
bin=$inst/usr/bin/orchfs
[ -x "$bin" ] && [ -f "$bin" ] || fail "no executable $bin"
for f in share/man/man1/orchfs.1 share/man/man5/orchfs-plan.5 share/doc/orchfs/README.md \
         share/doc/orchfs/examples/safe-merge.json share/doc/orchfs/examples/fan-out.json \
         share/doc/orchfs/examples/systemd/orchfs.service share/doc/orchfs/examples/systemd/orchfs@.service \
         share/doc/orchfs/examples/prometheus/orchfs-metrics.sh share/doc/orchfs/examples/workers/worker.sh; do
  [ -f "$inst/usr/$f" ] || fail "make install did not install /usr/$f"
done
[ "$(stat -c %a "$inst/usr/share/man/man1/orchfs.1")" = 644 ] || fail "man page mode $(stat -c %a "$inst/usr/share/man/man1/orchfs.1")"
[ -x "$inst/usr/share/doc/orchfs/examples/prometheus/orchfs-metrics.sh" ] || fail "an executable example lost its x bit"
[ ! -x "$inst/usr/share/doc/orchfs/examples/safe-merge.json" ] || fail "a plan example was made executable"
# the units name the installed binary, PREFIX/bin/orchfs
grep -qx 'ExecStart=/usr/bin/orchfs -f .*' "$inst/usr/share/doc/orchfs/examples/systemd/orchfs.service" \
  || fail "orchfs.service does not start /usr/bin/orchfs: $(grep ExecStart= "$inst/usr/share/doc/orchfs/examples/systemd/orchfs.service")"
! grep -rq /usr/local/bin/orchfs "$inst/usr/share/doc/orchfs/examples/systemd" || fail "an installed unit still names /usr/local/bin/orchfs"

# ---- --version and --help
"$bin" --version >"$T/v.out" 2>"$T/v.err" || fail "--version exited $?"
[ ! -s "$T/v.err" ] || fail "--version wrote to stderr: $(cat "$T/v.err")"
if [ -e "$src/.git" ] && want=$(git -C "$src" describe --always --dirty 2>/dev/null); then :; else want=0.0.0-unknown; fi
[ "$(cat "$T/v.out")" = "orchfs $want" ] || fail "--version says '$(cat "$T/v.out")', want 'orchfs $want'"
"$bin" --help >"$T/h.out" 2>"$T/h.err" || fail "--help exited $?"
[ ! -s "$T/h.err" ] || fail "--help wrote to stderr: $(cat "$T/h.err")"
grep -q '^usage: orchfs ' "$T/h.out" && grep -q -- '--version' "$T/h.out" && grep -q -- '--state DIR' "$T/h.out" \
  || fail "--help: $(cat "$T/h.out")"
"$bin" --no-such-option "$M" >"$T/bad.out" 2>"$T/bad.err"; rc=$?
[ $rc -eq 2 ] && [ ! -s "$T/bad.out" ] && [ "$(grep -c . "$T/bad.err")" = 1 ] \
  || fail "a bad option: exit $rc, stdout '$(cat "$T/bad.out")', stderr '$(cat "$T/bad.err")'"

# ---- the installed binary mounts, runs a plan, says READY=1 to a service
# manager once the mount answers, and stops cleanly
cat >"$T/notify.py" <<'EOF'
import os, socket, sys
sock, out, mnt = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sock)
open(out + ".bound", "w").close()
while True:
    msg = s.recv(4096).decode()
    with open(out, "a") as f:
        f.write("%s %s\n" % (msg, "mounted" if os.path.isdir(os.path.join(mnt, "plans")) else "not-mounted"))
EOF
python3 "$T/notify.py" "$T/notify.sock" "$T/notify.log" "$M" &
wait_for 20 test -e "$T/notify.log.bound" || fail "the notify receiver did not start"
ORCHFS=$bin NOTIFY_SOCKET=$T/notify.sock start_fs
wait_for 20 grep -q '^READY=1' "$T/notify.log" || fail "no READY=1 on NOTIFY_SOCKET: $(cat "$T/notify.log" 2>&1)"
grep -qx 'READY=1 mounted' "$T/notify.log" || fail "READY=1 came before the mount answered: $(cat "$T/notify.log")"
must_submit inst "$(plan '{}' "$(step a 'echo from the installed orchfs; env')" "$(step b 'echo b' '{"depends_on": ["a"]}')")"
expect_run inst-1 succeeded
grep -q '^from the installed orchfs$' "$M/runs/inst-1/steps/a/log" || fail "step log: $(cat "$M/runs/inst-1/steps/a/log")"
! grep -q '^NOTIFY_SOCKET=' "$M/runs/inst-1/steps/a/log" || fail "a step inherited NOTIFY_SOCKET"
stop_fs
wait_for 20 grep -q '^STOPPING=1' "$T/notify.log" || fail "no STOPPING=1 when the daemon stopped: $(cat "$T/notify.log")"

# ---- the installed man pages: man finds them by name, and reads them without a warning
for page in man1/orchfs.1 man5/orchfs-plan.5; do
  for width in 80 60; do
    MANWIDTH=$width man --warnings -l "$inst/usr/share/man/$page" >"$T/man.out" 2>"$T/man.err" \
      || fail "man -l $page exited $?: $(cat "$T/man.err")"
    [ ! -s "$T/man.err" ] || fail "man --warnings $page (width $width): $(cat "$T/man.err")"
    grep -q '^NAME' "$T/man.out" && grep -q '^SEE ALSO' "$T/man.out" || fail "man $page rendered: $(head -5 "$T/man.out")"
  done
done
[ "$(MANPATH=$inst/usr/share/man man -w orchfs-plan)" = "$inst/usr/share/man/man5/orchfs-plan.5" ] \
  || fail "man -w orchfs-plan: $(MANPATH=$inst/usr/share/man man -w orchfs-plan 2>&1)"
MANPATH=$inst/usr/share/man man -w 1 orchfs >/dev/null || fail "man -w 1 orchfs finds nothing"
# every file of the tree (SPEC sections 2-5, 8, 11) and every plan field is named
MANWIDTH=200 man -l "$inst/usr/share/man/man1/orchfs.1" 2>/dev/null >"$T/orchfs.1.txt"
for w in README plans/ runs/ sandboxes/ events metrics attention health NAME.json NAME.error NAME.run \
         status summary plan.json graph.dot ctl wait steps/STEP_ID/status steps/STEP_ID/log steps/STEP_ID/ctl \
         logs messages inbox workspace log_max_bytes limits webhooks port_range EXIT SIGNALS ERRORS \
         NAME.trigger NAME.schedule extend resume window; do
  grep -qF -- "$w" "$T/orchfs.1.txt" || fail "orchfs(1) does not mention $w"
done
MANWIDTH=200 man -l "$inst/usr/share/man/man5/orchfs-plan.5" 2>/dev/null >"$T/plan.5.txt"
for w in plan_id version metadata variables env globals max_concurrency default_timeout_sec kill_grace_sec \
         sandbox isolation network ports health unhealthy_after interval_sec steps id name type command args \
         shell depends_on timeout_sec retries retry_delay_sec retry_backoff on_failure critical cwd \
         heartbeat_ttl_sec heartbeat_grace_sec loop same_failures repeated_actions max_turns budget \
         prompt approvers on_timeout PORT_API window duration_sec max_duration_sec extend_sec extend_when \
         idle_sec on_end schedule every_sec cron overlap on match TRIGGER_EVENT; do
  grep -qw -- "$w" "$T/plan.5.txt" || fail "orchfs-plan(5) does not mention $w"
done

# ---- the installed systemd units, as systemd reads them (systemd need not run here)
if command -v systemd-analyze >/dev/null; then
  mkdir "$T/units"
  for u in systemd/orchfs.service systemd/orchfs@.service prometheus/orchfs-metrics.service prometheus/orchfs-metrics.timer; do
    sed -e "s|=/usr/bin/orchfs |=$bin |" \
        -e "s|/usr/local/sbin/orchfs-metrics|$inst/usr/share/doc/orchfs/examples/prometheus/orchfs-metrics.sh|" \
        "$inst/usr/share/doc/orchfs/examples/$u" >"$T/units/${u#*/}"
  done
  grep -q "^ExecStart=$bin " "$T/units/orchfs.service" || fail "the unit's ExecStart was not rewritten for the test"
  (cd "$T/units" && MANPATH=$inst/usr/share/man SYSTEMD_LOG_LEVEL=notice systemd-analyze verify \
      ./orchfs.service ./orchfs@ci.service ./orchfs-metrics.service ./orchfs-metrics.timer) >"$T/verify.out" 2>&1 \
    || fail "systemd-analyze verify: $(cat "$T/verify.out")"
  [ ! -s "$T/verify.out" ] || fail "systemd-analyze verify says: $(cat "$T/verify.out")"
  for k in Type=notify KillMode=mixed StateDirectory=orchfs RequiresMountsFor= After=local-fs.target \
           'allow_other' WantedBy=multi-user.target; do
    grep -q -- "$k" "$T/units/orchfs.service" || fail "orchfs.service lacks $k"
  done
else
  note "no systemd-analyze: the units were not verified"
fi

# ---- make uninstall removes exactly what install put there
mk uninstall DESTDIR="$inst" PREFIX=/usr >"$T/uninstall.out" 2>&1 || fail "make uninstall: $(tail -5 "$T/uninstall.out")"
left=$(find "$inst" ! -type d)
[ -z "$left" ] || fail "make uninstall left: $left"
[ -z "$(find "$inst" -name '*orchfs*')" ] || fail "make uninstall left: $(find "$inst" -name '*orchfs*')"
[ -d "$inst/usr/bin" ] || fail "make uninstall removed /usr/bin, which is not orchfs's"
mk uninstall DESTDIR="$inst" PREFIX=/usr >"$T/uninstall.out" 2>&1 || fail "make uninstall of nothing: $(tail -5 "$T/uninstall.out")"
# a file of someone else's beside ours stays
mk install DESTDIR="$inst" PREFIX=/opt/o >"$T/install.out" 2>&1 || fail "make install PREFIX=/opt/o: $(tail -5 "$T/install.out")"
[ -x "$inst/opt/o/bin/orchfs" ] && [ -f "$inst/opt/o/share/man/man5/orchfs-plan.5" ] || fail "PREFIX=/opt/o: $(find "$inst" -type f | head)"
echo mine >"$inst/opt/o/share/doc/orchfs/NOTES"
mk uninstall DESTDIR="$inst" PREFIX=/opt/o >"$T/uninstall.out" 2>&1 || fail "make uninstall PREFIX=/opt/o"
[ "$(find "$inst" ! -type d)" = "$inst/opt/o/share/doc/orchfs/NOTES" ] || fail "uninstall: $(find "$inst" ! -type d)"

# ---- make -n demo where pkg-config knows none of the packages: no pkg-config error
mkdir "$T/nopc"
PKG_CONFIG_LIBDIR=$T/nopc PKG_CONFIG_PATH=$T/nopc mk -n demo >"$T/demo-n.out" 2>"$T/demo-n.err" \
  || fail "make -n demo failed: $(cat "$T/demo-n.err")"
grep -q 'scripts/install-deps.sh' "$T/demo-n.out" || fail "make -n demo does not install the packages first: $(head "$T/demo-n.out")"
! grep -qiE 'package .* was not found|pkg-config search path|not found' "$T/demo-n.out" "$T/demo-n.err" \
  || fail "make -n demo printed: $(grep -hiE 'not found|search path' "$T/demo-n.out" "$T/demo-n.err" | head -3)"
[ ! -s "$T/demo-n.err" ] || fail "make -n demo wrote to stderr: $(head -3 "$T/demo-n.err")"
# a build without the packages stops before compiling, saying what to do
PKG_CONFIG_LIBDIR=$T/nopc PKG_CONFIG_PATH=$T/nopc mk -W fs/nodes.c orchfs >"$T/nopkg.out" 2>&1 \
  && fail "a build without the packages went on"
grep -q 'make deps' "$T/nopkg.out" && grep -q 'fuse3' "$T/nopkg.out" || fail "a build without the packages said: $(cat "$T/nopkg.out")"
! grep -q ' CC ' "$T/nopkg.out" || fail "a build without the packages compiled: $(cat "$T/nopkg.out")"
exit 0
