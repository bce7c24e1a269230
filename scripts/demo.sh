#!/usr/bin/env bash
# The demo: mount a fresh orchfs on a scratch directory, drop the example
# plans into plans/, show what orchfs shows, then unmount. Run by `make demo`.
set -eu
cd "$(dirname "$0")/.."
ORCHFS=${ORCHFS:-./orchfs}
work=$(mktemp -d /tmp/orchfs-demo.XXXXXX)
M=$work/mnt S=$work/state
mkdir -p "$M"
hook_pid=
cleanup() {
	[ -z "$hook_pid" ] || kill "$hook_pid" 2>/dev/null || true
	fusermount3 -u "$M" 2>/dev/null || fusermount3 -uz "$M" 2>/dev/null || true
	for _ in $(seq 50); do pgrep -f -- "--state $S" >/dev/null || break; sleep 0.1; done
	rm -rf "$work"
}
trap cleanup EXIT
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$*"; eval "$@"; }

# a webhook receiver that checks the signature (examples/webhook-receiver.py),
# subscribed to the runs' ends through --config
hook_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 examples/webhook-receiver.py --port "$hook_port" --secret demo-secret >"$work/hooks.out" 2>"$work/hooks.err" &
hook_pid=$!
# listening before the first event (a post refused is retried only 30 s on)
for _ in $(seq 100); do grep -q listening "$work/hooks.err" && break; sleep 0.1; done
printf '{"webhooks": [{"url": "http://127.0.0.1:%s/orchfs", "secret": "demo-secret", "events": ["run.succeeded", "run.failed"]}]}\n' \
	"$hook_port" >"$work/config.json"
"$ORCHFS" --state "$S" --config "$work/config.json" "$M"
echo "orchfs mounted on $M (state in $S; webhooks to 127.0.0.1:$hook_port)"
run "ls $M"
run "cp examples/hello.json examples/diamond.json examples/pipeline.json $M/plans/"
run "ls $M/runs"

wait_done() {
	for _ in $(seq 300); do
		case $(jq -r .state "$M/runs/$1/status") in succeeded|failed|cancelled) return 0;; esac
		sleep 0.1
	done
	echo "demo: $1 did not finish" >&2
	return 1
}
for r in hello-1 diamond-1 pipeline-1; do wait_done $r; done

run "cat $M/runs/hello-1/steps/hello/log"
run "jq -c '{run_id, state, progress}' $M/runs/diamond-1/status"
run "cat $M/runs/diamond-1/steps/join/log"
run "cat $M/runs/pipeline-1/summary"
run "jq -c 'select(.type | startswith(\"step.\")) | {type, step_id, attempt, reason}' $M/runs/pipeline-1/events | head -12"
run "cat $M/runs/diamond-1/graph.dot"
say "cp examples/broken.json $M/plans/   # an invalid plan: close() fails with EINVAL"
cp examples/broken.json "$M/plans/" || true
run "cat $M/plans/broken.error"
run "grep -E '^orchfs_(runs|steps)' $M/metrics"

say "# a worker in a sandbox, steered through files"
run "mkdir $M/sandboxes/sh-agent"
run "cp examples/workers/worker.sh $M/sandboxes/sh-agent/workspace/"
run "cp examples/agent-sh.json $M/plans/"
for _ in $(seq 100); do [ "$(jq -r .state "$M/runs/agent-sh-1/status")" = running ] && break; sleep 0.1; done
run "echo 'summarize the build log' >> $M/sandboxes/sh-agent/messages"
run "echo '{\"content\":\"do not touch prod\",\"message_type\":\"guardian_intervention\"}' >> $M/sandboxes/sh-agent/messages"
for _ in $(seq 100); do [ "$(jq -r .messages.queued "$M/sandboxes/sh-agent/status")" = 0 ] && break; sleep 0.1; done
sleep 0.6
run "cat $M/sandboxes/sh-agent/logs"
run "jq -c 'select(.type | startswith(\"agent.\")) | {type, step_id, event_data}' $M/sandboxes/sh-agent/events"
run "echo '{\"content\":\"wrap up\",\"message_type\":\"interrupt\"}' >> $M/sandboxes/sh-agent/messages"
wait_done agent-sh-1
run "jq -c '{id, state, isolation, last_heartbeat, messages}' $M/sandboxes/sh-agent/status"
run "jq -r .state $M/runs/agent-sh-1/status"

