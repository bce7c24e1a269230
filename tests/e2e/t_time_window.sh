#!/usr/bin/env bash
# Sandbox windows (SPEC 9): a window of a few seconds opens with the
# sandbox; at its deadline its runs end cancelled (window.ended, reason
# deadline); extend_when rules and ctl extend move it, never past
# max_duration_sec, each recorded with who or what did it; idle_sec ends it
# early unless events, messages, output or workspace changes keep it busy;
# on_end delete and pause; ctl refusals; windows of plans naming a sandbox
# that exists.
. "$(dirname "$0")/lib.sh"
need_root_users
new_user U1
start_fs -o allow_other

span_ms() { echo $(( $(iso_ms "$(sb_field "$1" window.deadline)") - $(iso_ms "$(sb_field "$1" window.opened_at)") )); }
max_ms() { echo $(( $(iso_ms "$(sb_field "$1" window.max_deadline)") - $(iso_ms "$(sb_field "$1" window.opened_at)") )); }
ended() { [ "$(sb_field "$1" window.state)" = ended ]; }
SLEEP=$(step s 'sleep 60')

# the next phase: a trigger on the end of wd's window
must_submit phase2 "$(plan '{"on": [{"event_type": "window.ended", "match": {"sandbox": "wd"}}]}' \
  "$(step s 'echo "after $TRIGGER_SANDBOX"')")"

# several windows run side by side: each one's plan first, then the checks
# ---- deadline stops (2 s) ----------------------------------------------------
must_submit wd "$(plan '{"sandbox": {"id": "wd", "window": {"duration_sec": 2, "on_end": "stop"}}}' "$SLEEP")"
# ---- idle ends (window of 10 min, idle 2 s) ----------------------------------
must_submit wi "$(plan '{"sandbox": {"id": "wi", "window": {"duration_sec": 600, "idle_sec": 2}}}' "$SLEEP")"
# ---- events keep it open (idle 2 s, deadline 6 s) ----------------------------
must_submit wa "$(plan '{"sandbox": {"id": "wa", "window": {"duration_sec": 6, "idle_sec": 2}}}' "$SLEEP")"
# ---- output keeps it open, and workspace changes do ----------------------------
must_submit wo "$(plan '{"sandbox": {"id": "wo", "window": {"duration_sec": 6, "idle_sec": 2}}}' \
  "$(step s 'while :; do echo tick; sleep 0.3; done')")"
must_submit wc "$(plan '{"sandbox": {"id": "wc", "window": {"duration_sec": 6, "idle_sec": 2}}}' \
  "$(step s 'i=0; while :; do i=$((i+1)); : >"f$i"; sleep 0.3; done')")"
# ---- on_end delete -----------------------------------------------------------
must_submit wdel "$(plan '{"sandbox": {"id": "wdel", "window": {"duration_sec": 2, "on_end": "delete"}}}' "$SLEEP")"

# the window is in status as soon as the plan's cp returned
for sb in wd wi wa wo wc wdel; do
  for f in opened_at deadline max_deadline; do is_iso "$(sb_field $sb window.$f)" || fail "$sb: window.$f: $(sb_field $sb window)"; done
done
[ "$(span_ms wd)" = 2000 ] || fail "wd: deadline - opened_at is $(span_ms wd) ms, want 2000"
[ "$(max_ms wd)" = 2000 ] || fail "wd: without max_duration_sec the maximum is the duration: $(max_ms wd) ms"
[ "$(span_ms wi)" = 600000 ] || fail "wi: deadline - opened_at is $(span_ms wi) ms"
[ "$(sb_field wd window.extensions)" = "[]" ] || fail "wd: extensions: $(sb_field wd window.extensions)"
[ "$(sb_field wd window.state)" = open ] || fail "wd: window state $(sb_field wd window.state)"
[ "$(sb_field wi window.idle_sec)" = 2 ] || fail "wi: idle_sec $(sb_field wi window.idle_sec)"

# activity: events posted to wa every 0.3 s, past its idle_sec (until its deadline)
( while [ -d "$M/sandboxes/wa" ] && ! ended wa; do echo '{"event_type": "progress"}' >>"$M/sandboxes/wa/events" 2>/dev/null; sleep 0.3; done ) &

# deadline: the run cancelled, one window.ended with reason deadline
expect_run wd-1 cancelled 20
expect_step wd-1 s cancelled
wait_for 20 no_procs_of_run wd-1 || fail "wd-1's step still runs: $(procs_of_run wd-1)"
[ "$(count_events "$M/sandboxes/wd/events" window.ended '.reason == "deadline" and .on_end == "stop"')" = 1 ] \
  || fail "wd: window.ended events: $(grep window "$M/sandboxes/wd/events")"
