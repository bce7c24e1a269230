#!/usr/bin/env bash
# sandboxes/ID/messages (SPEC 5): one message per line, typed JSON lines or
# plain text, empty lines ignored; a write() with any invalid complete line
# fails with EINVAL and queues none of its lines; lines split across writes
# are buffered per open file and an unterminated last line counts at close();
# ">" appends; reading gives JSONL with id, ts, message_type, content, state;
# status counts queued and delivered messages.
. "$(dirname "$0")/lib.sh"
start_fs

mkdir "$M/sandboxes/mb" || fail "mkdir sandboxes/mb failed"
B=$M/sandboxes/mb MSG=$M/sandboxes/mb/messages
[ "$(wc -c <"$MSG")" -eq 0 ] || fail "a new sandbox has messages: $(cat "$MSG")"
jq -e '.messages == {"queued": 0, "delivered": 0}' "$B/status" >/dev/null || fail "new sandbox: messages counts $(sb_field mb messages | tr -d ' \n')"

nmsg() { wc -l <"$MSG"; }
# contents: every message as TYPE:CONTENT, one per line
contents() { jq -r '"\(.message_type):\(.content)"' "$MSG"; }
# expect_msgs N WHAT: exactly N messages recorded and N queued in status
expect_msgs() {
  local n; n=$(nmsg)
  [ "$n" -eq "$1" ] || fail "$2: want $1 messages, messages has $n: $(contents | tr '\n' '|')"
  [ "$(sb_field mb messages.queued)" -eq "$1" ] || fail "$2: status says $(sb_field mb messages.queued) queued, want $1"
}
# refused WHAT FORMAT...: one write() of the bytes must fail with EINVAL and queue nothing
refused() {
  local what=$1 n; shift
  n=$(nmsg)
  if write_once "$MSG" "$@"; then fail "messages: a write with $what was accepted"; fi
  grep -qx 'write: EINVAL' "$T/write.err" || fail "messages: a write with $what: want EINVAL from write(), got: $(cat "$T/write.err")"
  expect_msgs "$n" "after a refused write with $what"
}

# ---- plain and typed lines
UNI=$'h\u00e9llo \u2603 "quoted" back\\slash \t tab'
echo 'hello world' >>"$MSG" || fail "echo >> messages failed"
expect_msgs 1 "one plain line"
write_once "$MSG" '%s\n' '{"content": "stop it", "message_type": "interrupt"}' \
  '{"content": "careful", "message_type": "guardian_intervention"}' \
  '{"content": "typed", "message_type": "user_message"}' \
  '{"content": "default type"}' \
  '' 'not {json} at all' '' '' '[1, 2]' "$UNI" \
  || fail "one write of several valid lines failed: $(cat "$T/write.err")"
expect_msgs 8 "one write of 7 non-empty lines and 3 empty ones"
want='user_message:hello world
interrupt:stop it
guardian_intervention:careful
user_message:typed
user_message:default type
user_message:not {json} at all
user_message:[1, 2]
user_message:'$UNI
[ "$(contents)" = "$want" ] || fail "messages recorded wrongly:
$(contents)
--- want:
$want"
# only empty lines: accepted, nothing queued
write_once "$MSG" '\n\n\n' || fail "a write of empty lines failed: $(cat "$T/write.err")"
expect_msgs 8 "a write of empty lines"

# ---- each invalid line makes the whole write() fail with EINVAL, queueing none
refused "a bad JSON object"         'good line\n{"content": "x",\n'
refused "an unknown message_type"   'good line\n{"content": "x", "message_type": "shout"}\n'
refused "an unknown key"            'good line\n{"content": "x", "message_type": "user_message", "extra": 1}\n'
refused "a content that is a number" 'good line\n{"content": 5}\n'
refused "a JSON object then garbage" 'good line\n{"content": "x"} tail\n'
refused "invalid UTF-8"             'good line\nbad \xff\xfe bytes\n'
refused "a NUL byte"                'good line\nab\x00cd\n'
refused "a line over 64 KiB"        'good line\n%s\n' "$(head -c 70000 /dev/zero | tr '\0' a)"
refused "an invalid first line"     '{"message_type": "interrupt", "content": "x", "bogus": true}\ngood line\n'
refused "a line of 65537 bytes"      'good line\n%s\n' "$(head -c 65537 /dev/zero | tr '\0' a)"
# a line of 64 KiB (65536 bytes, then its newline) is not over the limit
write_once "$MSG" '%s\n' "$(head -c 65536 /dev/zero | tr '\0' b)" || fail "a line of 65536 bytes was refused: $(cat "$T/write.err")"
expect_msgs 9 "a line of 65536 bytes"
[ "$(jq -r '.content | length' "$MSG" | tail -1)" -eq 65536 ] \
  || fail "the 65536-byte message was not kept whole"

