#!/bin/sh
# An orchfs worker in plain shell: everything it does is file I/O on its
# sandbox directory ($ORCHFS_SANDBOX). It posts heartbeats and agent.* events,
# reads its inbox, acts on user messages and guardian interventions, and
# stops cleanly on an interrupt (or SIGTERM). Needs jq to read JSON.
set -u
SB=${ORCHFS_SANDBOX:?run me as an orchfs step}
post() { printf '%s\n' "$1" >>"$SB/events"; }
stop() { post '{"event_type":"agent.stopped","source":"worker.sh"}'; exit 0; }
trap stop TERM INT

post '{"event_type":"agent.started","source":"worker.sh"}'
while :; do
	post '{"event_type":"heartbeat","source":"worker.sh"}'
	# one read takes every queued message; they count as delivered once
	# cat has read them all and closed the file
	cat "$SB/inbox" >inbox.jsonl
	while IFS= read -r msg; do
		type=$(printf '%s' "$msg" | jq -r .message_type)
		text=$(printf '%s' "$msg" | jq -r .content)
		case $type in
		interrupt)
			echo "interrupted: $text"
			stop ;;
		guardian_intervention)
			echo "guardian says: $text"
			post "$(jq -cn --arg t "$text" '{event_type:"agent.ack", event_data:{guardian:$t}, source:"worker.sh"}')" ;;
		*)
			echo "working on: $text"
			printf '%s\n' "$text" >>notes.txt
			post "$(jq -cn --arg t "$text" '{event_type:"agent.reply", event_data:{done:$t}, source:"worker.sh"}')" ;;
		esac
	done <inbox.jsonl
	sleep 0.5
done
