#!/usr/bin/env bash
# Hostile input (issue 5, SPEC 7: "No input, however malformed, crashes the
# daemon or corrupts its state"). Every writable file of the tree
# (plans/*.json new and existing, runs/ID/ctl, sandboxes/ID/{ctl,messages,events})
# gets random bytes, invalid UTF-8, NUL bytes, lines of 1 MiB, 64 KiB and
# 64 KiB + 1, half a JSON object, writes at offsets 7, 1<<40 and -1,
# truncations to 0 and 1 GiB, O_TRUNC opens and one-byte writes; then path
# tricks (odd, long and over-long names, bad step and sandbox ids, symlink,
# link, mknod, mkdir where orchfs makes none, renames across directories,
# rmdir of the tree's own directories) and writes, truncations and attribute
# changes of read-only files; then NPROC processes doing NOPS of these at once
# while a reader checks that nothing it reads is torn.
#
# Each operation may only succeed or fail with the errnos listed for it in
# hostile/hostile.py (never EIO, ENOTCONN, ENOSYS, a hang). Throughout and at
# the end: the mount answers, every status parses, MOUNT/events parses line by
# line with seq strictly increasing, each messages file is JSONL with as many
# lines as status counts queued + delivered, exactly the acknowledged messages
# and posted events are recorded (none of a refused write), each plan name has
# as many runs as accepted submissions, a valid plan still runs to success;
# and all of it again after a restart, with PRAGMA integrity_check ok.
#
# The seed is printed; HOSTILE_SEED=N reruns one. HOSTILE_NPROC, HOSTILE_NOPS
# size the storm (16 x 200).
. "$(dirname "$0")/lib.sh"
H=$(cd "$(dirname "$0")" && pwd)/hostile/hostile.py
SEED=${HOSTILE_SEED:-$(( $(date +%s%N) / 1000 % 1000000000 ))}
NPROC=${HOSTILE_NPROC:-16} NOPS=${HOSTILE_NOPS:-200}
echo "hostile: seed $SEED ($NPROC processes x $NOPS operations; rerun with HOSTILE_SEED=$SEED)"
command -v sqlite3 >/dev/null || fail "needs sqlite3 on PATH"

# problem WHAT: record a failure and go on (the daemon is still up); the test fails at the end
: >"$T/problems"
problem() { echo "PROBLEM: $*" >&2; echo "$*" >>"$T/problems"; }
# hfail WHAT: fail now, after a summary of the problems found so far
hfail() {
  if [ -s "$T/problems" ]; then
    echo "hostile: $(wc -l <"$T/problems") problems (seed $SEED); the first of each kind:" >&2
    sed -E 's/^(after [^:]*|at the end|plans with huge numbers|probe|storm|numbers): //; s/^ *[0-9]+ BAD //' "$T/problems" \
      | awk '{ k = $0; gsub(/ in [^:]*\/:/, ":", k); gsub(/ \(.*$/, "", k); gsub(/[0-9]+/, "N", k) } !seen[substr(k, 1, 70)]++' \
      | head -n 16 | cut -c1-300 | sed 's/^/  * /' >&2
  fi
  fail "[seed $SEED] $*"
}
# sanitizer reports the daemon wrote to its stderr (UBSan's do not reach $T/ubsan.*)
san_report() { grep -h -A4 -E 'runtime error:|ERROR: AddressSanitizer|ERROR: LeakSanitizer' "$T/daemon.log" 2>/dev/null | head -8 | tr '\n' ' '; }
alive() {
  timeout 10 cat "$M/README" >/dev/null 2>&1 && return 0
  hfail "$1: the mount does not answer; daemon: $(san_report)$(tail -n 3 "$T/daemon.log" | tr '\n' ' ')"
}

# jq_says ARGS...: what jq prints about the files when it reads them (nothing when
# all parse): jq 1.6's exit status only reflects the last input
jq_says() { jq "$@" 2>&1 | head -c 300; }
# jsonl_ok FILE: every line is one JSON value
jsonl_ok() { [ -z "$(jq_says -R 'fromjson | empty' "$1")" ]; }