# ---- all-or-nothing holds for a big write() (100 KiB of lines, as one FUSE write)
python3 -c 'import sys; sys.stdout.write("".join("bulk %05d %s\n" % (i, "x" * 40) for i in range(2000)))' >"$T/bulk"
python3 -c 'import sys; sys.stdout.write("".join("bulk %05d %s\n" % (i, "x" * 40) for i in range(1999)) + "{bad json\n")' >"$T/bulkbad"
n=$(nmsg)
if write_once "$MSG" '%s\n' "$(cat "$T/bulkbad")"; then fail "a 100 KiB write whose last line is invalid was accepted"; fi
grep -qx 'write: EINVAL' "$T/write.err" || fail "a 100 KiB write whose last line is invalid: want EINVAL, got: $(cat "$T/write.err")"
expect_msgs "$n" "a refused 100 KiB write (its last line invalid)"
# valid, it is taken 256 lines per write(): a short write, whose rest the
# writer's loop sends again (README "Limits"), as cat and stdio do
python3 - "$MSG" "$T/bulk" >"$T/writes" 2>"$T/py.err" <<'EOF' || fail "a 100 KiB write of valid lines failed: $(cat "$T/py.err")"
import os, sys
data = open(sys.argv[2], "rb").read()
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
first, off, writes = None, 0, 0
while off < len(data):
    n = os.write(fd, data[off:])
    first = n if first is None else first
    off += n
    writes += 1
os.close(fd)
print(first, writes)
EOF
read -r first writes <"$T/writes"
[ "$first" -eq $((256 * 52)) ] || fail "the first write() of 2000 lines of 52 bytes took $first bytes, want 256 lines ($((256 * 52)))"
[ "$writes" -eq 8 ] || fail "2000 lines went in $writes write()s, want 8 (256 each)"
expect_msgs $((n + 2000)) "a 100 KiB write of 2000 lines"
jq -r .content "$MSG" | tail -2000 | cmp -s - "$T/bulk" || fail "the 2000 lines of one write were not recorded whole and in order"
cat "$T/bulk" >>"$MSG" || fail "cat of 2000 lines >> messages failed"
expect_msgs $((n + 4000)) "cat of 2000 lines"
jq -r .content "$MSG" | tail -2000 | cmp -s - "$T/bulk" || fail "cat >> messages did not record 2000 lines whole and in order"

# ---- a line split across write()s is buffered per open file
python3 - "$MSG" "$B/status" 2>"$T/py.err" <<'EOF' || fail "split writes: $(cat "$T/py.err")"
import json, os, sys
msg, status = sys.argv[1], sys.argv[2]
def queued(): return json.load(open(status))["messages"]["queued"]
def n(): return sum(1 for _ in open(msg))
before = n()
fd = os.open(msg, os.O_WRONLY | os.O_APPEND)
os.write(fd, b"par")
os.write(fd, b"tial li")
assert n() == before, "a partial line was queued before its end"
# another open file in between: its line is its own
fd2 = os.open(msg, os.O_WRONLY | os.O_APPEND)
os.write(fd2, b"from another handle\n")
os.close(fd2)
os.write(fd, b"ne\nsecond")
assert n() == before + 2, "after the newline: want 2 new messages, have %d" % (n() - before)
os.write(fd, b" line\nunterminated ")
os.write(fd, b"tail")
assert n() == before + 3, "want 3 new messages before close, have %d" % (n() - before)
# a refused write (its complete lines are not all valid) changes nothing, not even the buffered part
try:
    os.write(fd, b" more\n{\"content\": 1}\n")
    raise AssertionError("a write with an invalid line was accepted")
except OSError as e:
    assert e.errno == 22, "want EINVAL, got %s" % e
