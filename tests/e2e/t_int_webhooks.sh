#!/usr/bin/env bash
# Webhooks (SPEC 11) against a real receiver (python3 http.server, started
# and stopped by pid here): every post is signed with HMAC-SHA256 of its
# exact body; each subscriber gets the events its globs want, in seq order;
# a 500 is retried; a subscriber that never answers gets its event dropped
# with one webhook.dropped (which another subscriber receives); events
# queued while the receiver is down are delivered after a graceful restart
# and after a kill -9 of the daemon; a bad "webhooks" setting is refused at
# start with a message naming it; MOUNT/metrics counts deliveries.
. "$(dirname "$0")/lib.sh"

SECRET='s3cr€t "quoted"'
cat >"$T/recv.py" <<'EOF'
# recv.py PORTFILE OUT FAILS SECRET [PORT]: answer 500 to the first FAILS
# posts, then 200; one JSON line per post in OUT: seq, type, whether the
# signature is HMAC-SHA256(SECRET, body), the status given
import hashlib, hmac, http.server, json, sys
portfile, out, fails, secret = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].encode()
port = int(sys.argv[5]) if len(sys.argv) > 5 else 0
seen = [0]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        seen[0] += 1
        status = 500 if seen[0] <= fails else 200
        want = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        ev = json.loads(body)
        rec = {"seq": ev["seq"], "type": ev["type"], "sig_ok": self.headers.get("X-Orchfs-Signature") == want,
               "ctype": self.headers.get("Content-Type"), "status": status, "body": body.decode()}
        with open(out, "a") as f:
            f.write(json.dumps(rec) + "\n")
        self.send_response(status); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", port), H)
with open(portfile + ".tmp", "w") as f:
    f.write(str(s.server_address[1]))
import os; os.rename(portfile + ".tmp", portfile)
s.serve_forever()
EOF

RPID=""
# recv_start FAILS [PORT]: start the receiver; its port in $PORT
recv_start() {
  rm -f "$T/port"
  python3 "$T/recv.py" "$T/port" "$T/posts.jsonl" "$1" "$SECRET" ${2:-} &
  RPID=$!
  wait_for 10 test -s "$T/port" || fail "the receiver did not start"
  PORT=$(cat "$T/port")
}
recv_stop() { [ -z "$RPID" ] || { kill "$RPID"; wait "$RPID" 2>/dev/null; RPID=""; }; }

# config: the receiver for run and step events and drops; a subscriber no one
# answers, for run.created, without retries (dropped at its first failure)
write_config() {
  local dead; dead=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  jq -n --arg url "http://127.0.0.1:$PORT/hook" --arg secret "$SECRET" --arg dead "http://127.0.0.1:$dead/x" \
    '{webhooks: [{url: $url, secret: $secret, events: ["run.*", "step.succeeded", "webhook.*"],
                  retry_sec: (([range(20)] | map(1)) + ([range(10)] | map(3)))},
                 {url: $dead, secret: "x", events: ["run.created"], retry_sec: []}]}' >"$T/config.json"
}

# received TYPE...: the 200-answered posts, as "seq type" lines
ok_types() { jq -r 'select(.status == 200) | .type' "$T/posts.jsonl" | tr '\n' ,; }
# every post signed right, as application/json, and those answered 200 in strictly increasing seq order
check_posts() {
  jq -se 'all(.sig_ok and .ctype == "application/json")' "$T/posts.jsonl" >/dev/null \
    || fail "a post's signature or type is wrong: $(jq -c 'select(.sig_ok | not)' "$T/posts.jsonl" | head -3)"
  jq -se '[.[] | select(.status == 200) | .seq] as $s | all(range(1; $s | length); $s[.] > $s[. - 1])' \
    "$T/posts.jsonl" >/dev/null || fail "not delivered in seq order: $(jq -r 'select(.status == 200) | .seq' "$T/posts.jsonl" | tr '\n' ' ')"
}
# delivered_all RUN: every run.* and step.succeeded event of RUN in MOUNT/events was answered 200
delivered_all() {
  local want got
  want=$(jq -r --arg r "$1" 'select(.run_id == $r and (.type | test("^run\\.|^step\\.succeeded$"))) | .seq' "$M/events" | sort -n | tr '\n' ' ')
  got=$(jq -r --arg r "$1" 'select(.status == 200) | .body | fromjson | select(.run_id == $r) | .seq' "$T/posts.jsonl" | sort -n | tr '\n' ' ')
  [ -n "$want" ] && [ "$want" = "$got" ]
}

