#!/usr/bin/env bash
# An inbox open with a large queue (issue 12, finding 8; README "Limits"):
# with 9,000 queued messages an open takes at most 256 of them (256 KiB),
# so that it costs the engine a bounded time whatever the queue holds; the
# rest waits for the next open. A worker reading its inbox again and again
# while messages keep coming receives every message exactly once, in FIFO
# order; 800 inboxes open at once hold disjoint batches, and what those
# closed early hand back comes first again. Another user reads meanwhile.
# (9,000: below the default limits.queued_messages, 10,000.)
# (How long an open takes is a benchmark, scripts/bench/flood.sh, never a
# test.)
. "$(dirname "$0")/lib.sh"
need_root_users
new_user U1
new_user U2

start_fs -o allow_other,default_permissions
as $U1 mkdir "$M/sandboxes/fl" || fail "mkdir sandboxes/fl failed"
chmod 0755 "$T"

cat >"$T/inbox.py" <<'EOF'
import json, os, sys
box, phase = sys.argv[1], sys.argv[2]
MSG, INBOX = os.path.join(box, "messages"), os.path.join(box, "inbox")

def append(first, n):
    data = b"".join(b"m%06d\n" % i for i in range(first, first + n))
    fd = os.open(MSG, os.O_WRONLY | os.O_APPEND)
    off = 0
    while off < len(data):
        off += os.write(fd, data[off:])
    os.close(fd)

def take(fd, close=True):
    out = b""
    while True:
        b = os.read(fd, 1 << 16)
        if not b:
            break
        out += b
    if close:
        os.close(fd)
    return [int(json.loads(l)["content"][1:]) for l in out.decode().splitlines()]

def fail(msg):
    print(msg)
    sys.exit(1)

def check_batch(got, what):
    if len(got) > 256:
        fail("%s: one open took %d messages, want at most 256" % (what, len(got)))
    if got != sorted(got):
        fail("%s: a batch is not in order: %s..." % (what, got[:10]))

if phase == "worker":
    # 9,000 queued; the worker reads while 1,000 more come in between opens
    append(0, 9000)
    seen, nxt, opens = [], 9000, 0
    while True:
        got = take(os.open(INBOX, os.O_RDONLY))
        opens += 1
        check_batch(got, "worker")
        seen += got
        if nxt < 10000:
            append(nxt, 100)
            nxt += 100
        elif not got:
            break
    if seen != list(range(10000)):
        dup = len(seen) - len(set(seen))
        fail("worker received %d messages (%d duplicates), want 0..9999 in order" % (len(seen), dup))
    print("worker: 10000 messages in %d opens" % opens)
elif phase == "many":
    append(100000, 9000)
    fds = [os.open(INBOX, os.O_RDONLY) for _ in range(800)]
    batches = [take(fd, close=False) for fd in fds]
    for b in batches:
        check_batch(b, "800 open")
    held = [m for b in batches for m in b]
    if len(held) != len(set(held)):
        fail("800 open inboxes share messages")
    if sorted(held) != list(range(100000, 100000 + len(held))):
        fail("800 open inboxes do not hold the oldest messages")
    if len(held) != 9000:
        fail("800 open inboxes hold %d of 9000 messages" % len(held))
    for fd in fds:
        os.close(fd)         # each was read to its end: delivered
    print("many: 800 open inboxes held the 9000 messages, disjoint")
elif phase == "handback":
    append(200000, 3000)
    fds = [os.open(INBOX, os.O_RDONLY) for _ in range(12)]
    for fd in fds[::2]:
        os.close(fd)         # never read: handed back
    kept = [take(fd) for fd in fds[1::2]]
    for b in kept:
        check_batch(b, "hand-back")
    seen = [m for b in kept for m in b]
    while True:
        got = take(os.open(INBOX, os.O_RDONLY))
        check_batch(got, "after hand-back")
        if not got:
            break
        seen += got
    if sorted(seen) != list(range(200000, 203000)) or len(seen) != len(set(seen)):
        fail("after hand-backs: %d messages, %d distinct, want 200000..202999 once each"
             % (len(seen), len(set(seen))))
    print("handback: 3000 messages once each")
EOF

for phase in worker many handback; do
  as $U1 python3 "$T/inbox.py" "$M/sandboxes/fl" $phase >"$T/$phase.out" 2>&1 || fail "$(cat "$T/$phase.out")"
  note "$(cat "$T/$phase.out")"
  # another user is served meanwhile (and between phases)
  as $U2 cat "$M/README" >/dev/null || fail "$U2 could not read README"
done
jq -e '.messages.queued == 0' "$M/sandboxes/fl/status" >/dev/null \
  || fail "queued after every phase: $(jq -c .messages "$M/sandboxes/fl/status")"
[ "$(jq .messages.delivered "$M/sandboxes/fl/status")" -eq 22000 ] \
  || fail "delivered: $(jq -c .messages "$M/sandboxes/fl/status"), want 22000"
[ "$(jq -r 'select(.type == "message.delivered") | .message_id' "$M/sandboxes/fl/events" | sort | uniq -d | wc -l)" -eq 0 ] \
  || fail "a message was delivered twice"

# the messages view of 22,000 messages is read a part at a time (a line never
# moves: a queued one ends in 3 spaces): whole, at any offset, of the size stat
# gives, each line JSON
V=$M/sandboxes/fl/messages
[ "$(wc -c <"$V")" -eq "$(stat -c %s "$V")" ] || fail "messages: read $(wc -c <"$V") bytes, stat says $(stat -c %s "$V")"
[ "$(jq -c 'select(.state == "delivered")' "$V" | wc -l)" -eq 22000 ] || fail "messages: not 22000 delivered lines"
as $U1 bash -c "echo last >>'$V'" || fail "one more message"
python3 - "$V" <<'PY' || fail "reads of messages at offsets disagree with the whole"
import os, random, sys, json
p = sys.argv[1]
whole = open(p, "rb").read()
assert len(whole) == os.stat(p).st_size
last = whole.splitlines()[-1]
assert last.endswith(b'"state":"queued"}   ') and json.loads(last)["content"] == "last", last
fd = os.open(p, os.O_RDONLY)
rnd = random.Random(12)
for _ in range(300):
    off = rnd.randrange(len(whole)); n = rnd.choice([1, 10, 100, 5000, 200000])
    got = b""
    while len(got) < n:
        b = os.pread(fd, n - len(got), off + len(got))
        if not b: break
        got += b
    assert got == whole[off:off + n], (off, n)
os.close(fd)
PY
