#!/usr/bin/env bash
# Where bubblewrap runs for root but not for an ordinary user (no user
# namespaces for them; here a stand-in bwrap that refuses any uid but 0),
# a root daemon (issue 12, finding 1) runs a user's steps unconfined only
# when asked: the user's plans get isolation "none" by default, asking for
# "bwrap" is a validation error that says why, and root's plans still get
# bwrap; a user's bwrap sandbox from before does not run its steps
# unconfined: they fail to start, saying why. The daemon says so at start.
. "$(dirname "$0")/lib.sh"
need_root_users
new_user U1
REAL=$(command -v bwrap) || { note "no bwrap: skipped"; exit 77; }

mkdir -p "$T/fakebin"
cat >"$T/fakebin/bwrap" <<EOF
#!/bin/sh
[ "\$(id -u)" = 0 ] || { echo "bwrap (stand-in): no user namespaces for uid \$(id -u)" >&2; exit 1; }
exec "$REAL" "\$@"
EOF
chmod 755 "$T/fakebin" "$T/fakebin/bwrap"
# a user's bwrap sandbox from before, when bwrap ran for users
start_fs -o allow_other,default_permissions
as "$U1" mkdir "$M/sandboxes/old" || fail "$U1 cannot make a sandbox"
is_sb_field old isolation bwrap || fail "sandbox old: isolation $(sb_field old isolation), want bwrap"
stop_fs

PATH=$T/fakebin:$PATH start_fs -o allow_other,default_permissions
grep -q 'bubblewrap cannot run as an ordinary user here' "$T/daemon.log" \
  || fail "the daemon did not say that users get no bwrap: $(cat "$T/daemon.log")"

user_submit() {
  printf '%s\n' "$2" >"$T/$1.json"
  chmod 644 "$T/$1.json"
  as "$U1" cp "$T/$1.json" "$M/plans/$1.json" 2>"$T/cp.err"
}
# a user's plan: isolation none by default
user_submit udef "$(plan '{}' "$(step s 'id -u')")" || fail "$U1 could not submit udef: $(cat "$T/cp.err")"
expect_run udef-1 succeeded 20
is_sb_field udef-1 isolation none || fail "a user's default isolation is $(sb_field udef-1 isolation), want none"
# asking for bwrap: refused, with the reason
if user_submit ubox "$(plan '{"sandbox": {"isolation": "bwrap"}}' "$(step s true)")"; then
  fail "a user's plan asking for bwrap was accepted where bwrap cannot run as the user"
fi
grep -q 'Invalid argument' "$T/cp.err" || fail "want EINVAL, got: $(cat "$T/cp.err")"
grep -q 'sandbox.isolation "bwrap" is not available here: bubblewrap cannot run as an unprivileged user here' \
  "$M/plans/ubox.error" || fail "plans/ubox.error says: $(cat "$M/plans/ubox.error" 2>&1)"
# a sandbox the user makes by mkdir: none too
as "$U1" mkdir "$M/sandboxes/umk" || fail "$U1 cannot make a sandbox"
is_sb_field umk isolation none || fail "a user's mkdir'd sandbox got isolation $(sb_field umk isolation)"
# the old bwrap sandbox: its steps do not start (never unconfined behind the user's back)
user_submit uold "$(plan '{"sandbox": {"id": "old"}}' "$(step s 'echo ran')")" || fail "$U1 could not submit uold: $(cat "$T/cp.err")"
expect_run uold-1 failed 20
expect_field uold-1 s '.reason == "spawn_failed"'
grep -q 'cannot start the step: bubblewrap cannot run as an unprivileged user here' "$M/runs/uold-1/steps/s/log" \
  || fail "uold-1: the log does not say why: $(cat "$M/runs/uold-1/steps/s/log" 2>&1)"
# root's plans are still sandboxed
must_submit rdef "$(plan '{}' "$(step s 'test -w /etc && exit 1; exit 0')")"
expect_run rdef-1 succeeded 20
is_sb_field rdef-1 isolation bwrap || fail "root's default isolation is $(sb_field rdef-1 isolation), want bwrap"
stop_fs
echo ok