say "# supervision: a deploy waits for a person's approval"
run "cp examples/approval-gate.json $M/plans/"
wait_state() {
	for _ in $(seq 300); do [ "$(jq -r "$2" "$1")" = "$3" ] && return 0; sleep 0.1; done
	echo "demo: $1 never had $2 = $3" >&2
	return 1
}
wait_state "$M/runs/approval-gate-1/steps/approve/status" .state awaiting_approval
run "jq -r .state $M/runs/approval-gate-1/status"
run "cat $M/attention"
run "echo 'approve release notes checked' > $M/runs/approval-gate-1/steps/approve/ctl"
wait_done approval-gate-1
run "jq -c '{state, decision, decided_by, decided_at, reason}' $M/runs/approval-gate-1/steps/approve/status"
run "cat $M/runs/approval-gate-1/steps/deploy/log"

say "# an agent asks a person a question, and reports its turns and spending"
run "mkdir $M/sandboxes/ask-agent"
run "cp examples/workers/ask.sh $M/sandboxes/ask-agent/workspace/"
run "cp examples/agent-ask.json $M/plans/"
wait_state "$M/runs/agent-ask-1/status" .state needs_human
run "cat $M/attention"
run "jq -c '{state, question, turns, usage}' $M/runs/agent-ask-1/steps/agent/status"
run "echo '{\"message_type\":\"human_answer\",\"content\":\"staging\"}' >> $M/sandboxes/ask-agent/messages"
wait_done agent-ask-1
run "cat $M/runs/agent-ask-1/steps/agent/log"
run "jq -c '{state, turns, usage, max_turns, budget}' $M/runs/agent-ask-1/steps/agent/status"
run "jq -c 'select(.type | test(\"^(attention|step)\\\\.\")) | {type, step_id, kind, resolution}' $M/runs/agent-ask-1/events"

say "# examples to copy: a safe merge (fetch, test, merge, push) on a throwaway git repository, a fan-out/fan-in"
run "cp examples/safe-merge.json examples/fan-out.json $M/plans/"
wait_done safe-merge-1
wait_done fan-out-1
run "cat $M/runs/safe-merge-1/summary"
run "cat $M/runs/safe-merge-1/steps/push/log"
run "cat $M/runs/fan-out-1/steps/join/log"
say "# Prometheus: MOUNT/metrics into node_exporter's textfile directory, written to a .tmp file and renamed"
run "mkdir $work/textfile && examples/prometheus/orchfs-metrics.sh $M $work/textfile && ls $work/textfile"
run "grep -E '^orchfs_(up|runs_created_total)' $work/textfile/orchfs.prom"


say "# a service in a sandbox: a named port and a health check"
run "cp examples/service.json $M/plans/"
wait_state "$M/sandboxes/web-svc/status" .health healthy
run "jq -c '{ports, urls, health, checks: {passed: .checks.passed}}' $M/sandboxes/web-svc/status"
run "curl -s \$(jq -r .urls.api $M/sandboxes/web-svc/status)"
run "echo cancel > $M/runs/service-1/ctl"
wait_done service-1

say "# time: a bug-fix phase whose window reported bugs extend (its days made seconds here),"
say "# handing over to the next phase, a trigger on its window.ended"
run "cp examples/next-phase.json $M/plans/"
run "mkdir $M/sandboxes/bugfix && cp examples/workers/bugfix.sh $M/sandboxes/bugfix/workspace/"
jq '.sandbox.window |= (.duration_sec = 3 | .max_duration_sec = 8 | .extend_sec = 3 | .extend_when[0].within_sec = 60)' \
	examples/bugfix-phase.json >"$work/bugfix-phase.json"
run "jq -c .sandbox.window $work/bugfix-phase.json"
run "cp $work/bugfix-phase.json $M/plans/"
wait_state "$M/runs/bugfix-phase-1/status" .state running
run "echo '{\"event_type\":\"bug.reported\",\"event_data\":{\"id\":\"BUG-7\"}}' >> $M/sandboxes/bugfix/events"
wait_state "$M/sandboxes/bugfix/status" '.window.extensions | length' 1
run "jq -c '.window | {opened_at, deadline, max_deadline, extensions}' $M/sandboxes/bugfix/status"
wait_done bugfix-phase-1
wait_done next-phase-1
run "cat $M/sandboxes/bugfix/logs"
run "jq -c 'select(.type | startswith(\"window.\")) | {type, reason, seconds, by}' $M/sandboxes/bugfix/events"
run "cat $M/runs/next-phase-1/steps/handover/log"
say "# a schedule: the nightly monitor (cron, UTC) starts no run now; plans/NAME.schedule says when"
run "cp examples/nightly-monitor.json $M/plans/"
run "cat $M/plans/nightly-monitor.schedule"

say "# what the webhook receiver got, each post's signature checked"
for _ in $(seq 100); do [ "$(grep -c . "$work/hooks.out")" -ge 5 ] && break; sleep 0.1; done
run "cat $work/hooks.out"

echo
echo "demo finished: unmounting"
