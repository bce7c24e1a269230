#!/usr/bin/env bash
# The engine's thread spawns a command itself once a spawner thread found it
# trusted (core/proc.c proc_exe_trusted: root's all the way down, on local
# file systems). An exec that touches the mount would then wait for the
# engine forever. Commands, PATH entries and workspaces reached through the
# mount must still start, every time, trusted or not.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || { note "skipped: needs root (a root-owned state directory)"; exit 0; }

# the state directory and the mountpoint both under a root-owned path, so
# that the walk reaches the mount itself (its type, and the world-writable
# sandboxes/, each refuse it); tests/test_spawner.c checks them one by one
R=$(mktemp -d /var/lib/orchfs-e2e-spawn.XXXXXX) || fail "mktemp under /var/lib"
chmod 755 "$R"
S=$R/state M=$R/mnt
mkdir -p "$S" "$M"
cleanup_root() { mountpoint -q "$M" && fusermount3 -uz "$M"; rm -rf "$R"; }
trap 'cleanup_root' EXIT
start_fs

# the sandbox, made by a plan (isolation "none": bubblewrap would hide the
# mount from the steps), with copies of true and pwd in its workspace
must_submit setup "$(plan '{"sandbox": {"id": "sp", "isolation": "none"}}' \
  "$(step cp 'cp /bin/true mytrue && cp /bin/pwd mypwd && chmod 755 mytrue mypwd')")"
expect_run setup-1 succeeded 20
W=$(ws sp)
[ -x "$W/mytrue" ] && [ -x "$W/mypwd" ] || fail "no copies in the workspace $W"
VIA=$M/sandboxes/sp/workspace   # a symlink in the mount to $W

# a chain of steps: the first goes through a spawner thread, the later ones
# find the command trusted
chain() { # NAME COMMAND [EXTRA_JSON]
  local x='{}'; [ $# -lt 3 ] || x=$3
  local steps=() prev=""
  for i in 1 2 3 4 5 6; do
    steps+=("$(jq -cn --arg id "s$i" --arg c "$2" --arg p "$prev" --argjson x "$x" \
      '{id: $id, command: $c} + (if $p == "" then {} else {depends_on: [$p]} end) + $x')")
    prev=s$i
  done
  plan '{"sandbox": {"id": "sp", "isolation": "none"}}' "${steps[@]}"
}

# the command named by a path through the mount's workspace symlink
must_submit viamount "$(chain viamount "$VIA/mytrue")"
expect_run viamount-1 succeeded 30

# found along a PATH entry in the mount
must_submit viapath "$(chain viapath mytrue "{\"env\": {\"PATH\": \"$VIA:/usr/bin:/bin\"}}")"
expect_run viapath-1 succeeded 30

# a trusted command with a cwd of its own (beneath the workspace: never in
# the mount, but found by a spawner thread all the same)
mkdir -p "$W/sub"
must_submit cwdsub "$(chain cwdsub "$W/mypwd" '{"cwd": "sub"}')"
expect_run cwdsub-1 succeeded 30
[ "$(tail -n 1 "$M/runs/cwdsub-1/steps/s6/log")" = "$W/sub" ] ||
  fail "a step with cwd sub ran in: $(cat "$M/runs/cwdsub-1/steps/s6/log")"

# the same commands from the workspace itself, which is trusted: still right
must_submit direct "$(chain direct "$W/mypwd")"
expect_run direct-1 succeeded 30
[ "$(tail -n 1 "$M/runs/direct-1/steps/s6/log")" = "$W" ] ||
  fail "a step of the workspace ran in: $(cat "$M/runs/direct-1/steps/s6/log")"

# a workspace replaced by a symlink into the mount: the engine does not
# follow it itself, and the step still runs there
mv "$W" "$W.real" && ln -s "$M/sandboxes/sp" "$W" || fail "replace the workspace by a symlink"
must_submit swapped "$(chain swapped pwd)"
expect_run swapped-1 succeeded 30
[ "$(tail -n 1 "$M/runs/swapped-1/steps/s6/log")" = "$M/sandboxes/sp" ] ||
  fail "a step of a swapped workspace ran in: $(cat "$M/runs/swapped-1/steps/s6/log")"
rm "$W" && mv "$W.real" "$W" || fail "restore the workspace"

stop_fs
echo ok