ended wd || fail "wd: window not ended: $(sb_field wd window)"
[ "$(sb_field wd window.end_reason)" = deadline ] || fail "wd: end_reason $(sb_field wd window.end_reason)"
is_iso "$(sb_field wd window.ended_at)" || fail "wd: ended_at $(sb_field wd window.ended_at)"
[ "$(iso_ms "$(sb_field wd window.ended_at)")" -ge "$(iso_ms "$(sb_field wd window.deadline)")" ] || fail "wd ended before its deadline"
wait_for 20 test -d "$M/runs/phase2-1" || fail "window.ended of wd did not trigger phase2"
expect_run phase2-1 succeeded
grep -q 'after wd' "$M/runs/phase2-1/steps/s/log" || fail "phase2: $(cat "$M/runs/phase2-1/steps/s/log")"
sleep 0.5
[ ! -e "$M/runs/phase2-2" ] || fail "phase2 fired twice"
# a sandbox whose window ended is a sandbox still: a run may use it
must_submit after "$(plan '{"sandbox": {"id": "wd"}}' "$(step s 'echo next phase')")"
expect_run after-1 succeeded

# idle: no output, no event: ended by idle well before its deadline
expect_run wi-1 cancelled 20
[ "$(count_events "$M/sandboxes/wi/events" window.ended '.reason == "idle"')" = 1 ] \
  || fail "wi: window.ended events: $(grep window "$M/sandboxes/wi/events")"
[ "$(sb_field wi window.end_reason)" = idle ] || fail "wi: end_reason $(sb_field wi window.end_reason)"

# events, output and workspace changes kept theirs open until the deadline
for sb in wa wo wc; do
  expect_run $sb-1 cancelled 20
  [ "$(count_events "$M/sandboxes/$sb/events" window.ended '.reason == "deadline"')" = 1 ] \
    || fail "$sb: activity did not keep the window open: $(grep window.ended "$M/sandboxes/$sb/events")"
done

# on_end delete: the sandbox goes once its run ended
expect_run wdel-1 cancelled 20
wait_for 20 bash -c "! test -e '$M/sandboxes/wdel'" || fail "wdel: the sandbox was not deleted"
[ "$(count_events "$M/events" window.ended '.sandbox == "wdel" and .reason == "deadline" and .on_end == "delete"')" = 1 ] \
  || fail "wdel: no window.ended in the global events"
[ "$(count_events "$M/events" sandbox.deleted '.sandbox == "wdel"')" = 1 ] || fail "wdel: no sandbox.deleted"

# ---- extensions: by a rule and by ctl, capped, with who did it ---------------
# (as a user: `by` is the writer of ctl)
ext=$(plan '{"sandbox": {"id": "wx", "window": {"duration_sec": 3, "max_duration_sec": 6, "extend_sec": 2,
  "extend_when": [{"event_type": "bug.reported", "count": 2, "within_sec": 60}, {"event_type": "deploy.*", "count": 1, "within_sec": 1}],
  "on_end": "stop"}}}' "$SLEEP")
printf '%s\n' "$ext" >"$T/wx.json"
as "$U1" cp "$T/wx.json" "$M/plans/wx.json" || fail "user plan wx refused: $(cat "$M/plans/wx.error" 2>&1)"
[ "$(span_ms wx)" = 3000 ] || fail "wx: initial window $(span_ms wx) ms"
[ "$(max_ms wx)" = 6000 ] || fail "wx: max $(max_ms wx) ms"
as "$U1" sh -c "echo '{\"event_type\": \"bug.reported\"}' >>'$M/sandboxes/wx/events'" || fail "post refused"
as "$U1" sh -c "echo '{\"event_type\": \"bug.fixed\"}' >>'$M/sandboxes/wx/events'" || fail "post refused"
[ "$(span_ms wx)" = 3000 ] || fail "wx: one bug report (and another type) extended it: $(span_ms wx) ms"
as "$U1" sh -c "echo '{\"event_type\": \"bug.reported\"}' >>'$M/sandboxes/wx/events'" || fail "post refused"
[ "$(span_ms wx)" = 5000 ] || fail "wx: two bug reports should extend by 2 s: $(span_ms wx) ms"
jq -e '.window.extensions | length == 1 and .[0].by == "extend_when[0]" and .[0].seconds == 2
  and (.[0].reason | test("bug.reported")) and (.[0].at | test("Z$"))' "$M/sandboxes/wx/status" >/dev/null \
  || fail "wx: extensions: $(sb_field wx window.extensions)"
# the count starts afresh after an extension: a third report alone does nothing
as "$U1" sh -c "echo '{\"event_type\": \"bug.reported\"}' >>'$M/sandboxes/wx/events'"
[ "$(span_ms wx)" = 5000 ] || fail "wx: the reports that extended counted again: $(span_ms wx) ms"
# ctl extend by the user: capped at max_duration_sec
as "$U1" sh -c "echo 'extend 100 release freeze' >'$M/sandboxes/wx/ctl'" || fail "ctl extend refused"
[ "$(span_ms wx)" = 6000 ] || fail "wx: ctl extend must stop at the maximum: $(span_ms wx) ms"
jq -e --arg u "$U1" '.window.extensions | length == 2 and .[1].by == $u and .[1].seconds == 1
  and .[1].reason == "release freeze"' "$M/sandboxes/wx/status" >/dev/null \
  || fail "wx: extensions: $(sb_field wx window.extensions)"