assert n() == before + 3, "a refused write queued something"
os.close(fd)
assert n() == before + 4, "close did not queue the unterminated last line"
assert queued() == before + 4, "status queued %d, want %d" % (queued(), before + 4)
EOF
[ "$(contents | tail -4)" = "user_message:from another handle
user_message:partial line
user_message:second line
user_message:unterminated tail" ] || fail "split writes recorded wrongly: $(contents | tail -4 | tr '\n' '|')"

# ---- an unterminated last line at close(): valid, then invalid
printf 'no newline at the end' >>"$MSG" || fail "printf without a newline failed"
expect_msgs 4014 "an unterminated line"
[ "$(contents | tail -1)" = "user_message:no newline at the end" ] || fail "unterminated last line recorded as: $(contents | tail -1)"
if write_once "$MSG" 'valid line\n{"content": "unfinished'; then fail "close() accepted an invalid unterminated last line"; fi
grep -qx 'close: EINVAL' "$T/write.err" || fail "an invalid unterminated last line: want close() to fail with EINVAL, got: $(cat "$T/write.err")"
# the complete line of that write was valid, so that write() recorded it
expect_msgs 4015 "a valid line then an invalid unterminated one"
[ "$(contents | tail -1)" = "user_message:valid line" ] || fail "last message is $(contents | tail -1)"

# ---- ">" appends, never truncates
echo 'via truncate' >"$MSG" || fail "echo > messages failed"
expect_msgs 4016 "echo > messages"
[ "$(contents | head -1)" = "user_message:hello world" ] || fail "echo > messages truncated the messages"

# ---- the JSONL view
jq -se 'all(keys == ["content", "id", "message_type", "state", "ts"])' "$MSG" >/dev/null \
  || fail "a message line lacks a field or has others: $(head -2 "$MSG")"
jq -se 'all(.state == "queued" and (.id | type) == "number" and (.content | type) == "string")' "$MSG" >/dev/null \
  || fail "bad field values: $(head -2 "$MSG")"
jq -se 'map(.id) as $i | all(range(1; $i | length); $i[.] > $i[. - 1])' "$MSG" >/dev/null \
  || fail "message ids not increasing: $(jq -c .id "$MSG" | tr '\n' ' ')"
for t in $(jq -r .ts "$MSG"); do is_iso "$t" || fail "ts $t is not ISO 8601 with milliseconds"; done
[ "$(count_events "$B/events" message.queued)" -eq 4016 ] || fail "want 4016 message.queued events, got $(count_events "$B/events" message.queued)"

# ---- delivery updates the counts and states
# an open takes at most 256 messages (README "Limits"): cat until it is empty
cat "$B/inbox" >"$T/inbox" || fail "cat inbox failed"
[ "$(wc -l <"$T/inbox")" -eq 256 ] || fail "the first open of the inbox gave $(wc -l <"$T/inbox") messages, want 256"
for i in $(seq 1 16); do cat "$B/inbox" >>"$T/inbox" || fail "cat inbox failed"; done
[ "$(wc -l <"$T/inbox")" -eq 4016 ] || fail "17 opens of the inbox gave $(wc -l <"$T/inbox") messages, want 4016"
jq -r .id "$T/inbox" | sort -n -c || fail "the inbox's batches are not in order"
[ "$(wc -c <"$B/inbox")" -eq 0 ] || fail "the inbox is not empty after 4016 messages were taken"
jq -e '.messages == {"queued": 0, "delivered": 4016}' "$B/status" >/dev/null || fail "after delivery: counts $(sb_field mb messages | tr -d ' \n')"
jq -se 'all(.state == "delivered")' "$MSG" >/dev/null || fail "delivered messages do not say so: $(head -2 "$MSG")"
echo 'one more' >>"$MSG"
jq -e '.messages == {"queued": 1, "delivered": 4016}' "$B/status" >/dev/null || fail "counts after one more: $(sb_field mb messages | tr -d ' \n')"

# ---- messages and their states survive a restart
stop_fs
start_fs
[ "$(nmsg)" -eq 4017 ] || fail "after a restart messages holds $(nmsg) lines, want 4017"
jq -e '.messages == {"queued": 1, "delivered": 4016}' "$B/status" >/dev/null || fail "counts after a restart: $(sb_field mb messages | tr -d ' \n')"