# ---- a bad setting: refused at start, naming it
bad_config() {
  printf '%s\n' "$1" >"$T/bad.json"
  timeout -k 2 10 "$ORCHFS" -f --state "$S" --config "$T/bad.json" "$M" >"$T/bad.out" 2>&1 && fail "started with $1"
  grep -qF -- "$2" "$T/bad.out" || fail "for $1 the message is: $(cat "$T/bad.out"), want: $2"
  ! mountpoint -q "$M" || fail "a refused config left a mount"
}
bad_config '{"webhooks": {"url": "http://127.0.0.1/"}}' '"webhooks" must be a list of {"url", "secret", "events"} objects, not an object'
bad_config '{"webhooks": [{"url": "ftp://127.0.0.1/", "secret": "s", "events": ["*"]}]}' 'webhooks[0].url must be an http:// or https:// URL'
bad_config '{"webhooks": [{"url": "http://127.0.0.1/", "events": ["*"]}]}' 'webhooks[0].secret is required'
bad_config '{"webhooks": [{"url": "http://127.0.0.1/", "secret": "s", "events": ["*"], "retry_sec": [0]}]}' 'webhooks[0].retry_sec[0] must be a number of seconds greater than 0'

# ---- signed, in order, a 500 retried, a dead subscriber dropped
recv_start 1
write_config
start_fs --config "$T/config.json"
must_submit wh "$(plan '{}' "$(step a 'true')" "$(step b 'true' '{"depends_on": ["a"]}')")"
expect_run wh-1 succeeded
wait_for 20 delivered_all wh-1 || fail "wh-1 not delivered: $(ok_types)"
[ "$(jq -r 'select(.status == 500) | .type' "$T/posts.jsonl")" = run.created ] \
  || fail "the first post should have been answered 500: $(jq -c '{seq, status}' "$T/posts.jsonl" | tr '\n' ' ')"
[ "$(jq -r 'select(.status == 200 and .type == "run.created") | .seq' "$T/posts.jsonl" | grep -c .)" = 1 ] \
  || fail "run.created should have been delivered once after its 500"
check_posts
# the body is the event's line, byte for byte
line=$(grep '"type":"run.succeeded"' "$M/runs/wh-1/events")
[ "$(jq -r 'select(.type == "run.succeeded") | .body' "$T/posts.jsonl")" = "$line" ] || fail "the body is not the event's line"
# the dead subscriber: dropped at once, one webhook.dropped, posted to the receiver
wait_for 20 grep -q '"webhook.dropped"' "$M/events" || fail "no webhook.dropped for a subscriber that never answers"
[ "$(count_events "$M/events" webhook.dropped)" = 1 ] || fail "want one webhook.dropped: $(grep webhook.dropped "$M/events")"
jq -se 'map(select(.type == "webhook.dropped"))[0] | .event_type == "run.created" and .attempts == 1 and (.url | startswith("http://127.0.0.1:")) and (.error | length > 0)' \
  "$M/events" >/dev/null || fail "webhook.dropped lacks what it is about: $(grep webhook.dropped "$M/events")"
wait_for 20 grep -q '"type": "webhook.dropped"' "$T/posts.jsonl" || fail "the receiver never got the webhook.dropped"
grep -q '^orchfs_webhook_deliveries_total{result="dropped"} 1$' "$M/metrics" || fail "metrics: $(grep webhook "$M/metrics")"
grep -q '^orchfs_webhook_deliveries_total{result="failed"} 2$' "$M/metrics" || fail "metrics (one 500, one drop): $(grep webhook "$M/metrics")"
ok=$(jq -r 'select(.status == 200)' "$T/posts.jsonl" | grep -c '"seq"')
grep -q "^orchfs_webhook_deliveries_total{result=\"ok\"} $ok\$" "$M/metrics" || fail "metrics (ok $ok): $(grep webhook "$M/metrics")"

# ---- the receiver down: queued, delivered after a graceful restart
recv_stop
must_submit down "$(plan '{}' "$(step a 'true')")"
expect_run down-1 succeeded
wait_for 20 grep -q 'webhook http://127.0.0.1:'"$PORT"'/hook: event .*attempt 2' "$T/daemon.log" \
  || fail "no failed attempts while the receiver was down"
stop_fs
recv_start 0 "$PORT"
start_fs --config "$T/config.json"
wait_for 20 delivered_all down-1 || fail "down-1 not delivered after a restart: $(ok_types)"
check_posts

# ---- the receiver down, the daemon killed -9: delivered after the restart
recv_stop
must_submit crash "$(plan '{}' "$(step a 'true')")"
expect_run crash-1 succeeded
attempts() { grep -c "webhook http://127.0.0.1:$PORT/hook: event" "$T/daemon.log"; }
more_attempts() { [ "$(attempts)" -gt "$1" ]; }
wait_for 20 more_attempts "$(attempts)" || fail "no failed attempt while the receiver was down"
crash_fs
recv_start 0 "$PORT"
start_fs --config "$T/config.json"
wait_for 20 delivered_all crash-1 || fail "crash-1 not delivered after kill -9: $(ok_types)"
check_posts
for r in wh-1 down-1 crash-1; do delivered_all "$r" || fail "$r: not every event delivered once"; done

# ---- a subscriber removed from the config: its queue goes, said in the log
recv_stop
must_submit gone "$(plan '{}' "$(step a 'true')")"
expect_run gone-1 succeeded
stop_fs
echo '{}' >"$T/config.json"
start_fs --config "$T/config.json"
grep -q "webhook http://127.0.0.1:$PORT/hook is no longer configured: its [0-9]* undelivered event" "$T/daemon.log" \
  || fail "dropping a removed subscriber's queue is not logged"
stop_fs
