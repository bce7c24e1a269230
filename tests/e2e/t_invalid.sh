#!/usr/bin/env bash
# Invalid plans (SPEC 3): the close() of cp fails with EINVAL, no run starts,
# the text stays in plans/NAME.json, plans/NAME.error says what is wrong; a
# fix (editor-like save) removes the error and runs. Scratch files start
# nothing; a rename of an invalid plan fails and moves nothing; > 16 MiB: EFBIG.
. "$(dirname "$0")/lib.sh"
start_fs

# reject NAME REGEX JSON: submitting JSON as NAME fails, and NAME.error matches REGEX (grep -E)
reject() {
  local name=$1 re=$2 text=$3
  if submit "$name" "$text"; then fail "$name: an invalid plan was accepted: $text"; fi
  grep -q 'Invalid argument' "$T/cp.err" || fail "$name: cp should report EINVAL, said: $(cat "$T/cp.err")"
  [ ! -e "$M/runs/$name-1" ] || fail "$name: an invalid plan started a run"
  [ ! -e "$M/plans/$name.run" ] || fail "$name: an invalid plan made plans/$name.run"
  [ -s "$M/plans/$name.error" ] || fail "$name: no plans/$name.error"
  grep -Eq -- "$re" "$M/plans/$name.error" || fail "$name: plans/$name.error should match /$re/, says: $(cat "$M/plans/$name.error")"
  cmp -s "$T/$name.json.src" "$M/plans/$name.json" || fail "$name: plans/$name.json does not hold the rejected text"
}

reject syntax 'line 3, column [0-9]+' '{"steps": [
  {"id": "a", "command": "true"},
  {"id": "b" "command": "true"}
]}'
grep -qi 'line' "$M/plans/syntax.error" && grep -qi 'column' "$M/plans/syntax.error" || fail "syntax: want a line and a column"
reject notobj '[Oo]bject' '["steps"]'
reject nosteps '"?steps"?.*(required|missing)|(missing|no|without) "?steps' '{"plan_id": "x"}'
reject empty '"?steps"?.*(empty|at least)|(empty|no) steps' '{"steps": []}'
reject noid '\<id\>"?.*(required|missing)|(missing|no|without) "?id\>' '{"steps": [{"command": "true"}]}'
reject nocmd 'step "a".*command.*(required|missing)|(missing|no|without) "?command' '{"steps": [{"id": "a"}]}'
reject badid 'a b!' '{"steps": [{"id": "a b!", "command": "true"}]}'
long=$(printf 'x%.0s' $(seq 1 65))
reject longid "$long" '{"steps": [{"id": "'$long'", "command": "true"}]}'
reject dup '[Dd]uplicate.*"?a"?|"?a"?.*[Dd]uplicate' '{"steps": [{"id": "a", "command": "true"}, {"id": "a", "command": "true"}]}'
reject dep 'step "b".*unknown step "zz"|unknown.*"?zz"?' '{"steps": [{"id": "a", "command": "true"}, {"id": "b", "command": "true", "depends_on": ["zz"]}]}'
reject cyc 'cycle: (a -> b -> a|b -> a -> b)' '{"steps": [{"id": "a", "command": "true", "depends_on": ["b"]}, {"id": "b", "command": "true", "depends_on": ["a"]}]}'
reject cyc3 'cycle: (a -> b -> c -> a|b -> c -> a -> b|c -> a -> b -> c|a -> c -> b -> a|c -> b -> a -> c|b -> a -> c -> b)' \
  '{"steps": [{"id": "a", "command": "true", "depends_on": ["c"]}, {"id": "b", "command": "true", "depends_on": ["a"]}, {"id": "c", "command": "true", "depends_on": ["b"]}, {"id": "d", "command": "true"}]}'
reject selfdep 'cycle|itself' '{"steps": [{"id": "a", "command": "true", "depends_on": ["a"]}]}'
reject type 'timeout_sec.*(number|integer|type)' '{"steps": [{"id": "a", "command": "true", "timeout_sec": "x"}]}'
reject type2 'args.*(array|list|type)' '{"steps": [{"id": "a", "command": "echo", "args": "hello"}]}'
reject range 'retries.*(between|range|>= ?0|at least|negative|minimum)' '{"steps": [{"id": "a", "command": "true", "retries": -1}]}'
reject onfail 'on_failure.*explode|explode.*on_failure' '{"steps": [{"id": "a", "command": "true", "on_failure": "explode"}]}'
reject unkfield 'did you mean.*depends_on' '{"steps": [{"id": "a", "command": "true"}, {"id": "b", "command": "true", "depend_on": ["a"]}]}'
grep -q 'depend_on' "$M/plans/unkfield.error" || fail "unkfield: the error should name the unknown field"
reject unktop 'did you mean.*variables' '{"variabels": {"X": "1"}, "steps": [{"id": "a", "command": "true"}]}'
reject unkvar '(unknown|undefined).*NOPE' '{"variables": {"YES": "1"}, "steps": [{"id": "a", "command": "echo", "args": ["${YES} ${NOPE}"]}]}'
[ -z "$(ls "$M/runs")" ] || fail "invalid plans created runs: $(ls "$M/runs")"

