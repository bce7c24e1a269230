#!/usr/bin/env bash
# A user whose uid is above 2^31 (valid on Linux: uid_t is 32 bits; some
# directory services map users there) runs steps as themself: the step
# trampoline takes every uid and gid but (uid_t)-1. (Not under bubblewrap:
# bubblewrap 0.8, run as such a user, cannot write its user namespace's
# uid map.)
. "$(dirname "$0")/lib.sh"
need_root_users
U1="ofs$$hi"
userdel -f "$U1" >/dev/null 2>&1
useradd -M -u $((3000000000 + $$ % 100000)) -s /bin/sh "$U1" 2>/dev/null || { note "useradd -u 3000000000+: not here: skipped"; exit 77; }
E2E_USERS+=("$U1")
uid1=$(id -u "$U1")
[ "$uid1" -gt 2147483647 ] || fail "useradd gave $U1 uid $uid1"
start_fs -o allow_other,default_permissions
for iso in none; do
  printf '%s\n' "$(plan "{\"sandbox\": {\"isolation\": \"$iso\"}}" "$(step s 'id -u >uid.txt')")" >"$T/$iso.json"
  chmod 644 "$T/$iso.json"
  as "$U1" cp "$T/$iso.json" "$M/plans/$iso.json" 2>"$T/cp.err" || fail "$U1 could not submit $iso: $(cat "$T/cp.err")"
  wait_for 20 run_finished "$iso-1" || fail "$iso-1 did not finish"
  is_run_state "$iso-1" succeeded || fail "$iso-1 ended $(run_state "$iso-1"): $(cat "$M/runs/$iso-1/steps/s/log" 2>&1)"
  [ "$(cat "$(ws "$iso-1")/uid.txt")" = "$uid1" ] || fail "$iso-1 ran as $(cat "$(ws "$iso-1")/uid.txt"), not $uid1"
done
stop_fs
echo ok
