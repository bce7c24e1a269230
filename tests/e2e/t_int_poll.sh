#!/usr/bin/env bash
# Waiting without polling (SPEC 11): poll(), select() and epoll (level- and
# edge-triggered) on an open MOUNT/events, runs/ID/events,
# sandboxes/ID/events, a step's log, a sandbox's logs and messages, an inbox,
# MOUNT/attention and runs/ID/wait block while nothing is new past what the
# reader has read, and wake when something is added (tests/e2e/pollwait.py:
# a real program, waiting 1.5 s for nothing, then for the change the test
# makes). A file that does not grow (a status) is readable at once, as any
# regular file. tail -f goes on as before: t_tail_follow.
. "$(dirname "$0")/lib.sh"
start_fs

PW=$(dirname "$0")/pollwait.py
declare -A PP
# poller NAME HOW FILE [OPTS...]: pollwait.py in the background, output in $T/NAME.out
poller() { local n=$1; shift; python3 "$PW" "$@" >"$T/$n.out" 2>&1 & PP[$n]=$!; }
# armed NAME K: the poller waited 1.5 s without a wake-up and now waits for round K's change
armed() { wait_for 20 grep -qx "armed $2" "$T/$1.out" || fail "poller $1 (round $2): $(cat "$T/$1.out")"; }
# done_ok NAME: the poller woke for each round and exited 0
done_ok() { wait "${PP[$1]}" || fail "poller $1: $(cat "$T/$1.out")"; }
# new NAME K: what the poller read after round K's wake-up
new() { sed -n "s/^new $2: //p" "$T/$1.out"; }
post() { echo "{\"event_type\":\"$2\"}" >>"$M/sandboxes/$1/events" || fail "posting $2 to $1 failed"; }

# ---- sandboxes/ID/events: poll, select, epoll, edge-triggered epoll; two rounds
mkdir "$M/sandboxes/pe" || fail "mkdir sandboxes/pe failed"
for how in poll select epoll epollet; do poller "ev-$how" "$how" "$M/sandboxes/pe/events" --rounds 2; done
for how in poll select epoll epollet; do armed "ev-$how" 1; done
post pe ping1
for how in poll select epoll epollet; do armed "ev-$how" 2; done
post pe ping2
for how in poll select epoll epollet; do
  done_ok "ev-$how"
  case $(new "ev-$how" 1) in *'"type":"ping1"'*) ;; *) fail "$how on events, round 1 read: $(new "ev-$how" 1)" ;; esac
  case $(new "ev-$how" 2) in *'"type":"ping2"'*) ;; *) fail "$how on events, round 2 read: $(new "ev-$how" 2)" ;; esac
  case $(new "ev-$how" 2) in *ping1*) fail "$how on events, round 2 read again: $(new "ev-$how" 2)" ;; esac
done

# ---- MOUNT/events
poller all poll "$M/events"
armed all 1
mkdir "$M/sandboxes/g2" || fail "mkdir sandboxes/g2 failed"
done_ok all
case $(new all 1) in *'"sandbox.created"'*'"g2"'*) ;; *) fail "poll on MOUNT/events read: $(new all 1)" ;; esac

