#!/usr/bin/env bash
# Per-user limits stay right when a change is undone (README "Limits"). A
# rename onto an existing NAME.json submits the plan and drops the file it
# replaces, together or not at all; a plan that is refused only once its
# variables are substituted (here a cwd of "${WORKSPACE}", absolute) undoes
# both. The file replaced is then still there, and must still count against
# its owner: before, each such rename took one file (and its bytes) off the
# owner's count, so that a user could hold any number of files in plans/.
. "$(dirname "$0")/lib.sh"
need_root_users
new_user U1

EDQ='Disk quota exceeded'
echo '{"limits": {"plan_files": 3, "plan_bytes": 4096}}' >"$T/cfg.json"
start_fs -o allow_other,default_permissions --config "$T/cfg.json"

bad=$(plan '{}' "$(step a true)" | jq -c '.steps[0].cwd = "${WORKSPACE}"')
printf '%s\n' "$bad" >"$T/bad.src"; chmod 0644 "$T/bad.src"
as $U1 cp "$T/bad.src" "$M/plans/bad.txt" || fail "$U1 cannot make bad.txt"
as $U1 sh -c "echo '{}' >'$M/plans/b.json'" 2>/dev/null    # refused as a plan; the file stays
[ -e "$M/plans/b.json" ] || fail "b.json was not made"
# the rename is refused once substituted, and changes nothing
for i in 1 2 3; do
  as $U1 python3 -c 'import os, sys; os.rename(sys.argv[1], sys.argv[2])' "$M/plans/bad.txt" "$M/plans/b.json" \
    2>"$T/err" && fail "the rename of a plan with an absolute cwd was accepted"
  grep -q 'Invalid argument' "$T/err" || fail "rename $i: want EINVAL, got: $(cat "$T/err")"
  [ -e "$M/plans/bad.txt" ] && [ -e "$M/plans/b.json" ] || fail "rename $i: a refused rename moved or dropped a file"
done
grep -q 'after substitution' "$M/plans/b.error" || fail "b.error: $(cat "$M/plans/b.error")"
# U1 holds 2 files: one more fits, the fourth does not
as $U1 touch "$M/plans/c.txt" || fail "a third file of $U1 was refused"
as $U1 touch "$M/plans/d.txt" 2>"$T/err" && fail "$U1 holds 4 files in plans/ past limits.plan_files 3"
grep -q "$EDQ" "$T/err" || fail "the fourth file: want EDQUOT, got: $(cat "$T/err")"
# and the bytes too: bad.txt and b.json still count
used=$(( $(stat -c %s "$M/plans/bad.txt") + $(stat -c %s "$M/plans/b.json") ))
head -c $((4096 - used + 1)) /dev/zero | as $U1 sh -c "cat >>'$M/plans/c.txt'" 2>"$T/err" \
  && fail "$U1 wrote past limits.plan_bytes 4096"
grep -q "$EDQ" "$T/err" || fail "past plan_bytes: want EDQUOT, got: $(cat "$T/err")"
stop_fs
