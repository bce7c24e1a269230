#!/usr/bin/env bash
# Sandbox ports, logs and ctl (SPEC 5): ports come from --port-range, are
# unique among live sandboxes, show as $PORT0.. and ${PORT0}.., and rmdir /
# delete frees them; logs holds every line the steps wrote prefixed
# "[STEP_ID] " and follows with tail -f; ctl stop / restart / reset / delete
# (EBUSY while a run is active), rmdir EBUSY while running; a named sandbox
# keeps its workspace between runs, runs sharing it go one at a time in
# submission order, and a plan giving fields that do not match it is invalid.
. "$(dirname "$0")/lib.sh"
start_fs --port-range 31000-31004

ports_of() { jq -r '.ports | map(tostring) | join(" ")' "$M/sandboxes/$1/status"; }
all_ports() { local d; for d in "$M"/sandboxes/*/; do [ -d "$d" ] && ports_of "$(basename "$d")"; done | tr ' ' '\n' | sed '/^$/d'; }
ports_unique() { [ -z "$(all_ports | sort | uniq -d)" ]; }
in_range() { jq -e '.ports | all(. >= 31000 and . <= 31004)' "$M/sandboxes/$1/status" >/dev/null; }
ctl_fails() {   # ctl_fails ID COMMAND ERRNO_TEXT
  if echo "$2" >"$M/sandboxes/$1/ctl" 2>"$T/ctl.err"; then fail "ctl '$2' on sandbox $1 was accepted"; fi
  grep -q "$3" "$T/ctl.err" || fail "ctl '$2' on sandbox $1: want '$3', got: $(cat "$T/ctl.err")"
}

# ---- ports: from the range, unique, in the environment and in plans
mkdir "$M/sandboxes/pa" && mkdir "$M/sandboxes/pb" || fail "mkdir of sandboxes failed"
must_submit pc "$(plan '{"sandbox": {"id": "pc", "ports": 2}}' \
  "$(step s 'echo "$PORT0 $PORT1" >env.ports; echo ${PORT0} ${PORT1} >subst.ports; echo out line; echo err line >&2; seq -f "s %g" 300')" \
  "$(step u 'seq -f "u %g" 300 >&2')" \
  "$(step t 'echo t line' '{"depends_on": ["s"]}')")"
expect_run pc-1 succeeded 20
for s in pa pb pc; do in_range $s || fail "sandbox $s: ports $(ports_of $s) outside --port-range 31000-31004"; done
[ "$(jq '.ports | length' "$M/sandboxes/pc/status")" -eq 2 ] || fail "\"ports\": 2 gave $(ports_of pc)"
ports_unique || fail "two live sandboxes share a port: $(all_ports | tr '\n' ' ')"
[ "$(cat "$(ws pc)/env.ports")" = "$(ports_of pc)" ] || fail "\$PORT0 \$PORT1 are '$(cat "$(ws pc)/env.ports")', status says '$(ports_of pc)'"
[ "$(cat "$(ws pc)/subst.ports")" = "$(ports_of pc)" ] || fail "\${PORT0} \${PORT1} became '$(cat "$(ws pc)/subst.ports")', status says '$(ports_of pc)'"

# ---- logs: every line prefixed with its step
L=$M/sandboxes/pc/logs
for l in '[s] out line' '[s] err line' '[t] t line'; do grep -qxF "$l" "$L" || fail "logs lacks '$l': $(cat "$L")"; done
[ -z "$(grep -v '^\[[stu]\] ' "$L")" ] || fail "logs has lines without a [STEP_ID] prefix: $(grep -v '^\[[stu]\] ' "$L" | head -3)"
[ "$(wc -l <"$L")" -eq 603 ] || fail "logs should hold the 603 lines the steps wrote, has $(wc -l <"$L")"
# two steps writing at once: each one's lines whole and in order
for x in s u; do
  grep "^\[$x\] $x " "$L" | cmp -s - <(seq -f "[$x] $x %g" 300) || fail "logs: the lines of step $x are torn, lost or out of order"
done

# ---- the range is exhausted, then rmdir frees a port
mkdir "$M/sandboxes/pd" || fail "mkdir of the 5th port's sandbox failed"
in_range pd || fail "pd: ports $(ports_of pd) outside the range"
ports_unique || fail "two live sandboxes share a port: $(all_ports | tr '\n' ' ')"
if mkdir "$M/sandboxes/pe" 2>"$T/mkdir.err"; then fail "mkdir succeeded with every port of --port-range 31000-31004 taken: $(ports_of pe)"; fi
[ ! -e "$M/sandboxes/pe" ] || fail "a refused mkdir left sandboxes/pe"
note "mkdir with no port left: $(cat "$T/mkdir.err")"
freed=$(ports_of pa) PAW=$(ws pa)
rmdir "$M/sandboxes/pa" || fail "rmdir of an idle sandbox failed"
[ ! -e "$M/sandboxes/pa" ] || fail "sandboxes/pa still exists after rmdir"
[ ! -e "$PAW" ] || fail "rmdir left the workspace $PAW"
[ "$(count_events "$M/events" sandbox.deleted '.sandbox == "pa"')" -eq 1 ] || fail "no sandbox.deleted event for pa"
mkdir "$M/sandboxes/pe" 2>"$T/mkdir.err" || fail "mkdir after rmdir freed a port failed: $(cat "$T/mkdir.err")"
[ "$(ports_of pe)" = "$freed" ] || fail "pe got $(ports_of pe), want the port rmdir freed ($freed)"
for s in pb pc pd pe; do rmdir "$M/sandboxes/$s" || fail "rmdir $s failed"; done
[ -z "$(all_ports)" ] || fail "ports still held: $(all_ports | tr '\n' ' ')"

# ---- runs sharing a sandbox: one at a time, in order; the workspace persists
# q1 holds the sandbox until the test lets it go (the file "release")
must_submit q1 "$(plan '{"sandbox": {"id": "sq"}}' "$(step a 'echo q1 >>order; echo kept >keep.txt; while [ ! -e release ]; do sleep 0.05; done; rm release')")"
must_submit q2 "$(plan '{"sandbox": {"id": "sq"}}' "$(step a 'echo q2 >>order; cat keep.txt')")"
wait_for 20 is_step_state q1-1 a running || fail "q1 never ran"
sleep 0.3
is_run_state q2-1 pending || fail "a second run in a busy sandbox is $(run_state q2-1), want pending"
touch "$(ws sq)/release"
expect_run q1-1 succeeded 20
expect_run q2-1 succeeded 20
[ "$(tr '\n' ' ' <"$(ws sq)/order")" = "q1 q2 " ] || fail "runs sharing sq ran in the order: $(cat "$(ws sq)/order")"
q2s=$(iso_ms "$(step_field q2-1 a started_at)") q1f=$(iso_ms "$(step_field q1-1 a finished_at)")
[ "$q2s" -ge "$q1f" ] || fail "q2 started before q1 had finished"
grep -qx kept "$M/runs/q2-1/steps/a/log" || fail "the second run in sq did not see the first one's file"
# fields given must match the sandbox (network true, 1 port, bwrap here)
for f in '"network": false' '"ports": 2' '"isolation": "none"'; do
  if submit bad "$(plan "{\"sandbox\": {\"id\": \"sq\", $f}}" "$(step a true)")"; then fail "a plan naming sq with $f was accepted"; fi
  grep -q 'Invalid argument' "$T/cp.err" || fail "a plan naming sq with $f: want EINVAL, got: $(cat "$T/cp.err")"
  [ -s "$M/plans/bad.error" ] || fail "no plans/bad.error for a plan naming sq with $f"
done
[ ! -e "$M/runs/bad-1" ] || fail "a mismatching plan started a run"
note "mismatch error: $(cat "$M/plans/bad.error")"
must_submit q3 "$(plan '{"sandbox": {"id": "sq", "network": true, "ports": 1, "isolation": "bwrap"}}' "$(step a 'cat keep.txt')")"
expect_run q3-1 succeeded 20

# ---- tail -f of logs follows a step's output
mkdir "$M/sandboxes/lg" || fail "mkdir sandboxes/lg failed"
tail -n +1 -f "$M/sandboxes/lg/logs" >"$T/logs.tail" 2>"$T/logs.tail.err" &
TAILP=$!
must_submit lg "$(plan '{"sandbox": {"id": "lg"}}' "$(step talk 'for i in 1 2 3 4 5; do echo "line $i"; sleep 0.2; done')")"
wait_for 20 grep -qx '\[talk\] line 5' "$T/logs.tail" || fail "tail -f of logs did not show the lines: $(cat "$T/logs.tail" "$T/logs.tail.err")"
expect_run lg-1 succeeded 20
wait_for 20 cmp -s "$T/logs.tail" "$M/sandboxes/lg/logs"
kill "$TAILP"; wait "$TAILP" 2>/dev/null
cmp -s "$T/logs.tail" "$M/sandboxes/lg/logs" || fail "tail -f of logs differs from logs: $(diff "$T/logs.tail" "$M/sandboxes/lg/logs")"
[ "$(grep -c '^\[talk\] line [1-5]$' "$T/logs.tail")" -eq 5 ] || fail "tail -f of logs: want the 5 lines once each: $(cat "$T/logs.tail")"

# ---- ctl: unknown commands; EBUSY while a run is active; stop; restart of a stopped sandbox
ctl_fails lg bogus 'Invalid argument'
ctl_fails lg '' 'Invalid argument'
TERMSTEP='trap "echo TERM >>term; exit 1" TERM; echo up >up; sleep 30 & wait'
must_submit cs "$(plan '{"sandbox": {"id": "cs"}, "globals": {"kill_grace_sec": 1}}' "$(step w "$TERMSTEP")")"
wait_for 20 test -s "$(ws cs)/up" || fail "cs: the step never began"
is_sb_field cs state running || fail "a sandbox with a running step is '$(sb_field cs state)', want running"
is_sb_field cs run_id cs-1 || fail "sandbox cs: run_id is $(sb_field cs run_id), want cs-1"
if rmdir "$M/sandboxes/cs" 2>"$T/rmdir.err"; then fail "rmdir of a sandbox with a running run succeeded"; fi
grep -q 'Device or resource busy' "$T/rmdir.err" || fail "rmdir of a busy sandbox: want EBUSY, got: $(cat "$T/rmdir.err")"
ctl_fails cs delete 'Device or resource busy'
ctl_fails cs reset 'Device or resource busy'
[ -d "$(ws cs)" ] && [ -e "$(ws cs)/up" ] && is_step_state cs-1 w running || fail "a refused rmdir/delete/reset changed the sandbox"
echo stop >"$M/sandboxes/cs/ctl" || fail "ctl stop was refused"
expect_run cs-1 cancelled 20
grep -qx TERM "$(ws cs)/term" || fail "stop: the running step did not get SIGTERM"
wait_for 20 is_sb_field cs state stopped || fail "after stop the sandbox is '$(sb_field cs state)', want stopped"
must_submit cs2 "$(plan '{"sandbox": {"id": "cs"}}' "$(step w 'echo ran >ran2')")"
sleep 0.8
is_run_state cs2-1 pending || fail "a run in a stopped sandbox is $(run_state cs2-1), want pending"
expect_step cs2-1 w pending
r0=$(sb_field cs restarts)
echo restart >"$M/sandboxes/cs/ctl" || fail "ctl restart of a stopped sandbox was refused"
expect_run cs2-1 succeeded 20
[ "$(sb_field cs restarts)" -eq $((r0 + 1)) ] || fail "restart: restarts went from $r0 to $(sb_field cs restarts)"
[ "$(count_events "$M/sandboxes/cs/events" sandbox.restarted)" -eq 1 ] || fail "want one sandbox.restarted event"
wait_for 20 is_sb_field cs state ready || fail "after restart and its run, the sandbox is '$(sb_field cs state)', want ready"

# ---- restart while a step runs: it runs again as a new attempt, not charged to retries
RESTEP='echo "attempt $ORCHFS_ATTEMPT"; echo go >>go; [ "$(wc -l <go)" -ge 2 ] && exit 0; echo up >up; sleep 30'
must_submit cr "$(plan '{"sandbox": {"id": "cr"}, "globals": {"kill_grace_sec": 1}}' "$(step w "$RESTEP" '{"retries": 0}')")"
wait_for 20 test -s "$(ws cr)/up" || fail "cr: the step never began"
echo restart >"$M/sandboxes/cr/ctl" || fail "ctl restart of a running sandbox was refused"
expect_run cr-1 succeeded 20
expect_field cr-1 w '.attempt == 2'
[ "$(wc -l <"$(ws cr)/go")" -eq 2 ] || fail "restart: the step should have run twice"
[ "$(sb_field cr restarts)" -eq 1 ] || fail "restart: restarts is $(sb_field cr restarts), want 1"
[ "$(count_events "$M/sandboxes/cr/events" sandbox.restarted)" -eq 1 ] || fail "want one sandbox.restarted event for cr"
grep -qx '=== attempt 2 ===' "$M/runs/cr-1/steps/w/log" || fail "the step's log lacks its second attempt"

# ---- reset: empties the workspace except persist/, and the logs
W=$(ws cr)
mkdir -p "$W/persist/deep" "$W/sub/dir" && echo keep >"$W/persist/deep/keep.txt" && echo x >"$W/sub/dir/x" && echo y >"$W/.hidden" \
  || fail "cannot write the workspace from outside"
[ -s "$M/sandboxes/cr/logs" ] || fail "cr's logs are empty before the reset"
echo reset >"$M/sandboxes/cr/ctl" || fail "ctl reset of an idle sandbox was refused"
[ "$(cd "$W" && find . -mindepth 1 | sort | tr '\n' ' ')" = "./persist ./persist/deep ./persist/deep/keep.txt " ] \
  || fail "after reset the workspace holds: $(cd "$W" && find . -mindepth 1 | sort | tr '\n' ' ')"
[ "$(cat "$W/persist/deep/keep.txt")" = keep ] || fail "reset changed persist/"
[ "$(wc -c <"$M/sandboxes/cr/logs")" -eq 0 ] || fail "reset left the logs: $(cat "$M/sandboxes/cr/logs")"
[ -d "$M/sandboxes/cr" ] || fail "reset removed the sandbox"

# ---- delete: removes the sandbox and its workspace, frees its port
mkdir "$M/sandboxes/f1" || fail "mkdir f1 failed"   # the last free port
ports_unique || fail "two live sandboxes share a port: $(all_ports | tr '\n' ' ')"
if mkdir "$M/sandboxes/f2" 2>/dev/null; then fail "mkdir succeeded with no port left"; fi
freed=$(ports_of cr)
echo delete >"$M/sandboxes/cr/ctl" || fail "ctl delete of an idle sandbox was refused"
[ ! -e "$M/sandboxes/cr" ] || fail "sandboxes/cr still exists after delete"
[ ! -e "$W" ] || fail "delete left the workspace $W"
[ "$(count_events "$M/events" sandbox.deleted '.sandbox == "cr"')" -eq 1 ] || fail "no sandbox.deleted event for cr"
mkdir "$M/sandboxes/f2" 2>"$T/mkdir.err" || fail "mkdir after delete freed a port failed: $(cat "$T/mkdir.err")"
[ "$(ports_of f2)" = "$freed" ] || fail "f2 got $(ports_of f2), want the port delete freed ($freed)"
# ctl and rmdir are durable
stop_fs
start_fs --port-range 31000-31004
[ ! -e "$M/sandboxes/cr" ] && [ ! -e "$M/sandboxes/pa" ] || fail "a deleted sandbox came back after a restart"
[ "$(sb_field cs restarts)" -eq $((r0 + 1)) ] || fail "restarts of cs lost over a restart"
ports_unique || fail "after a restart two sandboxes share a port: $(all_ports | tr '\n' ' ')"