# consistent WHEN: the state reads back whole and agrees with itself
consistent() {
  local when=$1 f n q sb c0
  c0=$(now_ms)
  alive "$when"
  # (one jq for all files; file by file only to say which fails)
  if [ -n "$(jq_says 'if type == "object" then empty else "not an object" end' "$M"/runs/*/status \
             "$M"/runs/*/plan.json "$M"/runs/*/steps/*/status "$M"/sandboxes/*/status)" ]; then
    for f in $(python3 "$H" suspects "$M"/runs/*/status "$M"/runs/*/plan.json "$M"/runs/*/steps/*/status \
               "$M"/sandboxes/*/status) "$M"/runs/base-1/status; do
      [ -z "$(jq_says 'if type == "object" then empty else "not an object" end' "$f")" ] \
        || problem "$when: ${f#$M/} does not parse with jq: $(jq_says 'if type == "object" then empty else "not an object" end' "$f" | head -c 150)"
    done
  fi
  # (seq strictly increasing is checked by verify, below, whatever jq can read)
  jsonl_ok "$M/events" || problem "$when: MOUNT/events does not read line by line with jq: $(jq_says -R 'fromjson | empty' "$M/events" | head -c 200)"
  if [ -n "$(jq_says -R 'fromjson | empty' "$M"/runs/*/events "$M"/sandboxes/*/events)" ]; then
    for f in $(python3 "$H" suspects-jsonl "$M"/runs/*/events "$M"/sandboxes/*/events) "$M"/runs/base-1/events; do
      jsonl_ok "$f" || problem "$when: ${f#$M/} does not parse line by line with jq: $(jq_says -R 'fromjson | empty' "$f" | head -c 150)"
    done
  fi
  for sb in "$M"/sandboxes/*/; do
    sb=${sb%/}
    jsonl_ok "$sb/messages" || problem "$when: $sb/messages is not JSONL"
    n=$(wc -l <"$sb/messages")
    q=$(jq '.messages.queued + .messages.delivered' "$sb/status" 2>/dev/null)
    [ "$n" = "$q" ] || problem "$when: ${sb#$M/}/messages has $n lines, status counts $q (queued + delivered)"
  done
  grep -v '^#' "$M/metrics" | grep -Evq '^orchfs_[A-Za-z0-9_]+(\{[^}]*\})? [-+0-9.eE]+$' \
    && problem "$when: metrics has a line that is not Prometheus text: $(grep -v '^#' "$M/metrics" | grep -Ev '^orchfs_[A-Za-z0-9_]+(\{[^}]*\})? [-+0-9.eE]+$' | head -2)"
  ls -la "$M/plans" "$M/runs" "$M/sandboxes" >/dev/null 2>"$T/ls.err" \
    || problem "$when: ls -l of the tree fails: $(head -3 "$T/ls.err" | tr '\n' ' ')"
  python3 "$H" verify "$M" "$T"/scene.json "$T"/probe.json "$T"/storm.json "$T"/numbers.json >"$T/verify.out" 2>&1 \
    || problem "$when: $(grep -c '^BAD' "$T/verify.out") mismatches between what was acknowledged and the state: $(grep '^BAD' "$T/verify.out" | head -5 | tr '\n' ' ')$(grep -v '^BAD\|^verify' "$T/verify.out" | tail -3)"
  grep '^verify' "$T/verify.out" | sed "s/^/  $when: /" | sed "s/\$/ ($(( $(now_ms) - c0 )) ms)/"
}

# run_states: "RUN STATE" for every run, sorted
run_states() { python3 "$H" states "$M"; }
# runs_settled: every run but slow-1 has finished
runs_settled() { ! run_states | grep -v '^slow-1 ' | grep -Evq ' (succeeded|failed|cancelled)$'; }

# all_succeeded WHEN: every run but slow-1 (each a valid plan whose steps
# succeed) ended succeeded. Runs of storm (plans/storm.json, which the storm's
# processes write at once) only have to finish: interleaved writes of
# different plans can make a valid plan whose command is garbled ("ttrue").
all_succeeded() {
  local r st
  wait_for 40 runs_settled || problem "$1: runs unfinished after 40 s: $(run_states | grep -v '^slow-1 ' | grep -Ev ' (succeeded|failed|cancelled)$' | head -5 | tr '\n' ' ')"
  run_states | grep -v '^slow-1 ' | grep -v ' succeeded$' | grep -Ev '^storm-[0-9]+ failed$' | while read -r r st; do
    problem "$1: run $r ended $st: $(jq -c '{id, state, exit_code, signal, reason, duration_ms}' "$M"/runs/"$r"/steps/*/status 2>/dev/null | head -2 | tr '\n' ' ')"
  done
}

start_fs

# ---- the scene: the names hostile.py knows
mkdir "$M/sandboxes/hb" || hfail "mkdir sandboxes/hb failed"
must_submit hnset '{"sandbox": {"id": "hn", "isolation": "none"}, "steps": [{"id": "a", "command": "true"}]}'
must_submit base '{"sandbox": {"id": "hn"}, "steps": [{"id": "a", "command": "true"}]}'
must_submit storm '{"sandbox": {"id": "hn"}, "steps": [{"id": "a", "command": "true"}]}'
must_submit slow '{"steps": [{"id": "s", "command": "sleep", "args": ["600"]}]}'
submit bad '{"steps": [' && hfail "an invalid plan was accepted"
[ -s "$M/plans/bad.error" ] || hfail "no plans/bad.error"
expect_run hnset-1 succeeded
expect_run base-1 succeeded
expect_run storm-1 succeeded
wait_for 20 is_step_state slow-1 s running || hfail "slow-1 never ran: $(step_states slow-1)"
echo '{"acked": {"msg": [], "ev": []}, "refused": {"msg": [], "ev": []}, "rows": {}, "bad": [],
  "accepted": {"hnset": 1, "base": 1, "storm": 1, "slow": 1}, "refused_names": ["bad"]}' >"$T/scene.json"
