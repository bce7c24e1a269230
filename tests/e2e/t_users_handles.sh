#!/usr/bin/env bash
# Who acts through an open file (issue 12, finding 2): the handle's identity,
# never the uid of the request that happens to flush it. A user who opened
# plans/x.json, wrote a plan and passed the descriptor (SCM_RIGHTS) to a root
# process that closed it first got a run owned by root, running as root.
# Now: the opener's identity is recorded at open; a user's write through a
# handle root opened makes it that user's; another user's write through a
# user's handle is refused (EACCES); a shared writable mapping of a plan
# file, whose pages the kernel writes back as no one, is refused (ENODEV);
# a plan file a user owns is submitted by that user only (EACCES for root's
# or another user's close after writing into it).
# Checked with the kernel's checks (default_permissions) and with orchfs's own.
. "$(dirname "$0")/lib.sh"
need_root_users
new_user U1
new_user U2
uid1=$(id -u "$U1")

FD=$T/fdpass.py
cp "$(dirname "$0")/fdpass.py" "$FD" && chmod 0644 "$FD"
mkdir -p "$T/sock" && chmod 1777 "$T/sock"
p=$(plan '{}' "$(step who 'id -u')")
printf '%s\n' "$p" >"$T/who.json" && chmod 0644 "$T/who.json"
printf 'hi from a stranger\n' >"$T/msg.txt" && chmod 0644 "$T/msg.txt"

run_as() { local u=$1; shift; if [ "$u" = root ]; then "$@"; else as "$u" "$@"; fi; }
n=0
# pass_fd GIVER TAKER PATH MODE GIVE_DATA ACTION [ACTION_DATA]: GIVER opens
# PATH (writing GIVE_DATA unless "-") and hands the descriptor to TAKER, who
# does ACTION (fdpass.py); then the giver closes, then the taker (unless its
# ACTION closed first). Their reports: $T/give.out, $T/take.out.
pass_fd() {
  local giver=$1 taker=$2 path=$3 mode=$4 gdata=$5 action=$6 adata=${7:-} sock tp
  n=$((n + 1)); sock=$T/sock/s$n
  run_as "$taker" python3 "$FD" take "$sock" "$action" $adata >"$T/take.out" 2>&1 &
  tp=$!
  wait_for 20 test -S "$sock" || fail "the taker did not listen: $(cat "$T/take.out")"
  [ "$gdata" = - ] && gdata=
  run_as "$giver" python3 "$FD" give "$sock" "$path" "$mode" $gdata >"$T/give.out" 2>&1 \
    || fail "the giver failed: $(cat "$T/give.out")"
  wait "$tp" || fail "the taker failed: $(cat "$T/take.out")"
}
said() { grep -qx "$2" "$T/$1.out"; }

