#!/usr/bin/env bash
# sandboxes/ID/inbox (SPEC 5): opening it takes the oldest queued messages no
# other open inbox holds (at most 256: t_sb_inbox_batches), oldest first, as
# JSONL; read to the end and closed, they
# are delivered (message.delivered events); closed before the end, they go
# back to the queue, in order; two inboxes open at once never share a message;
# an empty inbox reads as empty.
. "$(dirname "$0")/lib.sh"
start_fs

mkdir "$M/sandboxes/ib" || fail "mkdir sandboxes/ib failed"
B=$M/sandboxes/ib
counts() { jq -c '[.messages.queued, .messages.delivered]' "$B/status"; }
[ "$(wc -c <"$B/inbox")" -eq 0 ] || fail "the inbox of a new sandbox is not empty"

# five messages of 3000 bytes each: the inbox is far longer than the reads below
PAD=$(head -c 3000 /dev/zero | tr '\0' p)
for i in 1 2 3 4 5; do echo "m$i $PAD" >>"$B/messages" || fail "append m$i failed"; done
[ "$(counts)" = "[5,0]" ] || fail "after 5 appends: [queued, delivered] = $(counts)"
has_events "$B/events" message.queued 5 || fail "want 5 message.queued events"

# ---- closed before the end: back to the queue
python3 - "$B/inbox" >"$T/partial" <<'EOF' || fail "python could not open the inbox"
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
sys.stdout.write(os.read(fd, 100).decode())
os.close(fd)
EOF
case $(cat "$T/partial") in '{'*'"m1 ppp'*) ;; *) fail "the inbox does not start with the oldest message m1: $(head -c 100 "$T/partial")" ;; esac
[ "$(counts)" = "[5,0]" ] || fail "an inbox closed after 100 bytes delivered messages: $(counts)"
[ "$(count_events "$B/events" message.delivered)" -eq 0 ] || fail "message.delivered after an inbox closed early"
head -c 10 "$B/inbox" >/dev/null
[ "$(counts)" = "[5,0]" ] || fail "head -c 10 inbox delivered messages: $(counts)"
jq -se 'all(.state == "queued")' "$B/messages" >/dev/null || fail "messages not queued after early closes"
echo "m6" >>"$B/messages"

# ---- FIFO, and read to the end + closed: delivered
cat "$B/inbox" >"$T/all" || fail "cat inbox failed"
[ "$(jq -r '.content | .[0:2]' "$T/all" | tr '\n' ' ')" = "m1 m2 m3 m4 m5 m6 " ] \
  || fail "the inbox gave $(jq -r '.content | .[0:2]' "$T/all" | tr '\n' ' '), want m1..m6 in order"
jq -se 'all(keys == ["content", "id", "message_type", "state", "ts"]) and all(.message_type == "user_message")' "$T/all" >/dev/null \
  || fail "inbox lines lack fields: $(head -c 300 "$T/all")"
[ "$(counts)" = "[0,6]" ] || fail "after cat inbox: [queued, delivered] = $(counts)"
jq -se 'all(.state == "delivered")' "$B/messages" >/dev/null || fail "messages do not say delivered"
[ "$(count_events "$B/events" message.delivered)" -eq 6 ] || fail "want 6 message.delivered events, got $(count_events "$B/events" message.delivered)"
jq -se --slurpfile a "$T/all" '[.[] | select(.type == "message.delivered") | .message_id] == [$a[] | .id]' "$B/events" >/dev/null \
  || fail "message.delivered events do not name the delivered messages in order"
[ "$(wc -c <"$B/inbox")" -eq 0 ] || fail "the inbox is not empty once everything was delivered"
[ "$(counts)" = "[0,6]" ] || fail "reading an empty inbox changed the counts: $(counts)"

# ---- two inboxes open at once split the messages
for i in 1 2 3 4; do echo "n$i" >>"$B/messages"; done
python3 - "$B" >"$T/two" 2>"$T/two.err" <<'EOF' || fail "two inboxes: $(cat "$T/two.err")"
import json, os, sys
B = sys.argv[1]
def read_all(fd):
    out = b""
    while True:
        b = os.read(fd, 65536)
        if not b: return [json.loads(l)["content"] for l in out.decode().splitlines()]
        out += b
def append(text):
    with open(os.path.join(B, "messages"), "a") as f: f.write(text + "\n")
fd1 = os.open(os.path.join(B, "inbox"), os.O_RDONLY)    # takes n1..n4
append("n5"); append("n6")
fd2 = os.open(os.path.join(B, "inbox"), os.O_RDONLY)    # takes n5, n6 only
fd3 = os.open(os.path.join(B, "inbox"), os.O_RDONLY)    # nothing left
a, b, c = read_all(fd2), read_all(fd1), read_all(fd3)
print(" ".join(b) + " | " + " ".join(a) + " | " + " ".join(c))
os.close(fd1); os.close(fd2); os.close(fd3)
# an inbox closed early hands its messages back while another one is open
append("o1"); append("o2")
fd4 = os.open(os.path.join(B, "inbox"), os.O_RDONLY)    # takes o1, o2
append("o3")
fd5 = os.open(os.path.join(B, "inbox"), os.O_RDONLY)    # takes o3
os.close(fd4)                                           # o1, o2 back to the queue
fd6 = os.open(os.path.join(B, "inbox"), os.O_RDONLY)    # o1, o2 again
d, e = read_all(fd6), read_all(fd5)
os.close(fd6); os.close(fd5)
print(" ".join(d) + " | " + " ".join(e))
EOF
[ "$(sed -n 1p "$T/two")" = "n1 n2 n3 n4 | n5 n6 | " ] \
  || fail "two inboxes open at once: got '$(sed -n 1p "$T/two")', want 'n1 n2 n3 n4 | n5 n6 | '"
[ "$(sed -n 2p "$T/two")" = "o1 o2 | o3" ] \
  || fail "an inbox closed early while another was open: got '$(sed -n 2p "$T/two")', want 'o1 o2 | o3'"
[ "$(counts)" = "[0,15]" ] || fail "after the concurrent inboxes: [queued, delivered] = $(counts), want [0,15]"
[ "$(count_events "$B/events" message.delivered)" -eq 15 ] || fail "want 15 message.delivered events, got $(count_events "$B/events" message.delivered)"
[ "$(jq -r 'select(.type == "message.delivered") | .message_id' "$B/events" | sort | uniq -d)" = "" ] || fail "a message was delivered twice"
[ "$(count_events "$B/events" message.queued)" -eq 15 ] || fail "want 15 message.queued events"

# ---- typed messages come out with their type
echo '{"content": "halt", "message_type": "interrupt"}' >>"$B/messages"
[ "$(jq -r '"\(.message_type) \(.content)"' "$B/inbox")" = "interrupt halt" ] || fail "the inbox did not give the interrupt with its type"
