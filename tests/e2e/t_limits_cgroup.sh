#!/usr/bin/env bash
# Resource limits (SPEC §10, core/cgroup.h) on the machine's real cgroups:
# memory_mb kills a step that allocates past it (reason limit:memory and a
# policy.violation event in its sandbox's events), pids caps a fork bomb
# (limit:pids) without harm to the machine, cpu_sec ends a busy loop
# (limit:cpu), open_files is `ulimit -n` inside the step, usage shows in
# status, a sandbox's limit holds for two steps together, the groups go
# when the attempts end, a plan without limits runs as before and makes no
# group, and with cgroups hidden (ORCHFS_CGROUPS=none) a plan asking for a
# cgroup limit is invalid saying why, while cpu_sec and open_files still work.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || { note "needs root: skipped"; exit 77; }
grep -qE ' cgroup2? ' /proc/self/mounts || { note "no cgroup mounted: skipped"; exit 77; }
PY=/usr/bin/python3	# not a shim that forks

start_fs
# the daemon's own memory group, below which orchfs makes its groups
memdir=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ {print $3}' "/proc/$DPID/cgroup")
if [ -n "$memdir" ]; then
  mem=/sys/fs/cgroup/memory${memdir%/}
else
  mem=/sys/fs/cgroup/unified$(awk -F: '$1 == 0 {print $3}' "/proc/$DPID/cgroup")