echo '{"acked": {"msg": [], "ev": []}, "refused": {"msg": [], "ev": []}, "rows": {}, "bad": [], "accepted": {}, "refused_names": []}' >"$T/probe.json"
for f in storm numbers; do
  echo '{"acked": {"msg": [], "ev": []}, "refused": {"msg": [], "ev": []}, "rows": {}, "bad": [], "accepted": {}, "refused_names": []}' >"$T/$f.json"
done

# ---- every hostile operation once, each with its effect checked
t0=$(now_ms)
timeout 60 python3 "$H" probe "$M" "$SEED" "$T/probe.json" >"$T/probe.out" 2>&1
rc=$?
[ $rc -ne 124 ] || hfail "the probe hung (an operation did not return): $(tail -3 "$T/probe.out")"
grep -q Traceback "$T/probe.out" && hfail "the probe itself failed: $(tail -5 "$T/probe.out")"
grep '^BAD' "$T/probe.out" | while IFS= read -r l; do problem "probe: ${l#BAD }"; done
note "probe: $(grep -vc '^BAD' "$T/probe.out") kinds of operation, $(grep -c '^BAD' "$T/probe.out") unexpected outcomes ($(( $(now_ms) - t0 )) ms)"
consistent "after the probe"

# ---- the storm: NPROC processes at once, and a reader
t0=$(now_ms)
timeout 90 python3 "$H" storm "$M" "$SEED" "$NPROC" "$NOPS" "$T/storm.json" >"$T/storm.out" 2>&1
rc=$?
[ $rc -ne 124 ] || hfail "the storm hung: $(tail -3 "$T/storm.out")"
grep -q Traceback "$T/storm.out" && ! grep -q '^BAD' "$T/storm.out" && hfail "the storm itself failed: $(tail -5 "$T/storm.out")"
grep '^BAD' "$T/storm.out" | sort | uniq -c | sort -rn | head -40 | while IFS= read -r l; do problem "storm: $l"; done
note "storm: $(grep -vc '^BAD' "$T/storm.out") kinds of operation, $(grep -c '^BAD' "$T/storm.out") unexpected outcomes ($(( $(now_ms) - t0 )) ms)"
all_succeeded "after the storm"
note "the storm's runs finished ($(( $(now_ms) - t0 )) ms)"
consistent "after the storm"
[ "$(run_state slow-1)" = running ] || problem "slow-1 is $(run_state slow-1) after the storm, want running"

