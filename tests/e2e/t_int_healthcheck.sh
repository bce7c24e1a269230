#!/usr/bin/env bash
# Health checks (SPEC 11): a service in a sandbox (python3 -m http.server on
# PORT0) checked by URL is healthy, then degraded and unhealthy once its
# health file is gone (sandbox.healthy, .degraded, .unhealthy, in that
# order; checks counts them; last_error says why); checks stop when nothing
# runs in the sandbox; the check is the sandbox's (a later run without one
# is checked too, also after a restart; "health": null removes it); a
# command check runs as the plan's user in the workspace (exit 0 healthy,
# else its status and last line; a timeout kills it); bad health fields are
# refused with messages; metrics.
. "$(dirname "$0")/lib.sh"
need_root_users
new_user U1
start_fs -o allow_other,default_permissions

checks() { jq -c '{health, checks}' "$M/sandboxes/$1/status"; }
is_health() { [ "$(sb_field "$1" health)" = "$2" ]; }
passed_at_least() { [ "$(sb_field "$1" checks.passed)" -ge "$2" ]; }
failed_at_least() { [ "$(sb_field "$1" checks.failed)" -ge "$2" ]; }
ntotal() { echo $(( $(sb_field "$1" checks.passed) + $(sb_field "$1" checks.failed) )); }

# ---- bad health fields: refused, with where and why
refused() { # NAME PLAN MESSAGE
  ! submit "$1" "$2" || fail "plan $1 was accepted: $2"
  grep -qF -- "$3" "$M/plans/$1.error" || fail "plan $1: .error says: $(cat "$M/plans/$1.error"), want: $3"
}
refused h1 '{"sandbox": {"health": {"url": "http://example.com/health"}}, "steps": [{"id": "a", "command": "true"}]}' \
  '"sandbox.health.url" must be an http:// or https:// URL of 127.0.0.1, [::1] or localhost (the sandbox'"'"'s own services), not "http://example.com/health"'
refused h2 '{"sandbox": {"health": {"url": "http://127.0.0.1/", "command": ["true"]}}, "steps": [{"id": "a", "command": "true"}]}' \
  '"sandbox.health" takes "url" or "command", not both'
refused h3 '{"sandbox": {"health": {"interval_sec": 1}}, "steps": [{"id": "a", "command": "true"}]}' \
  '"sandbox.health" needs "url" (an HTTP check) or "command" (exit 0 is healthy)'
refused h4 '{"sandbox": {"health": {"command": ["true"], "intervall_sec": 1}}, "steps": [{"id": "a", "command": "true"}]}' \
  'sandbox.health: unknown field "intervall_sec" (did you mean "interval_sec"?)'
refused h5 '{"sandbox": {"health": {"command": ["true"], "unhealthy_after": 0}}, "steps": [{"id": "a", "command": "true"}]}' \
  '"sandbox.health.unhealthy_after" must be between 1 and 1000'
refused h6 '{"sandbox": {"health": {"url": "http://127.0.0.1:${PORT7}/"}}, "steps": [{"id": "a", "command": "true"}]}' \
  'sandbox.health.url: unknown variable "${PORT7}"'
refused h7 '{"sandbox": {"health": {"command": "true"}}, "steps": [{"id": "a", "command": "true"}]}' \
  '"sandbox.health.command" must be a list of 1 to 256 strings, the program first (exit 0 is healthy)'
if jq -e '.isolation == "bwrap"' "$M/sandboxes/$(mkdir "$M/sandboxes/probe" && echo probe)/status" >/dev/null; then
  refused h8 '{"sandbox": {"network": false, "health": {"url": "http://127.0.0.1:${PORT0}/"}}, "steps": [{"id": "a", "command": "true"}]}' \
    '"sandbox.health.url": a sandbox without network has a loopback of its own, out of the daemon'"'"'s reach: check it with "command" instead'
fi

