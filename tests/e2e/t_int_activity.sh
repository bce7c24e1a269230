#!/usr/bin/env bash
# Workspace activity (SPEC 11), with real inotify: files a step writes, a
# directory it makes after watching began and the files in it (also those
# written before orchfs watched the new directory) become workspace.changed
# events with their paths relative to the workspace, at most one a second
# (consecutive ts at least 1 s apart); status shows activity {last_at,
# changes}; watching stops when the run ends (the daemon's inotify instance
# holds no watch then, and a file written meanwhile is never reported);
# watching starts again with the next run, existing subdirectories included.
# A hostile workspace (a symlink out of it, a symlink loop, a FUSE mount
# whose daemon is stopped) neither stalls the daemon nor reports anything
# from outside; a directory renamed inside it is reported under its new
# name, one moved out of it is no longer watched; past ORCHFS_ACTIVITY_MAX_WATCHES the rest is not watched,
# logged and counted, and the step runs as ever.
. "$(dirname "$0")/lib.sh"
start_fs

# inotify watches the daemon holds now
watches() {
  local f
  for f in /proc/"$DPID"/fd/*; do
    [ "$(readlink "$f" 2>/dev/null)" = "anon_inode:inotify" ] || continue
    grep -c '^inotify wd:' "/proc/$DPID/fdinfo/${f##*/}"
    return
  done
  echo 0
}
has_watches() { [ "$(watches)" "$1" "$2" ]; }
changed_paths() { jq -rs '[.[] | select(.type == "workspace.changed") | .event_data.paths[]] | unique | .[]' "$M/sandboxes/$1/events"; }
has_path() { changed_paths "$1" | grep -qxF -- "$2"; }
# the ts of consecutive workspace.changed of sandbox $1 are at least 1 s apart
spaced() {
  jq -rs '.[] | select(.type == "workspace.changed") | .ts' "$M/sandboxes/$1/events" | python3 -c '
import sys, datetime
ts = [datetime.datetime.strptime(l.strip(), "%Y-%m-%dT%H:%M:%S.%fZ") for l in sys.stdin if l.strip()]
gaps = [(b - a).total_seconds() for a, b in zip(ts, ts[1:])]
bad = [g for g in gaps if g < 1.0]
sys.exit("gaps under a second: %s" % bad if bad else 0)'
}

# ---- a step's files, a new directory and what is in it
w='for i in 1 2 3; do echo $i >f$i; done
mkdir sub; echo x >sub/g
sleep 1.2; echo y >sub/h; mkdir -p d1/d2; echo z >d1/d2/deep
for i in $(seq 40); do echo $i >>log.txt; sleep 0.05; done'
must_submit wa "$(plan '{"sandbox": {"id": "wa"}}' "$(step w "$w")")"
expect_run wa-1 succeeded
for p in f1 f2 f3 sub sub/g sub/h d1 d1/d2 d1/d2/deep log.txt; do
  has_path wa "$p" || fail "no workspace.changed names $p: $(changed_paths wa | tr '\n' ' ')"
done
[ "$(count_events "$M/sandboxes/wa/events" workspace.changed)" -ge 2 ] || fail "a 3-second step of changes made one event"
spaced wa || fail "workspace.changed more often than once a second: $(jq -c 'select(.type == "workspace.changed") | .ts' "$M/sandboxes/wa/events" | tr '\n' ' ')"
[ "$(count_events "$M/runs/wa-1/events" workspace.changed)" -ge 1 ] || fail "the run's events have no workspace.changed"
jq -se '[.[] | select(.type == "workspace.changed") | .event_data | (.paths | length) <= 100 and .count >= (.paths | length)] | all' \
  "$M/sandboxes/wa/events" >/dev/null || fail "an event's paths and count disagree"
sum=$(jq -s '[.[] | select(.type == "workspace.changed") | .event_data.count] | add' "$M/sandboxes/wa/events")
wait_for 20 bash -c "[ \"\$(jq .activity.changes '$M/sandboxes/wa/status')\" = $sum ]" \
  || fail "status activity.changes $(sb_field wa activity.changes), the events count $sum"
last=$(jq -rs '[.[] | select(.type == "workspace.changed")] | last | .ts' "$M/sandboxes/wa/events")
[ "$(sb_field wa activity.last_at)" = "$last" ] || fail "activity.last_at $(sb_field wa activity.last_at), the last event's ts $last"

# ---- watching stops when the run ends: no watch left, nothing reported
wait_for 20 is_sb_field wa activity.watching false || fail "still watching after the run: $(st=$(cat "$M/sandboxes/wa/status"); jq -c .activity <<<"$st")"
wait_for 20 has_watches -eq 0 || fail "the daemon still holds $(watches) inotify watches"
W=$(ws wa)
echo quiet >"$W/unwatched.txt"

