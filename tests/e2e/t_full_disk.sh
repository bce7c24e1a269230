#!/usr/bin/env bash
# A full disk (issue 5): with the state directory on a small tmpfs filled up,
# acknowledged changes fail with ENOSPC and change nothing, what was
# acknowledged before is all there, reads go on; once there is room again
# everything works, and a restart finds the store intact.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || { note "needs root to mount a tmpfs: skipped"; exit 77; }
S=$T/small
mkdir -p "$S"
mount -t tmpfs -o size=24m tmpfs "$S" || { note "cannot mount a tmpfs: skipped"; exit 77; }
trap 'end_case 2>/dev/null; umount -l "$S" 2>/dev/null' EXIT
export ORCHFS_DISK_RESERVE=$((1 << 20))
start_fs

mkdir "$M/sandboxes/box" || fail "mkdir failed"
for i in $(seq 1 20); do echo "before $i" >>"$M/sandboxes/box/messages" || fail "append $i failed"; done
must_submit ok "$(plan '{"sandbox": {"isolation": "none"}}' "$(step s 'echo fine')")"
expect_run ok-1 succeeded

# a step that ends while the disk is full: recording that fails, and must be
# done again once there is room
# (it ends once the test has filled the disk: the file $T/late.go, outside it)
must_submit late "$(plan '{"sandbox": {"isolation": "none"}}' "$(step s "while [ ! -e '$T/late.go' ]; do sleep 0.05; done; echo done")")"
wait_for 20 is_step_state late-1 s running || fail "late never ran"

# fill the disk, to the last block
dd if=/dev/zero of="$S/filler" bs=64k 2>/dev/null
dd if=/dev/zero of="$S/filler2" bs=4k 2>/dev/null
dd if=/dev/zero of="$S/filler3" bs=512 2>/dev/null
touch "$T/late.go"
expect_run late-1 succeeded 20   # memory knows; the store could not take it yet
[ "$(df --output=avail -B1 "$S" | tail -1)" -lt $((1 << 20)) ] || fail "the tmpfs did not fill"

echo "during" >>"$M/sandboxes/box/messages" 2>"$T/err" && fail "an append was acknowledged on a full disk"
grep -q 'No space left on device' "$T/err" || fail "append: want ENOSPC, got: $(cat "$T/err")"
echo '{"event_type":"x"}' >>"$M/sandboxes/box/events" 2>"$T/err" && fail "an event was acknowledged on a full disk"
grep -q 'No space left on device' "$T/err" || fail "event: want ENOSPC, got: $(cat "$T/err")"
mkdir "$M/sandboxes/nope" 2>"$T/err" && fail "mkdir succeeded on a full disk"
grep -q 'No space left on device' "$T/err" || fail "mkdir: want ENOSPC, got: $(cat "$T/err")"
submit full "$(plan '{}' "$(step s true)")" && fail "a plan was accepted on a full disk"
grep -q 'No space left on device' "$T/cp.err" || fail "submit: want ENOSPC, got: $(cat "$T/cp.err")"
[ ! -e "$M/runs/full-1" ] || fail "a refused submission started a run"
[ ! -e "$M/sandboxes/nope" ] || fail "a refused mkdir left a sandbox"

# reads go on, and nothing acknowledged is missing
jq -e '.state == "succeeded"' "$M/runs/ok-1/status" >/dev/null || fail "status unreadable on a full disk"
[ "$(jq -r .content "$M/sandboxes/box/messages" | tr '\n' ,)" = "$(seq -f 'before %g' 1 20 | tr '\n' ,)" ] ||
  fail "messages wrong on a full disk: $(cat "$M/sandboxes/box/messages")"
[ "$(jget "$M/sandboxes/box/status" .messages.queued)" = 20 ] || fail "queued count wrong"
grep -q fine "$M/runs/ok-1/steps/s/log" || fail "log unreadable"
seq_increasing "$M/events" || fail "events unreadable or out of order"

# room again
rm -f "$S/filler" "$S/filler2" "$S/filler3"
echo "after" >>"$M/sandboxes/box/messages" || fail "an append failed with room again"
must_submit full "$(plan '{"sandbox": {"isolation": "none"}}' "$(step s true)")"
expect_run full-1 succeeded

stop_fs
[ "$(sqlite3 "$S/orchfs.db" "SELECT state FROM runs WHERE name = 'late-1'")" = succeeded ] ||
  fail "the success recorded during the full disk never reached the store"
start_fs
expect_run late-1 succeeded 20
[ "$(jq -r .content "$M/sandboxes/box/messages" | tr '\n' ,)" = "$(seq -f 'before %g' 1 20 | tr '\n' ,)after," ] ||
  fail "messages wrong after the restart: $(jq -r .content "$M/sandboxes/box/messages" | tr '\n' ,)"
stop_fs
[ "$(sqlite3 "$S/orchfs.db" 'PRAGMA integrity_check')" = ok ] || fail "integrity_check failed"