# ---- an HTTP check of a service in the sandbox
# the service runs until the file "stop" appears; then the run waits for an
# approval: it holds the sandbox with nothing running
srv='mkdir -p www; echo ok >www/health; cd www; python3 -m http.server "$PORT0" --bind 127.0.0.1 & while [ ! -e ../stop ]; do sleep 0.1; done; kill $!; exit 0'
must_submit hc "$(jq -cn --arg c "$srv" '{sandbox: {id: "svc", health: {url: "http://127.0.0.1:${PORT0}/health",
  interval_sec: 0.3, timeout_sec: 1, unhealthy_after: 2}}, steps: [{id: "serve", command: $c, shell: true},
  {id: "gate", type: "approval", depends_on: ["serve"]}]}')"
wait_for 20 is_health svc healthy || fail "never healthy: $(checks svc)"
wait_for 20 passed_at_least svc 2 || fail "checks did not go on: $(checks svc)"
# (checks that came before the service listened failed)
jq -e '.checks.last_error == null and (.checks.last_at | test("Z$"))' "$M/sandboxes/svc/status" >/dev/null \
  || fail "checks of a healthy service: $(checks svc)"
port=$(sb_field svc 'ports[0]')
[ "$(jq -r .sandbox.health.url "$M/runs/hc-1/plan.json")" = "http://127.0.0.1:$port/health" ] \
  || fail "plan.json should show the url as run: $(jq -c .sandbox "$M/runs/hc-1/plan.json")"
before=$(jq -r 'select(.type | test("^sandbox\\.(healthy|degraded|unhealthy)$")) | .type' "$M/sandboxes/svc/events" | tr '\n' ,)
case $before in *sandbox.healthy,) ;; *) fail "health events before the file was removed: $before" ;; esac
rm "$(ws svc)/www/health"
wait_for 20 is_health svc unhealthy || fail "a failing check never made it unhealthy: $(checks svc)"
jq -e '.checks.last_error == "HTTP status 404"' "$M/sandboxes/svc/status" >/dev/null || fail "last_error: $(checks svc)"
types=$(jq -r 'select(.type | test("^sandbox\\.(healthy|degraded|unhealthy)$")) | .type' "$M/sandboxes/svc/events" | tr '\n' ,)
[ "$types" = "${before}sandbox.degraded,sandbox.unhealthy," ] || fail "health events: $types"
jq -se 'map(select(.type == "sandbox.unhealthy"))[0] | .run_id == "hc-1" and .check == "http" and .failures == 2 and .error == "HTTP status 404"' \
  "$M/sandboxes/svc/events" >/dev/null || fail "sandbox.unhealthy: $(grep sandbox.unhealthy "$M/sandboxes/svc/events")"
# back: healthy again, one sandbox.healthy more
echo ok >"$(ws svc)/www/health"
wait_for 20 is_health svc healthy || fail "a passing check after failures did not make it healthy: $(checks svc)"
[ "$(jq -r 'select(.type | test("^sandbox\\.(healthy|degraded|unhealthy)$")) | .type' "$M/sandboxes/svc/events" | tr '\n' ,)" = \
  "${types}sandbox.healthy," ] || fail "want one sandbox.healthy more"
grep -q '^orchfs_health_checks_total{result="failed"} [1-9]' "$M/metrics" || fail "metrics: $(grep health_checks "$M/metrics")"
grep -q '^orchfs_health_checks_total{result="passed"} [1-9]' "$M/metrics" || fail "metrics: $(grep health_checks "$M/metrics")"
# nothing runs (the run waits for a person): checks stop, nothing more
# counted in ten intervals
touch "$(ws svc)/stop"
wait_for 20 is_step_state hc-1 gate awaiting_approval || fail "the run did not get to its approval: $(step_states hc-1)"
sleep 0.5
# (the verdict then is healthy, or degraded when a check caught the service
# on its way out before its step ended: either way it must stay)
n=$(ntotal svc) v=$(jget "$M/sandboxes/svc/status" .health)
sleep 3
[ "$(ntotal svc)" = "$n" ] || fail "checks went on while nothing ran: $n then $(ntotal svc)"
is_health svc "$v" || fail "the last verdict ($v) should stay when checks stop: $(checks svc)"
echo cancel >"$M/runs/hc-1/ctl"
expect_run hc-1 cancelled