fi
# orchfs-HASH: this daemon's (FNV-1a 64 of the state directory's path);
# other daemons of the machine have their own beside it
tag=orchfs-$($PY -c '
import sys
h = 1469598103934665603
for c in sys.argv[1].encode(): h = ((h ^ c) * 1099511628211) & 0xffffffffffffffff
print("%016x" % h)' "$(realpath "$S")")
orch_groups() { find "$mem/$tag" /sys/fs/cgroup/*/"$tag" -type d 2>/dev/null; }
leaves() { find "$mem/$tag" /sys/fs/cgroup/*/"$tag" -mindepth 1 -type d 2>/dev/null; }

# a plan without limits: as today, and no group made
must_submit plain "$(plan '{"sandbox": {"isolation": "none"}}' "$(step a 'echo hi')")"
expect_run plain-1 succeeded
[ -z "$(orch_groups)" ] || fail "a plan without limits made cgroups: $(orch_groups)"
jq -e ".usage | has(\"memory_peak_mb\") | not" "$M/runs/plain-1/steps/a/status" >/dev/null || fail "a step without limits shows usage"

# memory: past memory_mb, killed; the reason and the event say so
hog="$PY -c 'b = bytearray(300 * 1024 * 1024); import time; time.sleep(5)'"
must_submit mem "$(plan '{"sandbox": {"isolation": "none"}}' "$(step hog "$hog" '{"limits": {"memory_mb": 64}}')")"
expect_run mem-1 failed 30
expect_step mem-1 hog failed
[ "$(step_field mem-1 hog reason)" = limit:memory ] || fail "reason: $(step_field mem-1 hog reason)"
[ "$(jq -c 'select(.type == "policy.violation" and .limit == "memory" and .step_id == "hog")' "$M/sandboxes/mem-1/events" | grep -c .)" = 1 ] \
  || fail "no policy.violation naming memory in the sandbox's events: $(cat "$M/sandboxes/mem-1/events")"
[ "$(jq -c 'select(.type == "step.failed" and .reason == "limit:memory")' "$M/runs/mem-1/events" | grep -c .)" = 1 ] \
  || fail "no step.failed with reason limit:memory: $(cat "$M/runs/mem-1/events")"
expect_field mem-1 hog '.usage.memory_peak_mb >= 50 and .usage.memory_peak_mb <= 65'
wait_for 10 bash -c "[ -z \"\$(find '$mem/$tag' /sys/fs/cgroup/*/'$tag' -mindepth 1 -type d 2>/dev/null)\" ]" \
  || fail "the attempt's groups were left: $(leaves)"

# under the limit: succeeds, usage shown
must_submit small "$(plan '{"sandbox": {"isolation": "none"}}' "$(step s "$PY -c 'b = bytearray(20 * 1024 * 1024)'" '{"limits": {"memory_mb": 64, "pids": 16}}')")"
expect_run small-1 succeeded
expect_field small-1 s '.usage.memory_peak_mb >= 15 and .usage.cpu_sec >= 0 and .reason == null'

# pids: a fork bomb stays inside its cap and fails with limit:pids
bomb='b() { b | b & }; b; sleep 3; exit 1'
must_submit fork "$(plan '{"sandbox": {"isolation": "none"}}' "$(step bomb "$bomb" '{"limits": {"pids": 20}, "timeout_sec": 60}')")"
expect_run fork-1 failed 40
[ "$(step_field fork-1 bomb reason)" = limit:pids ] || fail "fork bomb reason: $(step_field fork-1 bomb reason)"
[ "$(jq -c 'select(.type == "policy.violation" and .limit == "pids")' "$M/sandboxes/fork-1/events" | grep -c .)" = 1 ] \
  || fail "no policy.violation naming pids"
# the machine is fine: a process can still fork, the bomb is gone
bash -c 'true' || fail "cannot fork after the bomb"
wait_for 10 bash -c "[ -z \"\$(find /sys/fs/cgroup/pids/'$tag' -mindepth 1 -type d 2>/dev/null)\" ]" \
  || fail "the fork bomb's group was left: $(leaves)"

# cpu_sec: a busy loop ends by limit:cpu
must_submit cpu "$(plan '{"sandbox": {"isolation": "none"}}' "$(step spin 'while :; do :; done' '{"limits": {"cpu_sec": 1}, "timeout_sec": 60}')")"
expect_run cpu-1 failed 60
[ "$(step_field cpu-1 spin reason)" = limit:cpu ] || fail "busy loop reason: $(step_field cpu-1 spin reason) $(cat "$M/runs/cpu-1/steps/spin/status")"
expect_field cpu-1 spin '.usage.cpu_sec >= 0.9'
[ "$(jq -c 'select(.type == "policy.violation" and .limit == "cpu" and .cpu_sec == 1)' "$M/sandboxes/cpu-1/events" | grep -c .)" = 1 ] \
  || fail "no policy.violation naming cpu"

# open_files: ulimit -n inside the step, which cannot raise it
must_submit nofile "$(plan '{"sandbox": {"isolation": "none"}}' "$(step n 'ulimit -n; ulimit -Hn; ulimit -n 4096 2>/dev/null && echo raised; exit 0' '{"limits": {"open_files": 64}}')")"
expect_run nofile-1 succeeded
[ "$(grep -v '^===' "$M/runs/nofile-1/steps/n/log" | tr '\n' ' ')" = "64 64 " ] \
  || fail "open_files: $(cat "$M/runs/nofile-1/steps/n/log")"

# cpus: a CPU quota on the step's group (read from inside the step)
quota='d=$(awk -F: '"'"'$2 ~ /(^|,)cpu(,|$)/ {print $3}'"'"' /proc/self/cgroup); if [ -n "$d" ]; then cat /sys/fs/cgroup/cpu$d/cpu.cfs_quota_us; else cut -d" " -f1 /sys/fs/cgroup/unified$(awk -F: '"'"'$1 == 0 {print $3}'"'"' /proc/self/cgroup)/cpu.max; fi'
must_submit cpus "$(plan '{"sandbox": {"isolation": "none"}}' "$(step q "$quota" '{"limits": {"cpus": 0.5}}')")"
expect_run cpus-1 succeeded
grep -qx 50000 "$M/runs/cpus-1/steps/q/log" || fail "cpus 0.5: $(cat "$M/runs/cpus-1/steps/q/log")"

# under bubblewrap (the default isolation): the same limits, the trampoline
# starting bubblewrap inside the groups
must_submit bw "$(plan '{"sandbox": {"isolation": "bwrap"}}' "$(step n 'ulimit -n' '{"limits": {"open_files": 48}}')" \
  "$(step hog "$hog" '{"limits": {"memory_mb": 64}, "depends_on": ["n"]}')")"
expect_run bw-1 failed 30
expect_step bw-1 n succeeded
grep -qx 48 "$M/runs/bw-1/steps/n/log" || fail "open_files under bwrap: $(cat "$M/runs/bw-1/steps/n/log")"
[ "$(step_field bw-1 hog reason)" = limit:memory ] || fail "memory under bwrap: $(step_field bw-1 hog reason)"

# a sandbox's limit holds for its steps together: two steps of 40 MB each
# fit in 64 MB one at a time, not side by side
two="$PY -c 'import time; b = bytearray(40 * 1024 * 1024); time.sleep(3)'"
must_submit shared "$(plan '{"sandbox": {"isolation": "none", "limits": {"memory_mb": 64}}}' \
  "$(step a "$two" '{"on_failure": "continue", "critical": false}')" "$(step b "$two" '{"on_failure": "continue", "critical": false}')")"
wait_for 30 run_finished shared-1 || fail "shared-1 did not finish"
reasons=$(for s in a b; do step_field shared-1 $s reason; done | sort | tr '\n' ' ')
case "$reasons" in *limit:memory*) ;; *) fail "two steps together past the sandbox's memory_mb: reasons $reasons" ;; esac
must_submit alone "$(plan '{"sandbox": {"isolation": "none", "limits": {"memory_mb": 64}}}' \
  "$(step a "$two")" "$(step b "$two" '{"depends_on": ["a"]}')")"
