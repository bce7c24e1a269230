#!/bin/sh
# An orchfs agent worker that needs a person (SPEC section 8), in plain shell:
# it works a few turns, reporting each turn and what it spent (agent.turn,
# agent.usage: orchfs counts them against the step's max_turns and budget),
# then asks a question (a needs_human event: the run shows needs_human and
# MOUNT/attention lists it) and waits for the answer, which a person gives
# by appending {"message_type":"human_answer","content":"..."} to the
# sandbox's messages. Needs jq.
set -u
SB=${ORCHFS_SANDBOX:?run me as an orchfs step}
post() { printf '%s\n' "$1" >>"$SB/events"; }
turn() {
	post '{"event_type":"agent.turn","source":"ask.sh"}'
	post "$(jq -cn --argjson c "$1" --argjson t "$2" '{event_type:"agent.usage", event_data:{cost_usd:$c, tokens:$t}, source:"ask.sh"}')"
}

post '{"event_type":"heartbeat","source":"ask.sh"}'
echo "reading the repository"; turn 0.02 1200
echo "planning the migration"; turn 0.05 3400
post '{"event_type":"needs_human","event_data":{"question":"Migrate the staging or the production database first?"},"source":"ask.sh"}'
echo "asked a person; waiting for the answer"
while :; do
	post '{"event_type":"heartbeat","source":"ask.sh"}'
	cat "$SB/inbox" >inbox.jsonl
	answer=$(jq -r 'select(.message_type == "human_answer") | .content' inbox.jsonl | head -1)
	[ -n "$answer" ] && break
	sleep 0.5
done
echo "the answer: $answer"
echo "migrating $answer first"; turn 0.04 2100
echo "done"
