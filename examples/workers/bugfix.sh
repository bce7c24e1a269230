#!/bin/sh
# The worker of a bug-fix phase (examples/bugfix-phase.json, SPEC section 9),
# in plain shell: it runs until the sandbox's window ends (orchfs then stops
# it), posting a heartbeat, and "fixes" each bug reported to the sandbox:
# reporters (people, CI, a monitor) post
#   {"event_type":"bug.reported","event_data":{"id":"BUG-7","title":"..."}}
# to MOUNT/sandboxes/bugfix/events; each report also extends the window.
# The fixes go to fixed.log in the workspace and out as bug.fixed events.
# Needs jq.
set -u
SB=${ORCHFS_SANDBOX:?run me as an orchfs step}
post() { printf '%s\n' "$1" >>"$SB/events"; }
touch fixed.log
echo "bug-fix phase open: report bugs to $SB/events"
while :; do
	post '{"event_type":"heartbeat","source":"bugfix.sh"}'
	jq -r 'select(.type == "bug.reported") | .event_data.id // empty' "$SB/events" | while read -r bug; do
		grep -qxF "$bug" fixed.log && continue
		echo "fixing $bug"
		echo "$bug" >>fixed.log
		post "$(jq -cn --arg b "$bug" '{event_type:"bug.fixed", event_data:{id:$b}, source:"bugfix.sh"}')"
	done
	sleep 2
done