# an editor-like save fixes a plan: write NAME.json.tmp, rename it onto NAME.json
good='{"steps": [{"id": "a", "command": "true"}, {"id": "b", "command": "true", "depends_on": ["a"]}]}'
printf '%s\n' "$good" >"$M/plans/cyc.json.tmp" || fail "writing plans/cyc.json.tmp failed"
[ ! -e "$M/runs/cyc-1" ] || fail "writing cyc.json.tmp started a run"
mv "$M/plans/cyc.json.tmp" "$M/plans/cyc.json" || fail "rename of a valid plan onto cyc.json failed"
[ -d "$M/runs/cyc-1" ] || fail "the rename did not start cyc-1 (numbering counts accepted submissions only)"
[ ! -e "$M/plans/cyc.error" ] || fail "a valid submission should remove plans/cyc.error"
[ ! -e "$M/plans/cyc.json.tmp" ] || fail "the renamed file is still there"
[ "$(cat "$M/plans/cyc.json")" = "$good" ] || fail "plans/cyc.json does not hold the renamed text"
expect_run cyc-1 succeeded
# a fix by cp works as well
submit syntax '{"steps": [{"id": "a", "command": "true"}]}' || fail "the fixed syntax plan was refused: $(cat "$T/cp.err")"
[ ! -e "$M/plans/syntax.error" ] || fail "plans/syntax.error should be gone"
expect_run syntax-1 succeeded

# a rename of an invalid plan fails and moves nothing, over an existing plan or not
bad='{"steps": [{"id": "a", "command": "true", "depends_on": ["nope"]}]}'
printf '%s\n' "$bad" >"$M/plans/cyc.json.tmp"
if mv "$M/plans/cyc.json.tmp" "$M/plans/cyc.json" 2>"$T/mv.err"; then fail "rename of an invalid plan onto cyc.json succeeded"; fi
# (mv words EINVAL from rename() as "a subdirectory of itself": ask rename() directly)
err=$(python3 -c 'import os, sys
try: os.rename(sys.argv[1], sys.argv[2])
except OSError as e: print(e.errno)' "$M/plans/cyc.json.tmp" "$M/plans/cyc.json")
[ "$err" = 22 ] || fail "rename() of an invalid plan should fail with EINVAL (22), got '${err:-success}'"
[ "$(cat "$M/plans/cyc.json.tmp" 2>/dev/null)" = "$bad" ] || fail "the source of a refused rename is gone or changed"
[ "$(cat "$M/plans/cyc.json")" = "$good" ] || fail "a refused rename changed cyc.json"
grep -q nope "$M/plans/cyc.error" 2>/dev/null || fail "a refused rename should write plans/cyc.error"
[ ! -e "$M/runs/cyc-2" ] || fail "a refused rename started a run"
printf '%s\n' "$bad" >"$M/plans/fresh.json.tmp"
if mv "$M/plans/fresh.json.tmp" "$M/plans/fresh.json" 2>/dev/null; then fail "rename of an invalid plan onto fresh.json succeeded"; fi
[ -e "$M/plans/fresh.json.tmp" ] && [ ! -e "$M/plans/fresh.json" ] || fail "a refused rename moved the file"
[ ! -e "$M/runs/fresh-1" ] || fail "a refused rename started a run"

# scratch files are plain files and start nothing, whatever they hold
before=$(ls "$M/runs" | tr '\n' ' ')
for f in .x.json.swp 4913 'x.json~' x.json.tmp x.json.bak; do
  plan '{}' "$(step a 'true')" >"$M/plans/$f" || fail "writing plans/$f failed"
  echo '{ not json' >"$M/plans/$f" || fail "writing invalid text to plans/$f failed"
  [ "$(cat "$M/plans/$f")" = '{ not json' ] || fail "plans/$f does not read back"
done
sleep 0.3
[ "$(ls "$M/runs" | tr '\n' ' ')" = "$before" ] || fail "scratch files started runs: $(ls "$M/runs")"
[ ! -e "$M/plans/x.error" ] && [ ! -e "$M/plans/4913.error" ] || fail "a scratch file was validated"
rm "$M/plans/4913" "$M/plans/.x.json.swp" || fail "scratch files cannot be removed"

# more than 16 MiB: EFBIG
if head -c $((16 * 1024 * 1024 + 65536)) /dev/zero | tr '\0' ' ' >"$M/plans/big.json" 2>"$T/big.err"; then
  fail "a 16 MiB + 64 KiB plan was accepted"
fi
grep -q 'File too large' "$T/big.err" || fail "want 'File too large' (EFBIG), got: $(cat "$T/big.err")"
[ ! -e "$M/runs/big-1" ] || fail "the oversized plan started a run"
# the daemon is still fine
submit ok "$(plan '{}' "$(step a 'true')")" || fail "a valid plan was refused after the invalid ones"
expect_run ok-1 succeeded