# ---- the check is the sandbox's: a later run without one is checked, also after a restart
stop_fs
start_fs -o allow_other,default_permissions
jq -e '.checks.passed == 0 and .checks.failed == 0' "$M/sandboxes/svc/status" >/dev/null \
  || fail "the sandbox lost its check over a restart: $(checks svc)"
rm -f "$(ws svc)/stop"
must_submit again "$(jq -cn --arg c "$srv" '{sandbox: {id: "svc"}, steps: [{id: "serve", command: $c, shell: true}]}')"
wait_for 20 passed_at_least svc 1 || fail "a later run in the sandbox is not checked: $(checks svc)"
echo cancel >"$M/runs/again-1/ctl"
expect_run again-1 cancelled
# "health": null takes it away
must_submit off '{"sandbox": {"id": "svc", "health": null}, "steps": [{"id": "a", "command": "true"}]}'
expect_run off-1 succeeded
jq -e '.checks == null' "$M/sandboxes/svc/status" >/dev/null || fail "\"health\": null left a check: $(checks svc)"

# ---- a command check, run as the plan's user in the workspace
chk='id -u >>checked-by; test -f ok || { echo "no ok file here"; exit 3; }'
cp_plan() { printf '%s\n' "$2" >"$T/$1.json" && chmod 644 "$T/$1.json" && as "$U1" cp "$T/$1.json" "$M/plans/$1.json"; }
cp_plan cmd "$(jq -cn --arg chk "$chk" '{sandbox: {id: "cmdbox", health: {command: ["sh", "-c", $chk], interval_sec: 0.3,
  timeout_sec: 2, unhealthy_after: 2}}, steps: [{id: "w", command: "sh", args: ["-c", "touch ok; sleep 60"]}]}')" \
  || fail "submit as $U1 failed"
wait_for 20 is_health cmdbox healthy || fail "command check never healthy: $(checks cmdbox)"
W=$(ws cmdbox)
[ "$(sort -u "$W/checked-by")" = "$(id -u "$U1")" ] || fail "the check ran as uid $(sort -u "$W/checked-by" | tr '\n' ' '), not $U1's"
rm "$W/ok"
wait_for 20 is_health cmdbox unhealthy || fail "a failing command never made it unhealthy: $(checks cmdbox)"
jq -e '.checks.last_error == "exit status 3: no ok file here"' "$M/sandboxes/cmdbox/status" >/dev/null || fail "last_error: $(checks cmdbox)"
echo cancel >"$M/runs/cmd-1/ctl"
expect_run cmd-1 cancelled

# ---- a command that outlives its timeout is killed and fails the check
cp_plan slow '{"sandbox": {"id": "slowbox", "health": {"command": ["sleep", "30"], "interval_sec": 0.5,
  "timeout_sec": 0.5, "unhealthy_after": 1}}, "steps": [{"id": "w", "command": "sleep", "args": ["60"]}]}' || fail "submit failed"
wait_for 20 is_health slowbox unhealthy || fail "a check past its timeout did not fail: $(checks slowbox)"
jq -e '.checks.last_error == "timed out after 0.5s"' "$M/sandboxes/slowbox/status" >/dev/null || fail "last_error: $(checks slowbox)"
echo cancel >"$M/runs/slow-1/ctl"
expect_run slow-1 cancelled
# nothing of the run is left: its step nor a check's sleep (a check carries the run's marks)
wait_for 10 no_procs_of_run slow-1 || fail "processes of slow-1 left: $(procs_of_run slow-1 | xargs -r ps -o pid,args -p)"