expect_run alone-1 succeeded 40

# a daemon killed with -9: the next one kills what was left in its groups
# and removes them
must_submit left "$(plan '{"sandbox": {"isolation": "none"}}' "$(step s 'setsid sleep 300 & sleep 300' '{"limits": {"memory_mb": 64}}')")"
wait_for 10 bash -c "[ -n \"\$(find '$mem/$tag' -mindepth 2 -type d 2>/dev/null)\" ]" || fail "no group for a running step"
leaf=$(find "$mem/$tag" -mindepth 2 -type d | head -1)
wait_for 10 bash -c "[ \$(wc -l <'$leaf/cgroup.procs') -ge 3 ]" || fail "the step's processes are not in its group: $(cat "$leaf/cgroup.procs")"
pids=$(cat "$leaf/cgroup.procs")
# while it runs, its usage is read from its group
expect_field left-1 s '.state == "running" and .usage.memory_peak_mb > 0 and .usage.cpu_sec >= 0'
crash_fs
start_fs
wait_for 10 bash -c "[ ! -d '$leaf' ]" || fail "the group of a step of the killed daemon was left: $leaf"
for p in $pids; do wait_for 10 bash -c "! kill -0 $p 2>/dev/null" || fail "process $p of the killed daemon's step is alive"; done
# the step runs again, in a group of its own that the removal of what the
# killed daemon left never touches (it once retried the whole tree every
# 250 ms and killed it)
wait_for 20 bash -c "[ -n \"\$(find '$mem/$tag' -mindepth 2 -type d 2>/dev/null)\" ]" || fail "no group for the resumed step"
att=$(step_field left-1 s attempt)
expect_field left-1 s '.state == "running"'
sleep 2	# eight retry periods
expect_field left-1 s '.state == "running"'
[ "$(step_field left-1 s attempt)" = "$att" ] || fail "the resumed step was killed and retried: attempt $(step_field left-1 s attempt)"
echo cancel >"$M/runs/left-1/ctl"
expect_run left-1 cancelled 20
stop_fs

# a step of another user, limited too
need_root_users
new_user U1
chmod 0755 "$T"
start_fs -o allow_other,default_permissions
plan '{"sandbox": {"isolation": "none"}}' "$(step hog "$hog" '{"limits": {"memory_mb": 64}}')" >"$T/u.json"
chmod 644 "$T/u.json"
as "$U1" cp "$T/u.json" "$M/plans/u.json" || fail "the user's plan was refused: $(cat "$M/plans/u.error" 2>/dev/null)"
expect_run u-1 failed 30
[ "$(step_field u-1 hog reason)" = limit:memory ] || fail "user's step reason: $(step_field u-1 hog reason)"
stop_fs
[ -z "$(orch_groups)" ] || fail "groups left after the daemon stopped: $(orch_groups)"

# no cgroups: the plan is invalid and says why; setrlimit limits still work
ORCHFS_CGROUPS=none start_fs
submit nocg "$(plan '{"sandbox": {"isolation": "none"}}' "$(step a true '{"limits": {"memory_mb": 64}}')")" \
  && fail "a memory limit was taken without cgroups"
grep -q 'memory_mb.*needs a cgroup.*ORCHFS_CGROUPS=none' "$M/plans/nocg.error" \
  || fail "the message does not say why: $(cat "$M/plans/nocg.error")"
submit nocg2 "$(plan '{"sandbox": {"isolation": "none", "limits": {"pids": 8}}}' "$(step a true)")" \
  && fail "a sandbox pids limit was taken without cgroups"
must_submit rl "$(plan '{"sandbox": {"isolation": "none"}}' "$(step n 'ulimit -n' '{"limits": {"open_files": 32, "cpu_sec": 5}}')")"
expect_run rl-1 succeeded
grep -qx 32 "$M/runs/rl-1/steps/n/log" || fail "open_files without cgroups: $(cat "$M/runs/rl-1/steps/n/log")"
stop_fs
exit 0