# ---- the next run watches again, subdirectories made before included
must_submit wb "$(plan '{"sandbox": {"id": "wa"}}' "$(step w 'while [ ! -e go ]; do sleep 0.05; done; echo n >sub/new; echo n >d1/d2/new2; sleep 1.2')")"
# root, sub, d1, d1/d2: then the step may go on
wait_for 20 has_watches -ge 4 || fail "the workspace's directories are not watched: $(watches) watches"
touch "$W/go"
expect_run wb-1 succeeded
for p in sub/new d1/d2/new2; do has_path wa "$p" || fail "no workspace.changed names $p (an existing directory)"; done
has_path wa unwatched.txt && fail "a file written while nothing ran was reported"
spaced wa || fail "workspace.changed more often than once a second"

# ---- a hostile workspace: a symlink out, a loop, a stalled FUSE mount
must_submit hb0 "$(plan '{"sandbox": {"id": "hb", "isolation": "none"}}' "$(step w true)")"
expect_run hb0-1 succeeded
wait_for 20 is_sb_field hb activity.watching false || fail "hb is still watched after its run"
HW=$(ws hb)
mkdir -p "$T/outside/secret" "$HW/fuse" "$HW/real"
ln -s "$T/outside" "$HW/out"
ln -s . "$HW/real/loop"
"$ORCHFS" -f --state "$T/state2" "$HW/fuse" >>"$T/daemon2.log" 2>&1 &
F2=$!
echo "$F2" >>"$T/dpids"
wait_for 20 mountpoint -q "$HW/fuse" || fail "the inner orchfs did not mount"
resume_inner() { kill -CONT "$F2" 2>/dev/null; fusermount3 -u "$HW/fuse" 2>/dev/null; }
trap 'resume_inner' EXIT
kill -STOP "$F2"
must_submit hb "$(plan '{"sandbox": {"id": "hb", "isolation": "none"}}' \
  "$(step w 'echo a >a.txt; mkdir newdir; echo b >newdir/b.txt; while [ ! -e done ]; do sleep 0.05; done; echo c >real/c.txt; sleep 1.2')")"
wait_for 20 is_sb_field hb activity.watching true || fail "hb is not watched"
echo leak >"$T/outside/secret/leak.txt"
timeout 10 cat "$M/README" >/dev/null || fail "the mount does not answer while a FUSE mount in a workspace is stalled"
wait_for 20 has_path hb newdir/b.txt || fail "hb: no workspace.changed names newdir/b.txt"
# a directory renamed inside the workspace keeps its watch under its new
# name; one moved out of it is no longer watched (its watch goes)
n0=$(watches)
mkdir "$HW/real/mv1" "$HW/real/ren1"
wait_for 20 has_watches -ge $((n0 + 2)) || fail "new directories are not watched: $(watches) watches, $n0 before"
mv "$HW/real/mv1" "$T/moved"
mv "$HW/real/ren1" "$HW/real/ren2"
wait_for 20 has_watches -eq $((n0 + 1)) || fail "a directory moved out is still watched: $(watches) watches, $n0 before"
echo x >"$T/moved/after.txt"
echo y >"$HW/real/ren2/y.txt"
touch "$HW/done"
expect_run hb-1 succeeded 30
for p in a.txt newdir newdir/b.txt real/c.txt real/ren2/y.txt; do has_path hb "$p" || fail "hb: no workspace.changed names $p"; done
changed_paths hb | grep -E '^(out|fuse)/|leak|secret|real/loop/|after\.txt|ren1/' && fail "hb: reported what is outside the workspace"
[ "$(sb_field hb activity.unwatched)" -ge 1 ] || fail "the FUSE mount is not counted as unwatched: $(jq -c .activity "$M/sandboxes/hb/status")"
kill -CONT "$F2"
fusermount3 -u "$HW/fuse" || fail "cannot unmount the inner orchfs"
wait "$F2" 2>/dev/null
trap - EXIT

# ---- past the limit of watches: logged, counted, the step runs
stop_fs
ORCHFS_ACTIVITY_MAX_WATCHES=2 start_fs
must_submit lim "$(plan '{}' "$(step w 'mkdir -p a/b/c d e; sleep 0.5; echo x >a/b/c/x; echo y >e/y; sleep 1.2')")"
expect_run lim-1 succeeded
wait_for 20 bash -c "[ \"\$(jq .activity.unwatched '$M/sandboxes/lim-1/status')\" -ge 2 ]" \
  || fail "directories past the limit are not counted: $(jq -c .activity "$M/sandboxes/lim-1/status")"
grep -q 'sandbox lim-1: some directories of its workspace are not watched: it has 2 watches, ORCHFS_ACTIVITY_MAX_WATCHES' "$T/daemon.log" \
  || fail "the limit was not logged: $(grep activity "$T/daemon.log" | tail -3)"
has_path lim-1 a || fail "what is watched is still reported"
stop_fs