# ---- a step's log, its sandbox's logs, its run's events: the step prints a
# line each time the test lets it (a file outside its workspace, so that the
# workspace's activity adds no event to the run's while a poller waits for
# nothing: isolation none, to see the test's directory), then ends
W=$T/go; mkdir -p "$W"
must_submit pr "$(plan '{"sandbox": {"isolation": "none"}}' "$(step s "echo a; until [ -e $W/go1 ]; do sleep 0.05; done; echo b
until [ -e $W/go2 ]; do sleep 0.05; done; echo c; until [ -e $W/go3 ]; do sleep 0.05; done")")"
wait_for 20 grep -qx a "$M/runs/pr-1/steps/s/log" || fail "the step never printed its first line"
poller log epollet "$M/runs/pr-1/steps/s/log" --rounds 2
poller logs poll "$M/sandboxes/pr-1/logs"
armed log 1; armed logs 1
touch "$W/go1"
armed log 2
touch "$W/go2"
done_ok log; done_ok logs
[ "$(new log 1)" = 'b\n' ] || fail "epoll on the log, round 1 read: $(new log 1)"
[ "$(new log 2)" = 'c\n' ] || fail "epoll on the log, round 2 read: $(new log 2)"
case $(new logs 1) in '[s] b\n'*) ;; *) fail "poll on the sandbox's logs read: $(new logs 1)" ;; esac
poller rev select "$M/runs/pr-1/events"
armed rev 1
touch "$W/go3"
done_ok rev
case $(new rev 1) in *'"step.succeeded"'*) ;; *) fail "select on runs/ID/events read: $(new rev 1)" ;; esac
expect_run pr-1 succeeded

# ---- messages and inbox: an inbox handle holds what it took at open; a poll
# on it wakes when messages are queued that an open would take (reopened here)
mkdir "$M/sandboxes/mi" || fail "mkdir sandboxes/mi failed"
poller inbox poll "$M/sandboxes/mi/inbox" --reopen --rounds 2
poller msgs select "$M/sandboxes/mi/messages"
armed inbox 1; armed msgs 1
echo hello >>"$M/sandboxes/mi/messages" || fail "append to messages failed"
armed inbox 2
echo again >>"$M/sandboxes/mi/messages" || fail "append to messages failed"
done_ok inbox; done_ok msgs
case $(new inbox 1) in *'"content":"hello"'*) ;; *) fail "poll on inbox, round 1 reopened: $(new inbox 1)" ;; esac
case $(new inbox 2) in *'"content":"again"'*) ;; *) fail "poll on inbox, round 2 reopened: $(new inbox 2)" ;; esac
case $(new msgs 1) in *'"content":"hello"'*) ;; *) fail "select on messages read: $(new msgs 1)" ;; esac
wait_for 20 is_sb_field mi messages.delivered 2 || fail "the reopened inboxes did not deliver: $(jq -c .messages "$M/sandboxes/mi/status")"

# ---- MOUNT/attention: a snapshot; a poll wakes when the list changes (an
# approval awaited, then decided), and a read from its start gives the new list
poller att poll "$M/attention" --reread --rounds 2
armed att 1
must_submit ap "$(plan '{}' '{"id": "ok", "type": "approval", "prompt": "go?"}')"
armed att 2
case $(new att 1) in *'"kind":"approval"'*'"run_id":"ap-1"'*) ;; *) fail "poll on attention, round 1 read again: $(new att 1)" ;; esac
echo approve >"$M/runs/ap-1/steps/ok/ctl" || fail "approve failed"
done_ok att
[ -z "$(new att 2)" ] || fail "poll on attention, round 2 read again (want the empty list): $(new att 2)"
expect_run ap-1 succeeded

# ---- runs/ID/wait: readable once the run has finished
must_submit wr "$(plan '{}' "$(step s 'until [ -e go ]; do sleep 0.05; done')")"
wait_for 20 is_step_state wr-1 s running || fail "the step never ran"
poller wait poll "$M/runs/wr-1/wait" --no-read
armed wait 1
touch "$(ws wr-1)/go"
done_ok wait
case $(new wait 1) in *'"state": "succeeded"'*) ;; *) fail "poll on wait, then read: $(new wait 1)" ;; esac

# ---- a file that does not grow is readable at once, as any regular file
python3 - "$M/runs/wr-1/status" <<'EOF' || fail "poll on a status file did not say readable at once"
import os, select, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
p = select.poll(); p.register(fd, select.POLLIN)
sys.exit(0 if p.poll(0) else 1)
EOF

# the daemon is fine, and nothing is left waiting
jq -e '.ok == true' "$M/health" >/dev/null || fail "health after the polls: $(cat "$M/health")"
