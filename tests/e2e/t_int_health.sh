#!/usr/bin/env bash
# MOUNT/health (SPEC 11): JSON {ok, version, uptime_sec, state_dir, db_ok,
# disk_free_mb, running_steps, queued_messages}, the version the binary
# says; and the metrics of SPEC 11: orchfs_step_duration_seconds, a
# histogram by final state, and orchfs_runs_finished_total{state}, counted
# since the daemon started.
. "$(dirname "$0")/lib.sh"
start_fs

H=$M/health
ls "$M" | grep -qx health || fail "MOUNT/health is not listed: $(ls "$M")"
jq -e 'keys == (["ok", "version", "uptime_sec", "state_dir", "db_ok", "disk_free_mb", "running_steps", "queued_messages"] | sort)' \
  "$H" >/dev/null || fail "MOUNT/health fields: $(cat "$H")"
jq -e --arg s "$(realpath "$S")" '.ok == true and .db_ok == true and .state_dir == $s
  and (.uptime_sec | type) == "number" and .uptime_sec >= 0
  and (.disk_free_mb | type) == "number" and .disk_free_mb > 0
  and .running_steps == 0 and .queued_messages == 0' "$H" >/dev/null || fail "MOUNT/health: $(cat "$H")"
want=$("$ORCHFS" --version | awk '{print $NF}')
[ -n "$want" ] && [ "$(jget "$H" .version)" = "$want" ] || fail "health says version $(jget "$H" .version), orchfs --version: $want"
[ "$(stat -c %a "$H")" = 444 ] || fail "MOUNT/health mode $(stat -c %a "$H")"
write_fails "$H" x || fail "MOUNT/health took a write"

# what it counts follows the daemon: a running step, queued messages
must_submit h "$(plan '{}' "$(step s 'until [ -e go ]; do sleep 0.05; done')")"
wait_for 20 is_step_state h-1 s running || fail "the step never ran"
mkdir "$M/sandboxes/q" || fail "mkdir failed"
echo one >>"$M/sandboxes/q/messages" && echo two >>"$M/sandboxes/q/messages" || fail "append failed"
jq -e '.running_steps == 1 and .queued_messages == 2' "$H" >/dev/null || fail "MOUNT/health with a step and 2 messages: $(cat "$H")"
touch "$(ws h-1)/go"
expect_run h-1 succeeded

# ---- metrics: one more run failed (a step that exits 3 after its sibling
# succeeded), one cancelled; the histogram is cumulative, +Inf = count
must_submit f "$(plan '{}' "$(step a 'true')" "$(step b 'exit 3' '{"depends_on": ["a"]}')")"
expect_run f-1 failed
must_submit c "$(plan '{}' "$(step s 'sleep 600')")"
wait_for 20 is_step_state c-1 s running || fail "the step never ran"
echo cancel >"$M/runs/c-1/ctl"
expect_run c-1 cancelled
cat "$M/metrics" >"$T/metrics" || fail "cat metrics failed"
grep -qx '# TYPE orchfs_step_duration_seconds histogram' "$T/metrics" || fail "no histogram TYPE line"
grep -qx '# TYPE orchfs_runs_finished_total counter' "$T/metrics" || fail "no counter TYPE line"
for l in 'orchfs_runs_finished_total{state="succeeded"} 1' 'orchfs_runs_finished_total{state="failed"} 1' \
         'orchfs_runs_finished_total{state="cancelled"} 1' \
         'orchfs_step_duration_seconds_count{state="succeeded"} 2' 'orchfs_step_duration_seconds_count{state="failed"} 1' \
         'orchfs_step_duration_seconds_count{state="cancelled"} 1' 'orchfs_step_duration_seconds_count{state="timed_out"} 0' \
         'orchfs_step_duration_seconds_bucket{state="succeeded",le="+Inf"} 2'; do
  grep -qxF "$l" "$T/metrics" || fail "metrics lack \"$l\": $(grep -E 'finished_total|_count|Inf' "$T/metrics")"
done
# buckets: cumulative, in order, ending at the count
python3 - "$T/metrics" <<'EOF' || fail "the histogram does not add up: $(grep step_duration "$T/metrics")"
import re, sys
b, cnt, s = {}, {}, {}
for line in open(sys.argv[1]):
    m = re.match(r'orchfs_step_duration_seconds_bucket\{state="(\w+)",le="([^"]+)"\} (\d+)$', line)
    if m:
        b.setdefault(m[1], []).append((m[2], int(m[3])))
    m = re.match(r'orchfs_step_duration_seconds_(count|sum)\{state="(\w+)"\} ([\d.]+)$', line)
    if m:
        (cnt if m[1] == "count" else s)[m[2]] = float(m[3])
for st, bs in b.items():
    les = [float("inf") if le == "+Inf" else float(le) for le, _ in bs]
    vals = [v for _, v in bs]
    assert les == sorted(les) and les[-1] == float("inf"), bs
    assert vals == sorted(vals), (st, vals)
    assert vals[-1] == cnt[st], (st, vals, cnt)
assert sorted(b) == ["cancelled", "failed", "succeeded", "timed_out"], sorted(b)
assert s["succeeded"] > 0, s
EOF

# counted since the daemon started: a new daemon starts from 0
stop_fs
start_fs
grep -qxF 'orchfs_runs_finished_total{state="succeeded"} 0' "$M/metrics" || fail "runs_finished_total after a restart: $(grep finished_total "$M/metrics")"
jq -e '.ok == true and .uptime_sec < 3600' "$H" >/dev/null || fail "health after a restart: $(cat "$H")"