for opts in allow_other,default_permissions allow_other; do
  note "--- -o $opts"
  start_fs -o "$opts"

  # U1 writes a plan and passes the descriptor to root, which closes first:
  # the FLUSH comes with uid 0, the run is U1's all the same
  pass_fd "$U1" root "$M/plans/ida.json" w "$T/who.json" close
  said give "write: ok" || fail "$opts: $U1 could not write its plan: $(cat "$T/give.out")"
  said take "close: ok" || fail "$opts: root's close (the submitting one) failed: $(cat "$T/take.out")"
  said give "close: ok" || fail "$opts: $U1's close failed: $(cat "$T/give.out")"
  [ -d "$M/runs/ida-1" ] || fail "$opts: no run ida-1"
  [ ! -e "$M/runs/ida-2" ] || fail "$opts: the plan was submitted twice"
  [ "$(stat -c %u "$M/runs/ida-1")" = "$uid1" ] || fail "$opts: runs/ida-1 is owned by uid $(stat -c %u "$M/runs/ida-1"), not $U1 ($uid1): the closer's uid was taken"
  [ "$(stat -c %u "$M/sandboxes/ida-1")" = "$uid1" ] || fail "$opts: the run's sandbox is not $U1's"
  expect_run ida-1 succeeded 20
  grep -qx "$uid1" "$M/runs/ida-1/steps/who/log" || fail "$opts: the step did not run as $U1 ($uid1): $(cat "$M/runs/ida-1/steps/who/log")"

  # root opens, U1 writes through the handle, root closes first: U1's run
  pass_fd root "$U1" "$M/plans/idb.json" w - write "$T/who.json"
  said take "write: ok" || fail "$opts: $U1 could not write through root's handle: $(cat "$T/take.out")"
  said give "close: ok" || fail "$opts: root's close (the submitting one) failed: $(cat "$T/give.out")"
  [ -d "$M/runs/idb-1" ] && [ ! -e "$M/runs/idb-2" ] || fail "$opts: want exactly one run idb-1: $(ls "$M/runs")"
  [ "$(stat -c %u "$M/runs/idb-1")" = "$uid1" ] || fail "$opts: runs/idb-1 is owned by uid $(stat -c %u "$M/runs/idb-1"), not $U1 ($uid1), who wrote the plan"
  expect_run idb-1 succeeded 20
  grep -qx "$uid1" "$M/runs/idb-1/steps/who/log" || fail "$opts: the step written by $U1 ran as $(cat "$M/runs/idb-1/steps/who/log")"

  # U2 may not write through U1's handle: nothing of U2's runs as U1
  pass_fd "$U1" "$U2" "$M/plans/idc.json" w - write "$T/who.json"
  said take "write: EACCES" || fail "$opts: $U2's write through $U1's handle: want EACCES, got: $(cat "$T/take.out")"
  [ ! -e "$M/runs/idc-1" ] || fail "$opts: $U2's bytes were submitted through $U1's handle"
  [ ! -s "$M/plans/idc.json" ] || fail "$opts: $U2's write through $U1's handle reached the file"

  # a shared writable mapping of a plan file: its pages would come back as no one (uid 0)
  pass_fd root "$U1" "$M/plans/idd.json" rw - mmap "$T/who.json"
  said take "mmap: ok" && fail "$opts: a plan file opened for writing could be mapped shared and writable"
  if [ -e "$M/runs/idd-1" ]; then
    [ "$(stat -c %u "$M/runs/idd-1")" = "$uid1" ] || fail "$opts: bytes written through a mapping by $U1 ran as uid $(stat -c %u "$M/runs/idd-1")"
  fi

  # a plan file a user owns is the user's to change up to the close that
  # submits it: root (or another user) writing into it through a handle of
  # its own submits nothing; the close fails with EACCES and NAME.error says why
  as "$U1" sh -c "umask 0; : >'$M/plans/ide.json'" || fail "$opts: $U1 cannot make plans/ide.json"
  [ "$(stat -c %a "$M/plans/ide.json")" = 666 ] || fail "$opts: plans/ide.json is mode $(stat -c %a "$M/plans/ide.json")"
  cp "$T/who.json" "$M/plans/ide.json" 2>"$T/cp.err" && fail "$opts: root's cp onto $U1's plans/ide.json submitted it"
  grep -q 'Permission denied' "$T/cp.err" || fail "$opts: root's cp onto $U1's plan file: want EACCES, got: $(cat "$T/cp.err")"
  grep -q "belongs to uid $uid1" "$M/plans/ide.error" || fail "$opts: plans/ide.error: $(cat "$M/plans/ide.error" 2>&1)"
  as "$U2" cp "$T/who.json" "$M/plans/ide.json" 2>"$T/cp.err" && fail "$opts: $U2's cp onto $U1's plans/ide.json submitted it"
  grep -q 'Permission denied' "$T/cp.err" || fail "$opts: $U2's cp onto $U1's plan file: want EACCES, got: $(cat "$T/cp.err")"
  [ ! -e "$M/runs/ide-1" ] || fail "$opts: a plan file of $U1's was submitted by another user"
  as "$U1" cp "$T/who.json" "$M/plans/ide.json" || fail "$opts: $U1 cannot submit its own plan file"
  [ "$(stat -c %u "$M/runs/ide-1")" = "$uid1" ] || fail "$opts: runs/ide-1 is not $U1's"
  [ ! -e "$M/plans/ide.error" ] || fail "$opts: plans/ide.error stayed after a valid submission"

  # messages: the same rules for lines (they are recorded as the handle's identity)
  as "$U1" mkdir "$M/sandboxes/idm" || fail "$opts: $U1 cannot make a sandbox"
  pass_fd "$U1" "$U2" "$M/sandboxes/idm/messages" a - write "$T/msg.txt"
  said take "write: EACCES" || fail "$opts: $U2's write through $U1's messages handle: want EACCES, got: $(cat "$T/take.out")"
  ! grep -q stranger "$M/sandboxes/idm/messages" || fail "$opts: $U2's message went into $U1's sandbox"
  pass_fd root "$U1" "$M/sandboxes/idm/messages" a - write "$T/msg.txt"
  said take "write: ok" || fail "$opts: $U1's write through root's messages handle failed: $(cat "$T/take.out")"
  grep -q stranger "$M/sandboxes/idm/messages" || fail "$opts: $U1's message through root's handle is missing"

  stop_fs
  rm -rf "$S"   # the next round starts from nothing (ida-1 again)
done
