#!/usr/bin/env bash
# Where a step runs and what it sees (issue 12, findings 10 and 11), with a
# real user:
#  - "cwd" is relative to the workspace and stays inside it: "../../..",
#    "/etc" and "${WORKSPACE}/x" are refused at submission (EINVAL, the
#    reason in plans/NAME.error); a symlink in the workspace that leads
#    outside it, used as cwd, makes the attempt fail to start (spawn_failed,
#    exit 126, the reason in the step's log) instead of running there; one
#    that stays inside is followed. For root's and a user's steps, with and
#    without bubblewrap.
#  - another FUSE mount of the host (a second orchfs, allow_other, where the
#    user can reach it: not under /tmp, which a sandbox has its own of) is
#    an empty directory from inside a bwrap step, root's or the user's.
. "$(dirname "$0")/lib.sh"
need_root_users
new_user U1

# the second FUSE mount, outside /tmp, reachable by everyone
R=$(mktemp -d /var/lib/orchfs-e2e-fuse.XXXXXX) || fail "mktemp under /var/lib"
chmod 755 "$R"
mkdir -p "$R/state" "$R/mnt"
OPID=""
cleanup_other() {
  [ -z "$OPID" ] || { kill "$OPID" 2>/dev/null; wait "$OPID" 2>/dev/null; }
  mountpoint -q "$R/mnt" && fusermount3 -uz "$R/mnt"
  rm -rf "$R"
}
trap 'rc=$?; cleanup_other; (exit $rc); _e2e_exit' EXIT

start_fs -o allow_other,default_permissions
"$ORCHFS" -f --state "$R/state" -o allow_other "$R/mnt" >>"$T/other.log" 2>&1 &
OPID=$!
echo "$OPID" >>"$T/dpids"
wait_for 20 test -d "$R/mnt/plans" || fail "the second orchfs did not mount: $(tail -3 "$T/other.log")"
as "$U1" ls "$R/mnt" >/dev/null || fail "$U1 cannot see the second mount from outside (so the check below means nothing)"

problems=()
bad() { problems+=("$*"); }

# user_submit NAME JSON: submit as U1; returns cp's status (stderr in $T/cp.err)
user_submit() {
  printf '%s\n' "$2" >"$T/$1.json"
  chmod 644 "$T/$1.json"
  as "$U1" cp "$T/$1.json" "$M/plans/$1.json" 2>"$T/cp.err"
}

# ---- cwd refused at submission, for root and for the user
for who in root user; do
  for cwd in '../../..' '/etc' 'sub/../..' '${WORKSPACE}/x'; do
    p=$(plan '{}' "$(step s pwd "$(jq -cn --arg c "$cwd" '{cwd: $c}')")")
    if [ $who = root ]; then submit "bad$who" "$p"; else user_submit "bad$who" "$p"; fi && {
      bad "$who: a plan with cwd $cwd was accepted"; continue; }
    grep -q 'Invalid argument' "$T/cp.err" || bad "$who: cwd $cwd: want EINVAL, got: $(cat "$T/cp.err")"
    err=$(cat "$M/plans/bad$who.error" 2>&1)
    case $err in
      *'step "s": "cwd" must '*) ;;
      *) bad "$who: cwd $cwd: plans/bad$who.error says: $err" ;;
    esac
  done
done
ls "$M/runs" | grep -q '^bad' && bad "a run of a refused plan exists: $(ls "$M/runs")"

# ---- symlinks in the workspace as cwd; the FUSE mount from inside
# mk makes them; "in" (a link inside) runs there; "out" (a link to /etc) and
# "up" (a relative one that climbs out) do not start
STEPS=(
  "$(step mk 'mkdir -p sub && ln -s /etc out && ln -s ../.. up && ln -s sub in')"
  "$(step in 'pwd >../where.txt' '{"cwd": "in", "depends_on": ["mk"]}')"
  "$(step out 'echo ran >escaped.txt; pwd' '{"cwd": "out", "depends_on": ["mk"], "on_failure": "continue", "critical": false}')"
  "$(step up 'echo ran >escaped.txt; pwd' '{"cwd": "up", "depends_on": ["mk"], "on_failure": "continue", "critical": false}')"
  "$(step fuse 'ls -A "$OTHER" | tr "\n" " " >fuse.txt; echo end >>fuse.txt' '{"depends_on": ["mk"]}')"
)
for iso in none bwrap; do
  top=$(jq -cn --arg i "$iso" --arg o "$R/mnt" '{env: {OTHER: $o}, sandbox: {isolation: $i}}')
  must_submit "r$iso" "$(plan "$top" "${STEPS[@]}")"
  user_submit "u$iso" "$(plan "$top" "${STEPS[@]}")" || fail "$U1 could not submit u$iso: $(cat "$T/cp.err")"
done
for r in rnone-1 rbwrap-1 unone-1 ubwrap-1; do
  wait_for 30 run_finished "$r" || fail "run $r did not finish (state: $(run_state "$r"))"
  W=$(ws "$r")
  is_step_state "$r" mk succeeded || bad "$r: mk did not succeed: $(cat "$M/runs/$r/steps/mk/log")"
  [ "$(cat "$W/where.txt" 2>&1)" = "$W/sub" ] || bad "$r: cwd \"in\" (a link to sub) ran in: $(cat "$W/where.txt" 2>&1)"
  for s in out up; do
    jq -e '.state == "failed" and .reason == "spawn_failed" and .exit_code == 126' "$M/runs/$r/steps/$s/status" >/dev/null \
      || bad "$r: step $s (cwd through a link out of the workspace) did not fail to start: $(tr -s ' \n' ' ' <"$M/runs/$r/steps/$s/status")"
    grep -q "cwd \"$s\" leads outside the workspace" "$M/runs/$r/steps/$s/log" 2>/dev/null \
      || bad "$r: step $s: the log does not say why: $(cat "$M/runs/$r/steps/$s/log" 2>&1)"
  done
  [ ! -e /etc/escaped.txt ] || { rm -f /etc/escaped.txt; bad "$r: a step ran in /etc"; }
  up=$(dirname "$(dirname "$W")")/escaped.txt
  [ ! -e "$up" ] || { rm -f "$up"; bad "$r: a step ran above its workspace"; }
done
# bwrap steps see nothing of the other FUSE mount; unconfined ones do
for r in rbwrap-1 ubwrap-1; do
  [ "$(cat "$(ws "$r")/fuse.txt" 2>&1)" = end ] || bad "$r: the other FUSE mount is not hidden from a bwrap step: $(cat "$(ws "$r")/fuse.txt" 2>&1)"
done
for r in rnone-1 unone-1; do
  grep -q plans "$(ws "$r")/fuse.txt" || bad "$r: an unconfined step does not see the other mount (so the check above means nothing): $(cat "$(ws "$r")/fuse.txt" 2>&1)"
done

stop_fs
if [ ${#problems[@]} -gt 0 ]; then
  printf '  %s\n' "${problems[@]}" >&2
  fail "${#problems[@]} problem(s), above"
fi
echo ok