# at the maximum a rule adds nothing and records nothing, and so does ctl
# extend (which succeeds): no extension, no window.extended
as "$U1" sh -c "echo '{\"event_type\": \"deploy.done\"}' >>'$M/sandboxes/wx/events'"
echo 'extend 5' >"$M/sandboxes/wx/ctl" || fail "ctl extend at the maximum refused"
jq -e '.window.extensions | length == 2' \
  "$M/sandboxes/wx/status" >/dev/null || fail "wx: extensions: $(sb_field wx window.extensions)"
[ "$(count_events "$M/sandboxes/wx/events" window.extended)" = 2 ] || fail "wx: window.extended events: $(grep window.extended "$M/sandboxes/wx/events")"
[ "$(count_events "$M/sandboxes/wx/events" window.extended '.by == "extend_when[0]" and .seconds == 2 and (.deadline | test("Z$"))')" = 1 ] \
  || fail "wx: the rule's window.extended: $(grep window.extended "$M/sandboxes/wx/events")"
[ "$(count_events "$M/sandboxes/wx/events" window.extended ".by == \"$U1\" and .reason == \"release freeze\" and .seconds == 1")" = 1 ] \
  || fail "wx: ctl's window.extended: $(grep window.extended "$M/sandboxes/wx/events")"
# a worker may not pass for the engine
write_fails "$M/sandboxes/wx/events" '{"event_type": "window.ended", "event_data": {"reason": "deadline"}}' \
  || fail "a posted window.ended was taken"

# ---- refusals ----------------------------------------------------------------
for bad in 'extend' 'extend 0' 'extend -5' 'extend abc' 'extend 5x' 'extend 99999999999' 'extend 1.5' 'stop now'; do
  write_fails "$M/sandboxes/wx/ctl" "$bad" || fail "ctl '$bad' was taken"
  grep -q 'Invalid argument' "$T/write.err" || fail "ctl '$bad': $(cat "$T/write.err")"
done
mkdir "$M/sandboxes/plain" || fail "mkdir sandbox"
write_fails "$M/sandboxes/plain/ctl" 'extend 10' || fail "extend on a sandbox without a window was taken"
grep -q 'Invalid argument' "$T/write.err" || fail "extend without a window: $(cat "$T/write.err")"
[ "$(sb_field plain window)" = null ] || fail "a mkdir'ed sandbox has a window: $(sb_field plain window)"
write_fails "$M/sandboxes/wd/ctl" 'extend 10' || fail "extend on an ended window was taken"
write_fails "$M/sandboxes/wd/ctl" 'resume' || fail "resume of a window that is not paused was taken"
expect_run wx-1 cancelled 20
[ "$(count_events "$M/sandboxes/wx/events" window.ended '.reason == "deadline"')" = 1 ] || fail "wx: no window.ended"

# ---- a plan naming a sandbox that exists -------------------------------------
# a mkdir'ed one gets the plan's window, opened now
must_submit late "$(plan '{"sandbox": {"id": "plain", "window": {"duration_sec": 30, "on_end": "stop"}}}' "$(step s true)")"
[ "$(span_ms plain)" = 30000 ] || fail "plain: the plan's window did not open: $(sb_field plain window)"
expect_run late-1 succeeded
dl=$(sb_field plain window.deadline)
# one with a live window keeps its own
must_submit later "$(plan '{"sandbox": {"id": "plain", "window": {"duration_sec": 9999}}}' "$(step s true)")"
[ "$(sb_field plain window.deadline)" = "$dl" ] || fail "a live window was replaced: $(sb_field plain window)"
expect_run later-1 succeeded
# one whose window ended gets a new one (the next phase)
must_submit next "$(plan '{"sandbox": {"id": "wd", "window": {"duration_sec": 40}}}' "$(step s true)")"
[ "$(sb_field wd window.state)" = open ] && [ "$(span_ms wd)" = 40000 ] || fail "wd: no new window: $(sb_field wd window)"

# ---- validation --------------------------------------------------------------
submit badw "$(plan '{"sandbox": {"window": {"duration_sec": 10, "max_duration_sec": 5}}}' "$(step s true)")" \
  && fail "max_duration_sec < duration_sec accepted"
grep -q 'max_duration_sec' "$M/plans/badw.error" || fail "badw.error: $(cat "$M/plans/badw.error")"
submit badw2 "$(plan '{"sandbox": {"window": {"idle_sec": 10}}}' "$(step s true)")" && fail "a window without duration_sec accepted"
grep -q 'duration_sec' "$M/plans/badw2.error" || fail "badw2.error: $(cat "$M/plans/badw2.error")"
exit 0