# the errno table of every operation (both phases)
python3 "$H" table "$T/probe.json" "$T/storm.json" >"$T/errno-table.txt"
echo "hostile: outcomes per operation (seed $SEED):"
cat "$T/errno-table.txt"

# a valid plan still runs (its own bwrap sandbox)
must_submit after "$(plan '{}' "$(step a 'echo fine')" "$(step b 'test -f /etc/passwd' '{"depends_on": ["a"]}')")"
expect_run after-1 succeeded 30

note "storm and its checks done ($(( $(now_ms) - t0 )) ms)"

# ---- a restart: everything above holds, nothing acknowledged is lost
t0=$(now_ms)
last=$(tail -n 1 "$M/events" | jq .seq)
ls "$M/runs" | sort >"$T/runs.before"
run_states | grep -v '^slow-1 ' >"$T/states.before"
stop_fs
ic=$(sqlite3 "$S/orchfs.db" 'PRAGMA integrity_check' 2>&1)
[ "$ic" = ok ] || problem "PRAGMA integrity_check after the storm says: $(echo "$ic" | head -5 | tr '\n' ' ')"
start_fs
consistent "after a restart"
ls "$M/runs" | sort | cmp -s - "$T/runs.before" || problem "the runs differ after a restart: $(ls "$M/runs" | sort | diff "$T/runs.before" - | head -5 | tr '\n' ' ')"
run_states | grep -v '^slow-1 ' | cmp -s - "$T/states.before" \
  || problem "finished runs changed state across a restart: $(run_states | grep -v '^slow-1 ' | diff "$T/states.before" - | head -4 | tr '\n' ' ')"
wait_for 20 is_step_state slow-1 s running || problem "slow-1 did not resume: $(step_states slow-1)"
echo cancel >"$M/runs/slow-1/ctl" || problem "cancel of slow-1 failed"
expect_run slow-1 cancelled 20
must_submit final "$(plan '{"sandbox": {"id": "hb"}}' "$(step a 'echo fine')")"
expect_run final-1 succeeded 30
[ "$(tail -n 1 "$M/events" | jq .seq)" -gt "${last:-0}" ] 2>/dev/null || problem "no new events after a restart (seq $last)"
consistent "after the restart's runs"

# ---- last, as it may bring the daemon down: numbers at the engine's limits
python3 "$H" numbers "$M" "$T/numbers.json" >"$T/numbers.out" 2>&1
grep '^BAD' "$T/numbers.out" | while IFS= read -r l; do problem "numbers: ${l#BAD }"; done
alive "after plans with huge numbers"
all_succeeded "plans with huge numbers"
consistent "at the end"
python3 "$H" table "$T/numbers.json" >>"$T/errno-table.txt"

[ -z "$(san_report)" ] || problem "the daemon reported: $(san_report)"
[ -s "$T/problems" ] && hfail "$(wc -l <"$T/problems") problems, listed above (all in $T/problems)"
note "restart and numbers done ($(( $(now_ms) - t0 )) ms)"
echo "hostile: outcomes of the plans with huge numbers:"
grep '^numbers' "$T/numbers.out" | sed 's/^/  /'
echo "hostile: ok (seed $SEED)"
